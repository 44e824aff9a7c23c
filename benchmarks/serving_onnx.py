"""Serving with ONNX Runtime: parity with skrec and latency, MovieLens-100K u1.

NeuralRecommender (default architecture) and MatrixFactorization are fitted
on u1.base, with integer IDs and again on the same rows with string IDs, and
exported with ``skrec.export.to_onnx``. Their graphs score the 20,000 rows of
u1.test plus 1,000 rows of unknown users and items, compared with
``predict``; ONNX Runtime and ``predict`` are timed on one row (percentiles
of 1,000 calls after a warm-up) and on the 20,000 rows. A
SequentialRecommender fitted on the time-ordered u1.base histories is
exported too, and its graph is compared with ``recommend_next`` on 1,000
sessions cut from u1.test (some with unknown items, some without a known
one). Writes ``benchmarks/results/serving_onnx.md``.

    python benchmarks/serving_onnx.py [--data-home DIR] [--max-iter 10]
        [--sequence-max-iter 5] [--calls 1000] [--threads N]
"""

import argparse
import datetime
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
import torch
from _common import RESULTS_DIR, default_data_home, display_path
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import MatrixFactorization, NeuralRecommender, SequentialRecommender
from skrec.datasets import load_movielens

try:
    import onnx
    import onnxruntime as ort
    import onnxscript
except ImportError as exc:
    sys.exit(f'This benchmark needs pip install "skrec[onnx]": {exc}')

from skrec.export import to_onnx

ID_COLUMNS = ["user_id", "item_id"]
N_UNKNOWN_ROWS = 1_000
N_SESSIONS = 1_000
K = 10
# IDs absent from MovieLens-100K, for unknown users and items.
FIRST_UNKNOWN_ID = 100_001
WARM_UP_CALLS = 50
THROUGHPUT_REPEATS = 20


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--sequence-max-iter", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


def as_strings(X):
    """The same rows with string IDs: ``"u1"``, ``"i1"``..."""
    return X.assign(
        user_id="u" + X["user_id"].astype(str), item_id="i" + X["item_id"].astype(str)
    )


def with_unknown_rows(X, rng):
    """``X`` followed by rows of unknown users with known items, of known
    users with unknown items and of both unknown, a third each."""
    extra = X.sample(N_UNKNOWN_ROWS, random_state=rng).reset_index(drop=True)
    unknown = FIRST_UNKNOWN_ID + np.arange(N_UNKNOWN_ROWS)
    third = N_UNKNOWN_ROWS // 3
    extra.loc[: 2 * third - 1, "user_id"] = unknown[: 2 * third]
    extra.loc[third:, "item_id"] = unknown[third:]
    return pd.concat([X, extra], ignore_index=True)


def onnx_session(model):
    return ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def pair_inputs(X):
    """The graph's inputs for the rows of ``X``: int64 or string arrays."""
    return {"users": ids(X["user_id"]), "items": ids(X["item_id"])}


def ids(column):
    values = column.to_numpy()
    return values.astype(str) if values.dtype == object else values


def percentiles_ms(call, arguments):
    """p50 and p99 in ms of ``call(a)`` for each of ``arguments``, after
    ``WARM_UP_CALLS`` untimed calls."""
    for argument in arguments[:WARM_UP_CALLS]:
        call(argument)
    times = []
    for argument in arguments:
        start = time.perf_counter()
        call(argument)
        times.append(time.perf_counter() - start)
    return tuple(1000 * np.percentile(times, [50, 99]))


