"""Single requests: the latency of one prediction, one user, one session.

Fits NeuralRecommender (default architecture), MatrixFactorization and
SequentialRecommender on MovieLens-100K u1.base (a few epochs: latency does
not depend on accuracy) and times, after a warm-up, ``--calls`` calls of
each request a server answers one at a time: ``predict`` of one row,
``recommend`` for one user over all 1,682 items, and ``recommend_next`` for
one session of 50 items. Prints p50, p90 and p99 in milliseconds, with the
default ``n_jobs=None`` (one thread for such small calls) and with the
threads torch would use otherwise. Writes ``benchmarks/results/serving.md``.

Exact against approximate ``recommend`` on large catalogs is
``benchmarks/serving_ann.py``; ONNX Runtime against ``predict`` is
``benchmarks/serving_onnx.py``.

    python benchmarks/serving.py [--data-home DIR] [--calls 1000]
"""

import argparse
import datetime
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch
from _common import RESULTS_DIR, default_data_home, display_path

import skrec
from skrec import MatrixFactorization, NeuralRecommender, SequentialRecommender
from skrec.datasets import load_movielens

ID_COLUMNS = ["user_id", "item_id"]
SESSION_LENGTH = 50
WARM_UP_CALLS = 20
PERCENTILES = (50, 90, 99)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--output", default=str(RESULTS_DIR / "serving.md"))
    return parser.parse_args()


def latencies(request, calls):
    """Milliseconds of each of ``calls`` calls of ``request``, after a warm-up."""
    for _ in range(WARM_UP_CALLS):
        request()
    times = np.empty(calls)
    for call in range(calls):
        start = time.perf_counter()
        request()
        times[call] = time.perf_counter() - start
    return times * 1e3


def fitted_models(args):
    X_train, X_test, y_train, _ = load_movielens(
        "100k", fold=1, data_home=args.data_home, return_X_y=True
    )
    X_train, X_test = X_train[ID_COLUMNS], X_test[ID_COLUMNS]
    params = {"random_state": 0, "max_iter": args.max_iter}
    models = {
        "NeuralRecommender": NeuralRecommender(**params).fit(X_train, y_train),
        "MatrixFactorization": MatrixFactorization(**params).fit(X_train, y_train),
        "SequentialRecommender": SequentialRecommender(**params).fit(X_train),
    }
    session = X_train.loc[X_train["user_id"] == 1, "item_id"].tolist()
    return models, X_test.iloc[:1], session[-SESSION_LENGTH:]


def requests(models, row, session):
    """(model, request, callable) for every single request timed."""
    for name, model in models.items():
        if name != "SequentialRecommender":
            yield name, "predict, one row", lambda m=model: m.predict(row)
        yield name, "recommend, one user", lambda m=model: m.recommend([1], n=10)
        yield (
            name,
            f"recommend_next, one session of {len(session)} items",
            lambda m=model: m.recommend_next([session], n=10),
        )


def main():
    args = parse_args()
    warnings.simplefilter("ignore")
    try:
        models, row, session = fitted_models(args)
    except OSError as exc:
        sys.exit(f"MovieLens-100K not found ({exc}); pass --data-home.")
    threads = torch.get_num_threads()
    rows = []
    load_before = os.getloadavg()[0]
    for name, request, call in requests(models, row, session):
        cells = []
        for n_jobs in (None, threads):
            models[name].set_params(n_jobs=n_jobs)
            times = latencies(call, args.calls)
            cells.append(np.percentile(times, PERCENTILES))
        models[name].set_params(n_jobs=None)
        rows.append((name, request, *cells))
        print(name, request, [np.round(c, 3).tolist() for c in cells])
    header = " | ".join(f"p{p} ms" for p in PERCENTILES)
    lines = [
        f"| model | request | n_jobs=None: {header} | n_jobs={threads}: {header} |",
        "|---|---|" + "---:|" * (2 * len(PERCENTILES)),
    ]
    for name, request, default, fixed in rows:
        values = " | ".join(f"{v:.3f}" for v in [*default, *fixed])
        lines.append(f"| {name} | {request} | {values} |")
    report = f"""# Single requests: latency of one prediction, one user, one session

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {os.cpu_count()} CPUs; torch threads {threads}
- Versions: torch {torch.__version__}, skrec {skrec.__version__}, Python \
{platform.python_version()}
- 1-minute load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}
- Data: MovieLens-100K u1.base from {display_path(args.data_home)}; models fitted \
for {args.max_iter} epochs with `random_state=0`
- Command: `python benchmarks/serving.py --calls {args.calls}`
- Each request: {args.calls:,} calls after {WARM_UP_CALLS} warm-up calls, one at a \
time. `recommend` scores all 1,682 items and leaves out the user's seen ones; \
`recommend_next` folds the session in (NeuralRecommender, MatrixFactorization) or \
encodes it (SequentialRecommender). With `n_jobs=None` these small calls run on one \
thread; `n_jobs={threads}` forces torch's threads, which wait for each other by \
spinning.

{chr(10).join(lines)}
"""
    path = RESULTS_DIR / "serving.md" if args.output is None else args.output
    with open(path, "w") as file:
        file.write(report)
    print(report)
    print(f"Wrote {display_path(path)}")


if __name__ == "__main__":
    main()
