"""Training and prediction on tensors that live on the training device.

The data are moved to the device once; each epoch draws one ``torch.randperm``
and slices it into batches, so the inner loop has no DataLoader, no per-row
Python and no host-device copies.
"""

import contextlib
import copy
import ctypes
import ctypes.util
import math
import sys
from dataclasses import dataclass

import numpy as np
import torch

from ._distributed import even_bounds
from ._losses import LOSSES, NegativeSampler, PairSet
from ._modules import embedding_tables
from ._optimizers import SPARSE_SOLVERS, make_optimizer
from ._softmax import ItemSampler

PREDICT_CHUNK_SIZE = 262_144
TABLES = ("user", "item")
# Losses that score each positive against the catalog or a shared sample of
# it, drawn by an ``ItemSampler``.
SOFTMAX_LOSSES = ("softmax", "sampled_softmax")


@dataclass
class Interactions:
    """Encoded (user, item, features, target) rows as tensors on one device."""

    users: torch.Tensor
    items: torch.Tensor
    features: torch.Tensor | None = None
    targets: torch.Tensor | None = None

    @classmethod
    def from_arrays(cls, users, items, features=None, targets=None, device="cpu"):
        """Copy numpy arrays to ``device`` once, as int64 codes and float32 values."""
        return cls(
            users=_to_device(users, torch.int64, device),
            items=_to_device(items, torch.int64, device),
            features=_to_device(features, torch.float32, device),
            targets=_to_device(targets, torch.float32, device),
        )

    def __len__(self):
        return len(self.users)

    def rows(self, index):
        """The rows at ``index``: a slice, int64 positions or a boolean mask."""
        return Interactions(
            _take(self.users, index),
            _take(self.items, index),
            _take(self.features, index),
            _take(self.targets, index),
        )


def _take(column, index):
    """``column[index]``, with ``index_select`` for int64 positions: twice as
    fast on the CPU as ``[]``, which sets up a general advanced-indexing
    kernel at each call."""
    if column is None:
        return None
    if isinstance(index, torch.Tensor) and index.dtype == torch.int64:
        return column.index_select(0, index)
    return column[index]


