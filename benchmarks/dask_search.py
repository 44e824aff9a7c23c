"""One GridSearchCV of NeuralRecommender in this process, on loky processes and on Dask.

The search (4 candidates: ``embedding_dim`` in (32, 64) x ``alpha`` in
(40, 80); ``KFold(3, shuffle=True, random_state=0)``; RMSE; ``refit=False``)
of ``NeuralRecommender(max_iter=..., random_state=0)`` runs on MovieLens-100K
fold u1 (u1.base; synthetic ratings of the same size when the data are
absent):

- ``n_jobs=1``: every fit in this process;
- ``n_jobs=2``: joblib's default backend, loky, two worker processes;
- Dask: ``n_jobs=-1`` under ``joblib.parallel_config(backend="dask")``, on a
  ``LocalCluster`` of 2 worker processes of 1 thread each, once with the
  environment Dask's nanny gives its workers by default
  (``MALLOC_TRIM_THRESHOLD_=65536`` among others) and once with
  ``MALLOC_TRIM_THRESHOLD_`` left unset.

The worker processes are started, and have imported skrec, before the timed
searches; their start is reported apart. Each search runs ``--repeats`` times
(median). The nanny also sets its variables in this process's environment,
which later processes would inherit: it is restored after each cluster.
Writes ``benchmarks/results/dask_search.md``.

    python benchmarks/dask_search.py [--data-home DIR] [--repeats 3] [--max-iter 10]
"""

import argparse
import datetime
import os
import platform
import statistics
import time
import warnings

import dask
import distributed
import joblib
import numpy as np
import sklearn
import torch
from _common import RESULTS_DIR, default_data_home, display_path, load_u1_ratings
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold

import skrec
from skrec import NeuralRecommender

GRID = {"embedding_dim": [32, 64], "alpha": [40.0, 80.0]}
N_SPLITS = 3
ENVIRON = "distributed.nanny.pre-spawn-environ"
COMPARED = ("mean_test_score", "std_test_score") + tuple(
    f"split{k}_test_score" for k in range(N_SPLITS)
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=10)
    return parser.parse_args()


