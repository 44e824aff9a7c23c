"""Data-parallel training on torch.distributed: accuracy, weights, throughput, cost.

Fits skrec's estimators with default parameters in 1 and in 2 processes
launched by ``torchrun --standalone``, each process given the rows of its own
users (user ID modulo the number of processes, so that the processes'
vocabularies differ):

- ``ratings``: NeuralRecommender on MovieLens-100K u1.base, test RMSE on
  u1.test;
- ``sequential``: SequentialRecommender on the leave-last-out protocol of
  benchmarks/sequential.py, full-ranking HR@10 and NDCG@10 of the held-out items.

It checks that the processes end with bitwise-identical weights and that the
pickle of process 0 predicts the same in this (plain, single) process, and
reports samples/s per epoch, the bytes all-reduced per step, the measured
time of one such all-reduce, and a model of the step time at N processes.
Writes benchmarks/results/data_parallel.md and data_parallel.png.

    python benchmarks/data_parallel.py [--data-home DIR] [--tasks ratings sequential]
        [--seeds 0 1 2] [--processes 1 2]
"""

import argparse
import datetime
import hashlib
import json
import os
import pickle
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
from _common import RESULTS_DIR, default_data_home, display_path

import skrec
from skrec import NeuralRecommender, SequentialRecommender
from skrec._engine._sequence_training import SequenceTrainer
from skrec._engine._training import Trainer
from skrec.datasets import load_movielens
from skrec.metrics import hit_rate_at_k, ndcg_at_k
from skrec.model_selection import LeaveLastOut

