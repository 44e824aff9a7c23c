"""Out-of-core fitting: partial_fit over Parquet files against one fit in memory.

Draws ``make_ratings`` data (``--rows`` training ratings among ``--n-users``
users and ``--n-items`` items, and ``--test-rows`` held-out ratings with their
noise-free values) and writes the training rows to ``--files`` Parquet files
in a temporary directory. Then, each in a fresh process:

- chunked: ``MatrixFactorization(alpha=10 / files)`` trained by
  ``partial_fit`` on each chunk of ``iter_parquet_chunks`` (one chunk per
  file), for ``--epochs`` epochs over the files, in a new random file order
  at each epoch;
- single: every file read into one DataFrame, then
  ``MatrixFactorization(alpha=10, max_iter=--single-max-iter,
  early_stopping=False).fit``.

Each process samples its resident memory every 0.1 s and reports the sampled
peak, its true peak (``VmHWM``), the seconds, and the RMSE of the held-out
rows against their noise-free and their noisy ratings. Then one chunked epoch
runs over each number of files in ``--sweep-files``. Writes
``benchmarks/results/out_of_core.md`` and ``benchmarks/results/out_of_core.png``
(resident memory over time).

    python benchmarks/out_of_core.py [--rows 10000000] [--files 10] \
[--n-users 100000] [--n-items 20000] [--epochs 2] [--single-max-iter 2] \
[--sweep-files 5 20]
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet
import sklearn
import torch
from _common import RESULTS_DIR, display_path
from scale import memory_gib, rss_gb
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import MatrixFactorization
from skrec.datasets import iter_parquet_chunks, make_ratings

# MatrixFactorization's default alpha. Each partial_fit call penalises the
# tables with the whole alpha: over n files per epoch, alpha / n matches it.
ALPHA = 10.0
NOISE = 0.5


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--n-users", type=int, default=100_000)
    parser.add_argument("--n-items", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--single-max-iter", type=int, default=None)
    parser.add_argument(
        "--sweep-files",
        type=int,
        nargs="*",
        default=[5, 20],
        help="also run one chunked epoch over this many files of the same size",
    )
    parser.add_argument(
        "--stage", choices=["chunked", "single"], help=argparse.SUPPRESS
    )
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--use-files", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single_max_iter is None:
        args.single_max_iter = args.epochs
    return args


class RssTimeline:
    """The resident memory of this process every 0.1 s, as (seconds, GB)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.samples = []
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def now(self):
        return time.perf_counter() - self.start

    def _sample(self):
        while self._running:
            self.samples.append((self.now(), rss_gb()))
            time.sleep(0.1)

    def stop(self):
        self._running = False
        self._thread.join()
        self.samples.append((self.now(), rss_gb()))

    def peak(self, start=0.0, end=np.inf):
        return max((gb for t, gb in self.samples if start <= t <= end), default=0.0)


