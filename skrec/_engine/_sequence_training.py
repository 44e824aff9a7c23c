"""Next-item training and scoring on left-padded windows of item codes.

Each user's history becomes one row of a ``(n_users, width)`` tensor, the
latest codes last, the start code before the first item, padding (0) in
front. A training row of width ``max_len + 1`` gives ``max_len`` inputs and,
shifted by one, their next items: every position of every history is trained
at once. Batches are trimmed to their longest history, and scores are
computed only at positions that have a next item.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._optimizers import make_optimizer
from ._ranking import users_per_chunk
from ._sequence_modules import FIRST_ITEM_CODE, PAD_CODE, START_CODE, output_table
from ._softmax import ItemSampler, full_softmax, sampled_softmax
from ._training import (
    RELEASE_MEMORY_EVERY,
    WeightAverage,
    release_freed_memory,
    uses_every_parameter,
)

# Histories encoded per chunk when scoring.
HISTORIES_PER_CHUNK = 1024
# Batches whose histories are sorted by length together; see
# ``SequenceTrainer.batches``.
BUCKET_BATCHES = 16


def padded_windows(items, first, last, width, values=None):
    """The latest ``width`` codes of each history, left-padded, start code first.

    Parameters
    ----------
    items : ndarray of int
        Item rows (0-based) of every history, each history's in order.
    first, last : ndarray of int of shape (n_histories,)
        Where each history starts in ``items``, and where it ends (exclusive).
    width : int
    values : ndarray, default=None
        Per-item values to lay out the same way (the weights), the start code
        and padding getting 0; if given, returned second.

    Returns
    -------
    windows : ndarray of shape (n_histories, width), int64
        Table codes: items as ``FIRST_ITEM_CODE`` plus their row.
    """
    full = last - first + 1  # the start code, then the items
    take = np.minimum(full, width)
    owner = np.repeat(np.arange(len(full)), take)
    offset = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
    column = width - take[owner] + offset
    # Position in the history with its start code at 0.
    position = full[owner] - take[owner] + offset
    is_start = position == 0
    source = np.where(is_start, 0, first[owner] + position - 1)
    windows = np.full((len(full), width), PAD_CODE, dtype=np.int64)
    if len(items):
        codes = items[source] + FIRST_ITEM_CODE
    else:
        codes = np.zeros(len(source), dtype=np.int64)
    windows[owner, column] = np.where(is_start, START_CODE, codes)
    if values is None:
        return windows
    laid_out = np.zeros((len(full), width), dtype=np.float32)
    if len(items):
        laid_out[owner, column] = np.where(is_start, 0.0, values[source])
    return windows, laid_out


class NextItemData:
    """Training windows on the training device: inputs and their next items.

    ``windows`` (int64, ``(n, max_len + 1)``) and ``weights`` (float32, the
    weight of each code as a next item) are left-padded; ``lengths`` counts
    the codes of each row, start code included.
    """

    def __init__(self, windows, weights, device):
        self.windows = torch.as_tensor(windows, device=device)
        self.weights = torch.as_tensor(weights, device=device)
        self.lengths = (self.windows != PAD_CODE).sum(dim=1)

    def __len__(self):
        return len(self.windows)

    def batch(self, rows):
        """Inputs, next items and their weights of ``rows``, trimmed to the
        longest history among them."""
        width = int(self.lengths[rows].max())
        # A row of width w holds w - 1 (input, next item) pairs.
        windows = self.windows[rows, -width:]
        return windows[:, :-1], windows[:, 1:], self.weights[rows, -width + 1 :]


def binary_cross_entropy(states, targets, table, sampler):
    """The next item labelled 1 and one uniform item labelled 0, per position,
    as in SASRec."""
    negatives = sampler.uniform(len(targets))
    positive = (states * table[targets]).sum(dim=1)
    negative = (states * table[negatives]).sum(dim=1)
    return F.softplus(-positive) + F.softplus(negative)


SEQUENCE_LOSSES = {
    "softmax": full_softmax,
    "sampled_softmax": sampled_softmax,
    "bce": binary_cross_entropy,
}


class SequenceTrainer:
    """Adam over a sequence encoder, trained an epoch at a time.

    It offers what the fit loop reads of a trainer: ``train_epoch()``,
    ``averaged_module``, a settable ``learning_rate``, ``step_hooks`` and
    ``data``.

    Parameters
    ----------
    module : torch.nn.Module
        A sequence encoder with an ``item_embedding`` table.
    data : NextItemData
    batch_size : int
        Histories per step.
    learning_rate : float
    seed : int
        Seeds the batch order and the sampled items.
    loss : {"softmax", "sampled_softmax", "bce"}
    n_negatives : int
        Items drawn per batch by ``"sampled_softmax"``.
    averaging : float, default=None
        If set, the decay of a moving average of the weights, which
        ``averaged_module`` then is (see ``WeightAverage``).
    group : ProcessGroup, default=None
        Train data-parallel over this group of processes, ``data`` holding
        this process's histories: a step's batch is ``batch_size`` histories
        over all the processes, and ``DistributedDataParallel`` averages the
        gradients. The losses returned are those of every process's items.
    """

    def __init__(
        self,
        module,
        data,
        *,
        batch_size,
        learning_rate,
        seed,
        loss,
        n_negatives,
        averaging=None,
        group=None,
    ):
        self.module = module
        self.group = group
        self.average = None if averaging is None else WeightAverage(module, averaging)
        self.n_steps = 0
        self.data = data
        self.batch_size = batch_size
        self.device = data.windows.device
        # Each process of a group draws its own batches and samples.
        rank = 0 if group is None else group.rank
        self.generator = torch.Generator(device=self.device).manual_seed(seed + rank)
        self.optimizer = make_optimizer(module, learning_rate)
        self.step_optimizer = (
            getattr(self.optimizer, "lean_step", None) or self.optimizer.step
        )
        self.parameters = list(module.parameters())
        self.step_hooks = []
        self.loss = SEQUENCE_LOSSES[loss]
        # The items that the sampled softmax draws for a batch take the
        # gradient of every position of it: a batch of many more items than
        # a mean step would move them, rare ones by their log-Q weight, far
        # more than a mean step does (on MovieLens-100K, some fits collapsed
        # within a few epochs). Its steps count at most a mean step's weight.
        self.caps_steps = loss == "sampled_softmax"
        n_outputs = len(output_table(module))
        counts = torch.bincount(
            (data.windows[:, 1:] - FIRST_ITEM_CODE).clamp(min=-1).flatten() + 1,
            minlength=n_outputs + 1,
        )[1:]
        if group is not None:
            counts = group.sum_counts(counts)
        self.sampler = ItemSampler(counts, n_negatives, self.generator)
        self.objective = NextItemObjective(module, self.loss, self.sampler)
        if group is not None:
            probe = data.batch(torch.arange(min(len(data), 8), device=self.device))
            all_used = uses_every_parameter(self.objective, probe, self.generator)
            self.objective = group.wrap(self.objective, all_used)
        n_histories = len(data) if group is None else sum(group.gather(len(data)))
        # Length buckets hold whole batches, so an epoch takes as many steps
        # as plain batches would; under a group, every process takes them.
        self.steps_per_epoch = max(1, math.ceil(n_histories / batch_size))
        self.mean_step_weight = self._mean_step_weight()

    @property
    def averaged_module(self):
        """The module to predict with: the moving average of the weights, if
        one is kept, else the trained module itself."""
        return self.module if self.average is None else self.average.module

    @property
    def learning_rate(self):
        return self.optimizer.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value):
        for group in self.optimizer.param_groups:
            group["lr"] = value

    def train_epoch(self):
        """One pass over the histories in random batches; the mean loss per
        next item, weighted."""
        self.module.train()
        n_rows = len(self.data)
        device = self.data.windows.device
        total = torch.zeros((), dtype=torch.float64, device=device)
        total_weight = torch.zeros((), dtype=torch.float64, device=device)
        rows_done = 0
        for step, rows in enumerate(self.batches(), start=1):
            if rows is None:
                # This process has no histories left for this step of the
                # group: it takes part in the gradient average with none.
                self.train_step(*self.data.batch(torch.zeros(1, dtype=torch.long)), 0)
                continue
            loss, weight = self.train_step(*self.data.batch(rows))
            total += loss * weight
            total_weight += weight
            rows_done += len(rows)
            if step % RELEASE_MEMORY_EVERY == 0:
                release_freed_memory()
            for hook in self.step_hooks:
                hook(rows_done, n_rows)
        if self.average is not None:
            self.average.catch_up(self.module, self.n_steps)
        if self.group is not None:
            total, total_weight = self.group.sum([total.item(), total_weight.item()])
        return float(total / total_weight.clamp(min=1e-12))

    def _mean_step_weight(self):
        """The weight of the next items of every history (every process's),
        over the steps of an epoch: what a step's weighted sum of losses is
        divided by, so that every next item weighs the same whichever batch
        it falls in. Batches of similar lengths hold very different numbers
        of items, and a mean per batch would give the items of short
        histories more weight than those of long ones."""
        targets = self.data.windows[:, 1:]
        weight = float((self.data.weights[:, 1:] * (targets >= FIRST_ITEM_CODE)).sum())
        if self.group is not None:
            weight = float(self.group.sum([weight])[0])
        return max(weight, 1e-12) / self.steps_per_epoch

    def _step_weight(self, weight):
        """The weight of this step's items on every process, given this
        process's ``weight``."""
        if self.group is None:
            return weight
        return float(self.group.sum([weight])[0])

    def batches(self):
        """The row batches of one epoch, in random order.

        Rows are shuffled, then sorted by length within groups of
        ``BUCKET_BATCHES`` batches, so that a batch holds histories of
        similar lengths: trimmed to its longest, it is mostly items rather
        than padding (on MovieLens-100K a random batch of 64 is 60% padding).
        """
        n_rows = len(self.data)
        batch_size, n_steps = self.batch_size, None
        if self.group is not None:
            # Every process takes the same number of steps, each with its
            # share of the step's histories; None marks a step without any.
            n_steps = self.steps_per_epoch
            batch_size = max(1, math.ceil(n_rows / n_steps))
        order = torch.randperm(n_rows, generator=self.generator, device=self.device)
        bucket = batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, n_rows, bucket):
            rows = order[start : start + bucket]
            by_length = torch.argsort(self.data.lengths[rows], stable=True)
            batches.extend(rows[by_length].split(batch_size))
        if n_steps is not None:
            batches.extend([None] * (n_steps - len(batches)))
        shuffled = torch.randperm(
            len(batches), generator=self.generator, device=self.device
        )
        return [batches[i] for i in shuffled.tolist()]

    def train_step(self, inputs, targets, weights, scale=None):
        """One optimizer step; the batch's weighted mean loss and its weight.

        The gradient is that of the batch's weighted sum of losses over
        ``mean_step_weight`` (with the sampled softmax, over the step's own
        weight where that is larger). Under a group, each process's is
        multiplied by the number of processes, which
        ``DistributedDataParallel`` divides the sum of their gradients by;
        ``scale=0`` is a step without histories.
        """
        for param in self.parameters:
            param.grad = None
        weighted_sum, weight = self.objective(inputs, targets, weights)
        loss = weighted_sum / weight.clamp(min=1e-12)
        if scale is None:
            scale = 1.0 if self.group is None else self.group.size
        divisor = self.mean_step_weight
        if self.caps_steps:
            divisor = max(divisor, self._step_weight(float(weight) if scale else 0.0))
        (weighted_sum * (scale / divisor)).backward()
        self.step_optimizer()
        self.n_steps += 1
        if self.average is not None:
            self.average.step(self.module, self.n_steps)
        return loss.detach().double(), weight.detach().double()


