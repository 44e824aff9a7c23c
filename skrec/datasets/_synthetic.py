"""Synthetic explicit ratings drawn from a latent-factor model."""

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._sklearn_compat import Interval, validate_params

# Share of the clean signal's variance carried by each bias term; the dot
# product carries the rest, so a bias-only baseline leaves room for a model of
# interactions.
_BIAS_VARIANCE = 0.25

# Once fewer than this share of weighted draws are new pairs, the popular pairs
# are used up and further weighted draws are mostly wasted.
_MIN_ACCEPTANCE = 0.25


@validate_params(
    {
        "n_users": [Interval(Integral, 1, None, closed="left")],
        "n_items": [Interval(Integral, 1, None, closed="left")],
        "n_ratings": [Interval(Integral, 1, None, closed="left")],
        "n_factors": [Interval(Integral, 1, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "rating_range": [tuple, list],
        "integer_ratings": ["boolean"],
        "popularity_skew": [Interval(Real, 0, None, closed="left")],
        "as_frame": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_ratings(
    n_users=100,
    n_items=50,
    n_ratings=1000,
    *,
    n_factors=5,
    noise=0.5,
    rating_range=(1, 5),
    integer_ratings=True,
    popularity_skew=1.0,
    as_frame=False,
    random_state=None,
):
    """Generate explicit ratings from a latent-factor model.

    Each rating is a global mean plus a user bias, an item bias and the dot
    product of a user and an item factor vector, plus Gaussian noise. The
    (user, item) pairs are distinct, and items are drawn with long-tailed,
    Zipf-like popularity, as in real rating data.

    Parameters
    ----------
    n_users : int, default=100
        The number of users. User ids are the integers in ``[0, n_users)``.

    n_items : int, default=50
        The number of items. Item ids are the integers in ``[0, n_items)``.

    n_ratings : int, default=1000
        The number of ratings, that is of distinct (user, item) pairs. At most
        ``n_users * n_items``.

    n_factors : int, default=5
        The dimension of the latent user and item factor vectors.

    noise : float, default=0.5
        The standard deviation of the Gaussian noise, relative to the standard
        deviation of the clean signal: the signal explains about
        ``1 / (1 + noise**2)`` of the variance before clipping and rounding.

    rating_range : tuple of (float, float), default=(1, 5)
        The lowest and highest rating. The clean signal is centred on the
        middle of the range, with two standard deviations reaching its ends,
        and the ratings are clipped to it.

    integer_ratings : bool, default=True
        If True, ratings are rounded to the nearest integer in
        ``rating_range``, like star ratings.

    popularity_skew : float, default=1.0
        The exponent ``s`` of the Zipf-like item popularity: the item of
        popularity rank ``r`` is drawn with weight about ``r ** -s``. 0 draws
        items uniformly. Users are drawn with exponent ``s / 2``, as activity
        is less concentrated than popularity. Popularity ranks are dealt to
        ids at random.

    as_frame : bool, default=False
        If True, `X` is a pandas DataFrame with columns ``user_id`` and
        ``item_id`` and `y` a Series named ``rating``.

    random_state : int, RandomState instance or None, default=None
        Determines random number generation for dataset creation. Pass an int
        for reproducible output across multiple function calls.

    Returns
    -------
    X : ndarray of shape (n_ratings, 2) or DataFrame
        The user id (column 0) and item id (column 1) of each rating, int64.

    y : ndarray of shape (n_ratings,) or Series
        The ratings, float64.

    See Also
    --------
    load_movielens : Load the MovieLens-100K ratings.

    Notes
    -----
    The popularity rank of a draw is the integer part of a continuous power law
    on ``[1, n + 1)``, which makes the weights Zipf-like rather than exactly
    ``r ** -s`` and lets each draw take constant time.

    Pairs are drawn with probability proportional to the product of the user
    and item weights, and repeated pairs are drawn again. When the requested
    ratings would use up most of the popular pairs, the remaining pairs are
    drawn uniformly, or, above half of all pairs, chosen by weighted sampling
    without replacement over every pair.

    Examples
    --------
    >>> from skrec.datasets import make_ratings
    >>> X, y = make_ratings(n_users=4, n_items=3, n_ratings=5, random_state=0)
    >>> X
    array([[0, 2],
           [1, 2],
           [3, 2],
           [0, 1],
           [3, 1]])
    >>> y
    array([2., 2., 4., 1., 4.])
    >>> X, y = make_ratings(as_frame=True, random_state=0)
    >>> X.head(3)
       user_id  item_id
    0       55       26
    1       56       37
    2       41       19
    >>> print(y.name, y.min(), y.max())
    rating 1.0 5.0
    """
    _check_n_ratings(n_ratings, n_users, n_items)
    low, high = _check_rating_range(rating_range, integer_ratings)
    generator = check_random_state(random_state)

    users, items = _sample_distinct_pairs(
        n_users, n_items, n_ratings, popularity_skew, generator
    )
    signal = _latent_factor_signal(users, items, n_users, n_items, n_factors, generator)
    y = _signal_to_ratings(signal, noise, low, high, integer_ratings, generator)
    # The pairs come sorted by user, which keeps the factor look-ups cache
    # friendly; shuffled, they cannot bias splits that do not shuffle (KFold).
    order = generator.permutation(n_ratings)
    users, items, y = users[order], items[order], y[order]
    if as_frame:
        X = pd.DataFrame({"user_id": users, "item_id": items})
        return X, pd.Series(y, name="rating")
    return np.column_stack([users, items]), y


def _check_n_ratings(n_ratings, n_users, n_items):
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} exceeds the n_users * n_items = "
            f"{n_users * n_items} distinct (user, item) pairs."
        )


def _check_rating_range(rating_range, integer_ratings):
    """Return ``(low, high)``, or raise if they are not two increasing numbers."""
    if not (
        len(rating_range) == 2
        and all(isinstance(bound, Real) for bound in rating_range)
        and rating_range[0] < rating_range[1]
    ):
        raise ValueError(
            "rating_range must be a pair (low, high) of numbers with low < high; "
            f"got {rating_range!r}."
        )
    low, high = rating_range
    if integer_ratings and np.ceil(low) > np.floor(high):
        raise ValueError(
            f"rating_range={rating_range!r} holds no integer; widen it or pass "
            "integer_ratings=False."
        )
    return low, high


def _sample_distinct_pairs(n_users, n_items, n_ratings, popularity_skew, generator):
    """Return the user and item ids of `n_ratings` distinct pairs, sorted.

    A pair is encoded as the int64 key ``user * n_items + item`` so that
    distinctness is a property of one sorted array.
    """
    user_law = _PowerLaw(n_users, popularity_skew / 2, generator)
    item_law = _PowerLaw(n_items, popularity_skew, generator)
    if 2 * n_ratings > n_users * n_items:
        keys = _top_weighted_pairs(user_law, item_law, n_ratings, generator)
    else:
        keys = _draw_distinct_pairs(user_law, item_law, n_ratings, generator)
    return np.divmod(keys, n_items)


class _PowerLaw:
    """Ids drawn with weight about ``r ** -exponent`` of a random popularity rank ``r``.

    The rank is the integer part of a continuous power law on ``[1, n + 1)``,
    sampled by inverting its CDF: constant time per draw, where a discrete
    weighted choice costs a binary search per draw.
    """

    def __init__(self, n, exponent, generator):
        self.n = n
        # The density x ** -exponent integrates to x ** a / a (log x when a = 0).
        self._a = 1.0 - exponent
        self._rank_to_id = generator.permutation(n)

    def draw(self, size, generator):
        """Return `size` ids, drawn independently."""
        log_end = np.log(self.n + 1)
        u = generator.random_sample(size)
        if self._a == 0:
            log_x = u * log_end
        else:
            log_x = np.log1p(u * np.expm1(self._a * log_end)) / self._a
        ranks = np.minimum(np.exp(log_x).astype(np.int64), self.n)
        return self._rank_to_id[ranks - 1]

    def log_weights(self):
        """Return the unnormalised log probability of each id, indexed by id."""
        ranks = np.arange(1, self.n + 1, dtype=np.float64)
        # The mass on [r, r + 1) is r ** a * expm1(a * log1p(1 / r)) / a; taken
        # in logs it neither cancels nor underflows deep in a steep tail.
        width = np.log1p(1 / ranks)
        mass = width if self._a == 0 else np.expm1(self._a * width) / self._a
        log_weights = np.empty(self.n)
        log_weights[self._rank_to_id] = self._a * np.log(ranks) + np.log(mass)
        return log_weights


def _top_weighted_pairs(user_law, item_law, n_ratings, generator):
    """Weighted sampling without replacement over all pairs (Gumbel top-k).

    Used when most pairs are wanted: drawing and rejecting repeats would then
    spend most draws on pairs already taken.
    """
    scores = user_law.log_weights()[:, None] + item_law.log_weights()[None, :]
    scores += generator.gumbel(size=scores.shape)
    return np.sort(np.argpartition(-scores.ravel(), n_ratings - 1)[:n_ratings])


def _draw_distinct_pairs(user_law, item_law, n_ratings, generator):
    """Draw weighted pairs, dropping repeats, until `n_ratings` are distinct."""

    def draw_weighted(size):
        users = user_law.draw(size, generator)
        return users * item_law.n + item_law.draw(size, generator)

    def draw_uniform(size):
        return generator.randint(0, user_law.n * item_law.n, size=size, dtype=np.int64)

    keys = np.empty(0, dtype=np.int64)
    keys = _add_distinct_pairs(
        keys, n_ratings, draw_weighted, _MIN_ACCEPTANCE, generator
    )
    # At most half of all pairs are wanted here, so at least half of the
    # uniform draws are new: this loop always ends.
    return _add_distinct_pairs(keys, n_ratings, draw_uniform, 0.0, generator)


def _add_distinct_pairs(keys, n_ratings, draw_keys, min_acceptance, generator):
    """Add new distinct keys from `draw_keys` to the sorted `keys`.

    Stops at `n_ratings` keys, or once the share of new keys in a batch falls
    below `min_acceptance`. Each batch is sized from the previous batch's
    share, so a few batches suffice.
    """
    acceptance = 1.0
    while keys.size < n_ratings and acceptance >= min_acceptance:
        deficit = n_ratings - keys.size
        n_draws = int(deficit / max(acceptance, _MIN_ACCEPTANCE)) + 16
        fresh = _new_keys(_sorted_unique(draw_keys(n_draws)), keys)
        acceptance = fresh.size / n_draws
        if fresh.size > deficit:
            fresh = fresh[_random_mask(fresh.size, deficit, generator)]
        # A stable sort merges the two sorted runs in linear time.
        keys = np.sort(np.concatenate([keys, fresh]), kind="stable")
    return keys


def _random_mask(size, n_true, generator):
    """Return a boolean mask of `size` with `n_true` True values at random."""
    mask = np.zeros(size, dtype=bool)
    mask[generator.permutation(size)[:n_true]] = True
    return mask


def _sorted_unique(values):
    # np.unique is hash based in recent numpy and an order of magnitude slower
    # than sorting on millions of random int64 keys.
    values = np.sort(values)
    is_first = np.empty(values.size, dtype=bool)
    is_first[:1] = True
    np.not_equal(values[1:], values[:-1], out=is_first[1:])
    return values[is_first]


def _new_keys(candidates, keys):
    """Return the sorted `candidates` that are not in the sorted `keys`."""
    if keys.size == 0:
        return candidates
    positions = np.minimum(np.searchsorted(keys, candidates), keys.size - 1)
    return candidates[keys[positions] != candidates]


def _latent_factor_signal(users, items, n_users, n_items, n_factors, generator):
    """Return user bias + item bias + <p_u, q_i>, of unit variance in expectation."""
    bias_scale = np.sqrt(_BIAS_VARIANCE)
    user_bias = generator.normal(scale=bias_scale, size=n_users)
    item_bias = generator.normal(scale=bias_scale, size=n_items)
    # Entries of variance sqrt(v / n_factors) give the dot product the
    # variance v = 1 - 2 * _BIAS_VARIANCE whatever the number of factors.
    factor_scale = ((1 - 2 * _BIAS_VARIANCE) / n_factors) ** 0.25
    user_factors = generator.normal(scale=factor_scale, size=(n_factors, n_users))
    item_factors = generator.normal(scale=factor_scale, size=(n_factors, n_items))

    signal = user_bias[users] + item_bias[items]
    # One factor at a time keeps memory at n_ratings floats rather than
    # n_ratings * n_factors.
    for user_factor, item_factor in zip(user_factors, item_factors, strict=True):
        signal += user_factor[users] * item_factor[items]
    return signal


def _signal_to_ratings(signal, noise, low, high, integer_ratings, generator):
    """Scale the unit-variance signal to `rating_range`, add noise, clip, round."""
    centre, spread = (low + high) / 2, (high - low) / 4
    ratings = signal + noise * generator.standard_normal(signal.size)
    ratings *= spread
    ratings += centre
    if integer_ratings:
        return np.clip(np.rint(ratings), np.ceil(low), np.floor(high))
    return np.clip(ratings, low, high)
