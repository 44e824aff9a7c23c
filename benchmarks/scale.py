"""How fit, predict and recommend scale with the number of interactions.

For each size, a fresh process draws ``make_ratings`` with 1M users and 200k
items, fits ``NeuralRecommender(embedding_dim=32, hidden_layer_sizes=(64, 32))``
for one epoch, then times ``predict`` on 1M rows and ``recommend`` for 256
users over every item. It records the seconds of the epoch and of the whole
fit, the peak resident memory of the process (the DataFrame included) and
during the fit, and writes a markdown table and a log-log plot to
``benchmarks/results/``.

    python benchmarks/scale.py [--sizes 1e6 1e7 1e8] [--batch-size 16384]
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import sklearn
import torch
from _common import (
    RESULTS_DIR,
    EpochTimer,
    display_path,
    encode_ratings,
    train_plain_epoch,
)
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import NeuralRecommender
from skrec._engine._modules import EmbeddingMLP
from skrec.datasets import make_ratings

N_USERS = 1_000_000
N_ITEMS = 200_000
PREDICT_ROWS = 1_000_000
RECOMMEND_USERS = 256


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--plain-max",
        type=float,
        default=1e7,
        help="largest size at which to time the plain PyTorch loops too",
    )
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    return parser.parse_args()


def rss_gb():
    """The process's resident memory now, in GB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


class PeakMemory:
    """The highest resident memory seen while the block runs, sampled every 10 ms."""

    def __enter__(self):
        self.peak = rss_gb()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, rss_gb())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, rss_gb())


def estimator(batch_size, device):
    return NeuralRecommender(
        embedding_dim=32,
        hidden_layer_sizes=(64, 32),
        batch_size=batch_size,
        max_iter=1,
        early_stopping=False,
        random_state=0,
        device=device,
    )


def warm_up(batch_size, device):
    """A tiny fit, so that the sizes do not pay torch's one-time imports."""
    X, y = make_ratings(n_users=100, n_items=50, n_ratings=1000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator(batch_size, device).fit(X, y)


def measure_one(n_ratings, batch_size, device, plain_max):
    """Every figure of one size, measured in this process."""
    warm_up(batch_size, device)
    start = time.perf_counter()
    X, y = make_ratings(
        n_users=N_USERS,
        n_items=N_ITEMS,
        n_ratings=n_ratings,
        as_frame=True,
        random_state=0,
    )
    generate_seconds = time.perf_counter() - start
    before_fit = rss_gb()
    est = estimator(batch_size, device)
    with warnings.catch_warnings(), PeakMemory() as fit_memory, EpochTimer() as epochs:
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        fit_seconds = time.perf_counter() - start
    rows = X.iloc[:PREDICT_ROWS]
    est.predict(rows.iloc[:1000])
    start = time.perf_counter()
    est.predict(rows)
    predict_seconds = time.perf_counter() - start
    users = est.users_[:RECOMMEND_USERS]
    est.recommend(users[:2])
    start = time.perf_counter()
    est.recommend(users, n=10)
    recommend_seconds = time.perf_counter() - start
    return {
        "n_ratings": n_ratings,
        "n_users": len(est.users_),
        "n_items": len(est.items_),
        "generate_s": generate_seconds,
        "fit_s": fit_seconds,
        "epoch_s": epochs.seconds[0],
        "train_loss": est.loss_curve_[0],
        "predict_rows_per_s": len(rows) / predict_seconds,
        "recommend_users_per_s": len(users) / recommend_seconds,
        "rss_before_fit_gb": before_fit,
        "rss_fit_peak_gb": fit_memory.peak,
        # ru_maxrss is in KiB on Linux.
        "rss_max_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        **plain_loop_epochs(X, y, batch_size, device, n_ratings <= plain_max),
    }


def plain_loop_epochs(X, y, batch_size, device, run):
    """Seconds of one epoch of the plain PyTorch loop over the same module,
    with dense tables and fused Adam, and with sparse tables and
    ``torch.optim.SparseAdam``; NaN when not ``run``."""
    if not run:
        return {"plain_dense_s": float("nan"), "plain_sparse_s": float("nan")}
    device = torch.device("cpu" if device == "auto" else device)
    data, n_rows = encode_ratings(X, np.asarray(y, dtype=np.float64), device)
    seconds = {}
    for name, sparse in (("plain_dense_s", False), ("plain_sparse_s", True)):
        module, optimizers = plain_module_and_optimizers(*n_rows, sparse, device)
        start = time.perf_counter()
        train_plain_epoch(module, optimizers, data, batch_size)
        seconds[name] = time.perf_counter() - start
        del module, optimizers
    return seconds


def plain_module_and_optimizers(n_users, n_items, sparse, device):
    """The estimator's EmbeddingMLP, and fused Adam over it, or SparseAdam over
    its tables made sparse and fused Adam over the rest."""
    torch.manual_seed(0)
    module = EmbeddingMLP(
        n_users, n_items, embedding_dim=32, hidden_layer_sizes=(64, 32)
    ).to(device)
    tables = [module.user_table, module.item_table]
    for table in tables:
        table.sparse = sparse
    if not sparse:
        return module, [torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)]
    table_weights = {id(table.weight) for table in tables}
    rest = [p for p in module.parameters() if id(p) not in table_weights]
    return module, [
        torch.optim.SparseAdam([table.weight for table in tables], lr=1e-3),
        torch.optim.Adam(rest, lr=1e-3, fused=True),
    ]