def max_rss_gb():
    """The highest resident memory of this process so far: ``VmHWM``.

    Not ``ru_maxrss``: Linux carries a parent's peak over into a child that
    it starts, so a child's ``ru_maxrss`` is at least the peak of the process
    that wrote the data.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def warm_up():
    """A tiny fit, so that torch's one-time imports and allocations are paid
    before the memory of the process is taken as its baseline."""
    X, y = make_ratings(n_users=100, n_items=50, n_ratings=1000, random_state=0)
    MatrixFactorization(random_state=0).partial_fit(X, y).predict(X)


def write_data(args, folder):
    """The training files and the held-out file; their sizes on disk."""
    n_ratings = args.rows + args.test_rows
    params = dict(n_users=args.n_users, n_items=args.n_items, n_ratings=n_ratings)
    X, y = make_ratings(**params, noise=NOISE, as_frame=True, random_state=0)
    # The same seed with noise=0 gives the same pairs and the clean signal.
    _, clean = make_ratings(**params, noise=0.0, integer_ratings=False, random_state=0)
    data = X.assign(rating=y)
    del X, y
    # make_ratings shuffles its rows: the first ones are a random sample.
    test = data.iloc[: args.test_rows].assign(clean=clean[: args.test_rows])
    test.to_parquet(folder / "test.parquet", index=False)
    train_folder = folder / "train"
    train_folder.mkdir()
    bounds = np.linspace(args.test_rows, n_ratings, args.files + 1).astype(int)
    for k, (start, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        path = train_folder / f"part-{k:03d}.parquet"
        data.iloc[start:end].to_parquet(path, index=False)
    return sum(p.stat().st_size for p in train_folder.iterdir())


def held_out_rmse(est, folder):
    test = pd.read_parquet(folder / "test.parquet")
    y_pred = est.predict(test[["user_id", "item_id"]])
    return {
        name: float(np.sqrt(np.mean((y_pred - test[name].to_numpy()) ** 2)))
        for name in ("clean", "rating")
    } | {
        "mean_clean": float(
            np.sqrt(np.mean((test["rating"].mean() - test["clean"]) ** 2))
        )
    }


def model_bytes(est):
    """Bytes of the parameters, of the optimizer's moments, and of the matrix
    of seen pairs ``user_items_``."""
    params = sum(p.numel() * p.element_size() for p in est.module_.parameters())
    state = getattr(est, "_optimizer_state", {})
    states = [s["state"] for s in state.get("optimizers", [state])]
    moments = sum(
        value.numel() * value.element_size()
        for per_param in states
        for tensors in per_param.values()
        for value in tensors.values()
        if torch.is_tensor(value)
    )
    pairs = est.user_items_
    seen = pairs.data.nbytes + pairs.indices.nbytes + pairs.indptr.nbytes
    return {
        "param_bytes": params,
        "moment_bytes": moments,
        "seen_bytes": seen,
        "embedding_dim": est.embedding_dim,
    }


def finish(est, folder, timeline, baseline, fit_window, fit_max_gb):
    """What both runs report, the held-out rows scored after the fit."""
    rmse = held_out_rmse(est, folder)
    timeline.stop()
    return {
        "baseline_gb": baseline,
        "peak_gb": timeline.peak(*fit_window),
        "fit_max_gb": fit_max_gb,
        "process_max_gb": max_rss_gb(),
        "rmse": rmse,
        "timeline": timeline.samples,
        **model_bytes(est),
    }


def run_chunked(args, folder):
    timeline = RssTimeline()
    warm_up()
    baseline = rss_gb()
    paths = training_files(folder)[: args.use_files]
    est = MatrixFactorization(alpha=ALPHA / len(paths), random_state=0)
    rng = np.random.default_rng(0)
    chunk_bytes, epochs, start = [], [], timeline.now()
    for _ in range(args.epochs):
        epoch_start = timeline.now()
        for chunk in iter_parquet_chunks(rng.permutation(paths)):
            chunk_bytes.append(int(chunk.memory_usage(deep=True).sum()))
            est.partial_fit(chunk[["user_id", "item_id"]], chunk["rating"])
            del chunk
        epochs.append((epoch_start, timeline.now(), max_rss_gb()))
    end = timeline.now()
    return finish(est, folder, timeline, baseline, (start, end), epochs[-1][2]) | {
        "fit_s": end - start,
        "epochs": [
            {"s": last - first, "peak_gb": timeline.peak(first, last), "max_gb": top}
            for first, last, top in epochs
        ],
        "epoch_bounds": [(first, last) for first, last, _ in epochs],
        "chunk_bytes": max(chunk_bytes),
        "n_users": len(est.users_),
        "n_items": len(est.items_),
    }


def training_files(folder):
    return sorted((folder / "train").glob("*.parquet"))


def run_single(args, folder):
    timeline = RssTimeline()
    warm_up()
    baseline = rss_gb()
    start = timeline.now()
    files = [str(path) for path in training_files(folder)[: args.use_files]]
    data = pyarrow.parquet.read_table(files).to_pandas()
    loaded, loaded_gb = timeline.now(), rss_gb()
    data_bytes = int(data.memory_usage(deep=True).sum())
    est = MatrixFactorization(
        alpha=ALPHA,
        max_iter=args.single_max_iter,
        early_stopping=False,
        random_state=0,
    )
    est.fit(data[["user_id", "item_id"]], data["rating"])
    end, fit_max_gb = timeline.now(), max_rss_gb()
    del data
    return finish(est, folder, timeline, baseline, (start, end), fit_max_gb) | {
        "load_s": loaded - start,
        "loaded_gb": max(loaded_gb, timeline.peak(start, loaded)),
        "fit_s": end - loaded,
        "data_bytes": data_bytes,
        "load_bounds": (start, loaded),
    }


def run_stage(args):
    """Run one stage in this process and print its results as JSON."""
    warnings.simplefilter("ignore", ConvergenceWarning)
    folder = Path(args.data)
    run = run_chunked if args.stage == "chunked" else run_single
    result = run(args, folder) | {"threads": torch.get_num_threads()}
    print(json.dumps(result))


def stage_in_subprocess(stage, args, folder):
    """One stage in a fresh interpreter, so that its memory is its own."""
    command = [sys.executable, __file__, "--stage", stage, "--data", str(folder)]
    for name in ("rows", "files", "epochs", "single_max_iter", "use_files"):
        if getattr(args, name) is not None:
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    load_before = os.getloadavg()[0]
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode:
        sys.exit(f"The {stage} stage failed:\n{output.stderr}")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    return result | {"load": (load_before, os.getloadavg()[0])}


def plot(chunked, single, path):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    runs = ((chunked, "partial_fit over the files", "C0"), (single, "one fit", "C1"))
    for result, label, color in runs:
        t, gb = np.array(result["timeline"]).T
        ax.plot(t, gb, color=color, label=f"{label} (sampled)")
        ax.axhline(
            result["fit_max_gb"],
            color=color,
            linestyle="--",
            linewidth=1,
            label=f"{label}: peak {result['fit_max_gb']:.2f} GB (VmHWM)",
        )
    ax.axhline(
        chunked["baseline_gb"],
        color="grey",
        linestyle=":",
        linewidth=1,
        label="after imports and a warm-up fit",
    )
    top = 1.2 * max(chunked["process_max_gb"], single["process_max_gb"])
    for k, (_, end) in enumerate(chunked["epoch_bounds"][:-1]):
        ax.axvline(end, color="C0", linestyle=":", linewidth=1)
        ax.annotate(
            f"partial_fit: epoch {k + 2}",
            (end, top),
            xytext=(3, -12),
            textcoords="offset points",
        )
    start, end = single["load_bounds"]
    ax.axvspan(start, end, color="C1", alpha=0.15, label="one fit: reading the files")
    ax.set_xlabel("seconds since the imports")
    ax.set_ylabel("resident memory (GB)")
    ax.set_ylim(0, top)
    ax.set_title("Resident memory, sampled every 0.1 s")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mb(n_bytes):
    return f"{n_bytes / 1e6:,.0f}"


def report(args, chunked, single, sweep, disk_bytes, seconds, load, n_files):
    per_file = args.rows // args.files
    epoch_rows = "\n".join(
        f"| {k} | {e['s']:.1f} | {e['peak_gb']:.2f} | {e['max_gb']:.2f} |"
        for k, e in enumerate(chunked["epochs"], 1)
    )
    text = f"""# Out-of-core fitting: partial_fit over Parquet files

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs, {memory_gib():.0f} GiB
- Versions: torch {torch.__version__}, pyarrow {pyarrow.__version__}, pandas \
{pd.__version__}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, \
skrec {skrec.__version__}, Python {platform.python_version()}
- torch threads: {chunked["threads"]} (chunked), {single["threads"]} (single); \
`n_jobs=None`, which runs on the cores other processes leave free
- 1-minute load average before / after the run: {load[0]:.2f} / {load[1]:.2f}; \
chunked {chunked["load"][0]:.2f} / {chunked["load"][1]:.2f}, single \
{single["load"][0]:.2f} / {single["load"][1]:.2f} (other work on the machine \
slows the fits)
- Command: `python benchmarks/out_of_core.py --rows {args.rows} --files \
{args.files} --n-users {args.n_users} --n-items {args.n_items} --epochs \
{args.epochs} --single-max-iter {args.single_max_iter} --sweep-files \
{" ".join(map(str, args.sweep_files))}`; run time {seconds:.0f} s

