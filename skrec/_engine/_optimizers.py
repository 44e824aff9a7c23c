"""Optimizers, including Adam over embedding tables with row-sparse gradients.

A large embedding table gets few of its rows in a batch. A dense optimizer
still reads and writes every row, its moments too, at every step, and the
dense gradient fills the whole table with zeros first: with a million users
that is most of a step. A sparse table's gradient holds the batch's rows only,
and ``LazyAdam`` updates just those rows.
"""

import torch

from ._modules import embedding_tables

# Weight decay of "adamw" on the layers; the tables have the trainer's alpha.
ADAMW_WEIGHT_DECAY = 0.01
SGD_MOMENTUM = 0.9
SOLVERS = ("adam", "adamw", "sgd", "adagrad")
# Solvers that update the rows of a sparse table with LazyAdam: their own
# rule for the tables is Adam's, without weight decay.
SPARSE_SOLVERS = ("adam", "adamw")


class LazyAdam(torch.optim.Optimizer):
    """Adam on parameters with sparse gradients, updating only their rows.

    The moments of a row move only at the steps whose batch holds it, as in
    ``torch.optim.SparseAdam`` and TensorFlow's LazyAdam; the bias correction
    counts every step. Duplicate rows of a gradient are summed with one sort
    (``torch.unique``) and one ``index_add_``, where SparseAdam coalesces the
    gradient and then masks each moment with it.

    Parameters
    ----------
    params : iterable of torch.Tensor
        Two-dimensional parameters whose gradients are sparse COO tensors
        over their first dimension, as ``nn.Embedding(sparse=True)`` makes.
    lr : float
    betas : tuple of float, default=(0.9, 0.999)
    eps : float, default=1e-8
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update_rows(param, group)

    def _update_rows(self, param, group):
        state = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            # Both moments of a row side by side: one gather and one scatter
            # of random rows per step instead of two each.
            state["moments"] = param.new_zeros((len(param), 2, *param.shape[1:]))
        state["step"] += 1
        step = float(state["step"])
        rows, grad = summed_rows(param.grad)
        beta1, beta2 = group["betas"]
        moments = state["moments"][rows]
        exp_avg, exp_avg_sq = moments[:, 0], moments[:, 1]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        state["moments"][rows] = moments
        denominator = (exp_avg_sq / (1 - beta2**step)).sqrt_().add_(group["eps"])
        step_size = group["lr"] / (1 - beta1**step)
        param.index_add_(0, rows, exp_avg / denominator, alpha=-step_size)


def summed_rows(grad):
    """The distinct rows of a sparse COO gradient and the sum of each one's values."""
    indices, values = grad._indices()[0], grad._values()
    rows, inverse = torch.unique(indices, return_inverse=True)
    summed = values.new_zeros((len(rows), *values.shape[1:]))
    return rows, summed.index_add_(0, inverse, values)


class _LeanFusedStep:
    """torch's fused Adam or AdamW with ``lean_step``, which calls the fused
    kernel directly.

    ``torch.optim.Adam.step`` spends about as long in Python, regrouping the
    parameters and their state and running the step hooks, as the fused
    kernel spends on a small network (0.15 ms of 0.35 ms at MovieLens scale,
    where a whole step takes 4 ms). Once torch's first step has made the
    state, ``lean_step`` hands the same tensors to the kernel, with the same
    options; in any other case (amsgrad, sparse or missing gradients, tensor
    learning rates, a torch without the kernel) it runs ``step``. It runs no
    step hooks.
    """

    def lean_step(self):
        groups = getattr(self, "_kernel_groups", None) or self._kernel_arguments()
        grads = [[p.grad for p in params] for _, params, *_ in groups or ()]
        if not groups or any(g is None or g.is_sparse for gs in grads for g in gs):
            self.step()
            return
        self._kernel_groups = groups
        with torch.no_grad():
            for (kernel, params, tensors, steps, group), group_grads in zip(
                groups, grads, strict=True
            ):
                torch._foreach_add_(steps, 1)
                kernel(params, group_grads, *tensors, [], steps, **_options(group))

    def load_state_dict(self, state_dict):
        self._kernel_groups = None
        super().load_state_dict(state_dict)

    def _kernel_arguments(self):
        """``(kernel, params, moments, steps, group)`` per group, or None
        when the kernel cannot run them."""
        groups = []
        for group in self.param_groups:
            params = group["params"]
            states = [self.state.get(p) for p in params]
            decoupled = group.get("decoupled_weight_decay", isinstance(self, AdamW))
            kernel = getattr(
                torch, "_fused_adamw_" if decoupled else "_fused_adam_", None
            )
            if (
                kernel is None
                or not group.get("fused")
                or group["amsgrad"]
                or group["maximize"]
                or group.get("differentiable")
                or not isinstance(group["lr"], float)
                or not all(states)
            ):
                return None
            moments = (
                [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states],
            )
            steps = [state["step"] for state in states]
            groups.append((kernel, params, moments, steps, group))
        return groups


