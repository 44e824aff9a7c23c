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
from _common import RESULTS_DIR, default_data_home, display_path, median_seconds
from _implicit_library import ImplicitLibraryRecommender, library_version
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import NeuralRecommender, PopularityRecommender
from skrec.datasets import load_movielens
from skrec.metrics import hit_rate_at_k, make_ranking_scorer, ndcg_at_k
from skrec.model_selection import LeaveLastOut
from skrec.preprocessing import recency_weights

# Candidate NeuralRecommender parameters; each loss tries every one of them
# but those that name another loss.
# "recency_half_life" is not a parameter: it fits the model with
# skrec.preprocessing.recency_weights of that half-life as y.
MF = {"alpha": 0.5, "hidden_layer_sizes": ()}
HARD = {"negative_sampling": "hard"}
GRID = [
    {"alpha": 5.0},
    {**MF, "learning_rate_init": 0.01},
    {**MF, "learning_rate_init": 0.01, "recency_half_life": 20},
    {**MF, **HARD, "loss": "bce", "learning_rate_init": 0.003},
    {**MF, **HARD, "loss": "bpr", "learning_rate_init": 0.002},
    {**MF, **HARD, "loss": "bce", "learning_rate_init": 0.006, "recency_half_life": 20},
    {**MF, **HARD, "loss": "bpr", "learning_rate_init": 0.002, "recency_half_life": 20},
]
HALF_LIFE = "recency_half_life"
# The implicit library's models, each choosing among its grid on validation.
IMPLICIT_GRIDS = {
    "als": [
        {"factors": factors, "regularization": reg, "alpha": alpha, "iterations": 15}
        | ({} if half_life is None else {HALF_LIFE: half_life})
        for factors in (16, 32, 64, 128)
        for reg in (0.01, 0.1, 1.0, 10.0, 50.0)
        for alpha in (1.0, 5.0, 20.0)
        for half_life in (None, 20)
    ],
    "bpr": [
        {
            "factors": factors,
            "regularization": reg,
            "learning_rate": lr,
            "iterations": it,
        }
        for factors in (32, 64, 128)
        for reg in (0.001, 0.01, 0.1)
        for lr in (0.005, 0.01, 0.05)
        for it in (50, 100, 300)
    ],
}
LOSSES = ("bce", "bpr")
K = 10
N_SAMPLED_NEGATIVES = 99
NEGATIVE_SEED = 0
MAX_EPOCHS = 60
QUICK_MAX_EPOCHS = 2
# Validation HR@K is smoothed over this many epochs to choose the epochs, and
# a curve stops after PATIENCE epochs without a better smoothed value.
SMOOTHING_WINDOW = 5
PATIENCE = 10
RECOMMEND_REPEATS = 7
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
        "with each loss, or with the one they name under 'loss'.",
    )
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=MAX_EPOCHS,
        help="most epochs of a validation curve",
    )
    parser.add_argument(
        "--no-implicit",
        dest="implicit",
        action="store_false",
        help="skip the implicit library (skipped anyway when not installed)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: first configuration only, first seed, "
        f"--max-epochs {QUICK_MAX_EPOCHS}",
    )
    args = parser.parse_args()
    if args.implicit and library_version() is None:
        print("The implicit library is not installed: its models are skipped.")
        args.implicit = False
    if args.quick:
        args.grid, args.seeds = args.grid[:1], args.seeds[:1]
        args.max_epochs = QUICK_MAX_EPOCHS
        for algorithm, grid in IMPLICIT_GRIDS.items():
            IMPLICIT_GRIDS[algorithm] = grid[:1]
    return args


def parse_grid(text):
    grid = ast.literal_eval(text)
    if (
        not isinstance(grid, list)
        or not grid
        or not all(isinstance(config, dict) for config in grid)
    ):
        raise argparse.ArgumentTypeError("--grid must be a non-empty list of dicts")
    if any(config.get("loss", LOSSES[0]) not in LOSSES for config in grid):
        raise argparse.ArgumentTypeError(f"--grid losses must be among {LOSSES}")
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


# -- metrics ----------------------------------------------------------------


