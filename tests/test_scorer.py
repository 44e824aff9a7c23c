import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from skrec import NeuralRecommender, PopularityRecommender
from skrec.datasets import make_ratings
from skrec.metrics import make_ranking_scorer, ndcg_scorer
from skrec.model_selection import LeaveLastOut, LeavePerUserOut

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


def popularity_with_d():
    # Popularity: a (3) > b (2) = c (2) > d (1).
    train = pd.concat([TRAIN, pd.DataFrame({"user_id": [3], "item_id": ["d"]})])
    return PopularityRecommender().fit(train)


def test_sampled_scorer_by_hand():
    est = popularity_with_d()
    # n_sampled=1 leaves one choice: the item neither seen in fit nor held out.
    # User 1 (saw a, b): d among {c} -> rank 2. User 2 (saw a, c): b among {d}
    # -> rank 1.
    test = pd.DataFrame({"user_id": [1, 2], "item_id": ["d", "b"]})

    def score(metric, k):
        scorer = make_ranking_scorer(metric, k=k, n_sampled=1, random_state=0)
        return scorer(est, test)

    assert score("hit_rate", 1) == pytest.approx((0 + 1) / 2)
    assert score("hit_rate", 2) == pytest.approx(1.0)
    assert score("ndcg", 2) == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert score("reciprocal_rank", 10) == pytest.approx((1 / 2 + 1) / 2)


def test_sampled_scorer_counts_ties_half():
    train = np.array([[1, 7], [2, 8], [3, 9], [3, 7], [4, 8], [4, 9]])
    est = PopularityRecommender().fit(train)  # every item has 2 interactions
    # User 2 (saw 8) holds out 9; its only free item, 7, ties: rank 1.5.
    test = np.array([[2, 9]])
    scorer = make_ranking_scorer("reciprocal_rank", n_sampled=1, random_state=0)
    assert scorer(est, test) == pytest.approx(1 / 1.5)
    assert make_ranking_scorer("hit_rate", k=1, n_sampled=1)(est, test) == 0.0


def test_sampled_scorer_averages_each_users_rows_first():
    est = popularity_with_d()
    # User 9, unknown in fit, holds out a and d, leaving {b, c} (2 each):
    # a (3) ranks 1 and d (1) ranks 2, mean RR 0.75. User 1 (saw a, b) holds
    # out d, leaving {c}: rank 2, RR 0.5.
    test = pd.DataFrame({"user_id": [9, 9, 1], "item_id": ["a", "d", "d"]})
    scorer = make_ranking_scorer("reciprocal_rank", n_sampled=1, random_state=0)
    assert scorer(est, test) == pytest.approx((0.75 + 0.5) / 2)


def test_sampled_scorer_needs_enough_free_items():
    est = popularity_with_d()
    # User 1 saw a and b; holding out c and d leaves nothing to sample.
    test = pd.DataFrame({"user_id": [1, 1], "item_id": ["c", "d"]})
    with pytest.raises(ValueError, match="n_sampled=1 is more than the 0 items"):
        make_ranking_scorer("hit_rate", n_sampled=1)(est, test)
    test = pd.DataFrame({"user_id": [1], "item_id": ["d"]})
    with pytest.raises(ValueError, match="n_sampled=3 is more than the 1 items"):
        make_ranking_scorer("hit_rate", n_sampled=3)(est, test)


def test_sampled_items_are_unseen_distinct_and_uniform():
    from skrec._recommend import user_item_matrix
    from skrec.metrics._scorer import sample_unseen_items

    n_items = 10
    seen = user_item_matrix(
        np.array([1, 1, 2]), np.array([1, 2, 3]), n_users=2, n_items=n_items
    )
    # Users: fit row 0, fit row 1, and one unseen in fit; user 2 holds out 4.
    fit_rows = np.array([0, 1, -1])
    rng = np.random.RandomState(0)
    draws = np.concatenate(
        [
            sample_unseen_items(seen, fit_rows, np.array([1]), np.array([4]), 3, rng)
            for _ in range(2000)
        ]
    ).reshape(2000, 3, 3)
    user_0, user_1, user_2 = draws[:, 0], draws[:, 1], draws[:, 2]
    assert not np.isin(user_0, [1, 2]).any()
    assert not np.isin(user_1, [3, 4]).any()
    assert ((draws >= 1) & (draws <= n_items)).all()
    assert all(len(set(row)) == 3 for row in draws.reshape(-1, 3))
    # Each of the 8 free items of user 0 is drawn 3 / 8 of the time.
    counts = np.bincount(user_0.ravel(), minlength=n_items + 1)[3:]
    assert np.allclose(counts / 2000, 3 / 8, atol=0.04)
    counts = np.bincount(user_2.ravel(), minlength=n_items + 1)[1:]
    assert np.allclose(counts / 2000, 3 / 10, atol=0.04)


