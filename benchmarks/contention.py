"""Fits on shared cores: two at once, one beside busy processes, parallel searches.

Each measurement runs ``NeuralRecommender(random_state=0)`` with default
parameters on MovieLens-100K fold u1 (u1.base; synthetic ratings of the same
size when the data are absent) in fresh Python processes, so that the import
order (skrec first, or torch first) and the thread state are those a user's
script has:

- alone: one fit, nothing else running;
- two at once: two processes start their fits at the same instant;
- beside busy processes: one fit while one numpy loop per usable core
  computes (single-threaded BLAS each);
- GridSearchCV: 4 candidates, 3-fold, ``n_jobs=1`` against ``n_jobs=2``.

Each revision of ``--revisions`` (default: HEAD) is measured from a git
worktree of it, so that uncommitted changes do not enter the figures, and
``a80d031 HEAD`` compares with skrec before it followed the load. Rows are
kept in ``benchmarks/results/contention.json`` across runs and tabled in
``contention.md``.

    python benchmarks/contention.py [--data-home DIR] [--repeats 3]
        [--revisions REV ...] [--import-orders skrec torch]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS_DIR, default_data_home, display_path

import skrec

REPOSITORY = Path(__file__).resolve().parents[1]

# The child: loads the data, waits for the common start, fits, prints JSON.
CHILD = """
import json, sys, time, warnings
args = json.loads(sys.argv[1])
if args["torch_first"]:
    import torch
from skrec import NeuralRecommender
from skrec.datasets import load_movielens, make_ratings
import torch
warnings.simplefilter("ignore")
try:
    X, y = load_movielens("100k", fold=1, return_X_y=True, data_home=args["data_home"],
                          download_if_missing=False)[::2]
except (FileNotFoundError, OSError, ValueError):
    X, y = make_ratings(n_users=943, n_items=1650, n_ratings=80_000, random_state=0)
while time.time() < args["start_at"]:
    time.sleep(0.001)
start = time.perf_counter()
est = NeuralRecommender(random_state=0)
if args["search_jobs"]:
    from sklearn.model_selection import GridSearchCV, KFold
    GridSearchCV(est, {"embedding_dim": [32, 64], "alpha": [40.0, 80.0]},
                 cv=KFold(3, shuffle=True, random_state=0),
                 scoring="neg_root_mean_squared_error", refit=False,
                 n_jobs=args["search_jobs"]).fit(X, y)
else:
    est.fit(X, y)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "threads": torch.get_num_threads()}))
"""

BUSY = """
import sys, time
import numpy as np
x = np.random.default_rng(0).random(200_000)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    np.sqrt(x).sum()
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--revisions",
        nargs="+",
        default=["HEAD"],
        help="git revisions of skrec to measure, each from a worktree of it",
    )
    parser.add_argument(
        "--import-orders",
        nargs="+",
        choices=["skrec", "torch"],
        default=["skrec", "torch"],
    )
    return parser.parse_args()