Data: `make_ratings(n_users={args.n_users:,}, n_items={args.n_items:,}, \
n_ratings={per_file * n_files + args.test_rows:,}, noise={NOISE}, \
random_state=0)`; the first {args.test_rows:,} rows are held out, the others \
written to {n_files} Parquet files of {per_file:,} rows. The chunked and single \
runs read the first {args.files} files ({args.rows:,} rows, \
{disk_bytes / 1e6:,.0f} MB on disk). The noise-free ratings of the held-out rows are \
`make_ratings` with the same seed and `noise=0.0, integer_ratings=False`.

- **chunked**: a fresh process runs `MatrixFactorization(alpha={ALPHA:g} / \
{args.files}, random_state=0)` `.partial_fit` on each chunk of \
`iter_parquet_chunks(files)` (one chunk of {per_file:,} rows per file), for \
{args.epochs} epochs, the files in a new random order at each epoch.
- **single**: a fresh process reads every file into one DataFrame \
(pyarrow's `read_table` of the files), then fits \
`MatrixFactorization(alpha={ALPHA:g}, max_iter={args.single_max_iter}, \
early_stopping=False, random_state=0)`: the same epochs over the same rows, \
the penalty that partial_fit's `alpha / {args.files}` matches.

Resident memory is sampled every 0.1 s from `/proc/self/statm` ("sampled \
peak") and read from `VmHWM` in `/proc/self/status` (the true peak, which \
catches spikes shorter than 0.1 s; not `ru_maxrss`, which Linux carries over \
from the parent process that wrote the data) at the end of the fit and of the \
process (the fit, then predicting the held-out rows). "Before" is the process \
after its imports and a tiny warm-up fit, which pays torch's one-time costs; \
"peak above before" is `VmHWM` at the end of the fit (for the single fit, \
reading the files included) less "before". RMSE is on the {
        args.test_rows:,} held-out rows, \
