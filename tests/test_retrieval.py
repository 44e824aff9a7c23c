"""recommend(method=...): approximate top-n through the faiss item index."""

import copy
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

import skrec._retrieval as retrieval
from skrec import (
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
    SequentialRecommender,
)
from skrec._engine._retrieval import _probe_ladder
from skrec.datasets import make_ratings

try:
    import faiss  # noqa: F401

    HAS_FAISS = True
except ImportError:
    HAS_FAISS = False
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason='needs pip install "skrec[ann]"')

SMALL = dict(embedding_dim=8, max_iter=5, random_state=0)
# Every model whose scores are inner products of a user and an item vector.
DOT_PRODUCT_MODELS = {
    "mf-bce": lambda: MatrixFactorization(**SMALL, loss="bce"),
    "mf-softmax": lambda: MatrixFactorization(**SMALL, loss="softmax"),
    "mf-ratings": lambda: MatrixFactorization(**SMALL),
    "mf-no-biases": lambda: MatrixFactorization(**SMALL, loss="bce", biases=False),
    "gmf": lambda: NeuralRecommender(**SMALL, architecture="gmf", loss="bce"),
    "svdpp": lambda: NeuralRecommender(**SMALL, architecture="svdpp", loss="bce"),
    "svdpp_user": lambda: NeuralRecommender(
        **SMALL, architecture="svdpp_user", loss="softmax"
    ),
    "neumf-linear": lambda: NeuralRecommender(
        **SMALL, architecture="neumf", hidden_layer_sizes=(), loss="bce"
    ),
    "sasrec": lambda: SequentialRecommender(**SMALL, architecture="sasrec"),
    "gru": lambda: SequentialRecommender(**SMALL, architecture="gru"),
    "cnn": lambda: SequentialRecommender(**SMALL, architecture="cnn"),
}
MLP_MODELS = {
    "neumf": lambda: NeuralRecommender(**SMALL, architecture="neumf", loss="bce"),
    "mlp": lambda: NeuralRecommender(**SMALL, architecture="mlp", loss="bce"),
}


def model(name, X):
    """The model ``name`` fitted on ``X``, fitted once per test session and
    copied (without its index) for each test."""
    key = (name, len(X))
    if key not in FITTED:
        FITTED[key] = fitted({**DOT_PRODUCT_MODELS, **MLP_MODELS}[name], X)
    return copy.deepcopy(FITTED[key])


FITTED = {}