def search(X, y, max_iter, n_jobs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(
            NeuralRecommender(max_iter=max_iter, random_state=0),
            GRID,
            cv=KFold(N_SPLITS, shuffle=True, random_state=0),
            scoring="neg_root_mean_squared_error",
            refit=False,
            n_jobs=n_jobs,
        ).fit(X, y)


def timed_searches(X, y, args, n_jobs):
    """The median seconds of ``--repeats`` searches, the last search, and the
    1-minute load average before the first."""
    load, seconds = os.getloadavg()[0], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = search(X, y, args.max_iter, n_jobs)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result, load


def worker_settings():
    """The threads a fit with ``n_jobs=None`` runs on in the calling process,
    and the variables of its environment that Dask's nanny sets."""
    from skrec._parallel import cpu_threads

    return {
        "threads": cpu_threads(None).n_threads,
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
    }


def equality(result, reference):
    """Whether the scores of ``result`` are those of ``reference``, bit for bit."""
    differences = [
        np.max(np.abs(result.cv_results_[key] - reference.cv_results_[key]))
        for key in COMPARED
    ]
    if max(differences) == 0:
        return "yes, bitwise"
    return f"no, up to {max(differences):.1e}"


def row(name, timed, started, settings):
    seconds, result, load = timed
    return {
        "name": name,
        "seconds": seconds,
        "result": result,
        "load": load,
        "started": started,
        **settings,
    }


def in_this_process(X, y, args):
    timed = timed_searches(X, y, args, n_jobs=1)
    return row("n_jobs=1", timed, None, worker_settings())


def on_loky(X, y, args):
    start = time.perf_counter()
    settings = joblib.Parallel(n_jobs=2)(
        joblib.delayed(worker_settings)() for _ in range(2)
    )
    started = time.perf_counter() - start
    timed = timed_searches(X, y, args, n_jobs=2)
    return row("n_jobs=2, loky", timed, started, settings[0])


def on_dask(X, y, args, keep_trim_threshold):
    config = {}
    if not keep_trim_threshold:
        config[f"{ENVIRON}.MALLOC_TRIM_THRESHOLD_"] = None
    saved = dict(os.environ)
    start = time.perf_counter()
    try:
        with (
            dask.config.set(config),
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            settings = list(client.run(worker_settings).values())
            started = time.perf_counter() - start
            with joblib.parallel_config(backend="dask"):
                timed = timed_searches(X, y, args, n_jobs=-1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    name = "Dask, 2 workers x 1 thread" + (
        "" if keep_trim_threshold else ", `MALLOC_TRIM_THRESHOLD_` unset"
    )
    return row(name, timed, started, settings[0])


def table(rows):
    lines = [
        "| run | wall s | ratio to n_jobs=1 | `cv_results_` equal to n_jobs=1 "
        "| threads per fit | `MALLOC_TRIM_THRESHOLD_` in workers "
        "| workers' start s (untimed) | load before |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    reference = rows[0]
    for run in rows:
        if run is reference:
            same = "(reference)"
        else:
            same = equality(run["result"], reference["result"])
        started = "n/a" if run["started"] is None else f"{run['started']:.1f}"
        lines.append(
            f"| {run['name']} | {run['seconds']:.1f} "
            f"| {run['seconds'] / reference['seconds']:.2f} | {same} "
            f"| {run['threads']} | {run['trim'] or 'unset'} | {started} "
            f"| {run['load']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def report(args, source, rows, loads):
    reference = rows[0]["result"].cv_results_
    best = max(
        zip(reference["mean_test_score"], reference["params"], strict=True),
        key=lambda pair: pair[0],
    )
    omp = {run["name"]: run["omp"] for run in rows}
    return f"""# GridSearchCV in one process, on loky processes and on Dask

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {os.cpu_count()} CPUs, \
{len(os.sched_getaffinity(0))} usable
- Versions: torch {torch.__version__}, numpy {np.__version__}, scikit-learn \
{sklearn.__version__}, joblib {joblib.__version__}, dask {dask.__version__}, \
distributed {distributed.__version__}, skrec {skrec.__version__}, Python \
{platform.python_version()}
- Threads: torch.get_num_threads() in this process {torch.get_num_threads()}; \
OMP_NUM_THREADS in the workers of each run: {omp} (loky sets it to the CPUs \
divided by n_jobs; Dask's nanny to 1, whatever `threads_per_worker`). \
"threads per fit" is what skrec chooses with the default `n_jobs=None` in that \
process (at most torch's threads and the usable CPUs, fewer while other \
processes keep the cores busy).
- Data: {source}
- Protocol: `GridSearchCV(NeuralRecommender(max_iter={args.max_iter}, \
random_state=0), {{"embedding_dim": [32, 64], "alpha": [40.0, 80.0]}}, \
cv=KFold({N_SPLITS}, shuffle=True, random_state=0), \
scoring="neg_root_mean_squared_error", refit=False)`: 12 fits. "n_jobs=1": \
all in this process; "n_jobs=2, loky": joblib's default backend; "Dask": \
`n_jobs=-1` under `joblib.parallel_config(backend="dask")` with a \
`distributed.Client` of a `LocalCluster(n_workers=2, threads_per_worker=1, \
processes=True)`, first with the environment Dask's nanny gives its workers \
by default, then with `dask.config.set({{"{ENVIRON}.MALLOC_TRIM_THRESHOLD_": \
None}})`. The worker processes are started and import skrec before the timed \
searches ("workers' start s"). Wall seconds are medians of {args.repeats} \
searches. "`cv_results_` equal" compares the mean, standard deviation and \
per-split test scores with those of `n_jobs=1`. Best candidate (n_jobs=1): \
{best[1]}, RMSE {-best[0]:.4f}.
- 1-minute load average before / after: {loads[0]:.2f} / {loads[1]:.2f} \
(other jobs on the machine slow the fits)
- Command: `python benchmarks/dask_search.py --repeats {args.repeats} \
--max-iter {args.max_iter}`

{table(rows)}"""


def main():
    args = parse_args()
    X, y, _, source = load_u1_ratings(args.data_home)
    load_before = os.getloadavg()[0]
    rows = []
    for run in (
        lambda: in_this_process(X, y, args),
        lambda: on_loky(X, y, args),
        lambda: on_dask(X, y, args, keep_trim_threshold=True),
        lambda: on_dask(X, y, args, keep_trim_threshold=False),
    ):
        rows.append(run())
        print(f"{rows[-1]['name']}: {rows[-1]['seconds']:.1f} s", flush=True)
    text = report(args, source, rows, (load_before, os.getloadavg()[0]))
    print("\n" + text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "dask_search.md").write_text(text)
    print(f"Wrote {display_path(RESULTS_DIR / 'dask_search.md')}")


if __name__ == "__main__":
    main()
