"""Ranking scorers for GridSearchCV and cross_val_score."""

import pandas as pd

from .._validation import validate_table
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


class RankingScorer:
    """Scores a recommender by ranking all items for the users of held-out rows.

    Called as ``scorer(estimator, X_test, y_test=None)``, as scikit-learn calls
    a scorer: every user of ``X_test`` gets ``estimator.recommend(users, n=k,
    exclude_seen=True)``, so the items seen in fit are never counted, and the
    list is compared with that user's items in ``X_test``. Higher is better.

    Parameters
    ----------
    metric : {"ndcg", "hit_rate", "precision", "recall", "average_precision", \
"reciprocal_rank"}
        The metric of :mod:`skrec.metrics` to average over users.
    k : int, default=10
        Length of the ranked lists.
    exclude_seen : bool, default=True
        Leave the items each user interacted with in fit out of the ranking.

    Examples
    --------
    >>> from skrec import NeuralRecommender
    >>> from skrec.datasets import make_ratings
    >>> from skrec.metrics import make_ranking_scorer
    >>> X, _ = make_ratings(n_users=30, n_items=20, n_ratings=300, random_state=0)
    >>> est = NeuralRecommender(loss="bce", max_iter=3, random_state=0)
    >>> est = est.fit(X[:250])  # doctest: +SKIP
    >>> make_ranking_scorer("hit_rate", k=5)(est, X[250:])  # doctest: +SKIP
    0.3...
    """

    def __init__(self, metric="ndcg", k=10, exclude_seen=True):
        if metric not in RANKING_METRICS:
            raise ValueError(
                f"metric={metric!r} is not a ranking metric; use one of "
                f"{sorted(RANKING_METRICS)}."
            )
        self.metric = metric
        self.k = k
        self.exclude_seen = exclude_seen

    def __call__(self, estimator, X, y=None):
        users, items, _ = validate_table(estimator, X, reset=False)
        relevant = pd.Series(items.to_numpy()).groupby(users.to_numpy(), sort=False)
        held_out = relevant.unique()
        recommended = estimator.recommend(
            held_out.index.to_numpy(), n=self.k, exclude_seen=self.exclude_seen
        )
        return RANKING_METRICS[self.metric](
            list(held_out.to_numpy()), recommended, k=self.k
        )

    def __repr__(self):
        return f"make_ranking_scorer({self.metric!r}, k={self.k})"


def make_ranking_scorer(metric="ndcg", *, k=10, exclude_seen=True):
    """Make a scorer that ranks all items for the users of the held-out rows.

    Use it as ``scoring=`` in ``GridSearchCV`` or ``cross_val_score`` with any
    skrec estimator that has ``recommend``.

    Parameters
    ----------
    metric : str, default="ndcg"
        One of "ndcg", "hit_rate", "precision", "recall", "average_precision",
        "reciprocal_rank".
    k : int, default=10
        Length of the ranked lists.
    exclude_seen : bool, default=True
        Leave the items each user interacted with in fit out of the ranking.

    Returns
    -------
    scorer : RankingScorer
        Callable as ``scorer(estimator, X_test, y_test=None)``.

    Examples
    --------
    >>> from skrec.metrics import make_ranking_scorer
    >>> make_ranking_scorer("hit_rate", k=5)
    make_ranking_scorer('hit_rate', k=5)
    """
    return RankingScorer(metric, k, exclude_seen)
