"""Default parameters on sparse synthetic catalogs: short histories, many items.

MovieLens-100K users have a hundred interactions each; many public catalogs
have tens of thousands of users and items and under ten interactions per user.
This benchmark draws such catalogs with ``skrec.datasets.make_sequences``
(22,000 users, 12,000 items, about 9 interactions per user, at least 5, weak
order: ``order_strength=0.3``), at two popularity skews: 1.0, where a few
items take most interactions and popularity is hard to beat, and 0.5, a
flatter catalog. Each user's latest interaction is the test item and the
next-latest the validation item (``LeaveLastOut``, as ``softmax.py``); the
models are fitted on the rows before the validation items and scored there,
by full-ranking HR@10 and NDCG@10 of ``recommend(users, n=10,
exclude_seen=True)``. ``best epoch`` is the epoch of the best early-stopping
score, the weights the fit keeps.
Writes ``benchmarks/results/sparse_catalog.md``.

    python benchmarks/sparse_catalog.py [--seeds 0] [--skews 1.0 0.5]
        [--models '{"mf": ["MatrixFactorization", {"loss": "softmax"}]}']
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from _common import RESULTS_DIR, display_path
from sklearn.exceptions import ConvergenceWarning
from softmax import ESTIMATORS as SOFTMAX_ESTIMATORS
from softmax import ID_COLUMNS, metrics, split_latest
from softmax import MODELS as SOFTMAX_MODELS

import skrec
from skrec import PopularityRecommender, SequentialRecommender
from skrec.datasets import make_sequences

CATALOG = {
    "n_users": 22_000,
    "n_items": 12_000,
    "mean_length": 9,
    "min_length": 5,
    "order_strength": 0.3,
}
ESTIMATORS = {**SOFTMAX_ESTIMATORS, "SequentialRecommender": SequentialRecommender}
# softmax.py's models of default parameters but the loss (random_state set per
# seed), the architecture that "auto" chooses for long histories, and the
# sequential model.
MODELS = {
    name: SOFTMAX_MODELS[name]
    for name in (
        "NeuralRecommender(loss='softmax')",
        "NeuralRecommender(loss='sampled_softmax')",
        "MatrixFactorization(loss='softmax')",
    )
} | {
    "NeuralRecommender(loss='softmax', architecture='svdpp')": [
        "NeuralRecommender",
        {"loss": "softmax", "architecture": "svdpp"},
    ],
    "SequentialRecommender()": ["SequentialRecommender", {"time_col": "timestamp"}],
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--skews", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument(
        "--models",
        type=json.loads,
        default=MODELS,
        help='JSON {"name": ["MatrixFactorization", "NeuralRecommender" or '
        '"SequentialRecommender", {parameters}]}',
    )
    return parser.parse_args()


def catalog(skew):
    """The rows before each user's validation item, and the validation items."""
    frame = make_sequences(**CATALOG, popularity_skew=skew, random_state=0)
    non_test, _ = split_latest(frame)
    return split_latest(non_test)


def run(model, rows, held_out):
    ordered = isinstance(model, SequentialRecommender)
    columns = [*ID_COLUMNS, "timestamp"] if ordered else ID_COLUMNS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(rows[columns])
        seconds = time.perf_counter() - start
    scores = getattr(model, "validation_scores_", None)
    result = {
        "seconds": seconds,
        "epochs": getattr(model, "n_iter_", None),
        "best_epoch": None if scores is None else int(np.argmax(scores)) + 1,
    }
    return result | metrics(model.recommend(held_out["user_id"].to_numpy()), held_out)


def mean(values, digits):
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.{digits}f}" if values else "—"


def report(results, sizes):
    command = shlex.join(["python", "benchmarks/sparse_catalog.py", *sys.argv[1:]])
    lines = [
        "# Default parameters on sparse synthetic catalogs (validation items)",
        "",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"torch.get_num_threads() {torch.get_num_threads()}, 1-minute load "
        f"average {os.getloadavg()[0]:.2f} at the end",
        f"- Versions: torch {torch.__version__}, skrec {skrec.__version__}",
        f"- Data: make_sequences({', '.join(f'{k}={v}' for k, v in CATALOG.items())}"
        ", popularity_skew=..., random_state=0)",
        f"- Command: `{command}`",
        "- Means over the seeds; each seed's figures below.",
        "",
    ]
    for skew, by_model in results.items():
        n_rows, n_users, n_items = sizes[skew]
        lines += [
            f"## popularity_skew={skew}: {n_rows:,} fitted rows, {n_users:,} users, "
            f"{n_items:,} items",
            "",
            "| model | HR@10 | NDCG@10 | fit s | epochs | best epoch |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, runs in by_model.items():
            cells = [
                mean([r["hr"] for r in runs], 4),
                mean([r["ndcg"] for r in runs], 4),
                mean([r["seconds"] for r in runs], 1),
                mean([r["epochs"] for r in runs], 1),
                mean([r["best_epoch"] for r in runs], 1),
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        for name, runs in by_model.items():
            each = ", ".join(
                f"{r['seed']}: {r['hr']:.4f} / {r['ndcg']:.4f}" for r in runs
            )
            lines.append(f"- {name} (seed: HR@10 / NDCG@10): {each}")
        lines.append("")
    return "\n".join(lines)


def main():
    args = parse_args()
    results, sizes = {}, {}
    for skew in args.skews:
        rows, held_out = catalog(skew)
        sizes[skew] = (len(rows), rows["user_id"].nunique(), rows["item_id"].nunique())
        popularity = run(PopularityRecommender(), rows, held_out)
        results[skew] = {"PopularityRecommender": [{"seed": None, **popularity}]}
        for name, (estimator, params) in args.models.items():
            results[skew][name] = []
            for seed in args.seeds:
                model = ESTIMATORS[estimator](random_state=seed, **params)
                results[skew][name].append({"seed": seed, **run(model, rows, held_out)})
                print(skew, name, results[skew][name][-1], flush=True)
    text = report(results, sizes)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "sparse_catalog.md"
    path.write_text(text)
    print(f"Wrote {display_path(path)}")


if __name__ == "__main__":
    main()
