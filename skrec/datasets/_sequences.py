"""Synthetic next-item sequences drawn from a first-order item-to-item model."""

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._sklearn_compat import Interval, validate_params
from ._synthetic import _PowerLaw

# Cells of the boolean (rows, n_items) matrices of taken items held at once:
# rows are processed in chunks of about this many cells.
_CHUNK_CELLS = 2**22

# Rounds of rejection before the rows still without an untaken item get an
# exact draw over all of their untaken items.
_REJECTION_ROUNDS = 8

# Each user's first interaction is at a uniform second of the first 30 days;
# the gaps between a user's interactions have a mean of one hour.
_START_SPAN = 30 * 24 * 3600
_MEAN_GAP = 3600


@validate_params(
    {
        "n_users": [Interval(Integral, 1, None, closed="left")],
        "n_items": [Interval(Integral, 2, None, closed="left")],
        "mean_length": [Interval(Real, 1, None, closed="left")],
        "n_successors": [Interval(Integral, 1, None, closed="left")],
        "order_strength": [Interval(Real, 0, 1, closed="both")],
        "popularity_skew": [Interval(Real, 0, None, closed="left")],
        "min_length": [Interval(Integral, 1, None, closed="left")],
        "as_frame": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_sequences(
    n_users=100,
    n_items=50,
    mean_length=20,
    *,
    n_successors=3,
    order_strength=0.8,
    popularity_skew=1.0,
    min_length=3,
    as_frame=True,
    random_state=None,
):
    """Generate timestamped interaction sequences with a known next-item signal.

    Every item has `n_successors` likely next items, its successors, drawn
    once with long-tailed, Zipf-like popularity. Each user's sequence starts
    at an item drawn by popularity; each next item is, with probability
    `order_strength`, one of the current item's successors, and otherwise a
    fresh popularity draw. A model that reads the order of a user's
    interactions, such as a first-order transition model, can therefore
    predict the next item far better than popularity or matrix factorization,
    which see only which items a user met. With ``order_strength=0`` the order
    carries no information.

    Parameters
    ----------
    n_users : int, default=100
        The number of users. User ids are the integers in ``[0, n_users)``,
        and every user has at least `min_length` interactions.

    n_items : int, default=50
        The number of items, at least 2. Item ids are the integers in
        ``[0, n_items)``.

    mean_length : float, default=20
        The mean number of interactions per user, from `min_length` to
        `n_items`. Lengths are `min_length` plus a geometric number of
        interactions, a long tail as in real logs, capped at `n_items`: the
        cap makes the mean a little lower when `mean_length` is near
        `n_items`.

    n_successors : int, default=3
        The number of successors of each item, below `n_items`. An item is
        never its own successor.

    order_strength : float in [0, 1], default=0.8
        The probability that a next item is one of the current item's
        successors. The share of successor steps in the data is lower, as a
        step whose successors the user has all met already is a fresh
        popularity draw: with ``order_strength=0.8`` it is about 0.65 with the
        defaults, where a user meets 40% of the items on average, and 0.77
        with ``n_items=200``.

    popularity_skew : float, default=1.0
        The exponent ``s`` of the Zipf-like item popularity: the item of
        popularity rank ``r`` is drawn with weight about ``r ** -s``, as in
        :func:`make_ratings`. 0 draws items uniformly. It sets both the first
        and the fresh items of the sequences and which items are successors.
        Popularity ranks are dealt to ids at random.

    min_length : int, default=3
        The fewest interactions of a user, at most `n_items`. The default
        leaves each user two training interactions, one transition, under
        leave-last-out.

    as_frame : bool, default=True
        If True, `X` is a pandas DataFrame with columns ``user_id``,
        ``item_id`` and ``timestamp``; otherwise an ndarray with these three
        columns in this order. True by default, as for
        :func:`load_movielens`, whose interactions are timestamped too:
        splitters and estimators then find the time column by name.

    random_state : int, RandomState instance or None, default=None
        Determines random number generation for dataset creation. Pass an int
        for reproducible output across multiple function calls.

    Returns
    -------
    X : DataFrame or ndarray of shape (n_interactions, 3)
        The user id, item id and timestamp of each interaction, int64, one
        row per interaction. Rows are in time order, users interleaved: a
        log sorted by timestamp, and by user id among equal timestamps.

    See Also
    --------
    make_ratings : Generate explicit ratings from a latent-factor model.
    skrec.model_selection.LeaveLastOut : Hold out each user's latest items.

    Notes
    -----
    A user meets each item at most once, as in :func:`make_ratings` and in
    MovieLens: the successors and fresh draws of a step are taken among the
    items the user has not met yet, with the same weights otherwise, so
    ``recommend`` with ``exclude_seen=True`` never hides a held-out item, and
    an item never follows itself.

    A successor step picks one of the current item's unmet successors
    uniformly. The successors of an item are drawn by popularity without
    replacement, so popular items are the successors of many items, as in
    real data where popular items follow many others.

    Timestamps are whole seconds. A user's first interaction is at a uniform
    second of the first 30 days and each next one a geometric number of
    seconds later, one hour on average, at least one: a user's timestamps
    are strictly increasing, so sorting by timestamp recovers each
    sequence's order with no ties. Different users may share a timestamp.

    Examples
    --------
    >>> from skrec.datasets import make_sequences
    >>> X = make_sequences(n_users=3, n_items=5, mean_length=3, random_state=0)
    >>> X
       user_id  item_id  timestamp
    0        1        2    1314638
    1        1        0    1316012
    2        1        3    1321436
    3        0        0    1554408
    4        0        3    1557925
    5        0        2    1559410
    6        2        3    2106511
    7        2        0    2110422
    8        2        4    2110472
    >>> X = make_sequences(as_frame=False, random_state=0)
    >>> X.shape
    (1966, 3)
    """
    _check_lengths(n_items, mean_length, min_length, n_successors)
    generator = check_random_state(random_state)

    item_law = _PowerLaw(n_items, popularity_skew, generator)
    successors = _draw_successors(item_law, n_successors, generator)
    lengths = _draw_lengths(n_users, n_items, mean_length, min_length, generator)
    items = _walk(item_law, successors, lengths, order_strength, generator)
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    timestamps = _draw_timestamps(lengths, generator)
    # Each user's rows are in time order already; a stable sort on timestamp
    # interleaves the users and keeps equal timestamps sorted by user.
    order = np.argsort(timestamps, kind="stable")
    users, items, timestamps = users[order], items[order], timestamps[order]
    if as_frame:
        return pd.DataFrame(
            {"user_id": users, "item_id": items, "timestamp": timestamps}
        )
    return np.column_stack([users, items, timestamps])


def _check_lengths(n_items, mean_length, min_length, n_successors):
    if n_successors >= n_items:
        raise ValueError(
            f"n_successors={n_successors} must be below n_items={n_items}: an "
            "item is not its own successor."
        )
    if min_length > n_items:
        raise ValueError(
            f"min_length={min_length} exceeds n_items={n_items}: a user meets "
            "each item at most once."
        )
    if not min_length <= mean_length <= n_items:
        raise ValueError(
            f"mean_length={mean_length} must be from min_length={min_length} "
            f"to n_items={n_items}."
        )


def _draw_successors(item_law, n_successors, generator):
    """Return the successors of each item, shape (n_items, n_successors).

    The successors of an item are distinct popularity draws other than the
    item itself.
    """
    n_items = item_law.n
    # Column 0 holds the item itself, excluded like the successors drawn.
    drawn = np.empty((n_items, n_successors + 1), dtype=np.int64)
    drawn[:, 0] = np.arange(n_items)
    for column in range(1, n_successors + 1):
        excluded = drawn[:, :column]

        def is_taken(rows, ids, excluded=excluded):
            return (excluded[rows] == ids[:, None]).any(axis=1)

        def taken_mask(rows, excluded=excluded):
            mask = np.zeros((rows.size, n_items), dtype=bool)
            mask[np.arange(rows.size)[:, None], excluded[rows]] = True
            return mask

        drawn[:, column] = _draw_untaken(
            item_law, n_items, is_taken, taken_mask, generator
        )
    return drawn[:, 1:]


def _draw_lengths(n_users, n_items, mean_length, min_length, generator):
    """Return each user's length: `min_length` plus a geometric excess, capped."""
    # A geometric count from 0 with mean m has success probability 1 / (m + 1).
    excess = generator.geometric(1 / (mean_length - min_length + 1), size=n_users) - 1
    return np.minimum(min_length + excess, n_items)


def _walk(item_law, successors, lengths, order_strength, generator):
    """Return the items of every user's sequence, by user and in time order."""
    chunk = max(1, _CHUNK_CELLS // item_law.n)
    return np.concatenate(
        [
            _walk_chunk(
                item_law,
                successors,
                lengths[start : start + chunk],
                order_strength,
                generator,
            )
            for start in range(0, lengths.size, chunk)
        ]
    )


def _walk_chunk(item_law, successors, lengths, order_strength, generator):
    """Walk the sequences of a chunk of users together, one step at a time.

    Step ``t`` is taken by the users whose sequences are longer than ``t``;
    ``taken`` holds the items each user has met.
    """
    steps = np.zeros((lengths.size, lengths.max()), dtype=np.int64)
    taken = np.zeros((lengths.size, item_law.n), dtype=bool)
    rows = np.arange(lengths.size)
    for step in range(steps.shape[1]):
        rows = rows[lengths[rows] > step]
        drawn = np.full(rows.size, -1, dtype=np.int64)
        if step > 0:
            follow = np.flatnonzero(generator.random_sample(rows.size) < order_strength)
            drawn[follow] = _pick_successor(
                successors[steps[rows[follow], step - 1]],
                taken,
                rows[follow],
                generator,
            )
        fresh = np.flatnonzero(drawn < 0)
        drawn[fresh] = _draw_untaken(
            item_law,
            fresh.size,
            lambda pending, ids, users=rows[fresh]: taken[users[pending], ids],
            lambda pending, users=rows[fresh]: taken[users[pending]],
            generator,
        )
        steps[rows, step] = drawn
        taken[rows, drawn] = True
    # Row-major order puts each user's steps together, in order.
    return steps[np.arange(steps.shape[1]) < lengths[:, None]]


def _pick_successor(candidates, taken, rows, generator):
    """Pick one untaken candidate per row uniformly; -1 where all are taken."""
    untaken = ~taken[rows[:, None], candidates]
    # The largest uniform key among the untaken candidates is a uniform pick.
    keys = np.where(untaken, generator.random_sample(candidates.shape), -1.0)
    best = keys.argmax(axis=1)
    picked = candidates[np.arange(rows.size), best]
    return np.where(untaken.any(axis=1), picked, -1)


def _draw_untaken(law, n_rows, is_taken, taken_mask, generator):
    """Draw one id per row from `law`, among the ids not taken in that row.

    ``is_taken(rows, ids)`` says whether each ``ids[j]`` is taken in row
    ``rows[j]``, and ``taken_mask(rows)`` returns the boolean (len(rows),
    law.n) matrix of the taken ids of `rows`; every row has an untaken id.
    Draws that hit a taken id are drawn again, for a few rounds; rows still
    without an id then get a Gumbel-max draw over their untaken ids. Both
    sample the law conditioned on the untaken ids.
    """
    drawn = np.empty(n_rows, dtype=np.int64)
    pending = np.arange(n_rows)
    for _ in range(_REJECTION_ROUNDS):
        if pending.size == 0:
            return drawn
        candidates = law.draw(pending.size, generator)
        untaken = ~is_taken(pending, candidates)
        drawn[pending[untaken]] = candidates[untaken]
        pending = pending[~untaken]
    if pending.size == 0:
        return drawn
    log_weights = law.log_weights()
    chunk = max(1, _CHUNK_CELLS // law.n)
    for start in range(0, pending.size, chunk):
        rows = pending[start : start + chunk]
        scores = log_weights + generator.gumbel(size=(rows.size, law.n))
        scores[taken_mask(rows)] = -np.inf
        drawn[rows] = scores.argmax(axis=1)
    return drawn


def _draw_timestamps(lengths, generator):
    """Return strictly increasing whole seconds per user, by user."""
    starts = generator.randint(0, _START_SPAN, size=lengths.size).astype(np.int64)
    gaps = generator.geometric(1 / _MEAN_GAP, size=int(lengths.sum())).astype(np.int64)
    # Each user's first gap is replaced by the user's start, then the gaps
    # are summed within each user.
    first = np.cumsum(lengths) - lengths
    gaps[first] = starts
    timestamps = np.cumsum(gaps)
    offsets = timestamps[first] - starts
    return timestamps - np.repeat(offsets, lengths)