against their noise-free ratings and against their noisy ones; the training \
mean scores {chunked["rmse"]["mean_clean"]:.4f} against the noise-free ones.

| run | rows in memory at once | RSS before (GB) | sampled peak RSS in fit (GB) \
| peak RSS after fit (GB) | peak above before (GB) | peak RSS of the \
process (GB) | fit s | RMSE, noise-free | RMSE, noisy |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{row("chunked", per_file, chunked)}
{row("single", args.rows, single)}

What the peaks are made of:

| item | MB |
|---|---:|
| one chunk as a DataFrame | {mb(chunked["chunk_bytes"])} |
| all rows as one DataFrame | {mb(single["data_bytes"])} |
| model parameters ({chunked["n_users"]:,} users, {chunked["n_items"]:,} \
items, {chunked["embedding_dim"]} dimensions and a bias each) | {
        mb(chunked["param_bytes"])
    } |
| Adam's moments, chunked | {mb(chunked["moment_bytes"])} |
| seen pairs `user_items_`, chunked | {mb(chunked["seen_bytes"])} |
| seen pairs `user_items_`, single | {mb(single["seen_bytes"])} |

During a `partial_fit` call the fitted parameters and moments are held \
twice: the call trains a copy, so that a call that fails (bad input, \
divergence, an interrupt) leaves the fitted model as it was. The seen pairs \
are not: a failed call rebuilds the previous ones from the new ones.

