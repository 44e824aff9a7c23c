"""Fit throughput of NeuralRecommender, a plain PyTorch loop and skorch, same module.

Measures training samples per second per epoch on MovieLens-100K fold u1 (or
synthetic ratings of the same size when the data are absent) for each batch
size, for skrec's ``fit``, a plain PyTorch loop and skorch's NeuralNetRegressor
around the same EmbeddingMLP, and writes a markdown table and a plot to
``benchmarks/results/``.

    python benchmarks/throughput.py [--data-home DIR]
        [--batch-sizes 256 1024 4096 16384 65536] [--repeats 7] [--epochs 3]
        [--skorch-epochs 1] [--device cpu]
"""

import argparse
import datetime
import os
import platform
import statistics
import time
import warnings

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import sklearn
import skorch
import torch
from _common import (
    RESULTS_DIR,
    EpochTimer,
    default_data_home,
    display_path,
    encode_ratings,
    load_u1_ratings,
    rotated,
    synchronize,
    train_plain_epoch,
)
from sklearn.exceptions import ConvergenceWarning
from skorch import NeuralNetRegressor

import skrec
from skrec import NeuralRecommender
from skrec._engine._device import resolve_device
from skrec._engine._modules import EmbeddingMLP


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[256, 1024, 4096, 16384, 65536]
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--skorch-epochs",
        type=int,
        default=1,
        help="epochs of each timed skorch fit (skorch is slow at small batches)",
    )
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


# skrec with the plain loop's objective: no L2 penalty, no weight averaging.
SAME_OBJECTIVE = {"alpha": 0.0, "weight_averaging": None}


def skrec_estimator(batch_size, epochs, device, **params):
    return NeuralRecommender(
        **params,
        batch_size=batch_size,
        max_iter=epochs,
        early_stopping=False,
        tol=0,
        n_iter_no_change=epochs + 1,
        random_state=0,
        device=device,
    )


def time_skrec_fit(X, y, batch_size, epochs, device, **params):
    """Samples/s of one whole ``fit`` (encoding and bookkeeping included) and
    of its epochs alone (the sum of its ``Trainer.train_epoch`` calls)."""
    estimator = skrec_estimator(batch_size, epochs, device, **params)
    with warnings.catch_warnings(), EpochTimer() as epoch_timer:
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
    samples = len(X) * estimator.n_iter_
    return samples / seconds, samples / sum(epoch_timer.seconds)


def plain_module(n_users, n_items, device):
    """The EmbeddingMLP that NeuralRecommender builds with its default parameters."""
    defaults = NeuralRecommender()
    torch.manual_seed(0)
    return EmbeddingMLP(
        n_users=n_users,
        n_items=n_items,
        embedding_dim=defaults.embedding_dim,
        hidden_layer_sizes=tuple(defaults.hidden_layer_sizes),
        activation=defaults.activation,
        dropout=defaults.dropout,
    ).to(device)