class NextItemObjective(torch.nn.Module):
    """The weighted sum of a batch's next-item losses and the sum of the
    weights, as one module for ``DistributedDataParallel`` to see."""

    def __init__(self, module, loss, sampler):
        super().__init__()
        self.module = module
        self.loss = loss
        self.sampler = sampler

    def forward(self, inputs, targets, weights):
        # The start code is never a next item.
        has_target = targets >= FIRST_ITEM_CODE
        states = self.module(inputs, inputs == PAD_CODE)[has_target]
        weights = weights[has_target]
        losses = self.loss(
            states,
            targets[has_target] - FIRST_ITEM_CODE,
            output_table(self.module),
            self.sampler,
        )
        return (losses * weights).sum(), weights.sum()


def last_states(module, windows):
    """The state after the latest code of each left-padded window.

    Windows are encoded in chunks of similar lengths, each trimmed to its
    longest history, and the states put back in the order of ``windows``.
    """
    module.eval()
    lengths = (windows != PAD_CODE).sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    states = output_table(module).new_empty(
        (len(windows), output_table(module).shape[1])
    )
    with torch.inference_mode():
        for rows in order.split(HISTORIES_PER_CHUNK):
            width = max(int(lengths[rows].max()), 1)
            chunk = windows[rows, -width:]
            states[rows] = module(chunk, chunk == PAD_CODE)[:, -1]
    return states


