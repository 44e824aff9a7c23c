"""Next-item ranking of SequentialRecommender on MovieLens-100K, leave-last-out.

Every rating of ``u.data`` is an interaction. Each user's latest interaction
is the test item, the next-latest the validation item, as in ``ranking.py``.
Each SequentialRecommender configuration (sasrec, gru, cnn; softmax, sampled
softmax, bce; sasrec on histories whose tied interactions are shuffled) is
fitted on all non-test rows with its own early stopping, over several seeds,
and scored on the test items with full-ranking and sampled (1 + 99 negatives)
HR@10 and NDCG@10, next to PopularityRecommender, the implicit library's ALS
and BPR (tuned on the validation items) and the NeuralRecommender that
``ranking.py`` chose. It checks what the tie-break by item ID is worth, and
times training against a plain PyTorch loop of the same network. Writes a
markdown report and a plot to ``benchmarks/results/``.

    python benchmarks/sequential.py [--data-home DIR] [--seeds 0 1 2]
        [--models sasrec gru ...] [--no-implicit] [--max-iter N]
        [--repeats 5] [--epochs 3] [--device cpu] [--threads N] [--quick]
"""

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    RESULTS_DIR,
    EpochTimer,
    default_data_home,
    display_path,
    median_seconds,
    rotated,
    synchronize,
)
from _implicit_library import library_version
from ranking import (
    HALF_LIFE,
    ID_COLUMNS,
    IMPLICIT_GRIDS,
    METRICS,
    RECOMMEND_REPEATS,
    K,
    epochs,
    fit_timed,
    format_params,
    full_ranking_metrics,
    implicit_model,
    load_interactions,
    mean_std,
    neural_model,
    plot_results,
    report_header,
    sampled_metrics,
    select_implicit,
    split_latest,
    test_line,
    validation_table,
)

from skrec import PopularityRecommender, SequentialRecommender
from skrec._engine._device import resolve_device
from skrec._engine._sequence_modules import (
    FIRST_ITEM_CODE,
    PAD_CODE,
    SEQUENCE_ARCHITECTURES,
)
from skrec._engine._sequence_training import SequenceTrainer, padded_windows

SEQUENCE_COLUMNS = [*ID_COLUMNS, "timestamp"]
# The frame's order before fitting: within equal timestamps, ascending item
# ID, so that a user's latest row is the one LeaveLastOut holds out.
SORT_COLUMNS = ["user_id", "timestamp", "item_id"]

# skrec's best non-sequential model, as benchmarks/results/ranking.md chose it
# (python benchmarks/ranking.py, 2026-11-25): the "neural bpr" row, fitted on
# all non-test rows for its chosen 23 epochs, without early stopping and
# without weight averaging (ranking.neural_model sets both). Fixed here, not
# re-selected.
NEURAL_PARAMS = {
    "loss": "bpr",
    "alpha": 0.5,
    "hidden_layer_sizes": (),
    "negative_sampling": "hard",
    "learning_rate_init": 0.002,
    HALF_LIFE: 20,
}
NEURAL_EPOCHS = 23

# Each row: a key for --models, its label in the report, and for the
# SequentialRecommender rows the parameters it varies (none: the defaults).
POPULARITY = "popularity"
SEQUENTIAL_ROWS = {
    "sasrec": ("sasrec (defaults)", {}),
    "gru": ("gru", {"architecture": "gru"}),
    "cnn": ("cnn", {"architecture": "cnn"}),
    "sasrec-sampled-softmax": ("sasrec, sampled softmax", {"loss": "sampled_softmax"}),
    "sasrec-bce": ("sasrec, bce", {"loss": "bce"}),
    "sasrec-ties-shuffled": ("sasrec, ties shuffled", {}),
}
DEFAULT_ROW, SHUFFLED_ROW = "sasrec", "sasrec-ties-shuffled"
IMPLICIT_ROWS = {"implicit-als": "als", "implicit-bpr": "bpr"}
NEURAL_ROW = "neural-bpr"
MODEL_KEYS = [POPULARITY, *SEQUENTIAL_ROWS, *IMPLICIT_ROWS, NEURAL_ROW]