def time_plain_epochs(data, n_rows_by_kind, batch_size, epochs, device):
    """Samples/s of ``epochs`` plain epochs on a fresh module (epochs only timed)."""
    module = plain_module(*n_rows_by_kind, device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        train_plain_epoch(module, [optimizer], data, batch_size)
    synchronize(device)
    return len(data["targets"]) * epochs / (time.perf_counter() - start)


def skorch_net(n_rows_by_kind, batch_size, epochs, device):
    """skorch's NeuralNetRegressor around the module ``plain_module`` builds."""
    return NeuralNetRegressor(
        plain_module(*n_rows_by_kind, device),
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        device=device,
        verbose=0,
    )


def time_skorch_fit(data, n_rows_by_kind, batch_size, epochs, device):
    """Samples/s of one skorch ``fit`` on a fresh net, on already encoded CPU tensors.

    skorch's DataLoader gathers the batch rows one by one and moves each batch
    to ``device``, so it gets the tensors on the CPU, where a DataLoader
    expects them.
    """
    net = skorch_net(n_rows_by_kind, batch_size, epochs, device)
    X = {"users": data["users"].cpu(), "items": data["items"].cpu()}
    targets = data["targets"].cpu()
    synchronize(device)
    start = time.perf_counter()
    net.fit(X, targets)
    synchronize(device)
    return len(targets) * len(net.history) / (time.perf_counter() - start)


def measure(X, y, args, device):
    """Samples/s of skrec (whole fit and epochs only), the plain loop and
    skorch per repeat, per batch size."""
    data, n_rows_by_kind = encode_ratings(X, y, device)

    def skrec_rates(name, **params):
        def run(batch_size, epochs):
            fit, epochs_only = time_skrec_fit(
                X, y, batch_size, epochs, args.device, **params
            )
            return {name: fit, f"{name}_epochs": epochs_only}

        return run

    runners = {
        "skrec": skrec_rates("skrec"),
        "skrec_same": skrec_rates("skrec_same", **SAME_OBJECTIVE),
        "plain": lambda b, e: {
            "plain": time_plain_epochs(data, n_rows_by_kind, b, e, device)
        },
        "skorch": lambda b, e: {
            "skorch": time_skorch_fit(data, n_rows_by_kind, b, e, device)
        },
    }
    epochs = dict.fromkeys(runners, args.epochs) | {"skorch": args.skorch_epochs}
    results = {}
    for batch_size in args.batch_sizes:
        for run in runners.values():
            run(batch_size, 1)
        rates = {}
        for repeat in range(args.repeats):
            for name in rotated(list(runners), repeat):
                for series, rate in runners[name](batch_size, epochs[name]).items():
                    rates.setdefault(series, []).append(rate)
        results[batch_size] = rates
        print(repeats_line(batch_size, rates))
    return results


def repeats_line(batch_size, rates):
    return f"- batch {batch_size:,}: " + "; ".join(
        f"{name} " + ", ".join(f"{v:,.0f}" for v in values)
        for name, values in rates.items()
    )


def report_header(args, device, source, seconds, load_before):
    return f"""# Fit throughput: skrec against a plain PyTorch loop and skorch

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs
- Versions: torch {torch.__version__}, numpy {np.__version__}, scikit-learn \
{sklearn.__version__}, skorch {skorch.__version__}, skrec {skrec.__version__}, \
Python {platform.python_version()}
- torch.get_num_threads(): {torch.get_num_threads()}; device: {device}
- 1-minute load average before / after the run: {load_before:.2f} / \
{os.getloadavg()[0]:.2f} (other jobs on the machine slow both sides, often a lot)
- Data: {source}
- Command: `python benchmarks/throughput.py --batch-sizes \
{" ".join(map(str, args.batch_sizes))} --repeats {args.repeats} \
--epochs {args.epochs} --skorch-epochs {args.skorch_epochs} --device {args.device}`; \
run time {seconds:.0f} s

Protocol:
- skrec: `NeuralRecommender(batch_size=B, max_iter={args.epochs}, \
early_stopping=False, tol=0, n_iter_no_change={args.epochs + 1}, random_state=0)`, \
default hyper-parameters otherwise; samples/s = rows x n_iter_ / wall time of the \
whole `fit()`, so validation of X, ID encoding and per-epoch bookkeeping are included.
- skrec, epochs only: the same fits, samples/s = rows x n_iter_ / the summed wall \
time of their epochs (`Trainer.train_epoch` calls), as the plain loop is timed: \
without the validation of X, the ID encoding, the module's construction and the \
per-epoch bookkeeping of the estimator.
- skrec, plain loop's objective: the same with `alpha=0.0, weight_averaging=None`, \
so that it minimises what the plain loop minimises (no L2 penalty on the table \
rows, no moving average of the weights), epochs only: the cost of the loop itself.
- plain loop: the same `EmbeddingMLP`, data encoded once to tensors (not timed), per \
epoch `torch.randperm` + slicing, `Adam(fused=True)`, `F.mse_loss`, \
`zero_grad(set_to_none=True)`; only the {args.epochs} epochs are timed. It has no \
L2 penalty on embedding rows (skrec's `alpha`): a deliberate handicap for skrec.
- skorch: `NeuralNetRegressor(module, criterion=MSELoss, optimizer=Adam, lr=1e-3, \
batch_size=B, max_epochs={args.skorch_epochs}, train_split=None, \
iterator_train__shuffle=True, device={device}, verbose=0)`, where `module` is the \
plain loop's `EmbeddingMLP` (same construction and seed); skorch's defaults \
otherwise: no validation split, its default callbacks only (epoch timer, train-loss \
recording, silent print log), its DataLoader gathering each batch row by row, \
torch's default (non-fused) Adam, no L2 penalty. X is the dict {{"users", "items"}} \
of the plain loop's encoded tensors (on the CPU), passed to `forward` as keyword \
arguments; samples/s = rows x epochs / wall time of `net.fit()` (encoding not \
timed). Its timed fits run {args.skorch_epochs} epoch(s) (`--skorch-epochs`) \
against {args.epochs} for the others: samples/s is a per-epoch rate either way, \
but fewer epochs weigh the fixed per-fit cost more.
- One untimed warm-up (1-epoch fit / 1 epoch) each per batch size, then \
{args.repeats} repeats of the four, their order rotated every repeat so that \
each goes first in turn; samples/s are medians over the repeats, and each ratio \
is the median over the repeats of that repeat's ratio: the two sides of a ratio \
run minutes apart at most, so that a slow spell of the machine weighs on both.
"""


def medians(results):
    return {
        batch_size: {name: statistics.median(v) for name, v in rates.items()}
        for batch_size, rates in results.items()
    }


def median_ratio(rates, numerator, denominator):
    """The median over the repeats of each repeat's ``numerator / denominator``."""
    return statistics.median(
        a / b for a, b in zip(rates[numerator], rates[denominator], strict=True)
    )


def results_table(results):
    lines = [
        "| batch size | skrec samples/s | skrec, epochs only | skrec, plain loop's "
        "objective, epochs only | plain loop samples/s | skorch samples/s "
        "| skrec/plain | skrec/plain, epochs only | skrec/plain, same objective, "
        "epochs only | skrec/skorch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch_size, rate in medians(results).items():
        rates = results[batch_size]
        ratios = [
            median_ratio(rates, numerator, denominator)
            for numerator, denominator in (
                ("skrec", "plain"),
                ("skrec_epochs", "plain"),
                ("skrec_same_epochs", "plain"),
                ("skrec", "skorch"),
            )
        ]
        lines.append(
            f"| {batch_size:,} | {rate['skrec']:,.0f} | {rate['skrec_epochs']:,.0f} "
            f"| {rate['skrec_same_epochs']:,.0f} "
            f"| {rate['plain']:,.0f} | {rate['skorch']:,.0f} | "
            + " | ".join(f"{ratio:.2f}" for ratio in ratios)
            + " |"
        )
    lines += ["", "Samples/s of each repeat, in order:", ""]
    lines += [repeats_line(b, rates) for b, rates in results.items()]
    return "\n".join(lines) + "\n"


def plot_results(results, title, path):
    plt.switch_backend("Agg")
    results = medians(results)
    batch_sizes = list(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines = (
        ("skrec", "skrec fit()"),
        ("skrec_same_epochs", "skrec epochs, alpha=0, no averaging"),
        ("plain", "plain PyTorch loop"),
        ("skorch", "skorch NeuralNetRegressor"),
    )
    for name, label in lines:
        ax.plot(batch_sizes, [results[b][name] for b in batch_sizes], "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(batch_sizes, [f"{b:,}" for b in batch_sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("training samples / s (log scale)")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    args = parse_args()
    device = resolve_device(args.device)
    X, y, data_name, source = load_u1_ratings(args.data_home)
    print(source)
    results = measure(X, y, args, device)
    seconds = time.perf_counter() - start
    report = report_header(args, device, source, seconds, load_before)
    report += "\n" + results_table(results)
    print("\n" + report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "throughput.md").write_text(report)
    title = f"Fit throughput, {data_name}, {device}"
    plot_results(results, title, RESULTS_DIR / "throughput.png")
    print(f"Wrote throughput.md and throughput.png in {display_path(RESULTS_DIR)}")


if __name__ == "__main__":
    main()