def next_item_scores(module, windows, item_rows):
    """Scores of the items at ``item_rows`` (0-based rows of the output table)
    as the next item of each window, shape ``(len(windows), len(item_rows))``."""
    states = last_states(module, windows)
    with torch.inference_mode():
        return states @ output_table(module)[item_rows].T


@torch.inference_mode()
def ndcg_of_next_items(module, windows, targets, seen_rows, seen_items, k=10):
    """Mean NDCG@k of each window's next item when it ranks every item.

    Parameters
    ----------
    windows : torch.Tensor of shape (n, width)
    targets : torch.Tensor of shape (n,)
        0-based output rows of the next items.
    seen_rows, seen_items : torch.Tensor
        The (window, output row) pairs already seen, sorted by window: never
        ranked.
    """
    states = last_states(module, windows)
    table = output_table(module)
    total = 0.0
    chunk = users_per_chunk(len(table))
    for start in range(0, len(states), chunk):
        stop = min(start + chunk, len(states))
        scores = states[start:stop] @ table.T
        lo, hi = torch.searchsorted(
            seen_rows, torch.tensor([start, stop], device=seen_rows.device)
        ).tolist()
        scores[seen_rows[lo:hi] - start, seen_items[lo:hi]] = -torch.inf
        target_scores = scores.gather(1, targets[start:stop, None])
        rank = (scores > target_scores).sum(dim=1)
        gains = torch.where(rank < k, 1.0 / torch.log2(rank.double() + 2), 0.0)
        total += float(gains.sum())
    return total / max(len(states), 1)
