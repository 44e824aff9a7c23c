"""Top-10 ranking quality on MovieLens-100K, leave-last-out, against references.

Every rating of ``u.data`` is an interaction. Each user's latest interaction
is the test item, the next-latest the validation item. Each NeuralRecommender
loss picks a configuration of GRID on validation HR@10, is refitted on all
non-test rows with several seeds, and is scored on the test items with
full-ranking and sampled (1 + 99 negatives) HR@10 and NDCG@10, next to
PopularityRecommender and the reference figures. Writes a markdown table and a
plot to ``benchmarks/results/``.

    python benchmarks/ranking.py [--data-home DIR] [--seeds 0 1 2]
        [--grid '[{}, {"alpha": 5.0}]'] [--device cpu] [--threads N] [--quick]
"""

import argparse
import ast
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sklearn
import torch
from _common import RESULTS_DIR, default_data_home
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import NeuralRecommender, PopularityRecommender
from skrec.datasets import load_movielens
from skrec.metrics import hit_rate_at_k, ndcg_at_k
from skrec.model_selection import LeaveLastOut

# Candidate NeuralRecommender parameters; each loss tries every one of them.
GRID = [{}, {"alpha": 5.0}, {"n_negatives": 8}]
LOSSES = ("bce", "bpr")
K = 10
N_SAMPLED_NEGATIVES = 99
NEGATIVE_SEED = 0
QUICK_MAX_ITER = 2
ID_COLUMNS = ["user_id", "item_id"]
METRICS = ("full_hr", "full_ndcg", "sampled_hr", "sampled_ndcg")

# Figures for this protocol quoted in the issue, as written there: (full HR@10,
# full NDCG@10, sampled HR@10, sampled NDCG@10); None where it gives none.
REFERENCES = [
    ("PopularityRecommender (issue)", ("0.050", "0.025", "0.32", None)),
    ("implicit library, BPR", ("0.097", "0.046", None, None)),
    ("implicit library, ALS", ("0.091", "0.045", None, None)),
    ("implicit library, best sampled", (None, None, "0.59", None)),
]
TARGETS = {"full_hr": 0.10, "full_ndcg": 0.05, "sampled_hr": 0.62}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--grid",
        type=parse_grid,
        default=GRID,
        help="Python literal list of NeuralRecommender parameter dicts, tried "
        "with each loss (no 'loss' key).",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: first configuration only, first seed, "
        f"max_iter={QUICK_MAX_ITER}",
    )
    args = parser.parse_args()
    if args.quick:
        args.grid, args.seeds = args.grid[:1], args.seeds[:1]
    return args


def parse_grid(text):
    grid = ast.literal_eval(text)
    if (
        not isinstance(grid, list)
        or not grid
        or not all(isinstance(config, dict) for config in grid)
    ):
        raise argparse.ArgumentTypeError("--grid must be a non-empty list of dicts")
    if any("loss" in config for config in grid):
        raise argparse.ArgumentTypeError("--grid configurations must not set 'loss'")
    return grid


# -- data -------------------------------------------------------------------


def load_interactions(data_home):
    """All of u.data as (user_id, item_id, timestamp) rows; exits if absent."""
    try:
        bunch = load_movielens("100k", data_home=data_home, download_if_missing=False)
    except OSError as exc:
        sys.exit(
            f"MovieLens-100K u.data not found in data_home={data_home!r} ({exc}). "
            "This benchmark needs the real data: pass --data-home or set SKREC_DATA."
        )
    return bunch.frame[[*ID_COLUMNS, "timestamp"]]


def split_latest(frame):
    """(earlier rows, each user's latest row sorted by user), as LeaveLastOut."""
    splitter = LeaveLastOut(
        n=1, user_col="user_id", timestamp_col="timestamp", item_col="item_id"
    )
    earlier, latest = next(splitter.split(frame))
    return frame.iloc[earlier], frame.iloc[latest].sort_values("user_id")


def sample_negatives(frame, users, n_negatives, seed):
    """``n_negatives`` items per user of ``users`` that they never interacted with.

    Uniform without replacement among the items of ``frame`` the user has no
    row with: a random key per (user, item), +inf for the user's items, and
    the ``n_negatives`` smallest keys of each row.
    """
    items = np.unique(frame["item_id"])
    user_rows = pd.Index(users).get_indexer(frame["user_id"])
    item_columns = np.searchsorted(items, frame["item_id"])
    known = user_rows >= 0
    interacted = np.zeros((len(users), len(items)), dtype=bool)
    interacted[user_rows[known], item_columns[known]] = True
    fewest = int((~interacted).sum(axis=1).min())
    if fewest < n_negatives:
        raise ValueError(f"a user has only {fewest} items to sample negatives from")
    keys = np.random.default_rng(seed).random(interacted.shape)
    keys[interacted] = np.inf
    chosen = np.argpartition(keys, n_negatives - 1, axis=1)[:, :n_negatives]
    return items[chosen]