def full_ranking_metrics(model, held_out, groups=None):
    """HR@K and NDCG@K of ``recommend`` over all items unseen in fit.

    ``groups`` maps names to boolean masks over the rows of ``held_out``:
    each adds the HR@K of those rows alone, as ``full_hr_<name>``.
    """
    recommended = model.recommend(held_out["user_id"].to_numpy(), n=K)
    relevant = held_out["item_id"].to_numpy()[:, None]
    metrics = {
        "full_hr": hit_rate_at_k(relevant, recommended, k=K),
        "full_ndcg": ndcg_at_k(relevant, recommended, k=K),
    }
    for name, mask in (groups or {}).items():
        mask = np.asarray(mask, dtype=bool)
        metrics[f"full_hr_{name}"] = (
            hit_rate_at_k(relevant[mask], recommended[mask], k=K)
            if mask.any()
            else float("nan")
        )
    return metrics


def sampled_metrics(model, held_out, columns=ID_COLUMNS):
    """HR@K and NDCG@K of each held-out item among sampled unseen items;
    ``columns`` of ``held_out`` are those the model was fitted on."""
    return {
        f"sampled_{name}": make_ranking_scorer(
            metric,
            k=K,
            n_sampled=N_SAMPLED_NEGATIVES,
            random_state=NEGATIVE_SEED,
        )(model, held_out[columns])
        for name, metric in (("hr", "hit_rate"), ("ndcg", "ndcg"))
    }


def evaluate(model, held_out, sampled=False):
    metrics = full_ranking_metrics(model, held_out)
    if sampled:
        metrics |= sampled_metrics(model, held_out)
    return metrics


# -- fitting ----------------------------------------------------------------


def neural_model(params, seed, args, n_epochs=None):
    """A NeuralRecommender; with ``n_epochs``, trained for exactly that many."""
    # partial_fit, which draws the validation curves, does not average the
    # weights: neither does the refit (unless a configuration says so), so
    # that it trains the model selected.
    model = NeuralRecommender(
        device=args.device, random_state=seed, weight_averaging=None
    ).set_params(**estimator_params(params))
    if n_epochs is not None:
        model.set_params(early_stopping=False, max_iter=n_epochs)
    return model


def implicit_model(params, seed):
    return ImplicitLibraryRecommender(
        random_state=seed, user_col="user_id", item_col="item_id"
    ).set_params(**estimator_params(params))


def estimator_params(params):
    """A configuration's estimator parameters: all but the weights' half-life."""
    return {key: value for key, value in params.items() if key != HALF_LIFE}


def row_weights(rows, params):
    """The y of a configuration: recency weights of ``rows``, or None."""
    if params is None or params.get(HALF_LIFE) is None:
        return None
    return recency_weights(
        rows,
        half_life=params[HALF_LIFE],
        timestamp_col="timestamp",
        user_col="user_id",
    )