ID_COLUMNS = ["user_id", "item_id"]
SEQUENCE_COLUMNS = [*ID_COLUMNS, "timestamp"]
# Within equal timestamps, ascending item ID: the order LeaveLastOut breaks
# ties in, as in benchmarks/sequential.py.
SORT_COLUMNS = ["user_id", "timestamp", "item_id"]
TASKS = ("ratings", "sequential")
K = 10
# All-reduce timing: repeats of one all-reduce of the step's gradient bytes.
ALLREDUCE_REPEATS = 20
# Links the cost model prices the all-reduce on: (name, bytes/s, latency s).
LINKS = (
    ("10 Gb/s Ethernet", 10e9 / 8, 50e-6),
    ("100 Gb/s InfiniBand", 100e9 / 8, 5e-6),
    ("NVLink (300 GB/s)", 300e9, 5e-6),
)
MODEL_PROCESSES = (1, 2, 4, 8, 16, 32)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--output", default=str(RESULTS_DIR / "data_parallel.md"))
    parser.add_argument("--worker", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


# -- data -------------------------------------------------------------------


def rating_split(data_home):
    train = load_movielens("100k", fold=1, data_home=data_home, return_X_y=True)
    X_train, X_test, y_train, y_test = train
    return X_train[ID_COLUMNS], X_test[ID_COLUMNS], np.asarray(y_train), y_test


def sequence_split(data_home):
    frame = load_movielens("100k", data_home=data_home).frame[SEQUENCE_COLUMNS]
    frame = frame.sort_values(SORT_COLUMNS, kind="stable").reset_index(drop=True)
    splitter = LeaveLastOut(
        n=1, user_col="user_id", timestamp_col="timestamp", item_col="item_id"
    )
    earlier, latest = next(splitter.split(frame))
    return frame.iloc[earlier], frame.iloc[latest].sort_values("user_id")


def own_rows(frame, rank, world):
    """The rows of this process's users."""
    return (frame["user_id"].to_numpy() % world) == rank


# -- one process of a run (under torchrun) ----------------------------------


class EpochClock:
    """Wall seconds of every epoch of both trainers, and the threads torch
    ran on, while the block runs."""

    def __enter__(self):
        self.seconds, self.threads = [], []
        self._originals = {cls: cls.train_epoch for cls in (Trainer, SequenceTrainer)}
        clock = self

        def timed(original):
            def train_epoch(trainer):
                start = time.perf_counter()
                loss = original(trainer)
                clock.seconds.append(time.perf_counter() - start)
                clock.threads.append(torch.get_num_threads())
                # Rows (histories, for sequences) of every process.
                clock.rows = getattr(trainer, "shard_sizes", None) or [
                    getattr(trainer, "n_histories", len(trainer.data))
                ]
                clock.gradient_bytes = gradient_bytes(trainer.module)
                return loss

            return train_epoch

        for cls, original in self._originals.items():
            cls.train_epoch = timed(original)
        return self

    def __exit__(self, *exc_info):
        for cls, original in self._originals.items():
            cls.train_epoch = original
        return False


def gradient_bytes(module):
    """Bytes of the gradients a step all-reduces: every dense parameter (the
    embedding tables of these models on MovieLens-100K are dense)."""
    return sum(p.numel() * p.element_size() for p in module.parameters())


def median_allreduce_seconds(n_bytes):
    tensor = torch.zeros(max(1, n_bytes // 4), dtype=torch.float32)
    times = []
    for _ in range(ALLREDUCE_REPEATS + 1):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def worker(args):
    dist.init_process_group("gloo", timeout=datetime.timedelta(minutes=10))
    rank, world = dist.get_rank(), dist.get_world_size()
    warnings.simplefilter("ignore")
    if args.worker == "ratings":
        X_train, X_test, y_train, y_test = rating_split(args.data_home)
        mine = own_rows(X_train, rank, world)
        model = NeuralRecommender(random_state=args.seed)
        with EpochClock() as clock:
            start = time.perf_counter()
            model.fit(X_train[mine], y_train[mine])
            seconds = time.perf_counter() - start
        predictions = model.predict(X_test)
        metrics = {"rmse": float(np.sqrt(np.mean((predictions - y_test) ** 2)))}
    else:
        non_test, test = sequence_split(args.data_home)
        mine = own_rows(non_test, rank, world)
        model = SequentialRecommender(random_state=args.seed, time_col="timestamp")
        with EpochClock() as clock:
            start = time.perf_counter()
            model.fit(non_test[mine])
            seconds = time.perf_counter() - start
        predictions = model.recommend(test["user_id"].to_numpy(), n=K)
        relevant = test["item_id"].to_numpy()[:, None]
        metrics = {
            "hr": hit_rate_at_k(relevant, predictions, k=K),
            "ndcg": ndcg_at_k(relevant, predictions, k=K),
        }
    allreduce = median_allreduce_seconds(clock.gradient_bytes) if world > 1 else 0.0
    latency = median_allreduce_seconds(4) if world > 1 else 0.0
    out = Path(args.out)
    weights = b"".join(
        value.detach().cpu().numpy().tobytes()
        for value in model.module_.state_dict().values()
    )
    (out / f"digest-{rank}.txt").write_text(hashlib.sha256(weights).hexdigest())
    if rank == 0:
        (out / "model.pkl").write_bytes(pickle.dumps(model))
        np.save(out / "predictions.npy", predictions)
        rows = sum(clock.rows)
        result = {
            "seconds": seconds,
            "epochs": model.n_iter_,
            "epoch_seconds": clock.seconds,
            "samples_per_second": rows / statistics.median(clock.seconds),
            "threads": sorted(set(clock.threads)),
            "gradient_bytes": clock.gradient_bytes,
            "steps_per_epoch": _steps_per_epoch(model, rows),
            "allreduce_seconds": allreduce,
            "latency_seconds": latency,
            **metrics,
        }
        (out / "result.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def _steps_per_epoch(model, rows):
    batch = model.batch_size if model.batch_size != "auto" else min(1024, rows)
    return int(np.ceil(rows / batch))


# -- the driver -------------------------------------------------------------


def launch(task, n_processes, seed, args):
    """Run ``task`` in ``n_processes`` processes; its results, with the
    checks of identical weights and of the pickle."""
    out = Path(tempfile.mkdtemp(prefix=f"skrec-{task}-"))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n_processes}",
        __file__,
        f"--worker={task}",
        f"--seed={seed}",
        f"--out={out}",
    ]
    if args.data_home:
        command += ["--data-home", args.data_home]
    subprocess.run(command, check=True)
    result = json.loads((out / "result.json").read_text())
    digests = {(out / f"digest-{rank}.txt").read_text() for rank in range(n_processes)}
    model = pickle.loads((out / "model.pkl").read_bytes())
    expected = np.load(out / "predictions.npy", allow_pickle=True)
    result["identical_weights"] = len(digests) == 1
    result["pickle_predicts_same"] = bool(
        np.array_equal(replayed_predictions(task, model, args), expected)
    )
    result |= {"task": task, "processes": n_processes, "seed": seed}
    print(json.dumps({k: v for k, v in result.items() if k != "epoch_seconds"}))
    return result


def replayed_predictions(task, model, args):
    """What the unpickled model of process 0 predicts here, without a group."""
    if task == "ratings":
        return model.predict(rating_split(args.data_home)[1])
    _, test = sequence_split(args.data_home)
    return model.recommend(test["user_id"].to_numpy(), n=K)


def mean_of(runs, key):
    values = [run[key] for run in runs]
    return float(np.mean(values)), float(np.std(values))


def results_table(runs, args):
    lines = [
        "| task | processes | metric (mean ± sd over seeds) | fit s | epochs | "
        "samples/s | threads per process | identical weights | pickle predicts "
        "the same alone |",
        "|---|---:|---|---:|---:|---:|---|---|---|",
    ]
    for task in args.tasks:
        for n in args.processes:
            group = [r for r in runs if r["task"] == task and r["processes"] == n]
            if task == "ratings":
                mean, sd = mean_of(group, "rmse")
                metric = f"RMSE {mean:.4f} ± {sd:.4f}"
            else:
                hr, hr_sd = mean_of(group, "hr")
                ndcg, ndcg_sd = mean_of(group, "ndcg")
                metric = (
                    f"HR@10 {hr:.4f} ± {hr_sd:.4f}, NDCG@10 {ndcg:.4f} ± {ndcg_sd:.4f}"
                )
            seconds, _ = mean_of(group, "seconds")
            epochs, _ = mean_of(group, "epochs")
            rate, _ = mean_of(group, "samples_per_second")
            threads = sorted({t for r in group for t in r["threads"]})
            lines.append(
                f"| {task} | {n} | {metric} | {seconds:.1f} | {epochs:.1f} | "
                f"{rate:,.0f} | {threads} | "
                f"{all(r['identical_weights'] for r in group)} | "
                f"{all(r['pickle_predicts_same'] for r in group)} |"
            )
    return "\n".join(lines)


def differences(runs, args):
    """Per task: the metric of 2 processes minus that of 1, seed by seed."""
    lines = []
    for task in args.tasks:
        key = "rmse" if task == "ratings" else "hr"
        by = {(r["processes"], r["seed"]): r[key] for r in runs if r["task"] == task}
        if not all((n, s) in by for n in (1, 2) for s in args.seeds):
            continue
        deltas = [by[(2, s)] - by[(1, s)] for s in args.seeds]
        mean = np.mean([by[(2, s)] for s in args.seeds]) - np.mean(
            [by[(1, s)] for s in args.seeds]
        )
        lines.append(
            f"- {task}: {key} of 2 processes minus 1 process, by seed: "
            + ", ".join(f"{d:+.4f}" for d in deltas)
            + f"; of the means: {mean:+.4f}"
        )
    return "\n".join(lines)


def cost_model(runs, args):
    """Step time at N processes from the measured compute and all-reduce."""
    lines, curves = [], {}
    for task in args.tasks:
        one = [r for r in runs if r["task"] == task and r["processes"] == 1]
        two = [r for r in runs if r["task"] == task and r["processes"] == 2]
        if not one or not two:
            continue
        steps = one[0]["steps_per_epoch"]
        compute = statistics.median(
            [statistics.median(r["epoch_seconds"]) for r in one]
        ) / max(steps, 1)
        n_bytes = two[0]["gradient_bytes"]
        measured = statistics.median([r["allreduce_seconds"] for r in two])
        latency = statistics.median([r["latency_seconds"] for r in two])
        lines.append(
            f"- {task}: {steps} steps per epoch; compute per step in one process "
            f"{compute * 1e3:.2f} ms; {n_bytes / 1e6:.2f} MB of gradients "
            f"all-reduced per step, measured at {measured * 1e3:.2f} ms between "
            f"2 processes on this machine (gloo over loopback; a 4-byte "
            f"all-reduce: {latency * 1e3:.3f} ms)."
        )
        for name, bandwidth, link_latency in LINKS:
            speedups = []
            for n in MODEL_PROCESSES:
                ring = (
                    2 * (n - 1) / n * n_bytes / bandwidth + 2 * (n - 1) * link_latency
                )
                speedups.append(compute / (compute / n + ring))
            curves[(task, name)] = speedups
            cells = ", ".join(
                f"{n}: {s:.2f}x" for n, s in zip(MODEL_PROCESSES, speedups, strict=True)
            )
            lines.append(f"  - {name}: modelled speed-up by processes {cells}")
    return "\n".join(lines), curves


def plot(runs, curves, args, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for task in args.tasks:
        rates = [
            mean_of(
                [r for r in runs if r["task"] == task and r["processes"] == n],
                "samples_per_second",
            )[0]
            for n in args.processes
        ]
        axes[0].plot(args.processes, rates, marker="o", label=task)
    axes[0].set_xlabel("processes on this 2-core machine")
    axes[0].set_ylabel("samples/s (median epoch)")
    axes[0].set_title("Measured throughput")
    axes[0].legend()
    for (task, link), speedups in curves.items():
        axes[1].plot(MODEL_PROCESSES, speedups, marker=".", label=f"{task}, {link}")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("processes (one device each)")
    axes[1].set_ylabel("modelled speed-up over one process")
    axes[1].set_title("Cost model: compute / N + ring all-reduce")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    args = parse_args()
    if args.worker:
        worker(args)
        return
    if not dist.is_available() or not dist.is_gloo_available():
        sys.exit("This torch build has no torch.distributed gloo backend.")
    try:
        load_movielens("100k", data_home=args.data_home, download_if_missing=False)
    except OSError as exc:
        sys.exit(f"MovieLens-100K not found ({exc}); pass --data-home.")
    runs = []
    for task in args.tasks:
        for seed in args.seeds:
            for n in args.processes:
                runs.append(launch(task, n, seed, args))
    text, curves = cost_model(runs, args)
    output = Path(args.output)
    png = output.with_suffix(".png")
    plot(runs, curves, args, png)
    command = "python benchmarks/data_parallel.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    report = f"""# Data-parallel training on torch.distributed

- Machine: {platform.platform()}, {os.cpu_count()} CPUs, 1-minute load average \
{os.getloadavg()[0]:.2f} at the end
- Versions: torch {torch.__version__}, skrec {skrec.__version__}, Python \
{platform.python_version()}
- Data: MovieLens-100K from {display_path(args.data_home)}
- Command: `{command.strip()}`
- Each run: `torchrun --standalone --nproc_per_node N`, gloo; process r fits the \
rows of the users with `user_id % N == r`, defaults and `random_state=seed` \
(`ratings`: NeuralRecommender on u1.base, RMSE on u1.test; `sequential`: \
SequentialRecommender(time_col="timestamp") on all but each user's latest \
interaction, full-ranking HR@10/NDCG@10 of the latest). With N = 1 the fit is \
the plain single-process fit. Threads: what torch ran on in each process \
(torchrun sets `OMP_NUM_THREADS=1` per process when N > 1).

{results_table(runs, args)}

Accuracy of the data-parallel fit against one process:

{differences(runs, args)}

Cost per step, and a model of it at N processes (one device each, the same \
global batch, the compute split evenly, a ring all-reduce of the dense \
gradients costing 2(N-1)/N x bytes / bandwidth + 2(N-1) x latency):

{text}

This machine has 2 cores: two processes share them, so the measured \
throughput of 2 processes shows the cost of the all-reduce, not a speed-up. \
The step of these models on MovieLens-100K is short (milliseconds), so the \
model says a speed-up needs links fast enough that the all-reduce of a step's \
gradients costs less than the compute it saves. Plots: {png.name}.
"""
    output.write_text(report)
    print(report)
    print(f"Wrote {display_path(output)}")


if __name__ == "__main__":
    main()