def measure_in_subprocess(n_ratings, args):
    """``measure_one`` in a fresh interpreter, so that each size's peak memory
    is its own."""
    command = [
        sys.executable,
        __file__,
        "--one",
        str(n_ratings),
        "--batch-size",
        str(args.batch_size),
        "--device",
        args.device,
        "--plain-max",
        str(args.plain_max),
    ]
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{output.stderr}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def results_table(results):
    lines = [
        "| interactions | users | items | fit s | epoch s | us per interaction "
        "| plain loop epoch s, dense / SparseAdam | skrec epoch speed-up, dense / "
        "SparseAdam | train MSE | predict rows/s | recommend users/s | RSS with "
        "data, before fit (GB) | peak RSS in fit (GB) | peak RSS of the process "
        "(GB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['n_ratings']:,.0f} | {r['n_users']:,} | {r['n_items']:,} "
            f"| {r['fit_s']:.1f} | {r['epoch_s']:.1f} "
            f"| {1e6 * r['epoch_s'] / r['n_ratings']:.2f} "
            f"| {plain_cells(r)} | {r['train_loss']:.3f} "
            f"| {r['predict_rows_per_s']:,.0f} | {r['recommend_users_per_s']:,.0f} "
            f"| {r['rss_before_fit_gb']:.2f} | {r['rss_fit_peak_gb']:.2f} "
            f"| {r['rss_max_gb']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plain_cells(r):
    """The plain loops' epoch seconds and skrec's speed-up over them."""
    if np.isnan(r["plain_dense_s"]):
        return "not run | not run"
    return (
        f"{r['plain_dense_s']:.1f} / {r['plain_sparse_s']:.1f} "
        f"| {r['plain_dense_s'] / r['epoch_s']:.2f}x / "
        f"{r['plain_sparse_s'] / r['epoch_s']:.2f}x"
    )


def memory_gib():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def report_header(args, seconds):
    return f"""# Scale: one epoch from 1M to 100M interactions

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs, {memory_gib():.0f} GiB
- Versions: torch {torch.__version__}, numpy {np.__version__}, scikit-learn \
{sklearn.__version__}, skrec {skrec.__version__}, Python {platform.python_version()}
- torch.get_num_threads(): {torch.get_num_threads()}; device: {args.device}
- Command: `python benchmarks/scale.py --sizes \
{" ".join(f"{s:g}" for s in args.sizes)} --batch-size {args.batch_size} \
--device {args.device}`; run time {seconds:.0f} s

Protocol: each size runs in a fresh process.
`make_ratings(n_users={N_USERS:,}, n_items={N_ITEMS:,}, n_ratings=N, \
as_frame=True, random_state=0)` (a DataFrame of two int64 ID columns and a \
float64 Series; not timed), then \
`NeuralRecommender(embedding_dim=32, hidden_layer_sizes=(64, 32), \
batch_size={args.batch_size}, max_iter=1, early_stopping=False, random_state=0)` \
`.fit(X, y)`: one epoch over every row. The tables are larger than 16 rows \
per batch row, so `sparse_embeddings="auto"` updates them sparsely. "epoch s" is \
the epoch alone; "fit s" adds validating and encoding the IDs, the seen-items \
matrix and moving the data to tensors. Then `predict` on the first \
{PREDICT_ROWS:,} rows and `recommend(n=10)` for {RECOMMEND_USERS} users over \
every item, each after a small warm-up call. Memory is the resident set of the \
process: before fit (Python, torch and the data), its peak during fit (sampled \
every 10 ms) and the peak of the whole process, drawing the data included. \
A tiny fit in the same process first pays torch's one-time imports (about 3 s \
on the first optimizer).

Up to {args.plain_max:,.0f} interactions, the same process then times one epoch \
of two plain PyTorch loops over the same `EmbeddingMLP` (the data encoded to \
tensors first, not timed; `torch.randperm` and slicing, `F.mse_loss`, \
`zero_grad(set_to_none=True)`, no L2 penalty): with dense tables and \
`Adam(fused=True)`, and with `nn.Embedding(sparse=True)` tables under \
`torch.optim.SparseAdam` and fused Adam for the rest. "skrec epoch speed-up" is \
their epoch seconds over skrec's.
"""


def plot_results(results, device, path):
    plt.switch_backend("Agg")
    n = np.array([r["n_ratings"] for r in results])
    fig, (cost, memory) = plt.subplots(1, 2, figsize=(10, 4))
    cost.loglog(n, [r["epoch_s"] for r in results], "o-", label="epoch")
    cost.loglog(n, [r["fit_s"] for r in results], "s--", label="whole fit")
    cost.loglog(
        n,
        n * results[0]["epoch_s"] / n[0],
        ":",
        color="grey",
        label="linear from the first size",
    )
    cost.set_xlabel("interactions")
    cost.set_ylabel("seconds")
    cost.set_title(f"Fit cost, {device}, {torch.get_num_threads()} threads")
    cost.legend()
    cost.grid(alpha=0.3, which="both")
    memory.loglog(
        n, [r["rss_fit_peak_gb"] for r in results], "o-", label="peak during fit"
    )
    memory.loglog(
        n,
        [r["rss_before_fit_gb"] for r in results],
        "s--",
        label="before fit (data loaded)",
    )
    memory.set_xlabel("interactions")
    memory.set_ylabel("resident memory (GB)")
    memory.set_title("Memory")
    memory.legend()
    memory.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    if args.one is not None:
        figures = measure_one(
            int(args.one), args.batch_size, args.device, args.plain_max
        )
        print(json.dumps(figures))
        return
    start = time.perf_counter()
    results = []
    for size in args.sizes:
        results.append(measure_in_subprocess(size, args))
        print(results_table(results).splitlines()[-1], flush=True)
    report = report_header(args, time.perf_counter() - start)
    report += "\n" + results_table(results)
    print("\n" + report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "scale.md").write_text(report)
    plot_results(results, args.device, RESULTS_DIR / "scale.png")
    print(f"Wrote scale.md and scale.png in {display_path(RESULTS_DIR)}")


if __name__ == "__main__":
    main()