def fit_timed(model, rows, params=None, columns=ID_COLUMNS):
    """Fit on the ``columns`` of ``rows`` (by default the IDs; every row an
    interaction), weighted as ``params`` says; seconds, the weights'
    computation included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(rows[columns], row_weights(rows, params))
        return time.perf_counter() - start


def epochs(model):
    return getattr(model, "n_iter_", None)


def smoothed(values, window):
    """Centred moving average; the ends average over the epochs they have."""
    half = window // 2
    return [
        statistics.mean(values[max(0, i - half) : i + half + 1])
        for i in range(len(values))
    ]


def validation_curve(params, train, validation, args):
    """Validation HR@K and NDCG@K after each epoch of training on ``train``.

    Stops once the smoothed HR@K has not improved for PATIENCE epochs.
    """
    model = neural_model(params, args.seeds[0], args)
    rows, weights = train[ID_COLUMNS], row_weights(train, params)
    curve, start = [], time.perf_counter()
    for epoch in range(1, args.max_epochs + 1):
        model.partial_fit(rows, weights)
        curve.append(full_ranking_metrics(model, validation))
        hits = smoothed([point["full_hr"] for point in curve], SMOOTHING_WINDOW)
        if epoch - 1 - int(np.argmax(hits)) >= PATIENCE:
            break
    return curve, time.perf_counter() - start


def select_config(loss, train, validation, args):
    """Validation results of each configuration with ``loss``, and the best one.

    A configuration's epochs are those that maximise its validation HR@K
    smoothed over SMOOTHING_WINDOW epochs: one epoch's figure moves by about
    0.01 from one epoch to the next, and its maximum would flatter the pick.
    """
    rows = []
    for config in args.grid:
        if config.get("loss", loss) != loss:
            continue
        params = {"loss": loss, **config}
        curve, seconds = validation_curve(params, train, validation, args)
        hits = smoothed([point["full_hr"] for point in curve], SMOOTHING_WINDOW)
        ndcgs = smoothed([point["full_ndcg"] for point in curve], SMOOTHING_WINDOW)
        best = int(np.argmax(hits))
        rows.append(
            {
                "params": params,
                "epochs": best + 1,
                "seconds": seconds,
                "full_hr": hits[best],
                "full_ndcg": ndcgs[best],
                "curve": [point["full_hr"] for point in curve],
            }
        )
        print(validation_line(f"neural {loss}", rows[-1]))
    best = max(rows, key=score)
    return rows, best["params"], best["epochs"]


def select_implicit(algorithm, train, validation, args):
    """The implicit library's ``algorithm``: validation results of each
    configuration of its grid, and the best one."""
    rows = []
    for config in IMPLICIT_GRIDS[algorithm]:
        params = {"algorithm": algorithm, **config}
        model = implicit_model(params, args.seeds[0])
        seconds = fit_timed(model, train, params)
        rows.append(
            {"params": params, "epochs": None, "seconds": seconds}
            | full_ranking_metrics(model, validation)
        )
    # The table shows the best configuration of each half-life (None: no
    # weights), which tells what the weights are worth to the library.
    by_half_life = {}
    for row in rows:
        by_half_life.setdefault(row["params"].get(HALF_LIFE), []).append(row)
    for group in by_half_life.values():
        max(group, key=score)["best_of"] = len(group)
    best = max(rows, key=score)
    print(validation_line(f"implicit {algorithm} (best of {len(rows)})", best))
    return rows, best["params"]


def score(row):
    """What model selection maximises: validation HR@K, then NDCG@K."""
    return row["full_hr"], row["full_ndcg"]


def test_runs(make_model, seeds, non_test, test, params=None):
    """Per seed: fit on the non-test rows, metrics on the test items."""
    runs = []
    all_users = np.unique(non_test["user_id"])
    for seed in seeds:
        model = make_model(seed)
        seconds = fit_timed(model, non_test, params)
        runs.append(
            {
                "seed": seed,
                "epochs": epochs(model),
                "seconds": seconds,
                "recommend_seconds": median_seconds(
                    lambda model=model: model.recommend(all_users, n=K),
                    RECOMMEND_REPEATS,
                ),
            }
            | evaluate(model, test, sampled=True)
        )
        print(test_line(runs[-1]))
    return runs


def run_benchmark(frame, args):
    non_test, test = split_latest(frame)
    train, validation = split_latest(non_test)
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
        lambda seed: PopularityRecommender(), args.seeds[:1], non_test, test
    )
    results = {"popularity": (None, popularity_run)}
    for loss in args.losses:
        rows, params, n_epochs = select_config(loss, train, validation, args)
        selection += rows
        print(
            f"neural {loss}: chose {format_params(params)}, {n_epochs} epochs; "
            "test runs:"
        )
        runs = test_runs(
            lambda seed, params=params, n=n_epochs: neural_model(params, seed, args, n),
            args.seeds,
            non_test,
            test,
            params,
        )
        results[f"neural {loss}"] = (params | {"max_iter": n_epochs}, runs)
    if args.implicit:
        for algorithm in IMPLICIT_GRIDS:
            rows, params = select_implicit(algorithm, train, validation, args)
            selection += rows
            print(f"implicit {algorithm}: chose {format_params(params)}; test runs:")
            runs = test_runs(
                lambda seed, params=params: implicit_model(params, seed),
                args.seeds,
                non_test,
                test,
                params,
            )
            results[f"implicit {algorithm}"] = (params, runs)
    return selection, results


# -- reporting --------------------------------------------------------------


def format_params(params):
    if params is None:
        return "—"
    return ", ".join(f"{key}={value!r}" for key, value in params.items())


def validation_line(name, row):
    if row["seconds"] is None:
        timing = ""
    elif "curve" not in row:
        timing = f"; fit in {row['seconds']:.1f} s"
    else:
        timing = (
            f"; best at {row['epochs']} epochs of {len(row['curve'])} run in "
            f"{row['seconds']:.0f} s"
        )
    return (
        f"- validation {name} [{format_params(row['params'])}]: "
        f"HR@{K} {row['full_hr']:.4f}, NDCG@{K} {row['full_ndcg']:.4f}{timing}"
    )


def test_line(run):
    timing = "" if run["epochs"] is None else seconds_per_epoch(run)
    return (
        f"  - seed {run['seed']}: "
        + ", ".join(f"{name} {run[name]:.4f}" for name in METRICS)
        + f", fit {run['seconds']:.1f} s{timing}, recommend "
        f"{1000 * run['recommend_seconds']:.0f} ms"
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
    return f"""Protocol:
- Data: every rating of MovieLens-100K `u.data` is an interaction (ratings \
ignored). Per user, the latest interaction (timestamp; ties broken \
by the larger item ID, as `LeaveLastOut(timestamp_col="timestamp")` does) is the \
test item and the next-latest the validation item; train = all other rows.
- Model selection: each NeuralRecommender configuration (the grid below, with \
`loss` set to each of {args.losses} unless the configuration names one, \
`device="{args.device}"`, \
`random_state={args.seeds[0]}`, default parameters otherwise) is trained on train \
one epoch at a time with `partial_fit`, up to {args.max_epochs} epochs, and \
after every epoch scored by full-ranking HR@{K} and NDCG@{K} on the validation \
items. One epoch's HR@{K} moves by about 0.01 between epochs, so the curve is \
smoothed by a centred {SMOOTHING_WINDOW}-epoch moving average; the configuration \
and epoch count with the highest smoothed HR@{K} (ties: NDCG@{K}) are kept, and \
a curve stops {PATIENCE} epochs after its best smoothed value. The validation \
figures below are these smoothed values.
- Recency weights: a configuration with `{HALF_LIFE}=h` is fitted with \
`y = skrec.preprocessing.recency_weights(rows, half_life=h, \
timestamp_col="timestamp", user_col="user_id")`, computed on the rows it is \
fitted on (train for validation, train + validation for test): each user's \
k-th latest interaction weighs 0.5 ** (k / h). Other configurations weigh every \
row 1.
- The implicit library ({library_version() or "not installed"}): \
`AlternatingLeastSquares` and `BayesianPersonalizedRanking` (CPU), fitted on the \
same rows through an adapter that encodes IDs and recommends with skrec's own \
`recommend` (same candidates, same seen-item exclusion, same metrics); ALS \
reads recency weights, if any, as its confidence (times `alpha`), BPR ignores \
weights, as the library does. Each chooses among its grid \
({len(IMPLICIT_GRIDS["als"])} ALS and {len(IMPLICIT_GRIDS["bpr"])} BPR \
configurations: factors, regularization, alpha or learning rate, iterations, \
half-life) by validation HR@{K} (ties: NDCG@{K}), then is refitted on all \
non-test rows with each seed. The validation table lists its best \
configuration with and without weights; the test table, the one chosen. \
{"Not run in this report." if not args.implicit else ""}
- Test: the chosen configuration is refitted on all non-test rows (train + \
validation) for the chosen number of epochs (`early_stopping=False`, \
`max_iter` = epochs, `weight_averaging=None` like the `partial_fit` curves) \
with `random_state` in {args.seeds}; PopularityRecommender \
is fitted once (it does not depend on a seed; std 0).
- Full ranking: `recommend(users, n={K}, exclude_seen=True)`, each user ranking \
every item of the fitting data they did not interact with there; HR@{K} and \
NDCG@{K} by `skrec.metrics`.
- Sampled: `skrec.metrics.make_ranking_scorer(metric, k={K}, \
n_sampled={N_SAMPLED_NEGATIVES}, random_state={NEGATIVE_SEED})`: each user's test \
item is ranked among {N_SAMPLED_NEGATIVES} items drawn uniformly without \
replacement from the items of the fitting data that the user interacted with \
neither there nor in the test row, i.e. never in u.data (the same draws for \
every model). rank = 1 + number of sampled items scoring strictly higher + half \
the number scoring exactly the same (ties count half, which matters for \
popularity's equal counts); HR@{K} = [rank <= {K}], NDCG@{K} = 1/log2(rank + 1) \
if rank <= {K}, else 0.
- Figures are mean ± sample std (ddof=1) over the seeds; fit s is the wall time \
of `fit()`; recommend ms is the median wall time of {RECOMMEND_REPEATS} calls of \
`recommend(users, n={K})` for all users of the fitting data, each ranking every \
item, after one warm-up call.
- Grid: {args.grid}
"""


def report_header(
    args,
    source,
    seconds,
    load_before,
    *,
    title=f"Top-{K} ranking on MovieLens-100K, leave-last-out",
    script="benchmarks/ranking.py",
    quick_note=f"first configuration, one seed, --max-epochs {QUICK_MAX_EPOCHS}",
):
    """The report's title and its lines on the machine, versions, threads,
    load, data and command; ``quick_note`` says what ``--quick`` cut."""
    quick = (
        f"\n**QUICK SMOKE RUN (--quick): {quick_note}. Not a benchmark result.**\n"
        if args.quick
        else ""
    )
    command = shlex.join(["python", script, *sys.argv[1:]])
    return f"""# {title}
{quick}
- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs
- Versions: torch {torch.__version__}, numpy {np.__version__}, scikit-learn \
{sklearn.__version__}, pandas {pd.__version__}, skrec {skrec.__version__}, \
implicit {library_version() or "not installed"}, Python {platform.python_version()}
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
        f"| model | params | chosen epochs | epochs run | seconds | HR@{K} | "
        f"NDCG@{K} | chosen |",
        "|---|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in selection:
        params = row["params"]
        is_chosen = params is not None and params in chosen
        if params is None:
            name = "popularity"
        elif "algorithm" in params:
            if "best_of" not in row:
                continue
            half_life = params.get(HALF_LIFE)
            weights = "no weights" if half_life is None else f"{HALF_LIFE}={half_life}"
            name = (
                f"implicit {params['algorithm']} (best of {row['best_of']}, {weights})"
            )
        else:
            name = f"neural {params['loss']}"
        seconds = "—" if row["seconds"] is None else f"{row['seconds']:.1f}"
        lines.append(
            f"| {name} | {format_params(row['params'])} | {row['epochs'] or '—'} | "
            f"{len(row.get('curve', [])) or '—'} | {seconds} | "
            f"{row['full_hr']:.4f} | {row['full_ndcg']:.4f} | "
            f"{'✓' if is_chosen else ''} |"
        )
    return "\n".join(lines) + "\n"


