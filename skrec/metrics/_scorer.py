"""Ranking scorers for GridSearchCV and cross_val_score."""

import inspect
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._encoding import encode_ids
from .._validation import as_table_input, column_position, validate_table
from ._ranking import (
    average_precision_at_k,
    hit_rate_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)

RANKING_METRICS = {
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
    "precision": precision_at_k,
    "recall": recall_at_k,
    "average_precision": average_precision_at_k,
    "reciprocal_rank": reciprocal_rank,
}
# Per held-out row, the metric given its rank among the sampled items.
SAMPLED_METRICS = {
    "ndcg": lambda rank, k: np.where(rank <= k, 1 / np.log2(rank + 1), 0.0),
    "hit_rate": lambda rank, k: (rank <= k).astype(float),
    "reciprocal_rank": lambda rank, k: np.where(rank <= k, 1 / rank, 0.0),
}
# Random keys drawn per chunk when sampling items: bounds the sampler's memory.
SAMPLING_KEYS_PER_CHUNK = 1 << 22


class RankingScorer:
    """Scorer of a recommender that ranks items for the users of held-out rows.

    Called as ``scorer(estimator, X_test, y_test=None)``, as scikit-learn calls
    a scorer. By default (full ranking) every user of ``X_test`` gets
    ``estimator.recommend(users, n=k, exclude_seen=True)``, so the items seen in
    fit are never counted, and the list is compared with that user's items in
    ``X_test``. With ``n_sampled=m`` (sampled ranking) each row of ``X_test``
    is instead ranked among ``m`` items drawn for its user. Higher is better.

    Parameters
    ----------
    metric : {"ndcg", "hit_rate", "precision", "recall", "average_precision", \
"reciprocal_rank"}, default="ndcg"
        The metric of :mod:`skrec.metrics` to average over users. Sampled
        ranking supports "ndcg", "hit_rate" and "reciprocal_rank".

    k : int, default=10
        Length of the ranked lists.

    exclude_seen : bool, default=True
        Leave the items each user interacted with in fit out of the ranking.

    n_sampled : int, default=None
        If None, rank all items. Otherwise rank each held-out row's item among
        ``n_sampled`` items drawn uniformly, without replacement, from the
        items of fit that the row's user interacted with neither in fit nor in
        ``X_test``.

    random_state : int, RandomState instance or None, default=None
        Seeds the sampled items. Pass an int to score every model against the
        same samples.

    See Also
    --------
    make_ranking_scorer : Make a scorer for any of the ranking metrics.
    ndcg_scorer : Make the NDCG@k scorer.

    Examples
    --------
    >>> from skrec import PopularityRecommender
    >>> from skrec.metrics import make_ranking_scorer
    >>> train = [["ann", "up"], ["bob", "up"], ["bob", "heat"], ["eve", "jaws"]]
    >>> est = PopularityRecommender().fit(train)
    >>> make_ranking_scorer("hit_rate", k=1)(est, [["ann", "heat"], ["eve", "up"]])
    1.0
    """

    def __init__(
        self, metric="ndcg", k=10, exclude_seen=True, n_sampled=None, random_state=None
    ):
        if metric not in RANKING_METRICS:
            raise ValueError(
                f"metric={metric!r} is not a ranking metric; use one of "
                f"{sorted(RANKING_METRICS)}."
            )
        if n_sampled is not None:
            if metric not in SAMPLED_METRICS:
                raise ValueError(
                    f"metric={metric!r} is undefined for one item ranked among "
                    f"n_sampled items; use one of {sorted(SAMPLED_METRICS)}."
                )
            if (
                isinstance(n_sampled, bool)
                or not isinstance(n_sampled, Integral)
                or n_sampled < 1
            ):
                raise ValueError(
                    f"n_sampled must be a positive int or None, got {n_sampled!r}."
                )
        self.metric = metric
        self.k = k
        self.exclude_seen = exclude_seen
        self.n_sampled = n_sampled
        self.random_state = random_state

    def __call__(self, estimator, X, y=None):
        X = as_table_input(X)
        if self.n_sampled is not None:
            return self._sampled_score(estimator, X)
        users, items = validate_table(estimator, X, reset=False)[:2]
        relevant = pd.Series(items.to_numpy()).groupby(users.to_numpy(), sort=False)
        held_out = relevant.unique()
        recommended = estimator.recommend(
            held_out.index.to_numpy(),
            n=self.k,
            exclude_seen=self.exclude_seen,
            **_exact_ranking(estimator),
        )
        return RANKING_METRICS[self.metric](
            list(held_out.to_numpy()), recommended, k=self.k
        )

    def _sampled_score(self, estimator, X):
        users, items = validate_table(estimator, X, reset=False)[:2]
        user_codes = encode_ids(users, estimator.users_)
        item_codes = encode_ids(items, estimator.items_)
        row_user, distinct_users = pd.factorize(users)
        sampled = sample_unseen_items(
            estimator.user_items_,
            _fit_rows(user_codes, row_user, len(distinct_users)),
            row_user,
            item_codes,
            self.n_sampled,
            check_random_state(self.random_state),
        )
        positive = estimator.predict(X)
        negatives = estimator.predict(
            _with_items(estimator, X, estimator.items_[sampled[row_user] - 1])
        ).reshape(len(positive), self.n_sampled)
        # Ties count half, so that equal scores (popularity counts, a constant
        # model) neither help nor hurt.
        rank = (
            1
            + (negatives > positive[:, None]).sum(axis=1)
            + 0.5 * (negatives == positive[:, None]).sum(axis=1)
        )
        per_row = SAMPLED_METRICS[self.metric](rank, self.k)
        per_user = np.bincount(row_user, weights=per_row) / np.bincount(row_user)
        return float(per_user.mean())

    def __repr__(self):
        sampled = (
            ""
            if self.n_sampled is None
            else f", n_sampled={self.n_sampled}, random_state={self.random_state!r}"
        )
        return f"make_ranking_scorer({self.metric!r}, k={self.k}{sampled})"


