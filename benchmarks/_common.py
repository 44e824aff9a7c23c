"""What every benchmark script shares: where results go, where the data are, timers."""

import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from skrec._engine._training import Trainer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The data's licence forbids shipping them: they sit in shared/ beside the repository.
SHARED_DATA_HOME = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_data_home():
    """shared/data beside the repository if present, else the SKREC_DATA variable."""
    if SHARED_DATA_HOME.is_dir():
        return str(SHARED_DATA_HOME)
    return os.environ.get("SKREC_DATA")


class EpochTimer:
    """The wall time of each ``Trainer.train_epoch`` call while the block runs."""

    def __enter__(self):
        self.seconds = []
        self._train_epoch = Trainer.train_epoch
        timer = self

        def timed_epoch(trainer):
            start = time.perf_counter()
            loss = timer._train_epoch(trainer)
            timer.seconds.append(time.perf_counter() - start)
            return loss

        Trainer.train_epoch = timed_epoch
        return self

    def __exit__(self, *exc):
        Trainer.train_epoch = self._train_epoch


def median_seconds(call, repeats):
    """Median wall time of ``repeats`` calls of ``call()`` after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