def results_table(results):
    lines = [
        "Test (mean ± std over seeds):",
        "",
        f"| model | chosen params | full HR@{K} | full NDCG@{K} | sampled HR@{K} | "
        f"sampled NDCG@{K} | fit s | recommend ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (params, runs) in results.items():
        cells = [mean_std([run[m] for run in runs], 4) for m in METRICS]
        cells.append(mean_std([run["seconds"] for run in runs], 1))
        cells.append(mean_std([1000 * run["recommend_seconds"] for run in runs], 0))
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


def plot_results(results, title, path, targets=TARGETS):
    """Mean test HR@K (full and sampled) of each model, with the std over its
    seeds and a dashed line at each of ``targets`` (by metric name)."""
    plt.switch_backend("Agg")
    names = list(results)
    x = np.arange(len(names))
    width = 0.38
    # Beyond five bars the names are slanted and the figure widens.
    many = len(names) > 5
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(names)) if many else 7, 4.5))
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
        if metric in targets:
            ax.axhline(
                targets[metric],
                color=color,
                linestyle="--",
                linewidth=1,
                label=f"target {label} >= {targets[metric]:.2f}",
            )
    if many:
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    else:
        ax.set_xticks(x, names)
    ax.set_ylabel(f"HR@{K}")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_validation_curves(selection, path):
    """Validation HR@K per epoch of every configuration, raw and smoothed."""
    plt.switch_backend("Agg")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in selection:
        if row["params"] is None:
            ax.axhline(row["full_hr"], color="gray", linestyle=":", label="popularity")
            continue
        if "curve" not in row:
            continue
        epochs_run = np.arange(1, len(row["curve"]) + 1)
        (line,) = ax.plot(epochs_run, row["curve"], alpha=0.3, linewidth=1)
        ax.plot(
            epochs_run,
            smoothed(row["curve"], SMOOTHING_WINDOW),
            color=line.get_color(),
            label=format_params(row["params"]),
        )
        ax.plot(row["epochs"], row["full_hr"], "o", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation HR@{K} (full ranking)")
    ax.set_title(
        f"Validation curves (faint: per epoch; bold: {SMOOTHING_WINDOW}-epoch mean)"
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
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
        f"MovieLens-100K u.data from {display_path(args.data_home)}: "
        f"{len(frame):,} interactions, "
        f"{frame['user_id'].nunique():,} users, {frame['item_id'].nunique():,} items"
    )
    print(source)
    selection, results = run_benchmark(frame, args)
    chosen = [
        {key: value for key, value in params.items() if key != "max_iter"}
        for params, _ in results.values()
        if params is not None
    ]
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
    plot_validation_curves(selection, RESULTS_DIR / "ranking_validation.png")
    print(
        "Wrote ranking.md, ranking.png and ranking_validation.png in "
        f"{display_path(RESULTS_DIR)}"
    )


if __name__ == "__main__":
    main()
