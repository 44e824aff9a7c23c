r"""Top-N ranking metrics for recommenders, with binary relevance.

Each per-user metric compares every user's ranked list of recommended items
(``y_pred``, best first) with the items relevant to that user (``y_true``, such
as the held-out interactions) and returns the mean over users. All of them read
the same boolean hit matrix, built once with vectorised numpy: entry ``(u, r)``
is True when the item at 0-based position ``r`` of user ``u``'s list is
relevant to ``u``.
"""

from itertools import chain
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array

from .._sklearn_compat import Interval, validate_params

_K = [Interval(Integral, 1, None, closed="left")]
_PER_USER = {
    "y_true": ["array-like"],
    "y_pred": ["array-like"],
    "k": _K,
    "sample_weight": ["array-like", None],
}


def _is_list_type(row_type):
    return hasattr(row_type, "__len__") and not issubclass(row_type, (str, bytes))


def _check_list_types(lists, row_types, name):
    """Raise a ValueError naming the first entry of ``lists`` that is no list."""
    if all(map(_is_list_type, row_types)):
        return
    user, row = next(
        (user, row) for user, row in enumerate(lists) if not _is_list_type(type(row))
    )
    raise ValueError(
        f"{name} must hold one array-like of item IDs per user; "
        f"{name}[{user}] is {row!r}."
    )


def _positions(lengths):
    """0-based position of each flattened item within its user's list."""
    starts = np.cumsum(lengths) - lengths
    return np.arange(lengths.sum()) - np.repeat(starts, lengths)


def _item_lists(lists, name, k=None):
    """Flatten one list of item IDs per user, keeping the first ``k`` of each.

    Returns the concatenated items as a 1-D array and the length of each
    user's kept list. A 2-D array, or arrays of a single dtype kind, keep
    their dtype; other lists are joined into an object array, which keeps IDs of
    mixed types distinct where numpy would turn ``1`` into ``"1"``.
    """
    if hasattr(lists, "__array__"):
        array = np.asarray(lists)
        if array.ndim == 2:
            kept = array[:, :k]
            return kept.ravel(), np.full(kept.shape[0], kept.shape[1])
        if array.ndim != 1:
            raise ValueError(
                f"{name} must be a 2-D array or a sequence of lists, one per "
                f"user; got an array of shape {array.shape}."
            )
        lists = array
    # The few distinct row types are checked, not every row, to avoid a loop.
    row_types = set(map(type, lists))
    _check_list_types(lists, row_types, name)
    lengths = np.fromiter(map(len, lists), dtype=np.intp, count=len(lists))
    if row_types == {np.ndarray} and len({row.dtype.kind for row in lists}) == 1:
        # Within one kind (all ints, all strings), numpy changes no ID's value.
        items = np.concatenate(lists, axis=None)
    else:
        items = np.fromiter(
            chain.from_iterable(lists), dtype=object, count=lengths.sum()
        )
    if k is not None and lengths.max(initial=0) > k:
        items = items[_positions(lengths) < k]
        lengths = np.minimum(lengths, k)
    return items, lengths


