"""Declared user and item features, custom modules and optional biases."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import make_column_selector

from skrec import MatrixFactorization, NeuralRecommender
from skrec._engine._modules import EmbeddingMLP

SMALL = dict(
    embedding_dim=8,
    hidden_layer_sizes=(16,),
    alpha=5.0,
    batch_size=256,
    max_iter=40,
    random_state=0,
    user_col="user",
    item_col="item",
)
USER_FEATURES = ["group", "age"]
ITEM_FEATURES = ["genre", "year"]


def featured_ratings(n_users=150, n_items=80, n_ratings=5000, seed=0):
    """Ratings driven by how a user's group likes an item's genre.

    Users of group 1 rate genre-1 items 2 points above genre-0 ones and group
    0 users the reverse; ``age`` and ``year`` are noise.
    """
    rng = np.random.RandomState(seed)
    group = rng.randint(2, size=n_users)
    genre = rng.randint(2, size=n_items)
    users = rng.randint(n_users, size=n_ratings)
    items = rng.randint(n_items, size=n_ratings)
    taste = np.where(group[users] == genre[items], 1.0, -1.0)
    y = 3.0 + taste + rng.normal(scale=0.3, size=n_ratings)
    X = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "group": group[users].astype(float),
            "age": (20 + users % 40).astype(float),
            "genre": genre[items].astype(float),
            "year": (1950 + items % 50).astype(float),
        }
    )
    return X, y


@pytest.fixture(scope="module")
def ratings():
    return featured_ratings()


@pytest.fixture(scope="module")
def fitted(ratings):
    X, y = ratings
    est = NeuralRecommender(
        **SMALL, user_features=USER_FEATURES, item_features=ITEM_FEATURES
    )
    return est.fit(X, y)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def all_pairs(X, users):
    """Rows of every (user, item) pair of ``users`` and the items of ``X``."""
    user_rows = X.drop_duplicates("user").set_index("user").loc[users]
    item_rows = X.drop_duplicates("item").sort_values("item")
    pairs = (
        user_rows[USER_FEATURES]
        .reset_index()
        .merge(item_rows[["item", *ITEM_FEATURES]], how="cross")
    )
    return pairs[X.columns]


# -- declared features ----------------------------------------------------------


@pytest.mark.parametrize("architecture", ["neumf", "mlp", "gmf", "mf"])
def test_recommend_scores_every_item_as_predict_does(ratings, architecture):
    X, y = ratings
    est = NeuralRecommender(
        **{**SMALL, "max_iter": 3},
        architecture=architecture,
        user_features=USER_FEATURES,
        item_features=ITEM_FEATURES,
    ).fit(X, y)
    users = [3, 7]
    n_items = X["item"].nunique()
    items, scores = est.recommend(
        users, n=n_items, exclude_seen=False, return_scores=True
    )
    pairs = all_pairs(X, users)
    # predict clips and shifts ratings; the recommended order and the standardised
    # scores must match those of the same pairs scored row by row.
    expected = (est.predict(pairs) - est._y_mean) / est._y_scale
    expected = expected.reshape(len(users), n_items)
    for row in range(len(users)):
        by_item = dict(zip(est.items_, expected[row], strict=True))
        np.testing.assert_allclose(
            scores[row], [by_item[i] for i in items[row]], rtol=1e-4, atol=1e-4
        )


def test_known_ids_use_the_kept_features(fitted, ratings):
    X, _ = ratings
    rows = X.iloc[:50].copy()
    changed = rows.copy()
    changed[USER_FEATURES + ITEM_FEATURES] = 99.0
    np.testing.assert_array_equal(fitted.predict(rows), fitted.predict(changed))


def test_new_user_and_items_are_predicted_from_their_features(fitted):
    rows = pd.DataFrame(
        {
            "user": [10_000, 10_000],
            "item": [20_000, 20_001],
            "group": [1.0, 1.0],
            "age": [30.0, 30.0],
            "genre": [1.0, 0.0],
            "year": [1980.0, 1980.0],
        }
    )
    liked, disliked = fitted.predict(rows)
    # Group 1 users rate genre 1 two points above genre 0.
    assert liked - disliked > 0.5


def test_cold_start_items_beat_the_global_mean_with_features(ratings):
    X, y = ratings
    cold = X["item"] >= 70
    est = NeuralRecommender(
        **SMALL, user_features=USER_FEATURES, item_features=ITEM_FEATURES
    ).fit(X[~cold], y[~cold])
    without = NeuralRecommender(**SMALL).fit(X[~cold][["user", "item"]], y[~cold])
    with_features = rmse(est.predict(X[cold]), y[cold])
    global_mean = rmse(np.full(cold.sum(), y[~cold].mean()), y[cold])
    ids_only = rmse(without.predict(X[cold][["user", "item"]]), y[cold])
    assert with_features < 0.6 * global_mean
    assert with_features < 0.6 * ids_only


def test_features_declared_by_a_column_selector(ratings):
    X, y = ratings
    selected = NeuralRecommender(
        **{**SMALL, "max_iter": 2},
        user_features=make_column_selector(pattern="^(group|age)$"),
        item_features=ITEM_FEATURES,
    ).fit(X, y)
    listed = NeuralRecommender(
        **{**SMALL, "max_iter": 2},
        user_features=USER_FEATURES,
        item_features=ITEM_FEATURES,
    ).fit(X, y)
    np.testing.assert_array_equal(selected.predict(X), listed.predict(X))
    assert selected._n_side_features == (2, 2)


def test_features_declared_by_position_on_arrays(ratings):
    X, y = ratings
    est = NeuralRecommender(
        **{**SMALL, "max_iter": 2, "user_col": 0, "item_col": 1},
        user_features=[2, 3],
        item_features=[4, 5],
    ).fit(X.to_numpy(), y)
    assert est.recommend([0], n=5).shape == (1, 5)


def test_user_features_that_vary_within_a_user_are_rejected(ratings, fitted):
    X, y = ratings
    X = X.copy()
    first = X.index[X["user"] == 5][0]
    X.loc[first, "age"] = -1.0
    est = clone(fitted)
    with pytest.raises(
        ValueError, match="side feature age takes several values for user 5"
    ):
        est.fit(X, y)
    before = fitted.predict(X.iloc[:20])
    with pytest.raises(ValueError, match="age"):
        fitted.fit(X, y)
    np.testing.assert_array_equal(fitted.predict(X.iloc[:20]), before)


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"user_features": ["nope"]},
            "user_features entry 'nope' is not a column of X",
        ),
        (
            {"item_features": [9]},
            "item_features entry 9 is out of range for X with 6 columns",
        ),
        ({"user_features": ["user"]}, "user_features names an ID column"),
        (
            {"user_features": ["age"], "item_features": ["age"]},
            "age is declared both in user_features and in item_features",
        ),
        ({"item_features": [1.5]}, "must list column names or positions"),
    ],
)
def test_bad_feature_declarations_are_rejected(ratings, params, message):
    X, y = ratings
    with pytest.raises(ValueError, match=message):
        NeuralRecommender(**SMALL, **params).fit(X, y)


def test_recommend_refuses_per_row_features(ratings):
    X, y = ratings
    est = NeuralRecommender(
        **{**SMALL, "max_iter": 2}, user_features=USER_FEATURES
    ).fit(X, y)
    with pytest.raises(ValueError, match="2 per-row side features; declare"):
        est.recommend([1])


def test_implicit_negatives_are_scored_with_their_own_item_features():
    module = EmbeddingMLP(
        n_users=3, n_items=4, n_features=1, embedding_dim=2, n_item_features=1
    )
    module.item_side = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    users = torch.tensor([1, 1, 1, 1])
    items = torch.tensor([1, 2, 3, 0])
    given = torch.full((4, 1), 7.0)
    np.testing.assert_array_equal(
        module.side_features(users, items, given).numpy().ravel(), [1, 2, 3, 7]
    )


@pytest.mark.parametrize("architecture", ["neumf", "mf"])
def test_score_matrix_takes_per_row_features_at_their_mean(architecture):
    torch.manual_seed(0)
    module = EmbeddingMLP(
        n_users=4,
        n_items=5,
        n_features=4,
        embedding_dim=3,
        hidden_layer_sizes=(6,),
        architecture=architecture,
        n_user_features=1,
        n_item_features=2,
    ).eval()
    module.user_side = torch.randn(4, 1)
    module.item_side = torch.randn(5, 2)
    users, items = torch.tensor([1, 3]), torch.tensor([1, 2, 4])
    pair_users = users.repeat_interleave(len(items))
    pair_items = items.repeat(len(users))
    features = torch.cat(
        [
            module.user_side[pair_users],
            module.item_side[pair_items],
            torch.zeros(len(pair_users), 1),
        ],
        dim=1,
    )
    with torch.no_grad():
        expected = module(pair_users, pair_items, features).view(2, 3)
        np.testing.assert_allclose(
            module.score_matrix(users, items).numpy(), expected.numpy(), rtol=1e-5
        )


def test_partial_fit_keeps_the_features_of_new_items(ratings):
    X, y = ratings
    first = X["item"] < 60
    est = NeuralRecommender(
        **SMALL, user_features=USER_FEATURES, item_features=ITEM_FEATURES
    )
    est.partial_fit(X[first], y[first]).partial_fit(X[~first], y[~first])
    kept = est.module_.item_side[1:].numpy()
    expected = X.drop_duplicates("item").set_index("item").loc[est.items_]
    scaled = (expected[ITEM_FEATURES] - est._feature_mean[2:]) / est._feature_scale[2:]
    np.testing.assert_allclose(kept, scaled.to_numpy(), rtol=1e-5)


def test_matrix_factorization_takes_declared_features(ratings):
    X, y = ratings
    est = MatrixFactorization(
        embedding_dim=8,
        max_iter=5,
        random_state=0,
        user_col="user",
        item_col="item",
        user_features=USER_FEATURES,
        item_features=ITEM_FEATURES,
    ).fit(X, y)
    assert est.recommend([1, 2], n=3).shape == (2, 3)


# -- custom modules ---------------------------------------------------------------


class DotProduct(torch.nn.Module):
    """Unbiased matrix factorization with an ``embedding_tables`` method."""

    def __init__(self, n_users, n_items, n_features):
        super().__init__()
        self.users = torch.nn.Embedding(n_users, 4)
        self.items = torch.nn.Embedding(n_items, 4)
        for table in (self.users, self.items):
            torch.nn.init.normal_(table.weight, std=0.1)

    def forward(self, users, items, features=None):
        return (self.users(users) * self.items(items)).sum(dim=1)

    def embedding_tables(self):
        return {"user": self.users, "item": self.items}


class FeatureLinear(torch.nn.Module):
    """A linear model of the side features: no tables at all."""

    def __init__(self, n_users, n_items, n_features):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 1)

    def forward(self, users, items, features):
        return self.linear(features).squeeze(1)


def test_custom_module_is_trained_and_penalised(ratings):
    X, y = ratings
    X = X[["user", "item"]]
    params = {**SMALL, "module": DotProduct, "learning_rate_init": 1e-2}
    strong = NeuralRecommender(**{**params, "alpha": 1e4}).fit(X, y)
    weak = NeuralRecommender(**{**params, "alpha": 0.0}).fit(X, y)
    assert isinstance(weak.module_, DotProduct)
    assert weak.architecture_ is None  # the module replaces the architecture
    assert rmse(weak.predict(X), y) < 0.8 * np.std(y)
    assert strong.module_.users.weight.norm() < 0.5 * weak.module_.users.weight.norm()
    assert weak.recommend([1], n=3).shape == (1, 3)
    loaded = pickle.loads(pickle.dumps(weak))
    np.testing.assert_array_equal(loaded.predict(X), weak.predict(X))
    assert clone(weak).module is DotProduct


def test_custom_module_without_tables_gets_the_features(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL, module=FeatureLinear).fit(X, y)
    assert rmse(est.predict(X), y) < np.std(y)
    with pytest.raises(ValueError, match="4 per-row side features"):
        est.recommend([1])


class ItemBias(torch.nn.Module):
    """One learned score per item, in a table the engine is not told about."""

    def __init__(self, n_users, n_items, n_features):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(n_items))

    def forward(self, users, items, features=None):
        return self.bias[items]


def test_custom_module_without_tables_learns_from_implicit_feedback(ratings):
    X, _ = ratings
    X = X[["user", "item"]]
    # Item 0 is chosen by every user, item 1 by none.
    X = pd.concat([X[X["item"] != 1], X.assign(item=0).drop_duplicates()])
    est = NeuralRecommender(
        **{**SMALL, "max_iter": 5, "early_stopping": False},
        module=ItemBias,
        loss="bce",
    ).fit(X)
    popular, never = est.predict(pd.DataFrame({"user": [3, 3], "item": [0, 1]}))
    assert popular > never


class UserOffsets(torch.nn.Module):
    """A user table it reports and an item bias it does not."""

    def __init__(self, n_users, n_items, n_features):
        super().__init__()
        self.users = torch.nn.Embedding(n_users, 1)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))

    def forward(self, users, items, features=None):
        return self.users(users).squeeze(1) + self.item_bias[items]

    def embedding_tables(self):
        return {"user": self.users}


def test_alpha_penalises_the_one_table_a_custom_module_reports(ratings):
    X, y = ratings
    X = X[["user", "item"]]
    params = {**SMALL, "module": UserOffsets, "learning_rate_init": 1e-2}
    strong = NeuralRecommender(**{**params, "alpha": 1e4}).fit(X, y)
    weak = NeuralRecommender(**{**params, "alpha": 0.0}).fit(X, y)
    assert strong.module_.users.weight.norm() < 0.5 * weak.module_.users.weight.norm()
    # The item bias has no table and no penalty: both fits learn it.
    assert strong.module_.item_bias.std() > 0.1


def test_module_factory_must_return_a_module(ratings):
    X, y = ratings
    with pytest.raises(TypeError, match="must return a torch.nn.Module, got dict"):
        NeuralRecommender(**SMALL, module=lambda **sizes: dict(sizes)).fit(X, y)


class ItemBiasWithoutDefaults(ItemBias):
    """``forward`` takes ``features`` with no default, and no ``score_matrix``."""

    def forward(self, users, items, features):
        return self.bias[items]


def test_recommend_calls_a_custom_forward_as_fit_does(ratings):
    X, y = ratings
    X = X[["user", "item"]]
    est = NeuralRecommender(**SMALL, module=ItemBiasWithoutDefaults).fit(X, y)
    top = est.recommend([1], n=3, exclude_seen=False, return_scores=True)[1]
    expected = np.sort(est.module_.bias[1:].detach().numpy())[::-1][:3]
    np.testing.assert_allclose(top[0], expected, rtol=1e-6)


class ColumnOutput(DotProduct):
    """Returns a column, (n_rows, 1), instead of one score per row."""

    def forward(self, users, items, features=None):
        return super().forward(users, items, features)[:, None]


def test_a_custom_module_must_return_one_score_per_row(ratings):
    X, y = ratings
    with pytest.raises(
        ValueError, match=r"on 2 rows it returned Tensor of shape \(2, 1\)"
    ):
        NeuralRecommender(**SMALL, module=ColumnOutput).fit(X[["user", "item"]], y)


# -- biases -----------------------------------------------------------------------


def test_without_biases_the_score_is_the_dot_product(ratings):
    X, y = ratings
    X = X[["user", "item"]]
    est = MatrixFactorization(
        embedding_dim=4,
        biases=False,
        max_iter=3,
        random_state=0,
        user_col="user",
        item_col="item",
    ).fit(X, y)
    module = est.module_
    users, items = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    p = module.user_table(users)[:, :-1]
    q = module.item_table(items)[:, :-1]
    with torch.no_grad():
        np.testing.assert_allclose(
            module(users, items).numpy(), (p * q).sum(dim=1).numpy(), rtol=1e-6
        )
