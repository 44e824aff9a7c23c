import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score

from skrec import NeuralRecommender, PopularityRecommender
from skrec.datasets import make_ratings
from skrec.metrics import make_ranking_scorer
from skrec.model_selection import LeavePerUserOut

TRAIN = pd.DataFrame(
    {"user_id": [1, 1, 2, 2, 3, 3, 3], "item_id": ["a", "b", "a", "c", "a", "b", "c"]}
)


def test_scorer_by_hand():
    # Popularity: a (3) > b (2) = c (2) > d (1), ties by item order.
    train = pd.concat([TRAIN, pd.DataFrame({"user_id": [3], "item_id": ["d"]})])
    est = PopularityRecommender().fit(train)
    # Unseen items ranked: user 1 -> c, d; user 2 -> b, d; unknown user 9 -> a, b.
    test = pd.DataFrame({"user_id": [1, 2, 2, 9], "item_id": ["d", "b", "d", "b"]})
    hit_rate = make_ranking_scorer("hit_rate", k=1)(est, test)
    assert hit_rate == pytest.approx((0 + 1 + 0) / 3)
    recall = make_ranking_scorer("recall", k=2)(est, test)
    assert recall == pytest.approx((1 + 1 + 1) / 3)
    ndcg = make_ranking_scorer("ndcg", k=2)(est, test)
    user_1 = (1 / np.log2(3)) / 1
    assert ndcg == pytest.approx((user_1 + 1 + 1 / np.log2(3)) / 3)


def test_unknown_metric_is_rejected():
    with pytest.raises(ValueError, match="metric='auc' is not a ranking metric"):
        make_ranking_scorer("auc")


def test_implicit_score_is_ndcg_at_10():
    X, _ = make_ratings(
        n_users=40, n_items=30, n_ratings=500, as_frame=True, random_state=0
    )
    train, test = X.iloc[:400], X.iloc[400:]
    est = NeuralRecommender(embedding_dim=4, loss="bce", max_iter=5, random_state=0)
    est.fit(train)
    assert est.score(test) == make_ranking_scorer("ndcg", k=10)(est, test)
    assert 0 < est.score(test) <= 1


def test_ranking_scorer_in_grid_search_and_cross_validation():
    X, _ = make_ratings(
        n_users=40, n_items=30, n_ratings=500, as_frame=True, random_state=0
    )
    cv = LeavePerUserOut(n=2, n_splits=2, random_state=0)
    search = GridSearchCV(
        NeuralRecommender(embedding_dim=4, loss="bce", max_iter=3, random_state=0),
        {"alpha": [1.0, 50.0]},
        cv=cv,
        scoring=make_ranking_scorer("hit_rate", k=10),
    ).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    popularity = cross_val_score(
        PopularityRecommender(), X, cv=cv, scoring=make_ranking_scorer("ndcg")
    )
    assert popularity.shape == (2,) and (popularity > 0).all()