def _fit_rows(user_codes, row_user, n_users):
    """Row of ``user_items_`` of each distinct test user; -1 if unseen in fit."""
    rows = np.full(n_users, -1, dtype=np.int64)
    rows[row_user] = user_codes - 1
    return rows


def _with_items(estimator, X, items):
    """``X`` with each row repeated once per column of ``items``, which it gets.

    The other columns, side features included, are kept: they describe the
    context in which the user met the held-out item.
    """
    n_sampled = items.shape[1]
    if isinstance(X, pd.DataFrame):
        position = column_position(estimator, "item_col", list(X.columns), X.shape[1])
        repeated = X.iloc[np.repeat(np.arange(len(X)), n_sampled)].reset_index(
            drop=True
        )
        column = repeated.columns[position]
        repeated[column] = items.ravel()
        return repeated
    X = np.asarray(X)
    repeated = np.repeat(X, n_sampled, axis=0)
    if not np.can_cast(items.dtype, repeated.dtype, casting="same_kind"):
        repeated = repeated.astype(object)
    repeated[:, column_position(estimator, "item_col", None, X.shape[1])] = (
        items.ravel()
    )
    return repeated


def sample_unseen_items(seen, fit_rows, row_user, item_codes, n_sampled, rng):
    """Draw ``n_sampled`` item codes per user, none the user interacted with.

    Parameters
    ----------
    seen : scipy.sparse.csr_matrix of shape (n_fit_users, n_items)
        The pairs of fit.
    fit_rows : ndarray of shape (n_users,)
        Each user's row of ``seen``, -1 for a user unseen in fit.
    row_user, item_codes : ndarray of shape (n_rows,)
        The user (index into ``fit_rows``) and item code of each held-out row,
        also left out of the draw; code 0 (an unknown item) is ignored.
    n_sampled : int
    rng : numpy.random.RandomState

    Returns
    -------
    codes : ndarray of shape (n_users, n_sampled)
        Item codes, 1-based as in the estimator's tables.
    """
    n_users, n_items = len(fit_rows), seen.shape[1]
    chunk = max(1, SAMPLING_KEYS_PER_CHUNK // max(n_items, 1))
    codes = np.empty((n_users, n_sampled), dtype=np.int64)
    known_items = item_codes > 0
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        rows = fit_rows[start:stop]
        # Uniform without replacement: the smallest random keys, after the
        # user's own items get +inf.
        keys = rng.random_sample((stop - start, n_items))
        interacted = seen[rows.clip(min=0)].toarray().astype(bool)
        interacted[rows < 0] = False
        in_chunk = known_items & (row_user >= start) & (row_user < stop)
        interacted[row_user[in_chunk] - start, item_codes[in_chunk] - 1] = True
        fewest = int((~interacted).sum(axis=1).min())
        if fewest < n_sampled:
            raise ValueError(
                f"n_sampled={n_sampled} is more than the {fewest} items some user "
                "has not interacted with; lower n_sampled."
            )
        keys[interacted] = np.inf
        codes[start:stop] = (
            1 + np.argpartition(keys, n_sampled - 1, axis=1)[:, :n_sampled]
        )
    return codes


def make_ranking_scorer(
    metric="ndcg", *, k=10, exclude_seen=True, n_sampled=None, random_state=None
):
    """Make a scorer that ranks items for the users of the held-out rows.

    Use it as ``scoring=`` in ``GridSearchCV`` or ``cross_val_score`` with any
    skrec estimator that has ``recommend``.

    Parameters
    ----------
    metric : str, default="ndcg"
        One of "ndcg", "hit_rate", "precision", "recall", "average_precision",
        "reciprocal_rank"; with ``n_sampled``, one of "ndcg", "hit_rate",
        "reciprocal_rank".

    k : int, default=10
        Length of the ranked lists.

    exclude_seen : bool, default=True
        Leave the items each user interacted with in fit out of the ranking.

    n_sampled : int, default=None
        If None (full ranking), each user ranks every item of fit, and the
        top ``k`` is compared with the user's rows of ``X_test``. Otherwise
        (sampled ranking, the protocol of He et al.'s NCF), each row of
        ``X_test`` ranks its item among ``n_sampled`` items drawn uniformly
        without replacement from the items its user interacted with neither in
        fit nor in ``X_test``: the item's 1-based rank is one plus the number
        of sampled items scored higher (ties count half), and the metric of
        that rank is averaged over the user's rows, then over users.

    random_state : int, RandomState instance or None, default=None
        Seeds the sampled items; only with ``n_sampled``.

    Returns
    -------
    scorer : RankingScorer
        Callable as ``scorer(estimator, X_test, y_test=None)``.

    See Also
    --------
    ndcg_scorer : The NDCG@k scorer.

    Notes
    -----
    Sampled ranking is cheap, and its figures are much higher than full
    ranking's (hit rates of 0.5 to 0.7 at k=10 with 99 sampled items where the
    same model finds 0.05 to 0.1 of the held-out items among all items). They
    are also biased: Krichene and Rendle (2020) show that sampled metrics can
    order models differently from the full metrics they stand for. A uniform
    sample of 99 items rarely holds the few items that outrank the held-out
    one in a full ranking, so a sampled hit rate at k measures something
    closer to the AUC (how the item fares against a typical item) than to
    the top of the list. Prefer full ranking to choose models; report sampled
    figures only to compare with work that uses them, with the same
    ``n_sampled``.

    References
    ----------
    .. [1] X. He, L. Liao, H. Zhang, L. Nie, X. Hu and T.-S. Chua, "Neural
       Collaborative Filtering", WWW 2017.
    .. [2] W. Krichene and S. Rendle, "On Sampled Metrics for Item
       Recommendation", KDD 2020.

    Examples
    --------
    >>> from skrec.metrics import make_ranking_scorer
    >>> make_ranking_scorer("hit_rate", k=5)
    make_ranking_scorer('hit_rate', k=5)
    >>> make_ranking_scorer("ndcg", n_sampled=99, random_state=0)
    make_ranking_scorer('ndcg', k=10, n_sampled=99, random_state=0)
    """
    return RankingScorer(metric, k, exclude_seen, n_sampled, random_state)


def ndcg_scorer(*, k=10, n_sampled=None, random_state=None):
    """Make the NDCG@k scorer: ``make_ranking_scorer("ndcg", k=k, ...)``.

    Parameters
    ----------
    k : int, default=10
        Length of the ranked lists.

    n_sampled : int, default=None
        Full ranking if None; else the number of sampled items each held-out
        item is ranked among (see :func:`make_ranking_scorer`).

    random_state : int, RandomState instance or None, default=None
        Seeds the sampled items; only with ``n_sampled``.

    Returns
    -------
    scorer : RankingScorer
        Callable as ``scorer(estimator, X_test, y_test=None)``.

    See Also
    --------
    make_ranking_scorer : Scorers for every ranking metric.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skrec import NeuralRecommender
    >>> from skrec.metrics import ndcg_scorer
    >>> from skrec.model_selection import LeavePerUserOut
    >>> search = GridSearchCV(
    ...     NeuralRecommender(loss="bce"),
    ...     {"alpha": [1.0, 10.0]},
    ...     cv=LeavePerUserOut(n=1, n_splits=3),
    ...     scoring=ndcg_scorer(k=10),
    ... )
    """
    return RankingScorer("ndcg", k, True, n_sampled, random_state)


def _exact_ranking(estimator):
    """``method="exact"`` for a ``recommend`` that takes a ranking method:
    a score must not depend on an approximate index."""
    parameters = inspect.signature(estimator.recommend).parameters
    return {"method": "exact"} if "method" in parameters else {}