def best_seconds(call):
    """The shortest of ``THROUGHPUT_REPEATS`` calls, after one warm-up."""
    call()
    times = []
    for _ in range(THROUGHPUT_REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def exported(est, **kwargs):
    start = time.perf_counter()
    model = to_onnx(est, **kwargs)
    return model, time.perf_counter() - start


def pair_rows(name, make, X, y, rows, calls):
    """The parity and timing rows of one estimator, fitted on integer and on
    string IDs."""
    parity, timing = [], []
    for ids, fit_X, test_X in (
        ("int", X, rows),
        ("string", as_strings(X), as_strings(rows)),
    ):
        start = time.perf_counter()
        est = make().fit(fit_X, y)
        fit_seconds = time.perf_counter() - start
        model, export_seconds = exported(est)
        session = onnx_session(model)
        expected = est.predict(test_X)
        (predictions,) = session.run(None, pair_inputs(test_X))
        known = test_X["user_id"].isin(fit_X["user_id"]) & test_X["item_id"].isin(
            fit_X["item_id"]
        )
        parity.append(
            (
                f"{name}, {ids} IDs",
                len(test_X),
                int((~known).sum()),
                float(np.abs(predictions - expected).max()),
                float(np.abs(predictions[~known] - expected[~known]).max()),
                fit_seconds,
                export_seconds,
                model.ByteSize() / 1024,
            )
        )
        print(f"{parity[-1][0]}: max abs difference {parity[-1][3]:.2e}", flush=True)
        if ids == "int":
            timing.extend(pair_timing(name, est, session, test_X, calls))
    return parity, timing


def pair_timing(name, est, session, rows, calls):
    """One-row latency and 20,000-row throughput of predict and of the graph."""
    test = rows.iloc[: len(rows) - N_UNKNOWN_ROWS]
    singles = [test.iloc[[j % len(test)]] for j in range(calls)]
    single_inputs = [pair_inputs(row) for row in singles]
    inputs = pair_inputs(test)
    measured = []
    for runtime, one, many in (
        ("skrec predict (torch)", est.predict, lambda: est.predict(test)),
        (
            "ONNX Runtime",
            lambda feed: session.run(None, feed),
            lambda: session.run(None, inputs),
        ),
    ):
        arguments = singles if runtime.startswith("skrec") else single_inputs
        p50, p99 = percentiles_ms(one, arguments)
        seconds = best_seconds(many)
        measured.append((f"{name}, {runtime}", p50, p99, seconds, len(test) / seconds))
        print(f"{measured[-1][0]}: one row p50 {p50:.3f} ms", flush=True)
    return measured


def sessions_of(test, rng):
    """``N_SESSIONS`` sessions cut from the users' time-ordered u1.test
    items: 1 to 20 consecutive items, an unknown item added to every tenth,
    and every fiftieth holding an unknown item only."""
    ordered = test.sort_values(["user_id", "timestamp", "item_id"])
    histories = ordered.groupby("user_id")["item_id"].apply(list).to_list()
    sessions = []
    for j in range(N_SESSIONS):
        if j % 50 == 0:
            sessions.append([FIRST_UNKNOWN_ID + j])
            continue
        history = histories[rng.integers(len(histories))]
        length = int(rng.integers(1, min(20, len(history)) + 1))
        first = int(rng.integers(len(history) - length + 1))
        session = [int(item) for item in history[first : first + length]]
        if j % 10 == 0:
            session.insert(int(rng.integers(len(session) + 1)), FIRST_UNKNOWN_ID + j)
        sessions.append(session)
    return sessions


def sequence_rows(frame, test, max_iter, rng):
    """Parity and timing of recommend_next and its graph on the sessions."""
    start = time.perf_counter()
    est = SequentialRecommender(
        time_col="timestamp", max_iter=max_iter, random_state=0
    ).fit(frame.sort_values(["user_id", "timestamp", "item_id"]))
    fit_seconds = time.perf_counter() - start
    model, export_seconds = exported(est, n=K)
    session = onnx_session(model)
    sessions = sessions_of(test, rng)
    start = time.perf_counter()
    expected_items, expected_scores = est.recommend_next(
        sessions, K, return_scores=True
    )
    batch_seconds = time.perf_counter() - start
    feeds = [{"history": np.asarray(items, dtype=np.int64)} for items in sessions]
    outputs = [session.run(None, feed) for feed in feeds]
    items = np.stack([output[0] for output in outputs])
    scores = np.stack([output[1] for output in outputs])
    same = (items == expected_items).all(axis=1)
    tied_order = same_up_to_ties(est, items, expected_items, expected_scores)
    finite = np.isfinite(expected_scores)
    summary = {
        "fit_seconds": fit_seconds,
        "epochs": est.n_iter_,
        "export_seconds": export_seconds,
        "kilobytes": model.ByteSize() / 1024,
        "same": int(same.sum()),
        "same_up_to_ties": int(tied_order.sum()),
        "max_difference": float(np.abs(scores[finite] - expected_scores[finite]).max()),
        "batch_seconds": batch_seconds,
        "one_session": {
            "skrec recommend_next (torch)": percentiles_ms(
                lambda history: est.recommend_next([history], K), sessions
            ),
            "ONNX Runtime": percentiles_ms(lambda feed: session.run(None, feed), feeds),
        },
        "lengths": [len(history) for history in sessions],
    }
    print(
        f"SequentialRecommender: {summary['same']} of {N_SESSIONS} sessions with "
        f"the same top-{K} IDs, max score difference {summary['max_difference']:.2e}",
        flush=True,
    )
    return summary


def same_up_to_ties(est, items, expected_items, expected_scores):
    """Whether each session's IDs are those of recommend_next once items of
    equal score are put in the order of ``items_``, as the graph orders them
    (torch.topk orders them arbitrarily)."""
    position = np.searchsorted(est.items_, expected_items)
    same = np.empty(len(items), dtype=bool)
    for row in range(len(items)):
        order = np.lexsort((position[row], -expected_scores[row]))
        same[row] = (items[row] == expected_items[row][order]).all()
    return same


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        data = load_movielens(
            "100k", fold=1, data_home=args.data_home, download_if_missing=False
        )
    except OSError as exc:
        sys.exit(f"MovieLens-100K is needed for this benchmark: {exc}")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = data.data, data.target.to_numpy()
    rng = np.random.default_rng(0)
    rows = with_unknown_rows(data.data_test, np.random.RandomState(0))
    parity, timing = [], []
    for name, make in (
        (
            "NeuralRecommender",
            lambda: NeuralRecommender(max_iter=args.max_iter, random_state=0),
        ),
        (
            "MatrixFactorization",
            lambda: MatrixFactorization(max_iter=args.max_iter, random_state=0),
        ),
    ):
        more_parity, more_timing = pair_rows(name, make, X, y, rows, args.calls)
        parity += more_parity
        timing += more_timing
    frame = data.frame[[*ID_COLUMNS, "timestamp"]]
    sequence = sequence_rows(frame, data.frame_test, args.sequence_max_iter, rng)
    report = render(args, data, parity, timing, sequence)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "serving_onnx.md").write_text(report)
    print(report)