def _options(group):
    beta1, beta2 = group["betas"]
    return {
        "amsgrad": False,
        "lr": group["lr"],
        "beta1": beta1,
        "beta2": beta2,
        "weight_decay": group["weight_decay"],
        "eps": group["eps"],
        "maximize": False,
        "grad_scale": None,
        "found_inf": None,
    }


class Adam(_LeanFusedStep, torch.optim.Adam):
    """``torch.optim.Adam`` with a leaner fused step."""


class AdamW(_LeanFusedStep, torch.optim.AdamW):
    """``torch.optim.AdamW`` with a leaner fused step."""


class OptimizerGroup:
    """Several optimizers stepped as one: a dense one and ``LazyAdam``.

    It offers what the trainer and the estimator use of an optimizer:
    ``lean_step``, ``param_groups`` and the state dict.
    """

    def __init__(self, optimizers):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [group for opt in self.optimizers for group in opt.param_groups]

    def lean_step(self):
        for optimizer in self.optimizers:
            getattr(optimizer, "lean_step", optimizer.step)()

    def state_dict(self):
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state):
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)


def make_optimizer(module, learning_rate, solver="adam", sparse_tables=()):
    """The optimizer named ``solver`` over the module's parameters.

    Adam, AdamW and SGD use the fused kernel where the device has one, the
    foreach kernel otherwise. AdamW decays the layers' weights only: the
    embedding tables are shrunk by the trainer's per-row penalty. The tables
    in ``sparse_tables`` (``nn.Embedding`` with ``sparse=True``) get
    ``LazyAdam`` instead.
    """
    sparse = {id(table.weight) for table in sparse_tables}
    params = [p for p in module.parameters() if id(p) not in sparse]
    optimizer = _dense_optimizer(module, params, learning_rate, solver)
    if not sparse:
        return optimizer
    tables = LazyAdam([table.weight for table in sparse_tables], lr=learning_rate)
    return OptimizerGroup([optimizer, tables])


def _dense_optimizer(module, params, learning_rate, solver):
    if solver == "adamw":
        tables = {id(t.weight) for t in embedding_tables(module).values()}
        params = [
            {"params": [p for p in params if id(p) in tables], "weight_decay": 0.0},
            {"params": [p for p in params if id(p) not in tables]},
        ]
    optimizer_class, options = {
        "adam": (Adam, {}),
        "adamw": (AdamW, {"weight_decay": ADAMW_WEIGHT_DECAY}),
        "sgd": (torch.optim.SGD, {"momentum": SGD_MOMENTUM, "nesterov": True}),
        "adagrad": (torch.optim.Adagrad, {}),
    }[solver]
    if solver == "adagrad":
        return optimizer_class(params, lr=learning_rate, foreach=True, **options)
    try:
        return optimizer_class(params, lr=learning_rate, fused=True, **options)
    except RuntimeError:
        return optimizer_class(params, lr=learning_rate, foreach=True, **options)


def resume_optimizer(optimizer, state):
    """Load a previous optimizer ``state`` if it fits the current parameters.

    Tables that grew for new IDs get zero moments for their new rows, as a
    fresh optimizer would give every row, and keep those of their old rows.
    A table that switched between dense and sparse updates, or a different
    set of parameters, makes the optimizer start afresh.
    """
    optimizers = getattr(optimizer, "optimizers", [optimizer])
    saved_states = state.get("optimizers", [state])
    if len(optimizers) != len(saved_states):
        return False
    for current, saved in zip(optimizers, saved_states, strict=True):
        params = [p for group in current.param_groups for p in group["params"]]
        if len(params) != sum(len(g["params"]) for g in saved["param_groups"]):
            return False
        for index, param in enumerate(params):
            param_state = saved["state"].get(index, {})
            for name, moments in list(param_state.items()):
                if not _is_per_row(name, moments, param):
                    continue
                if moments.shape[1:] != _moment_shape(name, param)[1:]:
                    return False
                if len(moments) > len(param):
                    return False
                if len(moments) < len(param):
                    param_state[name] = _grown(moments, len(param))
    optimizer.load_state_dict(state)
    return True


def _is_per_row(name, value, param):
    """Whether an optimizer state entry has a row per row of ``param``:
    Adam's moments, LazyAdam's pair of them, Adagrad's sums, SGD's momentum
    (not the step counts)."""
    return (
        name != "step"
        and isinstance(value, torch.Tensor)
        and value.dim() > 0
        and param.dim() > 0
    )


def _moment_shape(name, param):
    if name == "moments":
        return (len(param), 2, *param.shape[1:])
    return tuple(param.shape)


def _grown(moments, n_rows):
    """``moments`` with zero rows appended up to ``n_rows``."""
    extra = moments.new_zeros((n_rows - len(moments), *moments.shape[1:]))
    return torch.cat([moments, extra])
