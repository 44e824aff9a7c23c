"""Approximate top-10 (the faiss item index) against exact recommend().

For each catalog size (10k, 30k, 100k and 1M items by default) a
``MatrixFactorization(embedding_dim=64)`` is fitted for one epoch on small
``make_ratings`` data, then the fitted attributes that ``recommend`` reads are
replaced by synthetic ones of the target size: ``module_`` (an ``"mf"``
network whose tables hold the synthetic vectors), ``users_``, ``items_`` and
``user_items_`` (20 seen items per user, drawn by a Zipf-like popularity).
``recommend`` then runs its real code path, exact and approximate. The
vectors are Gaussian with standard deviation ``k ** -0.5`` on coordinate
``k``: the singular values of the item table of a MatrixFactorization fitted
with ``loss="softmax"`` on MovieLens-100K fall about so (0.44 of the first at
the 5th, 0.21 at the 17th); item biases have that model's spread (0.46).
``--spectrum isotropic`` draws every coordinate alike, the hardest case for
any index.

Measured per size, for 10,000 users: the first approximate call (index build
with its calibration, plus one user), users/s of ``recommend(users, n=10,
method="approximate")`` over all users, users/s of ``method="exact"`` over
``--exact-users`` of them (all when that many or fewer: exact ranking of a
million items takes minutes), recall@10 of the approximate items against the
exact ones over the users ranked both ways, and the index's memory. Unless
``--no-mlp``, also the recall of NeuralRecommender's MLP architectures, whose
index ranks by a first-order expansion, on MovieLens-100K ``u.data`` (skipped
when the data are absent).

Writes ``benchmarks/results/serving_ann.md`` and ``serving_ann.png``
(``serving_ann_isotropic.*`` with ``--spectrum isotropic``).

    python benchmarks/serving_ann.py [--sizes 10000 30000 100000 1000000] \
[--users 10000] [--exact-users 1000] [--spectrum decay] [--no-mlp] \
[--data-home DIR] [--threads N] [--max-waits 3]
"""

import argparse
import datetime
import os
import platform
import subprocess
import time
import warnings

import faiss
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS_DIR, default_data_home  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import skrec  # noqa: E402
from skrec import MatrixFactorization, NeuralRecommender  # noqa: E402
from skrec._engine._modules import EmbeddingMLP  # noqa: E402
from skrec.datasets import load_movielens, make_ratings  # noqa: E402

DIM = 64
K = 10
SEEN_PER_USER = 20
ITEM_BIAS_STD = 0.46
QUIET_LOAD = 1.5
SPECTRA = {
    "decay": "standard deviation k^-0.5 on coordinate k, as a trained model's items",
    "isotropic": "every coordinate standard normal",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 1_000_000]
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--exact-users", type=int, default=1_000)
    parser.add_argument("--spectrum", choices=["decay", "isotropic"], default="decay")
    parser.add_argument("--no-mlp", dest="mlp", action="store_false")
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-waits", type=int, default=3)
    return parser.parse_args()


def wait_for_quiet_cores(tries=3, seconds=180):
    """Wait while the 1-minute load is above QUIET_LOAD, ``tries`` times at
    most; the load when timing starts."""
    for _ in range(tries):
        if os.getloadavg()[0] <= QUIET_LOAD:
            break
        print(f"load {os.getloadavg()[0]:.2f}: waiting {seconds} s", flush=True)
        time.sleep(seconds)
    return os.getloadavg()[0]


def synthetic_vectors(n_rows, spectrum, rng):
    vectors = rng.standard_normal((n_rows, DIM), dtype=np.float32)
    if spectrum == "decay":
        vectors *= (np.arange(1, DIM + 1) ** -0.5).astype(np.float32)
    return vectors