# recommend_next latency: one session of this many items, median of this
# many calls after one warm-up call.
SESSION_LENGTH = 50
NEXT_REPEATS = 100
# Throughput: repeats of (plain loop, skrec, skrec on fixed threads), and the
# epochs each times.
REPEATS = 5
THROUGHPUT_EPOCHS = 3
QUICK_MAX_ITER = 2
# Users whose test interaction shares its timestamp with their previous one
# (tied) or comes strictly later.
TIE_GROUPS = ("tied", "later")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--models",
        nargs="+",
        default=MODEL_KEYS,
        choices=MODEL_KEYS,
        help="rows to run, in the report's order whatever the order given",
    )
    parser.add_argument(
        "--no-implicit",
        dest="implicit",
        action="store_false",
        help="skip the implicit library (skipped anyway when not installed)",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="max_iter of every SequentialRecommender (default: the estimator's)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=REPEATS,
        help="throughput: repeats of the plain loop and skrec",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=THROUGHPUT_EPOCHS,
        help="throughput: epochs timed per repeat and side",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: first seed, max_iter {QUICK_MAX_ITER} (NeuralRecommender "
        "too), first configuration of each implicit grid, one throughput repeat of "
        "one epoch",
    )
    args = parser.parse_args()
    if args.implicit and library_version() is None:
        print("The implicit library is not installed: its models are skipped.")
        args.implicit = False
    args.models = [
        key
        for key in MODEL_KEYS
        if key in args.models and (args.implicit or key not in IMPLICIT_ROWS)
    ]
    args.neural_epochs = NEURAL_EPOCHS
    if args.quick:
        args.seeds = args.seeds[:1]
        args.max_iter = args.neural_epochs = QUICK_MAX_ITER
        args.repeats, args.epochs = 1, 1
        for algorithm, grid in IMPLICIT_GRIDS.items():
            IMPLICIT_GRIDS[algorithm] = grid[:1]
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be at least 1")
    return args


# -- data -------------------------------------------------------------------


@dataclass
class Split:
    """The leave-last-out split, and what the runs measure on it."""

    non_test: object  # the non-test rows in u.data's order
    ordered: object  # the same, sorted by SORT_COLUMNS
    train: object
    validation: object
    test: object  # the test rows, by user, with their timestamps
    groups: dict  # tie group name -> mask over the test rows
    session: list  # recommend_next's session: item IDs, latest last
    session_user: int
    tied_rows: float = field(default=0.0)  # share of non-test rows in a tie


def split_data(frame):
    non_test, test = split_latest(frame)
    train, validation = split_latest(non_test)
    ordered = non_test.sort_values(SORT_COLUMNS, kind="stable")
    previous = validation.set_index("user_id")["timestamp"]
    tied = test["timestamp"].to_numpy() == previous.loc[test["user_id"]].to_numpy()
    lengths = ordered.groupby("user_id", sort=True).size()
    session_user = int(lengths.index[lengths >= SESSION_LENGTH][0])
    session = ordered.loc[ordered["user_id"] == session_user, "item_id"]
    group_sizes = ordered.groupby(["user_id", "timestamp"])["item_id"].transform("size")
    return Split(
        non_test=non_test,
        ordered=ordered,
        train=train,
        validation=validation,
        test=test,
        groups={"tied": tied, "later": ~tied},
        session=session.to_list()[-SESSION_LENGTH:],
        session_user=session_user,
        tied_rows=float((group_sizes > 1).mean()),
    )


def shuffle_ties(rows, seed):
    """``rows`` sorted by (user, timestamp), in random order within each
    (user, timestamp) group: numpy's ``default_rng(seed)``."""
    key = np.random.default_rng(seed).random(len(rows))
    order = np.lexsort((key, rows["timestamp"].to_numpy(), rows["user_id"].to_numpy()))
    return rows.iloc[order]


# -- models -----------------------------------------------------------------


@dataclass
class Row:
    """One row of the report: how to build and fit its model for a seed."""

    label: str
    params: dict | str | None  # what the report shows as its parameters
    make: object  # seed -> unfitted model
    rows: object  # seed -> the rows it is fitted on
    columns: list = field(default_factory=lambda: list(ID_COLUMNS))
    weights: dict | None = None  # recency weights, as ranking.row_weights reads
    seeds: list | None = None  # None: every seed


def sequential_model(params, seed, args):
    """SequentialRecommender with the benchmark's columns and only ``params``
    (and --max-iter, unless ``params`` sets max_iter) set: its defaults
    otherwise."""
    if args.max_iter is not None:
        params = {"max_iter": args.max_iter} | params
    return SequentialRecommender(
        random_state=seed,
        user_col="user_id",
        item_col="item_id",
        time_col="timestamp",
        device=args.device,
        **params,
    )


def sequential_row(key, split, args):
    label, params = SEQUENTIAL_ROWS[key]
    if key == SHUFFLED_ROW:

        def rows(seed):
            return shuffle_ties(split.ordered, seed)

    else:

        def rows(seed):
            return split.ordered

    return Row(
        label=label,
        params="defaults, ties shuffled" if key == SHUFFLED_ROW else params,
        make=lambda seed: sequential_model(params, seed, args),
        rows=rows,
        columns=SEQUENCE_COLUMNS,
    )


def model_rows(split, args):
    """The rows of --models; the implicit library's choose their parameters
    on the validation items first. Also the implicit selection rows."""
    rows, selection = {}, []
    for key in args.models:
        if key == POPULARITY:
            # Popularity does not depend on the seed: one fit, std 0.
            rows[key] = Row(
                "popularity",
                None,
                lambda seed: PopularityRecommender(),
                lambda seed: split.non_test,
                seeds=args.seeds[:1],
            )
        elif key in SEQUENTIAL_ROWS:
            rows[key] = sequential_row(key, split, args)
        elif key in IMPLICIT_ROWS:
            algorithm = IMPLICIT_ROWS[key]
            validation_rows, params = select_implicit(
                algorithm, split.train, split.validation, args
            )
            selection += validation_rows
            rows[key] = Row(
                f"implicit {algorithm}",
                params,
                lambda seed, params=params: implicit_model(params, seed),
                lambda seed: split.non_test,
                weights=params,
            )
        else:
            rows[key] = Row(
                "neural bpr (ranking.md's pick)",
                NEURAL_PARAMS | {"max_iter": args.neural_epochs},
                lambda seed: neural_model(
                    NEURAL_PARAMS, seed, args, args.neural_epochs
                ),
                lambda seed: split.non_test,
                weights=NEURAL_PARAMS,
            )
    return rows, selection


def test_runs(row, split, args):
    """Per seed: fit on the non-test rows, then test metrics and timings."""
    runs = []
    all_users = np.unique(split.non_test["user_id"])
    for seed in row.seeds or args.seeds:
        model = row.make(seed)
        seconds = fit_timed(model, row.rows(seed), row.weights, row.columns)
        scores = getattr(model, "validation_scores_", None)
        run = {
            "seed": seed,
            "epochs": epochs(model),
            "seconds": seconds,
            "recommend_seconds": median_seconds(
                lambda model=model: model.recommend(all_users, n=K),
                RECOMMEND_REPEATS,
            ),
            "next_seconds": (
                median_seconds(
                    lambda model=model: model.recommend_next([split.session], n=K),
                    NEXT_REPEATS,
                )
                if hasattr(model, "recommend_next")
                else None
            ),
            "best_validation": getattr(model, "best_validation_score_", None),
            "best_epoch": None if not scores else 1 + int(np.argmax(scores)),
        }
        run |= full_ranking_metrics(model, split.test, split.groups)
        run |= sampled_metrics(model, split.test, row.columns)
        runs.append(run)
        print(run_line(run))
    return runs


def run_benchmark(split, args):
    rows, selection = model_rows(split, args)
    results = {}
    for row in rows.values():
        print(f"{row.label}: test runs:")
        results[row.label] = (row.params, test_runs(row, split, args))
    return results, selection


# -- throughput -------------------------------------------------------------


def plain_windows(rows, max_len):
    """Each user's latest ``max_len + 1`` codes of ``rows`` (sorted by user,
    then time), laid out by skrec's ``padded_windows``: item codes 2..n+1
    in ascending item-ID order, start code 1, left-padding 0."""
    items = np.unique(rows["item_id"])
    codes = np.searchsorted(items, rows["item_id"].to_numpy())
    counts = rows.groupby("user_id", sort=True).size().to_numpy()
    starts = np.concatenate([[0], np.cumsum(counts)])
    windows = padded_windows(codes, starts[:-1], starts[1:], max_len + 1)
    return windows, len(items)


def plain_module(defaults, n_items, seed, device):
    """The encoder the default estimator builds (same class, same parameters)."""
    torch.manual_seed(seed)
    return SEQUENCE_ARCHITECTURES[defaults["architecture"]](
        n_items + FIRST_ITEM_CODE,
        dim=defaults["embedding_dim"],
        max_len=defaults["max_len"],
        n_layers=defaults["n_layers"],
        n_heads=defaults["n_heads"],
        dropout=defaults["dropout"],
    ).to(device)


def adam(module, learning_rate):
    """torch's Adam, fused where torch has it for the device, else foreach."""
    try:
        return torch.optim.Adam(module.parameters(), lr=learning_rate, fused=True)
    except RuntimeError:
        return torch.optim.Adam(module.parameters(), lr=learning_rate, foreach=True)


def train_plain_sequence_epoch(module, optimizer, windows, batch_size):
    """One epoch of the plain loop: ``torch.randperm`` and slicing, the full
    window per batch, softmax cross-entropy over every item at each position
    whose next code is an item."""
    module.train()
    table = module.item_embedding
    order = torch.randperm(len(windows), device=windows.device)
    for start in range(0, len(windows), batch_size):
        batch = windows[order[start : start + batch_size]]
        inputs, targets = batch[:, :-1], batch[:, 1:]
        optimizer.zero_grad(set_to_none=True)
        states = module(inputs, inputs == PAD_CODE)
        mask = targets >= FIRST_ITEM_CODE
        logits = states[mask] @ table.weight[FIRST_ITEM_CODE:].T
        F.cross_entropy(logits, targets[mask] - FIRST_ITEM_CODE).backward()
        optimizer.step()


def time_plain(windows, defaults, n_items, n_epochs, seed, device):
    """Sequences/s of ``n_epochs`` plain epochs on a fresh module."""
    module = plain_module(defaults, n_items, seed, device)
    optimizer = adam(module, defaults["learning_rate_init"])
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n_epochs):
        train_plain_sequence_epoch(module, optimizer, windows, defaults["batch_size"])
    synchronize(device)
    return len(windows) * n_epochs / (time.perf_counter() - start)