def fitted(make, X, y=None):
    """``make()`` fitted on ``X``; with the ratings ``y`` if it fits ratings
    (loss="mse"), as implicit feedback otherwise."""
    est = make()
    if getattr(est, "loss", None) == "mse" and y is None:
        y = RATINGS[len(X)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def ratings(n_users, n_items, n_ratings):
    X, y = make_ratings(
        n_users=n_users, n_items=n_items, n_ratings=n_ratings, random_state=0
    )
    RATINGS[len(X)] = y
    return X


# The ratings of each data set of the tests, by number of rows.
RATINGS = {}


@pytest.fixture(scope="module")
def small():
    """60 users, 40 items: the index is one flat list, searched exhaustively."""
    return ratings(60, 40, 900)


@pytest.fixture(scope="module")
def moderate():
    """300 users, 2,000 items: an inverted file of 51 lists."""
    return ratings(300, 2000, 12_000)


def users_of(X):
    return np.unique(X[:, 0])


def assert_same_ranking(found, expected):
    """The same model scores, and the same items wherever no other item of
    the row has the same score (ties may come in either order, and the last
    item may tie with one left out)."""
    np.testing.assert_allclose(found[1], expected[1], rtol=1e-5, atol=1e-5)
    scores = found[1]
    tied = np.isclose(scores[:, 1:], scores[:, :-1], rtol=1e-5, atol=1e-5)
    alone = ~np.isclose(scores, scores[:, -1:], rtol=1e-5, atol=1e-5)
    alone[:, 1:] &= ~tied
    alone[:, :-1] &= ~tied
    np.testing.assert_array_equal(found[0][alone], expected[0][alone])


def recall(found, expected):
    return np.mean(
        [len(set(a) & set(b)) / len(b) for a, b in zip(found, expected, strict=True)]
    )


@needs_faiss
@pytest.mark.parametrize("name", list(DOT_PRODUCT_MODELS))
def test_approximate_is_exact_on_a_small_catalog(name, small):
    est = model(name, small)
    users = list(users_of(small)) + ["a new user"]
    options = dict(n=5, return_scores=True)
    exact = est.recommend(users, method="exact", **options)
    found = est.recommend(users, method="approximate", **options)
    assert found[0].shape == exact[0].shape and found[0].dtype == exact[0].dtype
    assert found[1].dtype == exact[1].dtype
    assert est._item_index.index.n_lists == 1
    assert_same_ranking(found, exact)


@needs_faiss
@pytest.mark.parametrize("name", ["mf-softmax", "svdpp", "sasrec"])
def test_exhaustive_index_settings_rank_exactly(name, moderate, monkeypatch):
    # A recall target out of reach: the calibration scans every list.
    monkeypatch.setattr(retrieval, "TARGET_RECALL", 1.5)
    est = model(name, moderate)
    users = users_of(moderate)
    exact = est.recommend(users, method="exact", return_scores=True)
    found = est.recommend(users, method="approximate", return_scores=True)
    index = est._item_index.index
    assert index.n_lists > 1 and index.n_probe == index.n_lists
    assert_same_ranking(found, exact)


@needs_faiss
@pytest.mark.parametrize("name", ["mf-bce", "mf-softmax", "gmf", "svdpp", "sasrec"])
def test_recall_on_a_moderate_catalog(name, moderate):
    est = model(name, moderate)
    users = users_of(moderate)
    found = est.recommend(users, method="approximate")
    assert est._item_index.index.n_lists > 1
    assert recall(found, est.recommend(users, method="exact")) >= 0.9


@needs_faiss
@pytest.mark.parametrize("name", list(MLP_MODELS))
def test_mlp_candidates_are_rescored_by_the_model(name, moderate):
    est = model(name, moderate)
    users = users_of(moderate)
    exact = est.recommend(users, method="exact")
    found, scores = est.recommend(users, method="approximate", return_scores=True)
    assert not est._item_index.exact
    # The first-order expansion of the MLP chooses 20 candidates per item.
    assert recall(found, exact) >= 0.8
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@needs_faiss
@pytest.mark.parametrize("name", ["mf-bce", "neumf", "sasrec"])
def test_scores_are_the_model_scores_of_the_items(name, moderate):
    est = model(name, moderate)
    users = users_of(moderate)[:40]
    found, scores = est.recommend(users, method="approximate", return_scores=True)
    every_item, every_score = est.recommend(
        users, n=len(est.items_), exclude_seen=False, method="exact", return_scores=True
    )
    for row in range(len(users)):
        model_scores = dict(zip(every_item[row], every_score[row], strict=True))
        expected = [model_scores[item] for item in found[row]]
        np.testing.assert_allclose(scores[row], expected, rtol=1e-5, atol=1e-5)


@needs_faiss
@pytest.mark.parametrize("name", ["mf-bce", "neumf", "gru"])
def test_seen_items_are_left_out(name, moderate):
    est = model(name, moderate)
    users = users_of(moderate)
    found = est.recommend(users, n=20, method="approximate")
    seen = est.user_items_.toarray()
    codes = np.searchsorted(est.items_, found)
    rows = np.searchsorted(est.users_, users)
    assert not seen[rows[:, None], codes].any()
    kept = est.recommend(users, n=20, method="approximate", exclude_seen=False)
    assert seen[rows[:, None], np.searchsorted(est.items_, kept)].any()


@needs_faiss
def test_a_user_with_every_item_seen_gets_them_last_as_in_exact(small):
    X = np.array([[0, item] for item in range(5)] + [[1, 0], [1, 1]])
    est = fitted(lambda: MatrixFactorization(**SMALL, loss="bce"), X)
    options = dict(n=3, return_scores=True)
    found = est.recommend([0, 1], method="approximate", **options)
    exact = est.recommend([0, 1], method="exact", **options)
    assert np.isneginf(found[1][0]).all()
    assert_same_ranking(found, exact)


@needs_faiss
@pytest.mark.parametrize("share", [0.5, 0.02])
def test_candidates_restrict_the_search(share, moderate):
    est = model("mf-softmax", moderate)
    users = users_of(moderate)
    rng = np.random.default_rng(0)
    items = rng.choice(est.items_, int(share * len(est.items_)), replace=False)
    found = est.recommend(users, method="approximate", items=items)
    exact = est.recommend(users, method="exact", items=items)
    assert np.isin(found, items).all()
    assert recall(found, exact) >= 0.9


@needs_faiss
def test_candidates_on_a_small_catalog_rank_exactly(small):
    est = model("mf-bce", small)
    users, items = users_of(small), np.unique(small[:, 1])[::3]
    options = dict(n=4, items=items, return_scores=True)
    found = est.recommend(users, method="approximate", **options)
    assert_same_ranking(found, est.recommend(users, method="exact", **options))


@needs_faiss
@pytest.mark.parametrize("name", ["mf-bce", "neumf", "sasrec"])
def test_unknown_users_get_the_most_popular_items(name, small):
    est = model(name, small)
    users = ["new", users_of(small)[0], "also new"]
    found = est.recommend(users, n=6, method="approximate", return_scores=True)
    exact = est.recommend(users, n=6, method="exact", return_scores=True)
    for row in (0, 2):
        np.testing.assert_array_equal(found[0][row], exact[0][row])
        np.testing.assert_array_equal(found[1][row], exact[1][row])


@needs_faiss
def test_no_users_give_no_rows(small):
    est = model("mf-bce", small)
    assert est.recommend([], n=3, method="approximate").shape == (0, 3)


@needs_faiss
def test_index_is_kept_and_rebuilt_when_the_model_changes(small, moderate):
    est = model("mf-bce", small)
    users = users_of(small)
    est.recommend(users, method="approximate")
    index = est._item_index
    est.recommend(users[:3], method="approximate")
    assert est._item_index is index
    # A refit on another catalog: a stale index would return its items.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(moderate)
    found = est.recommend(users_of(moderate), method="approximate")
    assert est._item_index is not index
    assert recall(found, est.recommend(users_of(moderate), method="exact")) >= 0.9
    index = est._item_index
    est.partial_fit(moderate)
    est.recommend(users[:3], method="approximate")
    assert est._item_index is not index
    index = est._item_index
    with torch.no_grad():
        est.module_.item_table.weight.mul_(-1.0)
    found = est.recommend(users_of(moderate), method="approximate")
    assert est._item_index is not index
    assert recall(found, est.recommend(users_of(moderate), method="exact")) >= 0.9


@needs_faiss
@pytest.mark.parametrize("name", ["mf-bce", "sasrec"])
def test_index_is_not_pickled_and_rebuilt_after_loading(name, small):
    est = model(name, small)
    users = users_of(small)
    found = est.recommend(users, method="approximate", return_scores=True)
    loaded = pickle.loads(pickle.dumps(est))
    assert hasattr(est, "_item_index") and not hasattr(loaded, "_item_index")
    assert_same_ranking(
        loaded.recommend(users, method="approximate", return_scores=True), found
    )
    assert hasattr(loaded, "_item_index")


@needs_faiss
def test_recommend_next_of_sequences_through_the_index(small):
    est = model("sasrec", small)
    sessions = [[3, 17, 8], [], [10**6], list(range(30)), [5]]
    options = dict(n=4, return_scores=True)
    found = est.recommend_next(sessions, method="approximate", **options)
    assert_same_ranking(found, est.recommend_next(sessions, method="exact", **options))


@pytest.mark.parametrize("method", ["fast", "ann", None, 1])
def test_bad_methods_are_rejected(method, small):
    est = model("mf-bce", small)
    with pytest.raises(ValueError, match="method must be 'auto', 'exact' or 'approx"):
        est.recommend(users_of(small), method=method)


def test_auto_is_exact_on_small_catalogs(small):
    est = model("mf-bce", small)
    users = users_of(small)
    found = est.recommend(users, return_scores=True)
    assert not hasattr(est, "_item_index")
    assert_same_ranking(found, est.recommend(users, method="exact", return_scores=True))


@needs_faiss
def test_auto_uses_the_index_from_the_threshold_on(small, monkeypatch):
    est = model("mf-bce", small)
    monkeypatch.setattr(retrieval, "AUTO_MIN_ITEMS", len(est.items_))
    est.recommend(users_of(small)[:3], items=est.items_[:-1])
    assert not hasattr(est, "_item_index")
    est.recommend(users_of(small)[:3])
    assert hasattr(est, "_item_index")


def test_without_faiss_approximate_says_how_to_install_it(small, monkeypatch):
    est = model("mf-bce", small)
    monkeypatch.setattr(retrieval, "AUTO_MIN_ITEMS", 1)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r'pip install "skrec\[ann\]"'):
        est.recommend(users_of(small), method="approximate")
    # "auto" falls back to exact ranking.
    found = est.recommend(users_of(small))
    np.testing.assert_array_equal(found, est.recommend(users_of(small), method="exact"))