def synthetic_model(n_items, n_users, spectrum, seed=0):
    """A MatrixFactorization fitted on small data whose network, vocabularies
    and seen items are replaced by synthetic ones of the target size."""
    X, _ = make_ratings(n_users=50, n_items=40, n_ratings=400, random_state=0)
    model = MatrixFactorization(
        embedding_dim=DIM, loss="softmax", max_iter=1, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    rng = np.random.default_rng(seed)
    module = EmbeddingMLP(
        n_users + 1,
        n_items + 1,
        embedding_dim=DIM,
        hidden_layer_sizes=(),
        architecture="mf",
    )
    with torch.no_grad():
        module.item_table.weight[1:, :-1] = torch.from_numpy(
            synthetic_vectors(n_items, spectrum, rng)
        )
        module.item_table.weight[1:, -1] = torch.from_numpy(
            rng.normal(0, ITEM_BIAS_STD, n_items).astype(np.float32)
        )
        module.user_table.weight[1:, :-1] = torch.from_numpy(
            synthetic_vectors(n_users, spectrum, rng)
        )
    model.module_ = module.eval()
    model.users_ = np.arange(n_users)
    model.items_ = np.arange(n_items)
    model.user_items_ = seen_items(n_users, n_items, rng)
    return model


def seen_items(n_users, n_items, rng):
    """SEEN_PER_USER items per user, drawn with probability ~ 1 / rank."""
    weights = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, (n_users, SEEN_PER_USER), p=weights / weights.sum())
    rows = np.repeat(np.arange(n_users), SEEN_PER_USER)
    matrix = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, items.ravel())),
        shape=(n_users, n_items),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def recall(found, truth):
    return float(
        np.mean(
            [len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]
        )
    )


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def measure_size(n_items, args):
    model = synthetic_model(n_items, args.users, args.spectrum)
    users = model.users_
    exact_users = users[: min(args.exact_users, len(users))]
    load = os.getloadavg()[0]
    _, build = timed(lambda: model.recommend(users[:1], n=K, method="approximate"))
    found, approximate = timed(
        lambda: model.recommend(users, n=K, method="approximate")
    )
    truth, exact = timed(lambda: model.recommend(exact_users, n=K, method="exact"))
    index = model._item_index.index
    row = {
        "items": n_items,
        "load": load,
        "build": build,
        "approximate": len(users) / approximate,
        "exact": len(exact_users) / exact,
        "exact_users": len(exact_users),
        "recall": recall(found[: len(exact_users)], truth),
        "memory": index.nbytes / 2**20,
        "lists": index.n_lists,
        "probe": index.n_probe,
        "sample_recall": index.sample_recall,
    }
    print(row, flush=True)
    return row