def throughput_estimator(n_epochs, seed, args, **params):
    return sequential_model(
        {
            "max_iter": n_epochs,
            "early_stopping": False,
            "n_iter_no_change": n_epochs + 1,
            **params,
        },
        seed,
        args,
    )


def time_skrec(rows, n_epochs, seed, args, **params):
    """Sequences/s of a fit's epochs alone (its ``SequenceTrainer.train_epoch``
    calls) and of the whole fit, and the fitted estimator."""
    model = throughput_estimator(n_epochs, seed, args, **params)
    with EpochTimer(SequenceTrainer) as timer:
        seconds = fit_timed(model, rows, None, SEQUENCE_COLUMNS)
    n_histories = len(model.users_)
    return (
        {
            "epochs": n_histories * len(timer.seconds) / sum(timer.seconds),
            "fit": n_histories * model.n_iter_ / seconds,
        },
        model,
    )


def measure_throughput(split, args):
    """Sequences/s of the plain loop, skrec's epochs (n_jobs default and fixed)
    and skrec's whole fit, per repeat; and what the check of equal data and
    network found."""
    device = resolve_device(args.device)
    defaults = SequentialRecommender().get_params()
    rows = split.ordered
    windows, n_items = plain_windows(rows, defaults["max_len"])
    tensor = torch.as_tensor(windows, device=device)
    threads = torch.get_num_threads()

    def skrec(repeat, n_epochs):
        rates, _ = time_skrec(rows, n_epochs, repeat, args)
        return {"skrec": rates["epochs"], "skrec_fit": rates["fit"]}

    def skrec_fixed(repeat, n_epochs):
        rates, _ = time_skrec(rows, n_epochs, repeat, args, n_jobs=threads)
        return {"skrec_fixed": rates["epochs"]}

    def plain(repeat, n_epochs):
        return {
            "plain": time_plain(tensor, defaults, n_items, n_epochs, repeat, device)
        }

    runners = {"plain": plain, "skrec": skrec, "skrec_fixed": skrec_fixed}
    # Warm-up (one untimed epoch each), and the check that both sides train
    # the same network on the same windows.
    _, fitted = time_skrec(rows, 1, 0, args)
    history = fitted._history_starts
    skrec_windows = padded_windows(
        fitted._history_codes, history[:-1], history[1:], defaults["max_len"] + 1
    )
    module = plain_module(defaults, n_items, 0, device)
    check = {
        "windows": np.array_equal(windows, skrec_windows),
        "module": type(module) is type(fitted.module_)
        and {k: v.shape for k, v in module.state_dict().items()}
        == {k: v.shape for k, v in fitted.module_.state_dict().items()},
        "loss": fitted._loss(),
        "module_class": type(module).__name__,
        "defaults": defaults,
        "n_sequences": len(windows),
        "n_items": n_items,
        "threads": threads,
        "device": device,
    }
    print(f"throughput check: {check['windows']=}, {check['module']=}")
    for name in ("plain", "skrec_fixed"):
        runners[name](0, 1)
    rates = {}
    for repeat in range(args.repeats):
        for name in rotated(list(runners), repeat):
            for series, rate in runners[name](repeat, args.epochs).items():
                rates.setdefault(series, []).append(rate)
        print(
            f"- repeat {repeat + 1}: "
            + ", ".join(f"{name} {values[-1]:,.1f}" for name, values in rates.items())
        )
    return rates, check


