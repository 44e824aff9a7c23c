"""Data-parallel training over a ``torch.distributed`` process group.

Each process of the group trains on its own shard of the rows. Every step,
``DistributedDataParallel`` averages the gradients over the processes, so
that each process takes the same optimizer step and their weights stay equal
bit for bit. What the step does not see is agreed here, through the group's
collectives: the sizes of the shards (every process takes the same number of
steps per epoch), the loss of the epoch and the validation score (every
process stops at the same epoch), and any error on one process (every
process raises instead of waiting for the others forever).
"""

import inspect

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def data_parallel_group(distributed):
    """The ``ProcessGroup`` to train over, or None to train alone.

    ``"auto"``: the default process group when one is initialised and has
    more than one process. ``True``: that group, which must exist. ``False``:
    None.
    """
    if distributed is False:
        return None
    initialised = dist.is_available() and dist.is_initialized()
    if not initialised:
        if distributed is True:
            raise ValueError(
                "distributed=True trains over the default torch.distributed process "
                "group, but none is initialised: launch the script with torchrun and "
                "call torch.distributed.init_process_group() before fit, or use "
                "distributed='auto' to train in this process alone."
            )
        return None
    group = ProcessGroup()
    return group if group.size > 1 else None


class ProcessGroup:
    """The default process group, with the collectives training needs."""

    def __init__(self):
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()
        self.backend = dist.get_backend()
        # NCCL reduces tensors on the GPU only.
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if self.backend == "nccl"
            else torch.device("cpu")
        )

    def gather(self, value):
        """The list of every process's (picklable) ``value``, by rank."""
        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def sum(self, values):
        """The element-wise sum over the processes of a list of numbers, as a
        float64 tensor on the CPU."""
        total = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.cpu()

    def sum_counts(self, counts):
        """The sum over the processes of an int64 tensor, on its device."""
        total = counts.to(self.device)
        dist.all_reduce(total)
        return total.to(counts.device)

    def concatenate(self, tensor):
        """Every process's 1-D ``tensor``, concatenated by rank, on its device."""
        parts = self.gather(tensor.cpu())
        return torch.cat(parts).to(tensor.device)

    def together(self, function, *args, **kwargs):
        """Run ``function`` on every process; if it fails on any, raise on all.

        The process that failed raises its own error; the others raise a
        ``RuntimeError`` naming it, instead of waiting at their next collective
        for a process that will never get there.
        """
        try:
            result, error = function(*args, **kwargs), None
        except Exception as exc:  # re-raised below, on every process
            result, error = None, exc
        messages = self.gather(
            None if error is None else f"{type(error).__name__}: {error}"
        )
        if error is not None:
            raise error
        failed = [(rank, text) for rank, text in enumerate(messages) if text]
        if failed:
            rank, text = failed[0]
            raise RuntimeError(
                f"Process {rank} of the {self.size} training together failed, so "
                f"this one (process {self.rank}) stops too. Its error: {text}"
            )
        return result

    def check_same(self, what, value):
        """Raise on every process unless ``value`` is equal on all of them;
        a dict's differing entries are named."""
        values = self.gather(value)
        for rank, other in enumerate(values):
            if other == values[0]:
                continue
            if isinstance(other, dict) and isinstance(values[0], dict):
                keys = sorted(set(other) | set(values[0]))
                names = [key for key in keys if other.get(key) != values[0].get(key)]
                first = ", ".join(f"{key}={values[0].get(key)}" for key in names)
                this = ", ".join(f"{key}={other.get(key)}" for key in names)
            else:
                first, this = values[0], other
            raise ValueError(
                f"Every process of a data-parallel fit must pass the same {what}; "
                f"process 0 has {first} and process {rank} has {this}."
            )

    def wrap(self, module, all_used=True):
        """``module`` inside ``DistributedDataParallel``: its backward passes
        average the gradients over the processes. ``all_used``: whether every
        parameter gets a gradient at every step, on every process; else
        each step looks for those that do not."""
        # Every buffer is the same on every process when training starts
        # (the histories of svdpp span every process's rows); none changes
        # while training, so none is broadcast before each forward.
        no_buffer_sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers"
            in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False}
        )
        return DistributedDataParallel(
            module,
            device_ids=None,
            find_unused_parameters=not all(self.gather(all_used)),
            **no_buffer_sync,
        )


def even_bounds(n_rows, n_steps):
    """Start and stop rows of ``n_steps`` contiguous slices of ``n_rows`` rows,
    as even as can be: sizes differ by one at most."""
    return [(step * n_rows) // n_steps for step in range(n_steps + 1)]