def run_children(n, args, pythonpath, torch_first, search_jobs=0):
    """Start ``n`` fits at the same instant; their seconds."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    start_at = time.time() + 8.0  # after every child has imported and loaded
    payload = json.dumps(
        {
            "data_home": args.data_home,
            "start_at": start_at,
            "torch_first": torch_first,
            "search_jobs": search_jobs,
        }
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, payload],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    outputs = [child.communicate()[0] for child in children]
    return [json.loads(out.strip().splitlines()[-1])["seconds"] for out in outputs]


def beside_busy_processes(args, pythonpath, torch_first):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    busy = [
        subprocess.Popen([sys.executable, "-c", BUSY, "3600"], env=env)
        for _ in range(len(os.sched_getaffinity(0)))
    ]
    try:
        return run_children(1, args, pythonpath, torch_first)
    finally:
        for process in busy:
            process.kill()
            process.wait()


def measure(args, pythonpath, torch_first):
    alone = [
        run_children(1, args, pythonpath, torch_first)[0] for _ in range(args.repeats)
    ]
    row = {"alone": statistics.median(alone)}
    pairs = [
        run_children(2, args, pythonpath, torch_first) for _ in range(args.repeats)
    ]
    row["two at once"] = statistics.median(max(pair) for pair in pairs)
    busy = [
        beside_busy_processes(args, pythonpath, torch_first)[0]
        for _ in range(args.repeats)
    ]
    row["beside busy processes"] = statistics.median(busy)
    for jobs in (1, 2):
        row[f"GridSearchCV n_jobs={jobs}"] = run_children(
            1, args, pythonpath, torch_first, search_jobs=jobs
        )[0]
    print(json.dumps(row), flush=True)
    return row


def worktree(revision, folder):
    """A detached git worktree of ``revision`` in ``folder``, and its short hash."""
    subprocess.run(
        ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", folder, revision],
        check=True,
        capture_output=True,
    )
    short = subprocess.run(
        ["git", "-C", folder, "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(folder), short


def remove_worktree(folder):
    subprocess.run(
        ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", folder],
        check=False,
    )


def table(rows):
    lines = [
        "| skrec | import order | alone s | two at once s (slower of the two) "
        "| ratio | beside busy processes s | ratio | GridSearchCV n_jobs=1 s "
        "| n_jobs=2 s | n_jobs=2 / n_jobs=1 | measured | load before |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        alone, pair = row["alone"], row["two at once"]
        busy = row["beside busy processes"]
        serial, parallel = row["GridSearchCV n_jobs=1"], row["GridSearchCV n_jobs=2"]
        load = "n/a" if row["load"] is None else f"{row['load']:.2f}"
        lines.append(
            f"| {row['revision']} | {row['order']} first | {alone:.1f} | {pair:.1f} "
            f"| {pair / alone:.2f} | {busy:.1f} | {busy / alone:.2f} "
            f"| {serial:.1f} | {parallel:.1f} | {parallel / serial:.2f} "
            f"| {row['date']} | {load} |"
        )
    return "\n".join(lines) + "\n"


def report(args, rows):
    return f"""# Fits on shared cores

- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable
- Versions: torch {torch.__version__}, numpy {np.__version__}, skrec \
{skrec.__version__}, Python {platform.python_version()}; torch's threads when \
alone: {torch.get_num_threads()}
- Data: MovieLens-100K fold u1 (u1.base) from {display_path(args.data_home)}
- Command: `python benchmarks/contention.py --repeats {args.repeats} --revisions \
REV [REV ...]`: each revision is measured from a git worktree of it; the rows of \
earlier runs are kept in `contention.json`, one row per revision and import \
order, with the date and 1-minute load average of its run.

Protocol: every figure is the wall time of `NeuralRecommender(random_state=0).fit` \
(default parameters) in a fresh process, or of the whole `GridSearchCV` over \
`embedding_dim` in (32, 64) and `alpha` in (40, 80), `KFold(3, shuffle=True, \
random_state=0)`, `refit=False`. "two at once": two processes start their fits at \
the same instant (after both have loaded the data); the slower one's time. \
"beside busy processes": one numpy loop per usable core (`np.sqrt(x).sum()` on \
200,000 floats, single-threaded) runs for the whole fit. "skrec first": the script \
imports skrec, which imports torch; "torch first": it imports torch before skrec. \
Medians of {args.repeats} repeats, except the GridSearchCV columns (one run each). \
The ratios divide by "alone" of the same row.

{table(rows)}"""


def main():
    args = parse_args()
    saved = RESULTS_DIR / "contention.json"
    rows = json.loads(saved.read_text()) if saved.exists() else []
    with tempfile.TemporaryDirectory() as folder:
        for k, revision in enumerate(args.revisions):
            path, short = worktree(revision, f"{folder}/{k}")
            try:
                for order in args.import_orders:
                    print(f"skrec {short}, {order} imported first", flush=True)
                    load = os.getloadavg()[0]
                    row = measure(args, path, order == "torch")
                    rows = [
                        r for r in rows if (r["revision"], r["order"]) != (short, order)
                    ]
                    rows.append(
                        {
                            "revision": short,
                            "order": order,
                            "date": datetime.date.today().isoformat(),
                            "load": load,
                            **row,
                        }
                    )
            finally:
                remove_worktree(f"{folder}/{k}")
    RESULTS_DIR.mkdir(exist_ok=True)
    saved.write_text(json.dumps(rows, indent=1) + "\n")
    text = report(args, rows)
    print("\n" + text)
    (RESULTS_DIR / "contention.md").write_text(text)
    print(f"Wrote {display_path(RESULTS_DIR / 'contention.md')}")


if __name__ == "__main__":
    main()