class Trainer:
    """One optimizer over one module, trained an epoch at a time.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(users, items, features)`` to one score per row.
    data : Interactions
        Training rows, on the module's device, with targets.
    batch_size : int
    learning_rate : float
    alpha : float or dict
        L2 penalty on the embedding rows and biases of each batch, per row, as
        in biased matrix factorization trained by SGD; a dict gives the
        ``"user"`` and ``"item"`` tables their own strengths.
    seed : int
        Seeds the batch order and the negative samples.
    loss : {"mse", "bce", "bpr", "softmax", "sampled_softmax"}
        Squared error on the targets, or, for implicit feedback, binary
        cross-entropy or BPR against ``n_negatives`` sampled items per row,
        the cross-entropy of each row's item among every item (``"softmax"``,
        for modules that factorize) or among ``n_negatives`` items drawn per
        batch (``"sampled_softmax"``); the targets weight the rows.
    n_negatives : int
    negative_sampling : {"uniform", "popularity", "hard"}, default="uniform"
        Draw negatives uniformly, in proportion to the items' numbers of rows,
        or keep the highest-scoring of several uniform draws. The sampled
        softmax draws the negatives of a batch uniformly or by frequency,
        with the log-Q correction.
    solver : {"adam", "adamw", "sgd", "adagrad"}, default="adam"
        The optimizer; see ``make_optimizer``.
    n_items : int, default=None
        Rows of the item table, among which negatives are drawn; by default
        that of the module's item table.
    averaging : float, default=None
        If set, the decay of an exponential moving average of the weights,
        updated after every step; ``averaged_module`` is then that average
        (see ``WeightAverage``).
    sparse : bool or "auto", default=False
        Give the embedding tables sparse gradients, updated row by row with
        ``LazyAdam`` (solvers ``"adam"`` and ``"adamw"`` only). ``"auto"`` does
        so for the tables with over ``SPARSE_ROWS_PER_BATCH_ROW`` rows per
        row of a batch, whose dense updates would cost more than the rest of
        a step.
    group : ProcessGroup, default=None
        Train data-parallel over this group of processes, ``data`` being this
        process's shard: a step's batch is ``batch_size`` rows over all the
        processes, each taking its share of its own rows, and the gradients
        are averaged by ``DistributedDataParallel``. The losses returned are
        those of every process's rows.
    pairs : tuple of torch.Tensor, default=None
        The (user, item) codes of every training row, which the row penalties,
        the negative samplers and the known positives count; by default those
        of ``data``. Under a ``group``, those of every process's shard.
    """

    def __init__(
        self,
        module,
        data,
        *,
        batch_size,
        learning_rate,
        alpha,
        seed,
        loss="mse",
        n_negatives=4,
        negative_sampling="uniform",
        solver="adam",
        n_items=None,
        averaging=None,
        sparse=False,
        group=None,
        pairs=None,
    ):
        self.module = module
        self.average = None if averaging is None else WeightAverage(module, averaging)
        self.n_steps = 0
        self.data = data
        self.batch_size = batch_size
        self.group = group
        users, items = (data.users, data.items) if pairs is None else pairs
        alphas = alpha if isinstance(alpha, dict) else dict.fromkeys(TABLES, alpha)
        tables = embedding_tables(module)
        # Tables penalised whole at each step, 1 / n_rows of alpha each time:
        # alpha times their squared norm per epoch, as for the row penalty.
        self.whole_tables = [
            (alphas[kind] / len(users), table)
            for kind, table in _penalised_tables(module).items()
            if alphas[kind]
        ]
        self.generator = torch.Generator(device=data.users.device).manual_seed(seed)
        sparse_tables = _sparse_tables(tables, sparse, solver, batch_size)
        for table in tables.values():
            if isinstance(table, torch.nn.Embedding):
                table.sparse = table in sparse_tables
        self.optimizer = make_optimizer(module, learning_rate, solver, sparse_tables)
        self.step_optimizer = (
            getattr(self.optimizer, "lean_step", None) or self.optimizer.step
        )
        self.parameters = list(module.parameters())
        # Called as hook(rows_done, n_rows) after every step of an epoch: to
        # follow the load of the cores, to report progress.
        self.step_hooks = []
        self.loss = LOSSES[loss]
        self.sampler = self.positives = None
        n_items = n_items or tables["item"].num_embeddings
        if loss in SOFTMAX_LOSSES:
            counts = torch.bincount(items, minlength=n_items)[1:]
            self.sampler = ItemSampler(
                counts,
                n_negatives,
                self.generator,
                by_frequency=negative_sampling == "popularity",
            )
            self.positives = PairSet(users, items, n_items)
        elif loss != "mse":
            self.sampler = NegativeSampler(
                users,
                items,
                n_items,
                n_negatives,
                self.generator,
                by_popularity=negative_sampling == "popularity",
                hard=negative_sampling == "hard",
            )
            self.positives = self.sampler.positives
        # Each table's strength is folded into its row weights: one less
        # operation per step. Tables without a strength, or that the module
        # does not report, get no row penalty.
        self.tables = tables
        self.row_weights = {}
        for kind, codes in (("user", users), ("item", items)):
            if alphas[kind] and kind in tables:
                n_rows = tables[kind].num_embeddings
                self.row_weights[kind] = alphas[kind] * inverse_frequency(codes, n_rows)
        self.objective = Objective(module, self.loss, self.sampler, self.whole_tables)
        if group is not None:
            probe = (data.rows(slice(0, 64)),)
            all_used = uses_every_parameter(self.objective, probe, self.generator)
            self.objective = group.wrap(self.objective, all_used)
            self.shard_sizes = group.gather(len(data))

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
        """Run one pass over the data in random order; return the mean loss."""
        if self.group is not None:
            return self._train_epoch_together()
        self.module.train()
        n_rows = len(self.data)
        device = self.data.users.device
        order = torch.randperm(n_rows, generator=self.generator, device=device)
        starts = range(0, n_rows, self.batch_size)
        # Batch losses stay on the device until the epoch ends: reading each one
        # back would synchronise every step.
        losses = []
        for step, start in enumerate(starts, start=1):
            batch = self.data.rows(order[start : start + self.batch_size])
            losses.append(self.train_step(batch))
            if step % RELEASE_MEMORY_EVERY == 0:
                release_freed_memory()
            for hook in self.step_hooks:
                hook(start + len(batch), n_rows)
        sizes = torch.tensor(
            [min(self.batch_size, n_rows - start) for start in starts],
            dtype=torch.float64,
            device=device,
        )
        return float(torch.stack(losses).double() @ sizes) / n_rows

    def _train_epoch_together(self):
        """One pass over every process's rows, each in its own random order:
        the same number of steps on every process, whose batches share
        ``batch_size`` rows in proportion to the processes' shards."""
        self.module.train()
        n_rows = len(self.data)
        device = self.data.users.device
        n_steps = max(1, math.ceil(sum(self.shard_sizes) / self.batch_size))
        bounds = even_bounds(n_rows, n_steps)
        step_rows = np.sum(
            [np.diff(even_bounds(size, n_steps)) for size in self.shard_sizes], axis=0
        )
        order = torch.randperm(n_rows, generator=self.generator, device=device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for step in range(n_steps):
            start, stop = bounds[step], bounds[step + 1]
            # A shard with fewer rows than there are steps still takes part in
            # each step's gradient average, with a row weighted 0.
            rows = order[start:stop] if stop > start else order[:1]
            # Each process's mean loss is weighted by its share of the step's
            # rows, so that their average is the mean over all of them.
            weight = self.group.size * (stop - start) / step_rows[step]
            loss = self.train_step(self.data.rows(rows), weight)
            total += loss.double() * (stop - start)
            if (step + 1) % RELEASE_MEMORY_EVERY == 0:
                release_freed_memory()
            for hook in self.step_hooks:
                hook(stop, n_rows)
        loss_sum, row_count = self.group.sum([total.item(), n_rows]).tolist()
        return loss_sum / row_count

    def train_step(self, batch, weight=None):
        """One optimizer step on ``batch``; returns the batch's data loss.

        ``weight`` multiplies the objective's gradient: a process's share of
        a data-parallel step.
        """
        # What zero_grad(set_to_none=True) does, without its wrappers' cost.
        for param in self.parameters:
            param.grad = None
        loss = self.backward(batch, weight)
        self.step_optimizer()
        self.n_steps += 1
        if self.average is not None:
            self.average.step(self.module, self.n_steps)
        return loss.detach()

    def backward(self, batch, weight=None):
        """Gradients of the batch's loss and penalties, times ``weight`` if
        given; returns the data loss.

        The row penalty's gradient is known in closed form, so it enters the
        backward pass as the gradient of the rows rather than as more terms
        of the loss: two operations per table instead of a dozen forward and
        backward.
        """
        objective, loss, user_rows, item_rows = self.objective(batch)
        if weight is not None:
            objective = objective * weight
        roots, gradients = [objective], [None]
        for kind, rows, codes in (
            ("user", user_rows, batch.users),
            ("item", item_rows, batch.items),
        ):
            if kind not in self.row_weights:
                continue
            table = self.tables[kind]
            if getattr(table, "sparse", False) or table.num_embeddings > len(codes):
                roots.append(rows)
                gradients.append(self.row_penalty_gradient(rows, codes, kind))
            else:
                # Fewer table rows than batch rows: the same gradient, summed
                # per table row, costs less.
                roots.append(table.weight)
                gradients.append(self.table_penalty_gradient(table, codes, kind))
        if weight is not None:
            gradients[1:] = [gradient * weight for gradient in gradients[1:]]
        torch.autograd.backward(roots, gradients)
        return loss

    def row_penalty(self, rows, codes, kind):
        """Mean squared norm of a batch's table rows, each times the table's
        alpha over the row's frequency.

        Dividing by how often a row occurs makes one epoch's penalty the plain L2
        norm of each table, so rarely seen users and items are shrunk towards the
        average far more than frequent ones, as a Gaussian prior would.
        """
        return (rows.square().sum(dim=1) * self.row_weights[kind][codes]).mean()

    def row_penalty_gradient(self, rows, codes, kind):
        """The gradient of ``row_penalty`` with respect to ``rows``."""
        scale = self.row_weights[kind][codes] * (2 / len(codes))
        return rows.detach() * scale[:, None]

    def table_penalty_gradient(self, table, codes, kind):
        """The gradient of ``row_penalty`` with respect to the whole ``table``."""
        counts = torch.bincount(codes, minlength=table.num_embeddings)
        scale = self.row_weights[kind] * counts * (2 / len(codes))
        return table.weight.detach() * scale[:, None]


class Objective(torch.nn.Module):
    """A batch's loss plus the penalties on whole tables, as one module.

    Computing both in one ``forward`` lets ``DistributedDataParallel`` see
    every parameter a step uses. Returns the objective, the data loss and
    the user and item rows the batch looked up.
    """

    def __init__(self, module, loss, sampler, whole_tables):
        super().__init__()
        self.module = module
        self.loss = loss
        self.sampler = sampler
        self.whole_tables = whole_tables

    def forward(self, batch):
        loss, user_rows, item_rows = self.loss(self.module, batch, self.sampler)
        objective = loss
        for weight, table in self.whole_tables:
            objective = objective + weight * table.square().sum()
        return objective, loss, user_rows, item_rows


def uses_every_parameter(objective, inputs, generator):
    """Whether ``objective(*inputs)`` gives every parameter a gradient (the
    softmax losses leave a global bias out, for one). The random streams
    and the gradients are left as they were."""
    parameters = [p for p in objective.parameters() if p.requires_grad]
    saved = [p.grad for p in parameters]
    for param in parameters:
        param.grad = None
    generator_state = generator.get_state()
    with torch.random.fork_rng(devices=[]):
        objective(*inputs)[0].backward()
    generator.set_state(generator_state)
    used = all(param.grad is not None for param in parameters)
    for param, grad in zip(parameters, saved, strict=True):
        param.grad = grad
    return used


# Share of the moving average's horizon, 1 / (1 - decay) steps, between two
# of its updates.
AVERAGING_STRIDE = 0.05


class WeightAverage:
    """An exponential moving average of a module's weights over its steps.

    The decay of step ``t`` is ``min(decay, t / (9 + t))``, so that the
    average follows the weights closely while they move fast. With a long
    horizon the average is updated every few steps instead (``every``), by
    the decay of those steps together: the same average at a fraction of the
    cost of a pass over every weight.
    """

    def __init__(self, module, decay):
        self.decay = decay
        self.module = copy.deepcopy(module)
        # The epsilon keeps 0.05 / 0.01 from flooring to 4.
        horizon = 1 / (1 - decay)
        self.every = max(1, int(AVERAGING_STRIDE * horizon + 1e-9))
        self.updated_at = 0

    def step(self, module, n_steps):
        """After the optimizer's step ``n_steps`` of ``module``: move the
        average towards its weights if an update is due."""
        if n_steps - self.updated_at >= self.every:
            self.catch_up(module, n_steps)

    @torch.no_grad()
    def catch_up(self, module, n_steps):
        """Move the average towards the weights of ``module`` by the decay of
        the steps since the last update, if any: an epoch of fewer steps than
        ``every`` would otherwise leave the average at the initial weights."""
        pending = n_steps - self.updated_at
        if pending <= 0:
            return
        decay = min(self.decay, n_steps / (9 + n_steps)) ** pending
        torch._foreach_lerp_(
            list(self.module.parameters()), list(module.parameters()), 1 - decay
        )
        self.updated_at = n_steps


# sparse="auto": the table rows per batch row above which a table's rows are
# updated sparsely.
SPARSE_ROWS_PER_BATCH_ROW = 16


def _sparse_tables(tables, sparse, solver, batch_size):
    """The ``nn.Embedding`` tables to give sparse gradients."""
    if not sparse or solver not in SPARSE_SOLVERS:
        return []
    return [
        table
        for table in tables.values()
        if isinstance(table, torch.nn.Embedding)
        and (
            sparse is True
            or table.num_embeddings > SPARSE_ROWS_PER_BATCH_ROW * batch_size
        )
    ]


# Steps between two hand-backs of freed memory to the operating system.
RELEASE_MEMORY_EVERY = 64


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


def release_freed_memory():
    """Give the memory that past steps freed back to the operating system.

    Each step allocates and frees buffers whose sizes vary with the batch
    (its distinct rows, for instance). glibc keeps such freed memory in its
    heap, fragmented, and the resident memory of a long epoch then grows by
    about a megabyte per step: gigabytes over 100M interactions. Trimming
    every few dozen steps keeps it flat, at no measurable cost. Elsewhere than
    on glibc this does nothing.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def inverse_frequency(codes, n_rows):
    """1 / (occurrences of each code in ``codes``), 0 for codes that never occur."""
    counts = torch.bincount(codes, minlength=n_rows).float()
    return torch.where(counts > 0, 1.0 / counts.clamp(min=1), 0.0)


def predict_scores(module, data, chunk_size=PREDICT_CHUNK_SIZE):
    """Scores of every row of ``data`` as a float64 numpy array."""
    module.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(data), chunk_size):
            batch = data.rows(slice(start, start + chunk_size))
            chunks.append(module(batch.users, batch.items, batch.features).cpu())
    if not chunks:
        return np.empty(0)
    return torch.cat(chunks).double().numpy()


def set_history(module, pairs):
    """Give a module with implicit histories (``svdpp``) the (user, item) code
    pairs they sum over: the rows of ``Interactions``, or the nonzeros of a
    scipy (user x item) matrix indexed by code - 1."""
    if getattr(module, "history_tables", None) is None:
        return
    if isinstance(pairs, Interactions):
        users, items = pairs.users, pairs.items
    else:
        coo = pairs.tocoo()
        device = module.user_table.weight.device
        users = torch.as_tensor(coo.row + 1, dtype=torch.int64, device=device)
        items = torch.as_tensor(coo.col + 1, dtype=torch.int64, device=device)
    module.set_history(users, items)


def _penalised_tables(module):
    if hasattr(module, "penalised_tables"):
        return module.penalised_tables()
    return {}


def fill_unknown_rows(module):
    """Set row 0 of every embedding table to the mean of the known rows.

    Unknown users and items are then scored as an average user or item, so a
    pair with one known side still gets that side's learned preferences.
    """
    with torch.no_grad():
        for table in embedding_tables(module).values():
            if table.num_embeddings > 1:
                table.weight[0] = table.weight[1:].mean(dim=0)


def grow_embedding_tables(module, n_rows):
    """Append rows to the embedding tables so each kind has ``n_rows[kind]`` rows.

    New rows start as the mean of the known rows, the same as the unknown row.
    """
    with torch.no_grad():
        for kind, table in embedding_tables(module).items():
            extra = n_rows[kind] - table.num_embeddings
            if extra > 0:
                fill = table.weight[1:].mean(dim=0, keepdim=True).expand(extra, -1)
                table.weight = torch.nn.Parameter(torch.cat([table.weight, fill]))
                table.num_embeddings = n_rows[kind]
        for kind, table in _penalised_tables(module).items():
            extra = n_rows[kind] - len(table)
            if extra > 0:
                # New rows of whole-table parameters start at 0: no history yet.
                table.data = torch.cat(
                    [table.data, table.new_zeros(extra, *table.shape[1:])]
                )


def load_tensors(module, arrays):
    """Set the parameters and buffers of ``module`` to the arrays of a state
    dict, whatever their shapes; returns the module.

    A fitted network's tables may have grown, and its histories and kept
    features have data-dependent shapes, so ``load_state_dict`` into a fresh
    module would not fit them.
    """
    for name, array in arrays.items():
        owner_name, _, attribute = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        value = torch.as_tensor(np.array(array))
        current = getattr(owner, attribute)
        if isinstance(current, torch.nn.Parameter):
            current.data = value
        else:
            setattr(owner, attribute, value)
    for table in embedding_tables(module).values():
        table.num_embeddings = len(table.weight)
    return module


def keep_side_features(module, data, error):
    """Keep in ``module`` the declared user and item features of ``data``'s rows.

    Users and items of ``data`` get the values of their rows, the others keep
    theirs. ``error(kind, code, column)`` builds the exception raised when a
    user's (an item's) rows disagree on a value.
    """
    n_user, n_item = module.user_side.shape[1], module.item_side.shape[1]
    layout = {
        "user": (data.users, slice(0, n_user)),
        "item": (data.items, slice(n_user, n_user + n_item)),
    }
    for kind, (codes, columns) in layout.items():
        side = getattr(module, f"{kind}_side")
        if side.shape[1] == 0:
            continue
        n_rows = embedding_tables(module)[kind].num_embeddings
        kept = side.new_zeros((n_rows, side.shape[1]))
        kept[: len(side)] = side[:n_rows]
        values = data.features[:, columns]
        kept[codes] = values
        disagree = (kept[codes] != values).nonzero()
        if len(disagree):
            row, column = disagree[0].tolist()
            raise error(kind, int(codes[row]), columns.start + column)
        setattr(module, f"{kind}_side", kept)


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch's global generators for weight init and dropout, then restore."""
    devices = [device] if device.type != "cpu" else []
    device_type = device.type if device.type != "cpu" else "cuda"
    with torch.random.fork_rng(devices=devices, device_type=device_type):
        torch.manual_seed(seed)
        yield


def _to_device(array, dtype, device):
    if array is None:
        return None
    return torch.as_tensor(np.ascontiguousarray(array)).to(device=device, dtype=dtype)