def test_sampled_scorer_keeps_side_features_and_is_seeded():
    X, _ = make_ratings(
        n_users=40, n_items=30, n_ratings=500, as_frame=True, random_state=0
    )
    X["context"] = np.random.RandomState(0).normal(size=len(X))
    train, test = X.iloc[:400], X.iloc[400:]
    est = NeuralRecommender(embedding_dim=4, loss="bce", max_iter=3, random_state=0)
    est.fit(train)
    scorer = make_ranking_scorer("ndcg", n_sampled=5, random_state=0)
    assert scorer(est, test) == scorer(est, test)
    assert 0 < scorer(est, test) <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metric": "recall", "n_sampled": 5}, "metric='recall' is undefined"),
        ({"n_sampled": 0}, "n_sampled must be a positive int or None, got 0"),
        ({"n_sampled": 2.5}, "n_sampled must be a positive int or None, got 2.5"),
    ],
)
def test_invalid_sampled_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_ranking_scorer(**kwargs)


def test_ndcg_scorer_is_the_ndcg_ranking_scorer():
    est = popularity_with_d()
    test = pd.DataFrame({"user_id": [1, 2, 2], "item_id": ["d", "b", "d"]})
    assert ndcg_scorer(k=2)(est, test) == make_ranking_scorer("ndcg", k=2)(est, test)
    sampled = ndcg_scorer(k=2, n_sampled=1, random_state=0)
    expected = "make_ranking_scorer('ndcg', k=2, n_sampled=1, random_state=0)"
    assert repr(sampled) == expected


def test_grid_search_with_leave_last_out_and_ndcg_scorer():
    X, _ = make_ratings(
        n_users=40, n_items=30, n_ratings=500, as_frame=True, random_state=0
    )
    est = NeuralRecommender(embedding_dim=4, loss="bce", max_iter=3, random_state=0)
    search = GridSearchCV(
        est, {"alpha": [1.0, 50.0]}, cv=LeaveLastOut(), scoring=ndcg_scorer(k=10)
    ).fit(X)
    # The search's score is the scorer applied by hand to the same split.
    train, test = next(LeaveLastOut().split(X))
    best = clone(est).set_params(**search.best_params_).fit(X.iloc[train])
    assert search.best_score_ == ndcg_scorer(k=10)(best, X.iloc[test])
    assert 0 < search.best_score_ <= 1
    assert search.cv_results_["mean_test_score"].shape == (2,)


def test_full_ranking_scores_rank_exactly(monkeypatch):
    """A score must not depend on an approximate index: the scorer asks for
    the exact ranking from estimators that offer a choice, and leaves the
    call alone for those that do not."""
    X = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2]})
    model = PopularityRecommender().fit(X)
    methods = []
    recommend = PopularityRecommender.recommend

    def spy(self, users, n=10, **kwargs):
        methods.append(kwargs.get("method"))
        return recommend(self, users, n, **kwargs)

    monkeypatch.setattr(PopularityRecommender, "recommend", spy)
    make_ranking_scorer("hit_rate", k=2)(model, X)
    assert methods == [None]  # spy's signature has no `method`: left alone

    def spy_with_method(self, users, n=10, *, method="auto", **kwargs):
        methods.append(method)
        return recommend(self, users, n, method=method, **kwargs)

    monkeypatch.setattr(PopularityRecommender, "recommend", spy_with_method)
    make_ranking_scorer("hit_rate", k=2)(model, X)
    assert methods[-1] == "exact"
