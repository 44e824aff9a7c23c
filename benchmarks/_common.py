"""What every benchmark script shares: where results go, where the data are, timers."""

import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from skrec._engine._training import Trainer
from skrec.datasets import load_movielens, make_ratings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# The data's licence forbids shipping them: they sit in shared/ beside the repository.
SHARED_DATA_HOME = REPO_ROOT.parent / "shared" / "data"


def default_data_home():
    """shared/data beside the repository if present, else the SKREC_DATA variable."""
    if SHARED_DATA_HOME.is_dir():
        return str(SHARED_DATA_HOME)
    return os.environ.get("SKREC_DATA")


def _relative(path, base):
    """``path`` below ``base`` as a relative POSIX path, or None if it is not."""
    for candidate in {os.path.abspath(path), os.path.realpath(path)}:
        for root in {os.path.abspath(base), os.path.realpath(base)}:
            try:
                inside = os.path.commonpath([candidate, root]) == root
            except ValueError:  # on another drive
                inside = False
            if inside:
                return Path(os.path.relpath(candidate, root)).as_posix()
    return None


def display_path(path):
    """``path`` as the results print it: never an absolute path of this machine.

    A path in the repository or beside it (``shared/data``) is given relative to
    the repository root (``./skrec``, ``../shared/data``); one elsewhere relative
    to the ``SKREC_DATA`` directory (``$SKREC_DATA/...``) or the home directory
    (``~/...``), or else by its last component only (``.../data``). ``None``, the
    data home of ``load_movielens`` by default, is ``$SKREC_DATA`` when that is
    set and ``~/skrec_data`` otherwise.
    """
    if path is None:
        return "$SKREC_DATA" if os.environ.get("SKREC_DATA") else "~/skrec_data"
    path = os.path.expanduser(os.fspath(path))
    if (relative := _relative(path, REPO_ROOT)) is not None:
        return "." if relative == "." else f"./{relative}"
    if (relative := _relative(path, REPO_ROOT.parent)) is not None:
        return ".." if relative == "." else f"../{relative}"
    for name, base in (
        ("$SKREC_DATA", os.environ.get("SKREC_DATA")),
        ("~", os.path.expanduser("~")),
    ):
        if base and (relative := _relative(path, os.path.expanduser(base))):
            return name if relative == "." else f"{name}/{relative}"
    name = Path(os.path.abspath(path)).name
    return f".../{name}" if name else "..."


class EpochTimer:
    """The wall time of each ``train_epoch`` call of ``trainer_class`` (the
    trainer of NeuralRecommender by default) while the block runs."""

    def __init__(self, trainer_class=Trainer):
        self.trainer_class = trainer_class

    def __enter__(self):
        self.seconds = []
        self._train_epoch = self.trainer_class.train_epoch
        timer = self

        def timed_epoch(trainer):
            start = time.perf_counter()
            loss = timer._train_epoch(trainer)
            timer.seconds.append(time.perf_counter() - start)
            return loss

        self.trainer_class.train_epoch = timed_epoch
        return self

    def __exit__(self, *exc):
        self.trainer_class.train_epoch = self._train_epoch


def median_seconds(call, repeats):
    """Median wall time of ``repeats`` calls of ``call()`` after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rotated(names, repeat):
    """``names`` rotated left by ``repeat``, so that each goes first in turn."""
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


def synchronize(device):
    """Wait for the work queued on ``device`` (a ``torch.device``), if CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encode_ratings(X, y, device):
    """int64 codes (row 0 left for unknown IDs, as skrec does) and scaled targets
    as tensors on ``device``, and the table sizes ``(n_users + 1, n_items + 1)``."""
    user_codes, users = pd.factorize(X.iloc[:, 0])
    item_codes, items = pd.factorize(X.iloc[:, 1])
    tensors = {
        "users": torch.as_tensor(user_codes + 1, dtype=torch.int64, device=device),
        "items": torch.as_tensor(item_codes + 1, dtype=torch.int64, device=device),
        "targets": torch.as_tensor(
            (y - y.mean()) / y.std(), dtype=torch.float32, device=device
        ),
    }
    return tensors, (len(users) + 1, len(items) + 1)


def train_plain_epoch(module, optimizers, data, batch_size):
    """One epoch of the plain PyTorch loop: ``torch.randperm`` and slicing,
    ``F.mse_loss``, ``zero_grad(set_to_none=True)``, each optimizer stepped."""
    module.train()
    n_rows = len(data["targets"])
    order = torch.randperm(n_rows, device=data["targets"].device)
    for start in range(0, n_rows, batch_size):
        batch = order[start : start + batch_size]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        scores = module(data["users"][batch], data["items"][batch])
        F.mse_loss(scores, data["targets"][batch]).backward()
        for optimizer in optimizers:
            optimizer.step()


def load_u1_ratings(data_home):
    """Training ratings (X, y), a short name for them and a sentence on their origin."""
    try:
        X, _, y, _ = load_movielens(
            "100k",
            fold=1,
            data_home=data_home,
            return_X_y=True,
            download_if_missing=False,
        )
        name = "MovieLens-100K u1"
        source = f"MovieLens-100K fold u1 (u1.base) from {display_path(data_home)}"
    except OSError as exc:
        print(f"MovieLens-100K not found ({exc}); using synthetic ratings instead.")
        X, y = make_ratings(n_users=943, n_items=1682, n_ratings=80_000, random_state=0)
        name = "synthetic ratings"
        source = (
            f"MovieLens-100K NOT FOUND in {display_path(data_home)}; synthetic "
            "make_ratings("
            "n_users=943, n_items=1682, n_ratings=80_000, random_state=0)"
        )
    X = pd.DataFrame(X)
    n_users, n_items = X.iloc[:, 0].nunique(), X.iloc[:, 1].nunique()
    source += f": {len(X):,} ratings, {n_users:,} users, {n_items:,} items"
    return X, np.asarray(y, dtype=np.float64), name, source