def measure_mlp(data_home):
    """Recall@10 of the approximate top-10 of the MLP architectures, fitted
    for 20 epochs with loss="bce" on MovieLens-100K u.data."""
    try:
        X = load_movielens(data_home=data_home, download_if_missing=False).data
    except OSError:
        return []
    X = X.iloc[:, :2]
    users = np.unique(X.iloc[:, 0])
    rows = []
    for architecture in ("neumf", "mlp"):
        model = NeuralRecommender(
            architecture=architecture, loss="bce", max_iter=20, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        truth = model.recommend(users, n=K, method="exact")
        found = model.recommend(users, n=K, method="approximate")
        rows.append((architecture, model.n_iter_, recall(found, truth)))
        print(rows[-1], flush=True)
    return rows


def git_revision():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def plot(rows, path):
    sizes = [f"{row['items']:,}" for row in rows]
    positions = np.arange(len(rows))
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.bar(positions - 0.2, [row["exact"] for row in rows], 0.4, label="exact")
    bars = axis.bar(
        positions + 0.2,
        [row["approximate"] for row in rows],
        0.4,
        label="approximate",
    )
    for bar, row in zip(bars, rows, strict=True):
        axis.annotate(
            f"recall {row['recall']:.3f}",
            (bar.get_x(), bar.get_height()),
            fontsize=8,
            va="bottom",
        )
    axis.set_xticks(positions, sizes)
    axis.set_yscale("log")
    axis.set_xlabel("items")
    axis.set_ylabel("users / s (recommend, n=10)")
    axis.set_title(f"recommend: exact vs approximate, D={DIM}")
    axis.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def report(args, rows, mlp_rows):
    lines = [
        "| items | recall@10 | approximate users/s | exact users/s (users timed) "
        "| speed-up | index build s | index MiB | lists | n_probe "
        "| sample recall | load before |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['items']:,} | {row['recall']:.3f} | {row['approximate']:,.0f} "
            f"| {row['exact']:,.0f} ({row['exact_users']:,}) "
            f"| {row['approximate'] / row['exact']:.1f}x | {row['build']:.1f} "
            f"| {row['memory']:.0f} | {row['lists']:,} | {row['probe']} "
            f"| {row['sample_recall']:.3f} | {row['load']:.2f} |"
        )
    mlp = ""
    if mlp_rows:
        mlp = (
            "\n## MLP architectures (first-order expansion, re-scored)\n\n"
            'NeuralRecommender(architecture=..., loss="bce", max_iter=20, '
            "random_state=0) on MovieLens-100K `u.data` (943 users x 1,682 items), "
            'recall@10 of `method="approximate"` against `"exact"` over all '
            "users:\n\n| architecture | epochs | recall@10 |\n|---|---:|---:|\n"
            + "".join(
                f"| {name} | {epochs} | {value:.3f} |\n"
                for name, epochs, value in mlp_rows
            )
        )
    return f"""# Approximate top-10: the faiss item index against exact recommend()

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}; git {git_revision()}
- Machine: {platform.platform()}, {os.cpu_count()} CPUs, \
{len(os.sched_getaffinity(0))} usable; 1-minute load average before each size's \
timing in the table (before the first, the script waited up to \
{args.max_waits} x 3 minutes for it to fall below {QUIET_LOAD}; the cores are \
shared with other processes)
- Versions: torch {torch.__version__}, faiss {faiss.__version__}, numpy \
{np.__version__}, skrec {skrec.__version__}, Python {platform.python_version()}
- Threads: torch.get_num_threads() {torch.get_num_threads()}; faiss searches on \
the threads skrec gives the estimator (`n_jobs=None`)
- Model: MatrixFactorization(embedding_dim={DIM}) fitted for one epoch on \
small data, its `module_`, `users_`, `items_` and `user_items_` replaced by \
synthetic ones: {args.users:,} users, {SEEN_PER_USER} seen items each \
(popularity ~ 1/rank); vectors with spectrum "{args.spectrum}" \
({SPECTRA[args.spectrum]}), item biases N(0, {ITEM_BIAS_STD}).
- Protocol: `recommend(users, n={K})` with `exclude_seen=True`. "index build \
s": the first approximate call (item vectors, k-means, adding the items, the \
calibration of n_probe on 256 users) with one user. Approximate users/s over \
all {args.users:,} users, once the index is built; exact users/s over the \
first users (column "users timed"); recall@10 of the approximate items \
against the exact ones over those users. "sample recall": the index's own \
recall@10 on its calibration sample (target 0.95 + 0.01).
- Command: `python benchmarks/serving_ann.py --sizes {" ".join(map(str, args.sizes))} \
--users {args.users} --exact-users {args.exact_users} --spectrum {args.spectrum}`

{chr(10).join(lines)}
{mlp}"""


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    wait_for_quiet_cores(args.max_waits)
    rows = [measure_size(n_items, args) for n_items in args.sizes]
    mlp_rows = measure_mlp(args.data_home) if args.mlp else []
    RESULTS_DIR.mkdir(exist_ok=True)
    suffix = "" if args.spectrum == "decay" else f"_{args.spectrum}"
    plot(rows, RESULTS_DIR / f"serving_ann{suffix}.png")
    text = report(args, rows, mlp_rows)
    (RESULTS_DIR / f"serving_ann{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