def render(args, data, parity, timing, sequence):
    threads = ort.SessionOptions().intra_op_num_threads
    lengths = np.asarray(sequence["lengths"])
    lines = [
        "# Serving with ONNX Runtime: parity and latency on MovieLens-100K u1",
        "",
        f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs; "
        f"torch.get_num_threads(): {torch.get_num_threads()}; ONNX Runtime "
        f"intra-op threads: {threads or 'default (one per core)'}; CPU",
        f"- Versions: skrec {skrec.__version__}, torch {torch.__version__}, "
        f"onnx {onnx.__version__}, onnxscript {onnxscript.__version__}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, Python {platform.python_version()}",
        f"- Data: MovieLens-100K fold u1 from {display_path(args.data_home)}: "
        f"{len(data.data):,} rows of u1.base, {len(data.data_test):,} of u1.test",
        f"- Command: `python benchmarks/serving_onnx.py --max-iter {args.max_iter} "
        f"--sequence-max-iter {args.sequence_max_iter} --calls {args.calls}`",
        "",
        "## Parity of the rating graphs with `predict`",
        "",
        f"`NeuralRecommender(max_iter={args.max_iter}, random_state=0)` (default "
        f'architecture, "neumf") and `MatrixFactorization(max_iter='
        f"{args.max_iter}, random_state=0)`, fitted on u1.base, then again on the "
        'same rows with string IDs (`"u1"`, `"i1"`...); exported with '
        "`to_onnx(est)` (opset 18). Rows: the 20,000 of u1.test (some of whose "
        f"items are not in u1.base) and {N_UNKNOWN_ROWS:,} more, a third with an "
        "unknown user, a third with an unknown item, a third with both. The "
        "difference is that of the float64 predictions of the graph and of "
        "`predict`.",
        "",
        "| model | rows | rows with an unknown ID | max abs difference | "
        "max abs difference, unknown IDs | fit s | export s | model KB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {n:,} | {unknown:,} | {difference:.1e} | "
        f"{unknown_difference:.1e} | {fit:.1f} | {export:.1f} | {size:,.0f} |"
        for name, n, unknown, difference, unknown_difference, fit, export, size in (
            parity
        )
    ]
    lines += [
        "",
        "## Latency and throughput of the rating graphs",
        "",
        f"One row: p50 and p99 of {args.calls:,} calls on one row of u1.test "
        f"each (a one-row DataFrame for `predict`, arrays for ONNX Runtime), after "
        f"{WARM_UP_CALLS} warm-up calls. 20,000 rows: the fastest of "
        f"{THROUGHPUT_REPEATS} calls on all of u1.test, after a warm-up call. "
        "Integer IDs.",
        "",
        "| model and runtime | one row p50 ms | one row p99 ms | 20,000 rows s "
        "| rows/s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {p50:.3f} | {p99:.3f} | {seconds:.4f} | {rate:,.0f} |"
        for name, p50, p99, seconds, rate in timing
    ]
    one_session = sequence["one_session"]
    lines += [
        "",
        "## SequentialRecommender: the session graph against `recommend_next`",
        "",
        f'`SequentialRecommender(time_col="timestamp", max_iter='
        f"{args.sequence_max_iter}, random_state=0)` (SASRec, max_len=200), fitted "
        "on the u1.base histories ordered by (timestamp, item ID): "
        f"{sequence['epochs']} epochs in {sequence['fit_seconds']:.0f} s; exported "
        f"with `to_onnx(est, n={K})` in {sequence['export_seconds']:.1f} s "
        f"({sequence['kilobytes']:,.0f} KB). {N_SESSIONS:,} sessions cut from the "
        f"users' time-ordered u1.test items ({lengths.min()} to {lengths.max()} "
        f"IDs, mean {lengths.mean():.1f}): every tenth with an unknown item "
        "inserted, every fiftieth an unknown item alone (the popularity "
        f"ranking). `recommend_next(sessions, n={K}, return_scores=True)` in one "
        "call against one call of the graph per session. Items of equal score "
        "(the popularity ranking has many) are ordered arbitrarily by "
        '`torch.topk` and by position in `items_` in the graph: "same up to '
        'ties" compares them in that order.',
        "",
        "| sessions | same top-10 IDs | same up to the order of ties | "
        "max abs score difference |",
        "|---:|---:|---:|---:|",
        f"| {N_SESSIONS:,} | {sequence['same']:,} | "
        f"{sequence['same_up_to_ties']:,} | {sequence['max_difference']:.1e} |",
        "",
        "| runtime | one session p50 ms | one session p99 ms |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {runtime} | {p50:.3f} | {p99:.3f} |"
        for runtime, (p50, p99) in one_session.items()
    ]
    lines += [
        "",
        f"`recommend_next` on the {N_SESSIONS:,} sessions in one call: "
        f"{sequence['batch_seconds']:.2f} s.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