# -- reporting --------------------------------------------------------------


def run_line(run):
    """ranking.test_line, and what only this benchmark measures."""
    line = test_line(run)
    if run["next_seconds"] is not None:
        line += f", recommend_next {1000 * run['next_seconds']:.1f} ms"
    if run["best_validation"] is not None:
        line += (
            f", best validation NDCG@{K} {run['best_validation']:.4f} at epoch "
            f"{run['best_epoch']}"
        )
    groups = " / ".join(f"{name} {run[f'full_hr_{name}']:.4f}" for name in TIE_GROUPS)
    return f"{line}, HR@{K} {groups}"


def cell(runs, key, digits, scale=1.0):
    """Mean ± std of ``key`` over the runs, or — where a model has none."""
    values = [scale * run[key] for run in runs if run[key] is not None]
    return mean_std(values, digits) if values else "—"


def shown_params(params):
    """A row's parameters as the table shows them: a sentence as it is."""
    if isinstance(params, str):
        return params
    if params == {}:
        return "defaults"
    return format_params(params)


def results_table(results):
    lines = [
        "Test (mean ± std over seeds):",
        "",
        f"| model | params | full HR@{K} | full NDCG@{K} | sampled HR@{K} | "
        f"sampled NDCG@{K} | fit s | epochs | best epoch | best validation "
        f"NDCG@{K} | recommend ms | recommend_next ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (params, runs) in results.items():
        cells = [cell(runs, metric, 4) for metric in METRICS]
        cells += [
            cell(runs, "seconds", 1),
            cell(runs, "epochs", 1),
            cell(runs, "best_epoch", 1),
            cell(runs, "best_validation", 4),
            cell(runs, "recommend_seconds", 0, 1000),
            cell(runs, "next_seconds", 1, 1000),
        ]
        lines.append(f"| {name} | {shown_params(params)} | " + " | ".join(cells) + " |")
    lines += ["", "Each test run, in order:", ""]
    for name, (_, runs) in results.items():
        lines.append(f"- {name}:")
        lines += [run_line(run) for run in runs]
    return "\n".join(lines) + "\n"


def tie_table(results, split):
    n = {name: int(np.sum(mask)) for name, mask in split.groups.items()}
    lines = [
        f"Tie-break check: test HR@{K} (full ranking) of the users whose test "
        "interaction has the same timestamp as their previous (validation) one, "
        "and of those whose test interaction is strictly later (mean ± std over "
        "seeds):",
        "",
        f"| model | HR@{K}, tied users (n={n['tied']}) | HR@{K}, later users "
        f"(n={n['later']}) | tied − later |",
        "|---|---:|---:|---:|",
    ]
    for name, (_, runs) in results.items():
        gaps = [run["full_hr_tied"] - run["full_hr_later"] for run in runs]
        lines.append(
            f"| {name} | {cell(runs, 'full_hr_tied', 4)} | "
            f"{cell(runs, 'full_hr_later', 4)} | {mean_std(gaps, 4)} |"
        )
    return "\n".join(lines) + "\n\n" + tie_sentence(results, n) + "\n"


def tie_sentence(results, n):
    """What the tied and later users' HR@K of the default model, fitted on the
    protocol's order and on shuffled ties, show."""
    default, shuffled = (SEQUENTIAL_ROWS[key][0] for key in (DEFAULT_ROW, SHUFFLED_ROW))
    if default not in results or shuffled not in results:
        return (
            f"(The comparison needs both the `{DEFAULT_ROW}` and the "
            f"`{SHUFFLED_ROW}` rows; this run lacks one.)"
        )

    def mean(name, group):
        return statistics.mean(run[f"full_hr_{group}"] for run in results[name][1])

    a, b = mean(default, "tied"), mean(default, "later")
    c, d = mean(shuffled, "tied"), mean(shuffled, "later")
    change = (c - a) - (d - b)
    # Binomial standard error of that difference of differences, each HR a
    # share of n users (an overestimate: the seeds' mean is less noisy).
    error = math.sqrt(
        sum(p * (1 - p) / n[g] for p, g in ((a, "tied"), (b, "later")))
        + sum(p * (1 - p) / n[g] for p, g in ((c, "tied"), (d, "later")))
    )
    if change < -2 * error:
        verdict = (
            "so the default model draws part of its tied users' hits from the "
            "item-ID order of tied interactions: an artefact of the protocol's "
            "tie-break, not a sequential pattern of the users"
        )
    elif change > 2 * error:
        verdict = (
            "so shuffling helps the tied users: the item-ID order of tied "
            "interactions misleads the default model rather than helping it"
        )
    else:
        verdict = (
            "within about two standard errors of no change, so the default "
            "model gains no measurable advantage from the item-ID tie-break"
        )
    return (
        f"In {n['tied']} of {n['tied'] + n['later']} users the test and "
        "validation interactions share a timestamp, so which of them is the "
        "test item comes from the tie-break by item ID. If the default sasrec "
        "learned that order, shuffling tied interactions before fitting would "
        f"lower its HR@{K} on the tied users and not on the others: it changes "
        f"from {a:.4f} to {c:.4f} on the tied users and from {b:.4f} to "
        f"{d:.4f} on the later ones, a difference of differences of "
        f"{change:+.4f} (binomial standard error about {error:.4f}), {verdict}. "
        "The non-sequential models ignore the order of a user's interactions "
        "(recency weights aside, which weigh tied ones alike): their tied − later gap "
        "is how much easier the one group is than the other for reasons "
        "that have nothing to do with it."
    )


def throughput_section(rates, check, args):
    defaults = check["defaults"]
    module_params = {
        key: defaults[key]
        for key in ("embedding_dim", "max_len", "n_layers", "n_heads", "dropout")
    }
    series = (
        ("plain", "plain PyTorch loop"),
        ("skrec", "skrec, epochs only (`n_jobs=None`: follows the load)"),
        (
            "skrec_fixed",
            f"skrec, epochs only, `n_jobs={check['threads']}` (the plain loop's "
            "threads)",
        ),
        ("skrec_fit", "skrec, whole `fit()`"),
    )
    lines = [
        "## Training throughput against a plain PyTorch loop",
        "",
        f"""Protocol:
- Data: each of the {check["n_sequences"]:,} users' latest \
`max_len + 1 = {defaults["max_len"] + 1}` codes of the non-test rows (sorted \
as above), laid out by `skrec._engine._sequence_training.padded_windows`: \
left-padded with 0, start code 1 before a user's first item, items as codes \
2..{check["n_items"] + 1} ({check["n_items"]:,} items); the plain loop's windows \
equal those skrec trains on: {check["windows"]}.
- Network: `{check["module_class"]}` with the default estimator's parameters \
(`SequentialRecommender().get_params()`: {format_params(module_params)}); same \
class and parameter shapes as a fitted default estimator's `module_`: \
{check["module"]}. Batch size {defaults["batch_size"]} (skrec's default), \
learning rate {defaults["learning_rate_init"]}; skrec's loss resolves to \
`{check["loss"]}`.
- Plain loop: windows on the device once (not timed); per epoch \
`torch.randperm` and slicing, every batch at the full window width (skrec \
trims each batch to its longest history), \
`inputs = windows[:, :-1]`, `targets = windows[:, 1:]`, loss \
`F.cross_entropy(states[mask] @ module.item_embedding.weight[2:].T, \
targets[mask] - 2)` over the positions whose target is an item, \
`zero_grad(set_to_none=True)`, `torch.optim.Adam(fused=True)` (foreach where \
torch has no fused Adam for the device); {args.epochs} epoch(s) timed on a fresh \
module seeded with the repeat's number, on torch's {check["threads"]} thread(s).
- skrec: `SequentialRecommender(max_iter={args.epochs}, early_stopping=False, \
n_iter_no_change={args.epochs + 1}, random_state=repeat, device="{args.device}")`, \
defaults otherwise, fitted on the non-test rows; epochs only: \
sequences/s = users x epochs / the summed wall time of its \
`SequenceTrainer.train_epoch` calls (`EpochTimer` of `_common.py`), without the \
validation of X, the encoding, the windows and the module's construction; whole \
fit: users x `n_iter_` / wall time of `fit()`. With `n_jobs=None` skrec runs on \
at most {check["threads"]} thread(s) and fewer while other processes keep the \
cores busy; with `n_jobs={check["threads"]}` on that many whatever the load, as \
the plain loop does.
- One untimed warm-up epoch each, then {args.repeats} repeat(s) of the three, their \
order rotated every repeat so that each goes first in turn; sequences/s are \
medians over the repeats, and each ratio is the median over the repeats of that \
repeat's ratio.
""",
        "| series | sequences/s | ratio to the plain loop |",
        "|---|---:|---:|",
    ]
    for name, label in series:
        ratio = statistics.median(
            a / b for a, b in zip(rates[name], rates["plain"], strict=True)
        )
        lines.append(
            f"| {label} | {statistics.median(rates[name]):,.1f} | {ratio:.2f} |"
        )
    lines += ["", "Sequences/s of each repeat, in order:", ""]
    for repeat in range(args.repeats):
        lines.append(
            f"- repeat {repeat + 1}: "
            + ", ".join(f"{name} {rates[name][repeat]:,.1f}" for name, _ in series)
            + "; skrec/plain "
            + f"{rates['skrec'][repeat] / rates['plain'][repeat]:.2f}"
        )
    return "\n".join(lines) + "\n"


def protocol_text(split, args):
    implicit = (
        f"`implicit` library ({library_version()}) ALS and BPR, each choosing among "
        f"ranking.py's grid ({len(IMPLICIT_GRIDS['als'])} ALS and "
        f"{len(IMPLICIT_GRIDS['bpr'])} BPR configurations) by validation HR@{K} "
        f"(ties: NDCG@{K}) with `random_state={args.seeds[0]}` through "
        "`ranking.select_implicit`, fitted on train, then refitted on all "
        "non-test rows with each seed"
        if args.implicit
        else "the implicit library: not run in this report"
    )
    max_iter = (
        "" if args.max_iter is None else f" and `max_iter={args.max_iter}` (--max-iter)"
    )
    return f"""Protocol:
- Data: every rating of MovieLens-100K `u.data` is an interaction (ratings \
ignored). Per user, the latest interaction (timestamp; ties broken by the \
larger item ID, as `LeaveLastOut(timestamp_col="timestamp")` does) is the test \
item and the next-latest the validation item, as in `ranking.py`; train = all \
other rows.
- SequentialRecommender rows: `SequentialRecommender(random_state=seed, \
user_col="user_id", item_col="item_id", time_col="timestamp", \
device="{args.device}")`, with only the parameters the row shows{max_iter}: its \
defaults otherwise, early stopping included. Each is fitted on (user_id, \
item_id, timestamp) of all non-test rows, sorted by (user_id, timestamp, \
item_id): the estimator orders each user's rows by time and keeps the row order \
within equal times, so that tied interactions come in ascending item ID, the \
protocol's tie-break. Its early stopping holds out each user's latest fitting \
interaction, which is then exactly the validation item, trains on the rest and \
keeps the epoch of the best full-ranking NDCG@{K} on those items (best \
validation NDCG@{K} and its epoch below); `epochs` is `n_iter_`, the epochs run. \
The held-out items stay in the histories that `recommend` reads.
- sasrec, ties shuffled: the default model fitted on the same rows in random \
order within each (user, timestamp) group (numpy `default_rng(seed)`, the \
run's seed), so that it cannot learn the item-ID order of tied interactions. \
Its early stopping then holds out the latest row of that order, which for a \
tied user need not be the validation item. {100 * split.tied_rows:.0f}% of the \
non-test rows share their (user, timestamp) with another.
- Popularity: `PopularityRecommender()` fitted once (it does not depend on a \
seed; std 0).
- Implicit: {implicit}.
- NeuralRecommender: the configuration `ranking.py` chose in \
`benchmarks/results/ranking.md` ("neural bpr"), fixed, not re-selected: \
{format_params(NEURAL_PARAMS)}, `early_stopping=False`, \
`max_iter={args.neural_epochs}`, `weight_averaging=None`, fitted with \
`y = skrec.preprocessing.recency_weights(rows, half_life=20, ...)` of the \
non-test rows, through `ranking.neural_model`.
- The non-sequential models are fitted on (user_id, item_id) of the non-test \
rows in u.data's order, as in `ranking.py`.
- Full ranking: `recommend(users, n={K}, exclude_seen=True)`, each user ranking \
every item of the fitting data they did not interact with there; HR@{K} and \
NDCG@{K} by `skrec.metrics`.
- Sampled: `skrec.metrics.make_ranking_scorer(metric, k={K}, n_sampled=99, \
random_state=0)` on the test rows (with their timestamp column for the \
sequential models, which `predict` asks for and ignores), as in `ranking.py`: \
each test item ranked among 99 items the user never interacted with, the same \
draws for every model, ties counting half.
- Figures are mean ± sample std (ddof=1) over the seeds {args.seeds}; fit s is \
the wall time of `fit()`; recommend ms the median of {RECOMMEND_REPEATS} calls \
of `recommend(users, n={K})` for all {len(np.unique(split.non_test["user_id"]))} \
users after one warm-up call; recommend_next ms the median of {NEXT_REPEATS} \
calls of `recommend_next([session], n={K})` after one warm-up call, the session \
being the latest {SESSION_LENGTH} non-test items of user {split.session_user} \
(the first user with at least {SESSION_LENGTH}), for each model that has \
`recommend_next` (— for the others).
"""


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
    split = split_data(frame)
    print(
        f"{len(split.train):,} train, {len(split.validation):,} validation, "
        f"{len(split.test):,} test rows; {int(split.groups['tied'].sum())} users' "
        "test interaction tied with their previous one"
    )
    results, selection = run_benchmark(split, args)
    print("throughput:")
    rates, check = measure_throughput(split, args)
    report = report_header(
        args,
        source,
        time.perf_counter() - start,
        load_before,
        title="Next-item ranking on MovieLens-100K, leave-last-out: "
        "SequentialRecommender",
        script="benchmarks/sequential.py",
        quick_note=f"first seed, max_iter {QUICK_MAX_ITER}, first configuration of "
        "each implicit grid, one throughput repeat of one epoch",
    )
    report += "\n" + protocol_text(split, args)
    report += "\n" + results_table(results)
    report += "\n" + tie_table(results, split)
    if selection:
        chosen = [params for params, _ in results.values() if params]
        report += "\n" + validation_table(selection, chosen, args.seeds[0])
    report += "\n" + throughput_section(rates, check, args)
    print("\n" + report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "sequential.md").write_text(report)
    title = f"HR@{K}, MovieLens-100K leave-last-out, next-item models" + (
        " (--quick)" if args.quick else ""
    )
    plot_results(results, title, RESULTS_DIR / "sequential.png", targets={})
    print(f"Wrote sequential.md and sequential.png in {display_path(RESULTS_DIR)}")


if __name__ == "__main__":
    main()