def _hit_matrix(y_true, y_pred, k):
    """Boolean hit matrix of shape (n_users, width) and the relevant count per user.

    ``width`` is ``k``, or the length of the longest list of ``y_pred`` when
    ``k`` is None. Positions past the end of a short list are misses, and an
    item repeated in a list is a hit only at its first position.
    """
    true_items, true_lengths = _item_lists(y_true, "y_true")
    pred_items, pred_lengths = _item_lists(y_pred, "y_pred", k)
    n_users = len(true_lengths)
    if len(pred_lengths) != n_users:
        raise ValueError(
            "y_true and y_pred must hold one entry per user, got "
            f"len(y_true)={n_users} and len(y_pred)={len(pred_lengths)}."
        )
    # Missing IDs (None, NaN) get code -1 and so are never relevant.
    true_codes, items = pd.Index(true_items, tupleize_cols=False).factorize()
    n_items = max(len(items), 1)
    users = np.repeat(np.arange(n_users), true_lengths)
    known = true_codes >= 0
    # A (user, item) pair is one int64 key, so that set operations are 1-D.
    relevant = pd.unique(users[known] * n_items + true_codes[known])
    n_relevant = np.bincount(relevant // n_items, minlength=n_users)

    pred_codes = items.get_indexer(pred_items)
    users = np.repeat(np.arange(n_users), pred_lengths)
    keys = users * n_items + pred_codes
    candidates = np.flatnonzero(pred_codes >= 0)
    found = candidates[pd.Series(keys[candidates]).isin(relevant).to_numpy()]
    found = found[~pd.Index(keys[found]).duplicated(keep="first")]

    width = pred_lengths.max(initial=1) if k is None else k
    hits = np.zeros((n_users, width), dtype=bool)
    hits[users[found], _positions(pred_lengths)[found]] = True
    return hits, n_relevant


def _evaluated_users(y_true, y_pred, k, sample_weight):
    """Hit matrix, relevant counts and weights of the users with relevant items."""
    hits, n_relevant = _hit_matrix(y_true, y_pred, k)
    evaluated = n_relevant > 0
    if not evaluated.any():
        raise ValueError(
            "y_true holds no relevant item for any user; the metric is undefined."
        )
    if sample_weight is None:
        return hits[evaluated], n_relevant[evaluated], None
    sample_weight = check_array(
        sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
    )
    if sample_weight.shape != n_relevant.shape:
        raise ValueError(
            f"sample_weight must hold one weight per user, shape ({len(n_relevant)},);"
            f" got shape {sample_weight.shape}."
        )
    weights = sample_weight[evaluated]
    if weights.sum() == 0:
        raise ValueError(
            "sample_weight sums to zero over the users with relevant items."
        )
    return hits[evaluated], n_relevant[evaluated], weights


def _mean(scores, weights):
    return float(np.average(scores, weights=weights))


def _discounts(k):
    """1 / log2(r + 1) for the 1-based positions r = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


@validate_params(_PER_USER, prefer_skip_nested_validation=True)
def precision_at_k(y_true, y_pred, *, k=10, sample_weight=None):
    r"""Compute precision at k: the share of the top k that is relevant.

    For a user :math:`u` with relevant items :math:`R_u` and top-k list
    :math:`L_u`,

    .. math::

        P@k(u) = \frac{|L_u \cap R_u|}{k}

    and the result is the mean of :math:`P@k(u)` over users.

    Parameters
    ----------
    y_true : sequence of array-like of length n_users
        The items relevant to each user, such as their held-out interactions.
        Item IDs are any hashables (ints, strings). Users with no relevant
        item are left out of the mean.

    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length. Only the first `k` items of
        a list count; the missing positions of a list shorter than `k` are
        misses, and an item repeated in a list counts at its first position
        only.

    k : int, default=10
        The number of top-ranked items to evaluate. The denominator is always
        `k`, even for lists shorter than `k`.

    sample_weight : array-like of shape (n_users,), default=None
        Per-user weights of the mean. If None, users weigh the same.

    Returns
    -------
    precision : float
        The mean precision at k over the users with relevant items, in
        [0, 1].

    See Also
    --------
    recall_at_k : The share of the relevant items found in the top k.
    average_precision_at_k : Precision averaged over the hit positions.

    Examples
    --------
    >>> from skrec.metrics import precision_at_k
    >>> y_true = [["a", "c"], ["d"]]
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> precision_at_k(y_true, y_pred, k=3)
    0.5
    >>> precision_at_k(y_true, y_pred, k=1)
    0.5
    """
    hits, _, weights = _evaluated_users(y_true, y_pred, k, sample_weight)
    return _mean(hits.sum(axis=1) / k, weights)


@validate_params(_PER_USER, prefer_skip_nested_validation=True)
def recall_at_k(y_true, y_pred, *, k=10, sample_weight=None):
    r"""Compute recall at k: the share of the relevant items found in the top k.

    For a user :math:`u` with relevant items :math:`R_u` and top-k list
    :math:`L_u`,

    .. math::

        R@k(u) = \frac{|L_u \cap R_u|}{|R_u|}

    and the result is the mean of :math:`R@k(u)` over users. A user with more
    than `k` relevant items cannot reach 1.

    Parameters
    ----------
    y_true : sequence of array-like of length n_users
        The items relevant to each user, such as their held-out interactions.
        Item IDs are any hashables (ints, strings). Users with no relevant
        item are left out of the mean.

    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length. Only the first `k` items of
        a list count; the missing positions of a list shorter than `k` are
        misses, and an item repeated in a list counts at its first position
        only.

    k : int, default=10
        The number of top-ranked items to evaluate.

    sample_weight : array-like of shape (n_users,), default=None
        Per-user weights of the mean. If None, users weigh the same.

    Returns
    -------
    recall : float
        The mean recall at k over the users with relevant items, in [0, 1].

    See Also
    --------
    precision_at_k : The share of the top k that is relevant.
    hit_rate_at_k : Whether any relevant item is in the top k.

    Examples
    --------
    >>> from skrec.metrics import recall_at_k
    >>> y_true = [["a", "c"], ["d"]]
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> recall_at_k(y_true, y_pred, k=3)
    1.0
    >>> recall_at_k(y_true, y_pred, k=2)
    0.75
    """
    hits, n_relevant, weights = _evaluated_users(y_true, y_pred, k, sample_weight)
    return _mean(hits.sum(axis=1) / n_relevant, weights)


@validate_params(_PER_USER, prefer_skip_nested_validation=True)
def hit_rate_at_k(y_true, y_pred, *, k=10, sample_weight=None):
    r"""Compute the hit rate at k: the share of users with a relevant item in the top k.

    For a user :math:`u` with relevant items :math:`R_u` and top-k list
    :math:`L_u`,

    .. math::

        HR@k(u) = \mathbb{1}[L_u \cap R_u \neq \emptyset]

    and the result is the mean of :math:`HR@k(u)` over users. With one
    held-out item per user (leave-one-out), it equals :func:`recall_at_k`.

    Parameters
    ----------
    y_true : sequence of array-like of length n_users
        The items relevant to each user, such as their held-out interactions.
        Item IDs are any hashables (ints, strings). Users with no relevant
        item are left out of the mean.

    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length. Only the first `k` items of
        a list count; the missing positions of a list shorter than `k` are
        misses.

    k : int, default=10
        The number of top-ranked items to evaluate.

    sample_weight : array-like of shape (n_users,), default=None
        Per-user weights of the mean. If None, users weigh the same.

    Returns
    -------
    hit_rate : float
        The share of the users with relevant items that have at least one of
        them in their top k, in [0, 1].

    See Also
    --------
    recall_at_k : The share of the relevant items found in the top k.
    reciprocal_rank : How high the first relevant item is ranked.

    Examples
    --------
    >>> from skrec.metrics import hit_rate_at_k
    >>> y_true = [["a", "c"], ["d"]]
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> hit_rate_at_k(y_true, y_pred, k=3)
    1.0
    >>> hit_rate_at_k(y_true, y_pred, k=1)
    0.5
    """
    hits, _, weights = _evaluated_users(y_true, y_pred, k, sample_weight)
    return _mean(hits.any(axis=1), weights)


@validate_params(_PER_USER, prefer_skip_nested_validation=True)
def ndcg_at_k(y_true, y_pred, *, k=10, sample_weight=None):
    r"""Compute the normalized discounted cumulative gain at k, binary relevance.

    A hit at the 1-based position :math:`r` gains :math:`1 / \log_2(r + 1)`.
    For a user :math:`u` with relevant items :math:`R_u`, the gain of the top k
    is divided by the best gain possible, that of a list that starts with
    :math:`\min(k, |R_u|)` relevant items:

    .. math::

        DCG@k(u) = \sum_{r=1}^{k} \frac{\mathbb{1}[L_{u,r} \in R_u]}{\log_2(r + 1)},
        \qquad
        IDCG@k(u) = \sum_{j=1}^{\min(k, |R_u|)} \frac{1}{\log_2(j + 1)},

    :math:`NDCG@k(u) = DCG@k(u) / IDCG@k(u)`, and the result is its mean over
    users.

    Parameters
    ----------
    y_true : sequence of array-like of length n_users
        The items relevant to each user, such as their held-out interactions.
        Item IDs are any hashables (ints, strings). Users with no relevant
        item are left out of the mean.

    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length. Only the first `k` items of
        a list count; the missing positions of a list shorter than `k` are
        misses, and an item repeated in a list counts at its first position
        only.

    k : int, default=10
        The number of top-ranked items to evaluate.

    sample_weight : array-like of shape (n_users,), default=None
        Per-user weights of the mean. If None, users weigh the same.

    Returns
    -------
    ndcg : float
        The mean NDCG at k over the users with relevant items, in [0, 1].

    See Also
    --------
    sklearn.metrics.ndcg_score : NDCG from a matrix of graded relevance and
        a matrix of scores.

    References
    ----------
    .. [1] K. Järvelin and J. Kekäläinen, "Cumulated gain-based evaluation of
       IR techniques", ACM Transactions on Information Systems (TOIS), 20(4),
       422-446, 2002.

    Examples
    --------
    >>> from skrec.metrics import ndcg_at_k
    >>> y_true = [["a", "c"], ["d"]]
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> ndcg_at_k(y_true, y_pred, k=3)
    0.775...
    """
    hits, n_relevant, weights = _evaluated_users(y_true, y_pred, k, sample_weight)
    discounts = _discounts(k)
    ideal = np.cumsum(discounts)[np.minimum(k, n_relevant) - 1]
    return _mean(hits @ discounts / ideal, weights)


@validate_params(_PER_USER, prefer_skip_nested_validation=True)
def average_precision_at_k(y_true, y_pred, *, k=10, sample_weight=None):
    r"""Compute the mean average precision at k (MAP@k).

    For a user :math:`u` with relevant items :math:`R_u`, average precision
    sums the precision at each hit position :math:`r \le k` and divides by the
    most hits the top k can hold:

    .. math::

        AP@k(u) = \frac{1}{\min(k, |R_u|)}
        \sum_{r=1}^{k} P@r(u) \, \mathbb{1}[L_{u,r} \in R_u]

    and the result, MAP@k, is the mean of :math:`AP@k(u)` over users.

    Parameters
    ----------
    y_true : sequence of array-like of length n_users
        The items relevant to each user, such as their held-out interactions.
        Item IDs are any hashables (ints, strings). Users with no relevant
        item are left out of the mean.

    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length. Only the first `k` items of
        a list count; the missing positions of a list shorter than `k` are
        misses, and an item repeated in a list counts at its first position
        only.

    k : int, default=10
        The number of top-ranked items to evaluate.

    sample_weight : array-like of shape (n_users,), default=None
        Per-user weights of the mean. If None, users weigh the same.

    Returns
    -------
    average_precision : float
        The mean average precision at k over the users with relevant items,
        in [0, 1].

    See Also
    --------
    precision_at_k : The share of the top k that is relevant.
    ndcg_at_k : Hits discounted by the log of their position.

    Examples
    --------
    >>> from skrec.metrics import average_precision_at_k
    >>> y_true = [["a", "c"], ["d"]]
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> average_precision_at_k(y_true, y_pred, k=3)
    0.666...
    """
    hits, n_relevant, weights = _evaluated_users(y_true, y_pred, k, sample_weight)
    precision_at_hits = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    summed = np.where(hits, precision_at_hits, 0.0).sum(axis=1)
    return _mean(summed / np.minimum(k, n_relevant), weights)


@validate_params(
    {**_PER_USER, "k": [*_K, None]},
    prefer_skip_nested_validation=True,
)
def reciprocal_rank(y_true, y_pred, *, k=None, sample_weight=None):
    r"""Compute the mean reciprocal rank (MRR) of the first relevant item.

    For a user :math:`u` whose first relevant item sits at the 1-based
    position :math:`r_u` of the list,

    .. math::

        RR(u) = \begin{cases} 1 / r_u & \text{if } r_u \le k \\
        0 & \text{otherwise,} \end{cases}

    and the result, MRR, is the mean of :math:`RR(u)` over users.

    Parameters
    ----------
    y_true : sequence of array-like of length n_users
        The items relevant to each user, such as their held-out interactions.
        Item IDs are any hashables (ints, strings). Users with no relevant
        item are left out of the mean.

    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length; a user with no relevant
        item in the list scores 0.

    k : int, default=None
        Only the first `k` items of each list count. If None, whole lists
        count.

    sample_weight : array-like of shape (n_users,), default=None
        Per-user weights of the mean. If None, users weigh the same.

    Returns
    -------
    reciprocal_rank : float
        The mean reciprocal rank over the users with relevant items, in
        [0, 1].

    See Also
    --------
    hit_rate_at_k : Whether any relevant item is in the top k.
    ndcg_at_k : Hits discounted by the log of their position.

    Examples
    --------
    >>> from skrec.metrics import reciprocal_rank
    >>> y_true = [["a", "c"], ["d"]]
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> reciprocal_rank(y_true, y_pred)
    0.75
    >>> reciprocal_rank(y_true, y_pred, k=1)
    0.5
    """
    hits, _, weights = _evaluated_users(y_true, y_pred, k, sample_weight)
    first_hit = hits.argmax(axis=1) + 1
    return _mean(np.where(hits.any(axis=1), 1.0 / first_hit, 0.0), weights)


@validate_params(
    {"y_pred": ["array-like"], "catalog": ["array-like"], "k": _K},
    prefer_skip_nested_validation=True,
)
def catalog_coverage(y_pred, catalog, *, k=10):
    r"""Compute the share of the catalogue recommended to at least one user.

    With :math:`I` the catalogue and :math:`L_u` the top-k list of user
    :math:`u`,

    .. math::

        \text{coverage}@k = \frac{|I \cap \bigcup_u L_u|}{|I|}.

    Parameters
    ----------
    y_pred : array-like of shape (n_users, n_ranked) or sequence of array-like
        The items recommended to each user, best first, such as the output of
        ``recommend``. Lists may differ in length. Only the first `k` items of
        each list count.

    catalog : array-like of shape (n_items,)
        The IDs of all the items that could be recommended. Repeated IDs count
        once; recommended items outside the catalogue are ignored.

    k : int, default=10
        The number of top-ranked items of each list to consider.

    Returns
    -------
    coverage : float
        The share of the catalogue items that appear in at least one top k,
        in [0, 1].

    See Also
    --------
    hit_rate_at_k : The share of users with a relevant item in the top k.

    Examples
    --------
    >>> from skrec.metrics import catalog_coverage
    >>> y_pred = [["a", "b", "c"], ["b", "d", "e"]]
    >>> catalog_coverage(y_pred, ["a", "b", "c", "d", "e", "f", "g", "h"], k=2)
    0.375
    """
    if not hasattr(catalog, "__array__"):
        catalog = list(catalog)
    elif np.ndim(catalog) != 1:
        raise ValueError(
            "catalog must be 1-D, one ID per item; got an array of shape "
            f"{np.shape(catalog)}."
        )
    catalog = pd.Index(catalog, tupleize_cols=False).unique()
    if len(catalog) == 0:
        raise ValueError("catalog must hold at least one item ID; got none.")
    pred_items, _ = _item_lists(y_pred, "y_pred", k)
    codes = catalog.get_indexer(pred_items)
    recommended = np.zeros(len(catalog), dtype=bool)
    recommended[codes[codes >= 0]] = True
    return float(recommended.mean())