def test_models_without_item_vectors(small):
    # Popularity ranks every user's items alike: no index, whatever the method.
    popular = PopularityRecommender().fit(small)
    np.testing.assert_array_equal(
        popular.recommend(users_of(small), method="approximate"),
        popular.recommend(users_of(small), method="exact"),
    )
    custom = fitted(lambda: NeuralRecommender(**SMALL, loss="bce", module=Dot), small)
    with pytest.raises(ValueError, match="custom network"):
        custom.recommend(users_of(small), method="approximate")
    assert custom.recommend(users_of(small), n=2).shape == (len(users_of(small)), 2)


def test_models_with_row_features_cannot_rank_either_way(small):
    X = np.column_stack([small, np.arange(len(small)) % 3])
    est = fitted(lambda: MatrixFactorization(**SMALL), X, RATINGS[len(X)])
    for method in ("exact", "approximate"):
        with pytest.raises(ValueError, match="per-row side features"):
            est.recommend(users_of(small), method=method)


def test_probe_ladder_steps_by_about_sqrt_2():
    assert _probe_ladder(1) == [1]
    assert _probe_ladder(20) == [1, 2, 3, 4, 6, 8, 12, 16, 20]


class Dot(torch.nn.Module):
    def __init__(self, n_users, n_items, n_features):
        super().__init__()
        self.users = torch.nn.Embedding(n_users, 4)
        self.items = torch.nn.Embedding(n_items, 4)

    def forward(self, users, items, features=None):
        return (self.users(users) * self.items(items)).sum(dim=1)
