"""What the processes of a data-parallel fit agree on before they train.

Each process passes its own shard of the rows to ``fit``. Before training,
they pool what the estimator learns from the data besides the weights: the
ID vocabularies, the scalers of the ratings and features, the (user, item)
pairs seen. Each ends up with the same fitted estimator that one process
would have after fitting on every row.
"""

import numpy as np
import torch

from ._encoding import build_vocabulary, extend_vocabulary
from ._engine._distributed import data_parallel_group
from ._engine._training import Interactions

# Parameters that may differ between the processes of one fit: they change
# how a process reports or where it runs, not the model.
PER_PROCESS_PARAMETERS = frozenset({"verbose", "n_jobs", "device"})


def training_group(estimator):
    """The process group ``estimator`` trains over (its ``distributed``
    parameter), after checking that every process passes the same
    parameters; None to train in this process alone."""
    group = data_parallel_group(estimator.distributed)
    if group is not None:
        group.check_same("parameters", parameter_signature(estimator))
    return group


def parameter_signature(estimator):
    """The estimator's parameters as comparable text, those in
    ``PER_PROCESS_PARAMETERS`` left out."""
    return {
        name: _describe(value)
        for name, value in sorted(estimator.get_params(deep=False).items())
        if name not in PER_PROCESS_PARAMETERS
    }


def _describe(value):
    if isinstance(value, np.random.RandomState):
        # Its repr holds an address; a random_state instance seeds the fit
        # through process 0's draw (``agreed_seed``).
        return "RandomState"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def agreed_seed(group, seed):
    """Process 0's seed, which every process initialises its weights from."""
    return seed if group is None else group.gather(seed)[0]


def run_on_every_process(group, function, *args):
    """``function(*args)``, on every process of ``group`` together (an error
    on one is raised on all), or just here without a group."""
    if group is None:
        return function(*args)
    return group.together(function, *args)


def pooled_vocabulary(group, ids, column_name, vocabulary=None):
    """The sorted distinct IDs of every process's ``ids``, or ``vocabulary``
    extended by them."""
    if group is None:
        local = ids
    else:
        local = group.together(build_vocabulary, ids, column_name)
        local = np.concatenate(group.gather(local))
    if vocabulary is None:
        return build_vocabulary(local, column_name)
    return extend_vocabulary(vocabulary, local, column_name)


def pooled_codes(group, codes):
    """Every process's int64 code array, concatenated by rank."""
    if group is None:
        return codes
    return np.concatenate(group.gather(codes))


def pooled_moments(group, values):
    """Count, mean, standard deviation, minimum and maximum per column of
    every process's rows of ``values`` (1-D or 2-D)."""
    values = np.asarray(values, dtype=np.float64)
    local = _moments(values.reshape(len(values), -1))
    parts = [local] if group is None else group.gather(local)
    count, mean, m2, low, high = parts[0]
    # Chan et al.'s pairwise update of the mean and the sum of squares.
    for n, part_mean, part_m2, part_low, part_high in parts[1:]:
        total = count + n
        if n == 0:
            continue
        delta = part_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + part_m2 + delta**2 * (count * n / total)
        low, high = np.minimum(low, part_low), np.maximum(high, part_high)
        count = total
    std = np.sqrt(m2 / count) if count else np.zeros_like(mean)
    shape = values.shape[1:]
    return (
        count,
        mean.reshape(shape),
        std.reshape(shape),
        low.reshape(shape),
        (high.reshape(shape)),
    )


def _moments(values):
    count = len(values)
    if count == 0:
        empty = np.zeros(values.shape[1])
        return 0, empty, empty, empty + np.inf, empty - np.inf
    mean = values.mean(axis=0)
    m2 = np.square(values - mean).sum(axis=0)
    return count, mean, m2, values.min(axis=0), values.max(axis=0)


def pooled_mean(group, value, weight):
    """The mean of every process's ``value`` weighted by its ``weight``."""
    if group is None:
        return value
    total, weights = group.sum([value * weight, weight]).tolist()
    return total / weights if weights else value


def every_process(group, flag):
    """Whether ``flag`` holds on every process."""
    return bool(flag) if group is None else all(group.gather(bool(flag)))


def every_pair(group, data):
    """The (user, item) codes of every process's rows of ``data``, as
    ``Interactions``; ``data`` itself without a group."""
    if group is None:
        return data
    return Interactions(group.concatenate(data.users), group.concatenate(data.items))


def pool_side_features(group, module, data, error):
    """Give ``module`` the declared side features of every process's users
    and items, once each process has kept those of its own rows.

    ``error(kind, code, column)`` builds the exception for a user (an item)
    whose rows on two processes disagree on a value.
    """
    # Item feature columns come after the user ones in the feature names.
    offsets = {"user": 0, "item": module.user_side.shape[1]}
    for kind, codes in (("user", data.users), ("item", data.items)):
        side = getattr(module, f"{kind}_side")
        if side.shape[1] == 0:
            continue
        present = torch.zeros(len(side), dtype=torch.bool)
        present[codes.cpu()] = True
        parts = group.gather((side.cpu(), present))
        pooled, filled = parts[0][0].clone(), parts[0][1].clone()
        for values, rows in parts[1:]:
            both = filled & rows
            differ = (pooled[both] != values[both]).nonzero()
            if len(differ):
                row, column = differ[0].tolist()
                code = int(both.nonzero()[row])
                raise error(kind, code, offsets[kind] + column)
            pooled[rows] = values[rows]
            filled |= rows
        setattr(module, f"{kind}_side", pooled.to(side.device))


def any_process(group, flag):
    """Whether ``flag`` holds on any process."""
    return bool(flag) if group is None else any(group.gather(bool(flag)))


def pooled_histories(group, codes, starts, weights, users, user_col):
    """Every process's histories, by user code: each user's rows must come
    from one process, whose time order they keep."""
    parts = group.gather((codes, np.diff(starts), weights))
    lengths = np.stack([part[1] for part in parts])
    shared = np.flatnonzero((lengths > 0).sum(axis=0) > 1)
    if len(shared):
        ranks = np.flatnonzero(lengths[:, shared[0]] > 0).tolist()
        raise ValueError(
            f"User {users[shared[0]]!r} of column {user_col} has rows on processes "
            f"{ranks}: a data-parallel fit of a sequential model needs each user's "
            "whole history on one process. Shard the rows by user, for example "
            "by a hash of the user ID."
        )
    n_users = lengths.shape[1]
    owners = np.concatenate([np.repeat(np.arange(n_users), part[1]) for part in parts])
    order = np.argsort(owners, kind="stable")
    codes = np.concatenate([part[0] for part in parts])[order]
    weights = np.concatenate([part[2] for part in parts])[order]
    starts = np.concatenate([[0], np.cumsum(lengths.sum(axis=0))])
    return codes, starts, weights