Peak memory of one chunked epoch by the number of files it reads, every file \
a chunk of {per_file:,} rows; the model (parameters, moments and seen pairs) \
grows with the pairs seen, the chunk does not:

| files | rows read | chunk (MB) | parameters + moments (MB) | seen pairs (MB) \
| peak above before (GB) | peak less chunk and model (GB) |
|---:|---:|---:|---:|---:|---:|---:|
{sweep_rows(args, chunked, sweep)}

The chunked fit, epoch by epoch:

| epoch | seconds | sampled peak RSS (GB) | peak RSS at its end (GB) |
|---:|---:|---:|---:|
{epoch_rows}

The single fit read the files in {single["load_s"]:.1f} s, reaching \
{single["loaded_gb"]:.2f} GB; its fit s exclude reading.
"""
    return text


def sweep_rows(args, chunked, sweep):
    """One row per run of the sweep; the main chunked run's first epoch."""
    first_epoch = chunked | {"fit_max_gb": chunked["epochs"][0]["max_gb"]}
    runs = {**sweep, args.files: first_epoch}
    per_file = args.rows // args.files
    lines = []
    for k, r in sorted(runs.items()):
        weights = r["param_bytes"] + r["moment_bytes"]
        peak = r["fit_max_gb"] - r["baseline_gb"]
        rest = peak - (r["chunk_bytes"] + weights + r["seen_bytes"]) / 1e9
        lines.append(
            f"| {k} | {k * per_file:,} | {mb(r['chunk_bytes'])} | {mb(weights)} "
            f"| {mb(r['seen_bytes'])} | {peak:.2f} | {rest:.2f} |"
        )
    return "\n".join(lines)


def row(name, rows, r):
    return (
        f"| {name} | {rows:,} | {r['baseline_gb']:.2f} | {r['peak_gb']:.2f} "
        f"| {r['fit_max_gb']:.2f} | {r['fit_max_gb'] - r['baseline_gb']:.2f} "
        f"| {r['process_max_gb']:.2f} | {r['fit_s']:.1f} "
        f"| {r['rmse']['clean']:.4f} | {r['rmse']['rating']:.4f} |"
    )


def main():
    args = parse_args()
    if args.stage:
        run_stage(args)
        return
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    per_file = args.rows // args.files
    n_files = max(args.files, *args.sweep_files)
    # One draw for every run: the main runs read its first --files files.
    drawn = argparse.Namespace(**{**vars(args), "rows": per_file * n_files})
    drawn.files = n_files
    main_run = argparse.Namespace(**{**vars(args), "use_files": args.files})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"Writing {n_files} Parquet files to a temporary directory ...")
        write_data(drawn, folder)
        disk_bytes = sum(p.stat().st_size for p in training_files(folder)[: args.files])
        print("Chunked partial_fit ...")
        chunked = stage_in_subprocess("chunked", main_run, folder)
        print("Single fit ...")
        single = stage_in_subprocess("single", main_run, folder)
        sweep = {}
        for k in sorted(set(args.sweep_files) - {args.files}):
            print(f"One chunked epoch over {k} files ...")
            run = {"rows": per_file * k, "files": k, "epochs": 1, "use_files": k}
            sweep[k] = stage_in_subprocess(
                "chunked", argparse.Namespace(**{**vars(args), **run}), folder
            )
    seconds = time.perf_counter() - start
    load = (load_before, os.getloadavg()[0])
    text = report(args, chunked, single, sweep, disk_bytes, seconds, load, n_files)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "out_of_core.md").write_text(text)
    plot(chunked, single, RESULTS_DIR / "out_of_core.png")
    print(f"Wrote {display_path(RESULTS_DIR / 'out_of_core.md')} and out_of_core.png")


if __name__ == "__main__":
    main()
