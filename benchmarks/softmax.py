"""The softmax losses on MovieLens-100K, leave-last-out, with default parameters.

Every rating of ``u.data`` is an interaction; each user's latest interaction
(ties: the larger item ID, as ``LeaveLastOut`` orders them) is the test item,
the next-latest the validation item, exactly as ``benchmarks/ranking.py``
splits. Each model is fitted with ``random_state`` in ``--seeds`` on the
non-test rows (``--validation``: on the rows before the validation items, and
scored on those) and scored by full-ranking HR@10 and NDCG@10 of
``recommend(users, n=10, exclude_seen=True)``; also ``recommend_next`` of each
user's fitted items as a new session, and its latency for one 50-item session.
``--max-history K`` keeps only each user's latest K fitted rows (the held-out
items stay), to see the models on short histories.
Beside skrec's defaults, tuned references that ignore order as they do: the
``implicit`` library's BPR and ALS, and EASE (``_ease.py``).
Writes ``benchmarks/results/softmax.md`` (``softmax_validation.md``; with
``--max-history K``, ``softmax_latestK.md`` or ``softmax_validation_latestK.md``).

    python benchmarks/softmax.py [--data-home DIR] [--seeds 0 1 2] [--validation]
        [--models '{"mf softmax": ["MatrixFactorization", {"loss": "softmax"}]}']
        [--max-history K] [--threads N]
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

import torch
from _common import RESULTS_DIR, default_data_home, display_path, median_seconds
from _ease import EASERecommender
from _implicit_library import ImplicitLibraryRecommender, library_version
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import MatrixFactorization, NeuralRecommender, PopularityRecommender
from skrec.datasets import load_movielens
from skrec.metrics import hit_rate_at_k, ndcg_at_k
from skrec.model_selection import LeaveLastOut

K = 10
ID_COLUMNS = ["user_id", "item_id"]
ESTIMATORS = {
    "MatrixFactorization": MatrixFactorization,
    "NeuralRecommender": NeuralRecommender,
    "EASERecommender": EASERecommender,
    "ImplicitLibraryRecommender": ImplicitLibraryRecommender,
}
# Default parameters but the loss (random_state set per seed).
MODELS = {
    "MatrixFactorization(loss='softmax')": ["MatrixFactorization", {"loss": "softmax"}],
    "MatrixFactorization(loss='sampled_softmax')": [
        "MatrixFactorization",
        {"loss": "sampled_softmax"},
    ],
    "NeuralRecommender(loss='softmax')": ["NeuralRecommender", {"loss": "softmax"}],
    "NeuralRecommender(loss='sampled_softmax')": [
        "NeuralRecommender",
        {"loss": "sampled_softmax"},
    ],
    # The architecture that "auto" does not choose on MovieLens-100K's long
    # histories, whose "auto" is "svdpp".
    "NeuralRecommender(loss='softmax', architecture='svdpp_user')": [
        "NeuralRecommender",
        {"loss": "softmax", "architecture": "svdpp_user"},
    ],
    "NeuralRecommender(loss='softmax', architecture='neumf')": [
        "NeuralRecommender",
        {"loss": "softmax", "architecture": "neumf"},
    ],
    "NeuralRecommender(loss='bce')": ["NeuralRecommender", {"loss": "bce"}],
    # References, tuned where skrec's models are not: the implicit library's
    # configurations that ranked best on the validation items without weights
    # in benchmarks/ranking.py, and EASE's l2 best of 50, 200, 500 and 1000 on
    # the validation items (HR@10 0.133, 0.138, 0.139, 0.136).
    "implicit BPR (tuned)": [
        "ImplicitLibraryRecommender",
        {
            "algorithm": "bpr",
            "factors": 64,
            "regularization": 0.01,
            "learning_rate": 0.01,
            "iterations": 100,
        },
    ],
    "implicit ALS (tuned)": [
        "ImplicitLibraryRecommender",
        {
            "algorithm": "als",
            "factors": 64,
            "regularization": 10.0,
            "alpha": 5.0,
            "iterations": 15,
        },
    ],
    "EASE(l2=500)": ["EASERecommender", {"l2": 500.0}],
}
SESSION_LENGTH = 50
LATENCY_REPEATS = 100


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--validation",
        action="store_true",
        help="fit on the rows before the validation items and score those",
    )
    parser.add_argument(
        "--models",
        type=json.loads,
        default=MODELS,
        help='JSON {"name": ["MatrixFactorization" or "NeuralRecommender", '
        "{parameters}]}",
    )
    parser.add_argument(
        "--max-history",
        type=int,
        default=None,
        help="fit on each user's latest K rows only",
    )
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


def split_latest(frame):
    """(earlier rows, each user's latest row sorted by user), as ranking.py."""
    splitter = LeaveLastOut(
        n=1, user_col="user_id", timestamp_col="timestamp", item_col="item_id"
    )
    earlier, latest = next(splitter.split(frame))
    return frame.iloc[earlier], frame.iloc[latest].sort_values("user_id")


def latest_rows(rows, k):
    """Each user's latest ``k`` rows (ties: the larger item ID last)."""
    ordered = rows.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    return ordered.groupby("user_id").tail(k)


def metrics(recommended, held_out):
    relevant = held_out["item_id"].to_numpy()[:, None]
    return {
        "hr": hit_rate_at_k(relevant, recommended, k=K),
        "ndcg": ndcg_at_k(relevant, recommended, k=K),
    }


def run(model, rows, held_out):
    """Fit on ``rows``; metrics of recommend and recommend_next on ``held_out``."""
    users = held_out["user_id"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(rows[ID_COLUMNS])
        seconds = time.perf_counter() - start
    result = {"seconds": seconds, "epochs": getattr(model, "n_iter_", None)}
    result |= metrics(model.recommend(users, n=K), held_out)
    if hasattr(model, "recommend_next"):
        items = rows.groupby("user_id")["item_id"].apply(list)
        sessions = [items[user] for user in users]
        by_session = metrics(model.recommend_next(sessions, n=K), held_out)
        result |= {f"next_{name}": value for name, value in by_session.items()}
        longest = max(sessions, key=len)[-SESSION_LENGTH:]
        result["next_ms"] = 1000 * median_seconds(
            lambda: model.recommend_next([longest], n=K), LATENCY_REPEATS
        )
    return result


def mean_std(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def report(results, args, source, held_out_name):
    command = shlex.join(["python", "benchmarks/softmax.py", *sys.argv[1:]])
    lines = [
        f"# Softmax losses on MovieLens-100K, leave-last-out ({held_out_name})",
        "",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"torch.get_num_threads() {torch.get_num_threads()}, 1-minute load "
        f"average {os.getloadavg()[0]:.2f} at the end (others' jobs slow the fits)",
        f"- Versions: torch {torch.__version__}, skrec {skrec.__version__}, "
        f"implicit {library_version()}",
        f"- Data: {source}",
        f"- Command: `{command}`",
        "- Fit on the rows before the held-out items; full-ranking HR@10 and "
        "NDCG@10 of `recommend(users, n=10, exclude_seen=True)`; `next`: "
        "`recommend_next` of each user's fitted items as a new session; "
        f"`next ms`: median of {LATENCY_REPEATS} calls for one "
        f"{SESSION_LENGTH}-item session.",
        "",
        "| model | HR@10 | NDCG@10 | fit s | epochs | next HR@10 | next NDCG@10 "
        "| next ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        cells = [
            mean_std([r["hr"] for r in runs], 4),
            mean_std([r["ndcg"] for r in runs], 4),
            mean_std([r["seconds"] for r in runs], 1),
            mean_std([r["epochs"] for r in runs], 1),
            mean_std([r.get("next_hr") for r in runs], 4),
            mean_std([r.get("next_ndcg") for r in runs], 4),
            mean_std([r.get("next_ms") for r in runs], 2),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Each run (seed: HR@10 / NDCG@10 / fit s / epochs):", ""]
    for name, runs in results.items():
        each = ", ".join(
            f"{r['seed']}: {r['hr']:.4f} / {r['ndcg']:.4f} / {r['seconds']:.1f} / "
            f"{r['epochs']}"
            for r in runs
        )
        lines.append(f"- {name}: {each}")
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    bunch = load_movielens("100k", data_home=args.data_home, download_if_missing=False)
    frame = bunch.frame[[*ID_COLUMNS, "timestamp"]]
    source = f"u.data from {display_path(args.data_home)}, {len(frame):,} rows"
    non_test, test = split_latest(frame)
    rows, held_out = non_test, test
    if args.validation:
        rows, held_out = split_latest(non_test)
    held_out_name = "validation items" if args.validation else "test items"
    if args.max_history is not None:
        rows = latest_rows(rows, args.max_history)
        held_out_name += f", each user's latest {args.max_history} rows fitted"
        source += f"; {len(rows):,} rows fitted"
    results = {"PopularityRecommender": []}
    popularity = run(PopularityRecommender(), rows, held_out)
    results["PopularityRecommender"].append({"seed": None, **popularity})
    for name, (estimator, params) in args.models.items():
        if estimator == "ImplicitLibraryRecommender" and library_version() is None:
            print(f"Skipping {name}: the implicit library is not installed.")
            continue
        results[name] = []
        for seed in args.seeds:
            model = ESTIMATORS[estimator](random_state=seed, **params)
            results[name].append({"seed": seed, **run(model, rows, held_out)})
            print(name, results[name][-1], flush=True)
    text = report(results, args, source, held_out_name)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "softmax_validation" if args.validation else "softmax"
    if args.max_history is not None:
        name += f"_latest{args.max_history}"
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(text)
    print(f"Wrote {display_path(path)}")


if __name__ == "__main__":
    main()
