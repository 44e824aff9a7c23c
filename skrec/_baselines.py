"""Baselines with NeuralRecommender's X/y: mean, bias and popularity."""

from numbers import Integral, Real

import numpy as np
import torch

from ._base import BaseRecommender
from ._encoding import encode_ids
from ._recommend import RecommendMixin, user_item_matrix
from ._sklearn_compat import Interval, StrOptions
from ._validation import (
    validate_table,
    validate_target,
    validate_weights,
)
from .metrics import make_ranking_scorer


class BaselineRecommender(BaseRecommender):
    """Predict ratings from the global mean and per-user and per-item offsets.

    The reference to beat for any recommender that predicts ratings, as
    :class:`~sklearn.dummy.DummyRegressor` is for regressors. It reads ``X`` and
    ``y`` exactly as :class:`NeuralRecommender` does: each row of ``X`` is a
    (user, item) pair, and ``y`` holds the ratings. Side-feature columns are
    accepted, so that the two estimators are interchangeable in a pipeline or a
    search, but they are ignored.

    The prediction for user ``u`` and item ``i`` is ``mu + b_u + b_i``, where
    ``mu`` is the mean rating and ``strategy`` decides the offsets:

    - ``"global_mean"``: ``b_u = b_i = 0``.
    - ``"user_mean"``: ``b_u = sum(r - mu) / (reg_user + n_u)`` over the
      ``n_u`` ratings of user ``u``, and ``b_i = 0``: the user's mean rating,
      shrunk towards ``mu`` the more the fewer ratings the user has.
      ``reg_user=0`` gives the plain mean of the user's ratings.
    - ``"item_mean"``: the same per item with ``reg_item``, and ``b_u = 0``.
    - ``"biases"``: ``b_u`` and ``b_i`` minimise the squared error plus
      ``reg_user * sum(b_u**2) + reg_item * sum(b_i**2)``, by ``n_iter``
      rounds of alternating least squares from zero offsets, as Surprise's
      ``BaselineOnly`` with ``method="als"`` (Koren, 2010). Each round first
      sets every ``b_i = sum(r - mu - b_u) / (reg_item + n_i)`` over the
      item's ratings, then every ``b_u = sum(r - mu - b_i) / (reg_user + n_u)``
      over the user's ratings.

    Parameters
    ----------
    strategy : {"global_mean", "user_mean", "item_mean", "biases"}, \
            default="biases"
        Which offsets to learn; see above.

    reg_user : float, default=15.0
        Shrinkage of the user offsets: the number of pseudo-ratings at ``mu``
        added to each user's. Used by ``"user_mean"`` and ``"biases"``.

    reg_item : float, default=10.0
        Shrinkage of the item offsets, as ``reg_user``. Used by ``"item_mean"``
        and ``"biases"``.

    n_iter : int, default=10
        Rounds of alternating least squares; used by ``"biases"`` only.

    handle_unknown : {"fallback", "error"}, default="fallback"
        What ``predict`` does with users or items not seen in fit. With
        ``"fallback"`` an unknown ID has offset 0, so an unknown item paired
        with a known user gets ``mu + b_u``, and an unknown pair gets ``mu``.
        ``"error"`` raises ``ValueError`` naming how many users and items were
        unknown.

    user_col, item_col : int or str, default=0 and 1
        Position of the user and item ID columns in ``X``, or their name when
        ``X`` is a DataFrame. IDs may be any ints or strings. All other columns
        must be numeric and are ignored.

    Attributes
    ----------
    global_mean_ : float
        Mean rating ``mu`` seen in fit.

    user_offsets_ : ndarray of shape (n_users,)
        Offset ``b_u`` of each user of ``users_``; zeros with ``"global_mean"``
        and ``"item_mean"``.

    item_offsets_ : ndarray of shape (n_items,)
        Offset ``b_i`` of each item of ``items_``; zeros with ``"global_mean"``
        and ``"user_mean"``.

    users_ : ndarray of shape (n_users,)
        User IDs seen in fit.

    items_ : ndarray of shape (n_items,)
        Item IDs seen in fit.

    n_features_in_ : int
        Number of columns of ``X``, ID columns included.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` when it is a DataFrame with string names.

    See Also
    --------
    NeuralRecommender : Neural recommender with the same ``X`` and ``y``.
    sklearn.dummy.DummyRegressor : Constant predictions for any regression task.

    Notes
    -----
    Predictions are not clipped to the rating range seen in fit: offsets of a
    user and an item that are both far from ``mu`` may add up beyond it.
    Predictions are always finite.

    References
    ----------
    Y. Koren, "Factor in the Neighbors: Scalable and Accurate Collaborative
    Filtering", ACM Transactions on Knowledge Discovery from Data 4(1), 2010.

    Examples
    --------
    >>> from skrec import BaselineRecommender
    >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
    >>> y = [5, 3, 4, 1]
    >>> est = BaselineRecommender(strategy="user_mean", reg_user=0).fit(X, y)
    >>> est.global_mean_
    3.25
    >>> est.user_offsets_
    array([ 0.75, -0.75])
    >>> est.predict([["ann", "heat"], ["eve", "up"]])
    array([4.  , 3.25])
    """

    _parameter_constraints = {
        "strategy": [StrOptions({"global_mean", "user_mean", "item_mean", "biases"})],
        "reg_user": [Interval(Real, 0, None, closed="left")],
        "reg_item": [Interval(Real, 0, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "handle_unknown": [StrOptions({"fallback", "error"})],
        "user_col": [Integral, str],
        "item_col": [Integral, str],
    }

    def __init__(
        self,
        strategy="biases",
        *,
        reg_user=15.0,
        reg_item=10.0,
        n_iter=10,
        handle_unknown="fallback",
        user_col=0,
        item_col=1,
    ):
        self.strategy = strategy
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_iter = n_iter
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col

    def predict(self, X):
        """Predict the rating of each (user, item) row of ``X``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows with the same columns as in fit.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            ``global_mean_`` plus the user's and the item's offsets; not
            clipped.

        Examples
        --------
        >>> from skrec import BaselineRecommender
        >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"], ["bob", "alien"]]
        >>> est = BaselineRecommender(strategy="item_mean", reg_item=0)
        >>> est.fit(X, [5, 3, 4, 1]).predict([["ann", "alien"], ["eve", "up"]])
        array([1. , 4.5])

        An item not seen in fit gets the mean rating:

        >>> est.predict([["ann", "heat"]])
        array([3.25])
        """
        user_codes, item_codes, _ = self._encode_rows(X)
        return (
            self.global_mean_
            + self._user_table[user_codes]
            + self._item_table[item_codes]
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A baseline: it ignores every column but the IDs, and on data where
        # each ID occurs once it predicts about the mean.
        tags.regressor_tags.poor_score = True
        return tags

    def _fit(self, X, y):
        users, items = validate_table(self, X, reset=True, uses_features=False)[:2]
        y = validate_target(y, users, type(self).__name__)
        user_vocabulary, item_vocabulary = self._vocabularies(users, items)
        user_codes = encode_ids(users, user_vocabulary)
        item_codes = encode_ids(items, item_vocabulary)
        global_mean = float(y.mean())
        user_table, item_table = self._offset_tables(
            user_codes,
            len(user_vocabulary),
            item_codes,
            len(item_vocabulary),
            y - global_mean,
        )
        self.global_mean_ = global_mean
        self.users_ = user_vocabulary
        self.items_ = item_vocabulary
        # Row k of a table is the offset of code k, row 0 that of unknown IDs,
        # so predict indexes with the codes directly; the public offsets are
        # views aligned with users_ and items_.
        self._user_table = user_table
        self._item_table = item_table
        self.user_offsets_ = user_table[1:]
        self.item_offsets_ = item_table[1:]

    def _offset_tables(self, user_codes, n_users, item_codes, n_items, residuals):
        user_table = np.zeros(n_users + 1)
        item_table = np.zeros(n_items + 1)
        if self.strategy == "user_mean":
            user_table = _damped_means(user_codes, residuals, n_users, self.reg_user)
        elif self.strategy == "item_mean":
            item_table = _damped_means(item_codes, residuals, n_items, self.reg_item)
        elif self.strategy == "biases":
            for _ in range(self.n_iter):
                item_table = _damped_means(
                    item_codes,
                    residuals - user_table[user_codes],
                    n_items,
                    self.reg_item,
                )
                user_table = _damped_means(
                    user_codes,
                    residuals - item_table[item_codes],
                    n_users,
                    self.reg_user,
                )
        return user_table, item_table


def _damped_means(codes, values, n_ids, reg):
    """``sum(values) / (reg + count)`` per code 0..n_ids; 0 where a code is absent.

    Code 0 (unknown IDs) never occurs in fit, so its offset stays 0, even with
    ``reg=0``.
    """
    sums = np.bincount(codes, weights=values, minlength=n_ids + 1)
    counts = np.bincount(codes, minlength=n_ids + 1)
    return np.divide(sums, reg + counts, out=np.zeros(n_ids + 1), where=counts > 0)


class PopularityRecommender(RecommendMixin, BaseRecommender):
    """Recommend the most popular items: the baseline of implicit feedback.

    The reference to beat for any top-N recommender, as
    :class:`BaselineRecommender` is for rating prediction. It reads ``X`` and
    ``y`` exactly as :class:`NeuralRecommender` with ``loss="bce"`` does: each
    row of ``X`` is an interaction of a user with an item, and ``y``, if given,
    holds non-negative weights of the interactions. Side-feature columns are
    accepted, so that the two estimators are interchangeable in a pipeline or a
    search, but they are ignored.

    The popularity of an item is the sum of the weights of its interactions
    in fit (their number when ``y`` is None). Every user gets the same ranking:
    the most popular items first, items of equal popularity in the order of
    ``items_``.

    Parameters
    ----------
    handle_unknown : {"fallback", "error"}, default="fallback"
        What ``predict`` does with users or items not seen in fit. With
        ``"fallback"`` an unknown item has popularity 0 and an unknown user is
        ignored, as every user is. ``"error"`` raises ``ValueError`` naming how
        many users and items were unknown. ``recommend`` gives unknown users
        the most popular items either way.

    user_col, item_col : int or str, default=0 and 1
        Position of the user and item ID columns in ``X``, or their name when
        ``X`` is a DataFrame. IDs may be any ints or strings. All other columns
        must be numeric and are ignored.

    Attributes
    ----------
    item_popularity_ : ndarray of shape (n_items,)
        Sum of the interaction weights of each item of ``items_``.

    users_ : ndarray of shape (n_users,)
        User IDs seen in fit.

    items_ : ndarray of shape (n_items,)
        Item IDs seen in fit.

    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        1 where a user of ``users_`` interacted with an item of ``items_`` in
        fit: the items that ``recommend`` leaves out with ``exclude_seen``.

    n_features_in_ : int
        Number of columns of ``X``, ID columns included.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of ``X`` when it is a DataFrame with string names.

    See Also
    --------
    NeuralRecommender : Neural recommender; a ranker with ``loss="bce"``.
    BaselineRecommender : Mean and bias baselines for rating prediction.

    Notes
    -----
    An interaction of weight 0 adds nothing to its item's popularity, but its
    item still counts as seen by its user.

    Examples
    --------
    >>> from skrec import PopularityRecommender
    >>> X = [["ann", "up"], ["ann", "jaws"], ["bob", "up"],
    ...      ["cat", "up"], ["cat", "alien"]]
    >>> est = PopularityRecommender().fit(X)
    >>> est.items_
    array(['alien', 'jaws', 'up'], dtype=object)
    >>> est.item_popularity_
    array([1., 1., 3.])
    >>> est.predict([["ann", "alien"], ["eve", "heat"]])
    array([1., 0.])
    >>> est.recommend(["bob", "eve"], n=2)
    array([['alien', 'jaws'],
           ['up', 'alien']], dtype=object)
    """

    _parameter_constraints = {
        "handle_unknown": [StrOptions({"fallback", "error"})],
        "user_col": [Integral, str],
        "item_col": [Integral, str],
    }

    def __init__(self, *, handle_unknown="fallback", user_col=0, item_col=1):
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col

    def predict(self, X):
        """Predict the popularity of the item of each row of ``X``.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows with the same columns as in fit.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            ``item_popularity_`` of each row's item; 0 for items not seen in
            fit.

        Examples
        --------
        >>> from skrec import PopularityRecommender
        >>> X = [["ann", "up"], ["bob", "up"], ["bob", "jaws"]]
        >>> est = PopularityRecommender().fit(X)
        >>> est.predict([["eve", "up"], ["ann", "jaws"], ["ann", "heat"]])
        array([2., 1., 0.])
        """
        _, item_codes, _ = self._encode_rows(X)
        return self._popularity_table[item_codes]

    def score(self, X, y=None, sample_weight=None):
        """Return the mean NDCG@10 of the users of ``X`` on its items.

        Each user of ``X`` ranks every item unseen in fit, and the rows of
        ``X`` are the relevant items, as for :class:`NeuralRecommender` with
        an implicit loss: see :func:`skrec.metrics.make_ranking_scorer`.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Held-out interactions.

        y : array-like of shape (n_samples,), default=None
            Ignored: every row of ``X`` is relevant.

        sample_weight : array-like of shape (n_samples,), default=None
            Ignored.

        Returns
        -------
        score : float
            The mean NDCG@10 over the users of ``X``.

        Examples
        --------
        >>> from skrec import PopularityRecommender
        >>> X = [["ann", "up"], ["bob", "up"], ["bob", "jaws"], ["cat", "alien"]]
        >>> est = PopularityRecommender().fit(X)
        >>> float(est.score([["cat", "up"]]))  # cat's first recommendation
        1.0
        >>> float(est.score([["cat", "jaws"]]))  # his second
        0.63...
        """
        return make_ranking_scorer("ndcg", k=10)(self, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A baseline: it ignores the users and every column but the items, and
        # reads y as weights, never as a target to predict.
        tags.regressor_tags.poor_score = True
        tags.target_tags.required = False
        tags.target_tags.positive_only = True
        return tags

    def _fit(self, X, y):
        users, items = validate_table(self, X, reset=True, uses_features=False)[:2]
        weights = validate_weights(y, users, type(self).__name__)
        user_vocabulary, item_vocabulary = self._vocabularies(users, items)
        user_codes = encode_ids(users, user_vocabulary)
        item_codes = encode_ids(items, item_vocabulary)
        # Row k is the popularity of code k, row 0 that of unknown items.
        popularity_table = np.bincount(
            item_codes, weights=weights, minlength=len(item_vocabulary) + 1
        )
        self.users_ = user_vocabulary
        self.items_ = item_vocabulary
        self.user_items_ = user_item_matrix(
            user_codes, item_codes, len(user_vocabulary), len(item_vocabulary)
        )
        self._popularity_table = popularity_table
        self.item_popularity_ = popularity_table[1:]
        self._rank_scores = _rank_scores(self.item_popularity_)

    def _score_matrix(self, user_codes, item_codes):
        return self._popularity(item_codes).repeat(len(user_codes), 1)

    def _popularity(self, candidates):
        return torch.from_numpy(self._rank_scores[candidates.numpy() - 1])

    def _top_columns(self, codes, candidates, n, exclude_seen, *seen):
        # Rank on the tie-free rank scores, but report popularity; seen items
        # keep their -inf.
        columns, ranks = super()._top_columns(codes, candidates, n, exclude_seen, *seen)
        popularity = torch.from_numpy(self.item_popularity_)[candidates[columns] - 1]
        return columns, torch.where(torch.isinf(ranks), ranks.double(), popularity)


def _rank_scores(popularity):
    """Distinct float32 scores that order items by popularity, then by index.

    torch.topk does not promise an order among equal scores, and no epsilon
    added to the popularity itself survives float32 for every range of weights
    and number of items; ranks do, up to 2**24 items.
    """
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    scores = np.empty(len(popularity), dtype=np.float32)
    scores[order] = np.arange(len(popularity), 0, -1)
    return scores