def candidate_pairs(held_out, negatives):
    """(user, item) rows: per user the held-out item, then its negatives."""
    items = np.column_stack([held_out["item_id"].to_numpy(), negatives])
    users = np.repeat(held_out["user_id"].to_numpy(), items.shape[1])
    return pd.DataFrame({"user_id": users, "item_id": items.ravel()})


# -- metrics ----------------------------------------------------------------


def full_ranking_metrics(model, held_out):
    """HR@K and NDCG@K of ``recommend`` over all items unseen in fit."""
    recommended = model.recommend(held_out["user_id"].to_numpy(), n=K)
    relevant = held_out["item_id"].to_numpy()[:, None]
    return {
        "full_hr": hit_rate_at_k(relevant, recommended, k=K),
        "full_ndcg": ndcg_at_k(relevant, recommended, k=K),
    }


def sampled_metrics(model, pairs, n_users):
    """HR@K and NDCG@K of the held-out item (column 0) among its negatives."""
    scores = model.predict(pairs).reshape(n_users, -1)
    positive, negatives = scores[:, :1], scores[:, 1:]
    higher = (negatives > positive).sum(axis=1)
    tied = (negatives == positive).sum(axis=1)
    rank = 1 + higher + 0.5 * tied
    in_top = rank <= K
    return {
        "sampled_hr": float(in_top.mean()),
        "sampled_ndcg": float(np.where(in_top, 1 / np.log2(rank + 1), 0.0).mean()),
    }


def evaluate(model, held_out, pairs=None):
    metrics = full_ranking_metrics(model, held_out)
    if pairs is not None:
        metrics |= sampled_metrics(model, pairs, len(held_out))
    return metrics


# -- fitting ----------------------------------------------------------------


def neural_model(params, seed, args):
    model = NeuralRecommender(device=args.device, random_state=seed, **params)
    if args.quick:
        model.set_params(max_iter=QUICK_MAX_ITER)
    return model


def fit_timed(model, rows):
    """Fit on the ID columns of ``rows`` (every row an interaction); seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(rows[ID_COLUMNS])
        return time.perf_counter() - start


def epochs(model):
    return getattr(model, "n_iter_", None)


def select_config(loss, train, validation, args):
    """Validation results of each configuration with ``loss``, and the best one."""
    rows = []
    for config in args.grid:
        params = {"loss": loss, **config}
        model = neural_model(params, args.seeds[0], args)
        seconds = fit_timed(model, train)
        rows.append(
            {"params": params, "epochs": epochs(model), "seconds": seconds}
            | evaluate(model, validation)
        )
        print(validation_line(f"neural {loss}", rows[-1]))
    best = max(rows, key=lambda row: (row["full_hr"], row["full_ndcg"]))
    return rows, best["params"]


def test_runs(make_model, seeds, non_test, test, pairs):
    """Per seed: fit on the non-test rows, metrics on the test items."""
    runs = []
    for seed in seeds:
        model = make_model(seed)
        seconds = fit_timed(model, non_test)
        runs.append(
            {"seed": seed, "epochs": epochs(model), "seconds": seconds}
            | evaluate(model, test, pairs)
        )
        print(test_line(runs[-1]))
    return runs


def run_benchmark(frame, args):
    non_test, test = split_latest(frame)
    train, validation = split_latest(non_test)
    negatives = sample_negatives(
        frame, test["user_id"].to_numpy(), N_SAMPLED_NEGATIVES, NEGATIVE_SEED
    )
    pairs = candidate_pairs(test, negatives)
    print(
        f"{len(train):,} train, {len(validation):,} validation, {len(test):,} test "
        f"rows; {frame['item_id'].nunique():,} items"
    )

    popularity = PopularityRecommender()
    fit_timed(popularity, train)
    selection = [
        {"params": None, "epochs": None, "seconds": None}
        | evaluate(popularity, validation)
    ]
    print(validation_line("popularity", selection[0]))
    # Popularity does not depend on the seed: one fit, std 0.
    print("popularity: test run:")
    popularity_run = test_runs(
        lambda seed: PopularityRecommender(), args.seeds[:1], non_test, test, pairs
    )
    results = {"popularity": (None, popularity_run)}
    for loss in LOSSES:
        rows, params = select_config(loss, train, validation, args)
        selection += rows
        print(f"neural {loss}: chose {format_params(params)}; test runs:")
        runs = test_runs(
            lambda seed, params=params: neural_model(params, seed, args),
            args.seeds,
            non_test,
            test,
            pairs,
        )
        results[f"neural {loss}"] = (params, runs)
    return selection, results


# -- reporting --------------------------------------------------------------


def format_params(params):
    if params is None:
        return "—"
    return ", ".join(f"{key}={value!r}" for key, value in params.items())


def validation_line(name, row):
    timing = "" if row["seconds"] is None else seconds_per_epoch(row)
    return (
        f"- validation {name} [{format_params(row['params'])}]: "
        f"HR@{K} {row['full_hr']:.4f}, NDCG@{K} {row['full_ndcg']:.4f}{timing}"
    )


def test_line(run):
    timing = "" if run["epochs"] is None else seconds_per_epoch(run)
    return (
        f"  - seed {run['seed']}: "
        + ", ".join(f"{name} {run[name]:.4f}" for name in METRICS)
        + f", fit {run['seconds']:.1f} s{timing}"
    )


def seconds_per_epoch(row):
    if row["epochs"] is None:
        return ""
    return (
        f"; {row['epochs']} epochs, {row['seconds']:.1f} s "
        f"({row['seconds'] / row['epochs']:.1f} s/epoch)"
    )


def mean_std(values, digits):
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def protocol_text(args):
    max_iter = (
        f"max_iter={QUICK_MAX_ITER} (--quick)"
        if args.quick
        else f"max_iter={NeuralRecommender().max_iter}"
    )
    return f"""Protocol:
- Data: every rating of MovieLens-100K `u.data` is an interaction (ratings \
ignored, no weights). Per user, the latest interaction (timestamp; ties broken \
by the larger item ID, as `LeaveLastOut(timestamp_col="timestamp")` does) is the \
test item and the next-latest the validation item; train = all other rows.
- Model selection: each NeuralRecommender configuration (the grid below, with \
`loss` set to "bce" or "bpr", `device="{args.device}"`, \
`random_state={args.seeds[0]}`, default parameters otherwise) is fitted on train \
and scored by full-ranking HR@{K} on the validation items (ties: NDCG@{K}); the \
best one per loss is kept. Epochs are chosen by the estimator's own early \
stopping: it holds out a random `validation_fraction=0.1` of the rows it is \
fitted on, watches their NDCG@10, stops after `n_iter_no_change=5` epochs \
without improvement ({max_iter}) and keeps the best epoch's weights; so the \
network trains on 90% of the fitting rows.
- Test: the chosen configuration is refitted on all non-test rows (train + \
validation) with `random_state` in {args.seeds}; PopularityRecommender is fitted \
once (it does not depend on a seed; std 0).
- Full ranking: `recommend(users, n={K}, exclude_seen=True)`, each user ranking \
every item of the fitting data they did not interact with there; HR@{K} and \
NDCG@{K} by `skrec.metrics`.
- Sampled: each user's test item is ranked among {N_SAMPLED_NEGATIVES} items the \
user never interacted with anywhere in u.data, drawn uniformly without \
replacement with seed {NEGATIVE_SEED} (the same for every model), all scored by \
one `predict` call on the 100 (user, item) pairs per user (items absent from the \
fitting data get the estimator's fallback score). rank = 1 + number of negatives \
scoring strictly higher + half the number scoring exactly the same (ties count \
half, which matters for popularity's equal counts); HR@{K} = [rank <= {K}], \
NDCG@{K} = 1/log2(rank + 1) if rank <= {K}, else 0.
- Figures are mean ± sample std (ddof=1) over the seeds; fit s is the wall time \
of `fit()`.
- Grid: {args.grid}
"""


def report_header(args, source, seconds, load_before):
    quick = (
        "\n**QUICK SMOKE RUN (--quick): first configuration, one seed, "
        f"max_iter={QUICK_MAX_ITER}. Not a benchmark result.**\n"
        if args.quick
        else ""
    )
    command = shlex.join(["python", "benchmarks/ranking.py", *sys.argv[1:]])
    return f"""# Top-{K} ranking on MovieLens-100K, leave-last-out
{quick}
- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs
- Versions: torch {torch.__version__}, numpy {np.__version__}, scikit-learn \
{sklearn.__version__}, pandas {pd.__version__}, skrec {skrec.__version__}, \
Python {platform.python_version()}
- torch.get_num_threads(): {torch.get_num_threads()}; device: {args.device}
- 1-minute load average before / after the run: {load_before:.2f} / \
{os.getloadavg()[0]:.2f} (other jobs on the machine slow the fits)
- Data: {source}
- Command: `{command}`; run time {seconds:.0f} s
"""


def validation_table(selection, chosen, seed):
    lines = [
        f"Validation (model selection, random_state={seed}):",
        "",
        f"| model | params | epochs | fit s | HR@{K} | NDCG@{K} | chosen |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for row in selection:
        name = (
            "popularity" if row["params"] is None else f"neural {row['params']['loss']}"
        )
        seconds = "—" if row["seconds"] is None else f"{row['seconds']:.1f}"
        is_chosen = row["params"] is not None and row["params"] in chosen
        lines.append(
            f"| {name} | {format_params(row['params'])} | {row['epochs'] or '—'} | "
            f"{seconds} | {row['full_hr']:.4f} | {row['full_ndcg']:.4f} | "
            f"{'✓' if is_chosen else ''} |"
        )
    return "\n".join(lines) + "\n"


def results_table(results):
    lines = [
        "Test (mean ± std over seeds):",
        "",
        f"| model | chosen params | full HR@{K} | full NDCG@{K} | sampled HR@{K} | "
        f"sampled NDCG@{K} | fit s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, (params, runs) in results.items():
        cells = [mean_std([run[m] for run in runs], 4) for m in METRICS]
        cells.append(mean_std([run["seconds"] for run in runs], 1))
        lines.append(
            f"| {name} | {format_params(params)} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Each test run, in order:", ""]
    for name, (_, runs) in results.items():
        lines.append(f"- {name}:")
        lines += [test_line(run) for run in runs]
    return "\n".join(lines) + "\n"


def reference_table():
    def cell(value):
        return "—" if value is None else value

    lines = [
        "Reference figures for this protocol, from the issue, and the targets:",
        "",
        f"| source | full HR@{K} | full NDCG@{K} | sampled HR@{K} | sampled NDCG@{K} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in REFERENCES:
        lines.append(f"| {name} | " + " | ".join(map(cell, values)) + " |")
    targets = [TARGETS.get(m) for m in METRICS]
    lines.append(
        "| **target** | "
        + " | ".join("—" if t is None else f">= {t:.2f}" for t in targets)
        + " |"
    )
    return "\n".join(lines) + "\n"


def plot_results(results, title, path):
    plt.switch_backend("Agg")
    names = list(results)
    x = np.arange(len(names))
    width = 0.38
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for offset, metric, label, color in (
        (-width / 2, "full_hr", f"full-ranking HR@{K}", "tab:blue"),
        (width / 2, "sampled_hr", f"sampled HR@{K} (1 + 99)", "tab:orange"),
    ):
        values = [[run[metric] for run in results[n][1]] for n in names]
        means = [statistics.mean(v) for v in values]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        bars = ax.bar(
            x + offset, means, width, yerr=stds, capsize=3, color=color, label=label
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
        ax.axhline(
            TARGETS[metric],
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"target {label} >= {TARGETS[metric]:.2f}",
        )
    ax.set_xticks(x, names)
    ax.set_ylabel(f"HR@{K}")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    frame = load_interactions(args.data_home)
    source = (
        f"MovieLens-100K u.data from {args.data_home}: {len(frame):,} interactions, "
        f"{frame['user_id'].nunique():,} users, {frame['item_id'].nunique():,} items"
    )
    print(source)
    selection, results = run_benchmark(frame, args)
    chosen = [params for params, _ in results.values() if params is not None]
    report = report_header(args, source, time.perf_counter() - start, load_before)
    report += "\n" + protocol_text(args)
    report += "\n" + results_table(results)
    report += "\n" + reference_table()
    report += "\n" + validation_table(selection, chosen, args.seeds[0])
    print("\n" + report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "ranking.md").write_text(report)
    title = f"HR@{K}, MovieLens-100K leave-last-out" + (
        " (--quick)" if args.quick else ""
    )
    plot_results(results, title, RESULTS_DIR / "ranking.png")
    print(f"Wrote {RESULTS_DIR / 'ranking.md'} and {RESULTS_DIR / 'ranking.png'}")


if __name__ == "__main__":
    main()
