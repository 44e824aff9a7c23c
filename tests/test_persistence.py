"""Saving and loading fitted estimators: pickle, joblib and skops.io."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skrec
from skrec import (
    SKOPS_TRUSTED_TYPES,
    BaselineRecommender,
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
    SequentialRecommender,
)
from skrec.datasets import load_movielens, make_ratings

from ._data import SHARED_DATA, requires_movielens

sio = pytest.importorskip("skops.io")

TINY = dict(embedding_dim=4, max_iter=3, random_state=0)


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(
        n_users=40, n_items=30, n_ratings=600, as_frame=True, random_state=0
    )
    X["age"] = X["user_id"] % 7 * 1.0
    return X, y


ESTIMATORS = {
    "neumf": lambda: NeuralRecommender(**TINY),
    "svdpp with declared features": lambda: NeuralRecommender(
        architecture="svdpp", user_features=["age"], **TINY
    ),
    "bpr": lambda: NeuralRecommender(loss="bpr", **TINY),
    "mf": lambda: MatrixFactorization(**TINY),
    "biases": lambda: BaselineRecommender(strategy="biases"),
    "popularity": lambda: PopularityRecommender(),
    "sequential": lambda: SequentialRecommender(
        embedding_dim=8, max_len=10, max_iter=2, random_state=0
    ),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_skops_loads_with_the_listed_trusted_types_only(ratings, name):
    X, y = ratings
    if name != "svdpp with declared features":
        X = X.drop(columns="age")
    estimator = ESTIMATORS[name]().fit(X, y)
    data = sio.dumps(estimator)
    untrusted = sio.get_untrusted_types(data=data)
    assert set(untrusted) <= set(SKOPS_TRUSTED_TYPES)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.loads(data)
    loaded = sio.loads(data, trusted=SKOPS_TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    if hasattr(estimator, "recommend"):
        users = X["user_id"].unique()[:5]
        np.testing.assert_array_equal(
            loaded.recommend(users, n=3), estimator.recommend(users, n=3)
        )


def test_a_loaded_network_keeps_training(ratings):
    X, y = ratings
    X = X.drop(columns="age")
    estimator = NeuralRecommender(**TINY).fit(X, y)
    loaded = sio.loads(sio.dumps(estimator), trusted=SKOPS_TRUSTED_TYPES)
    new_user = pd.DataFrame({"user_id": [10**6], "item_id": [0]})
    loaded.partial_fit(pd.concat([X, new_user]), np.append(y, 4.0))
    assert loaded.module_.user_table.num_embeddings == len(loaded.users_) + 1
    assert np.isfinite(loaded.predict(X)).all()


# The pipeline of README.md, step for step; test_the_readme_shows_this_pipeline
# checks that the README still builds it so.
README = Path(__file__).resolve().parents[1] / "README.md"
README_LINES = (
    '("occupation", OneHotEncoder(sparse_output=False), ["occupation", "gender"]),',
    '("age", StandardScaler(), ["age"]),',
    '("year", SimpleImputer(strategy="median"), ["release_year"]),',
    '("drop", "drop", ["zip_prefix"]),',
    'remainder="passthrough",',
    "verbose_feature_names_out=False,",
    ').set_output(transform="pandas")',
    'user_col="user_id",',
    'item_col="item_id",',
    'user_features=make_column_selector("^(?:occupation|gender|age)"),',
    'item_features=make_column_selector("^(?:genre|release)"),',
    "random_state=0,",
)


def readme_pipeline(**params):
    """README.md's pipeline, ``params`` set on its NeuralRecommender."""
    encode = ColumnTransformer(
        [
            (
                "occupation",
                OneHotEncoder(sparse_output=False),
                ["occupation", "gender"],
            ),
            ("age", StandardScaler(), ["age"]),
            ("year", SimpleImputer(strategy="median"), ["release_year"]),
            ("drop", "drop", ["zip_prefix"]),
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return make_pipeline(
        encode,
        NeuralRecommender(
            user_col="user_id",
            item_col="item_id",
            user_features=make_column_selector("^(?:occupation|gender|age)"),
            item_features=make_column_selector("^(?:genre|release)"),
            random_state=0,
        ).set_params(**params),
    )


def test_the_readme_shows_this_pipeline():
    text = README.read_text()
    assert 'skops.io.load("model.skops", trusted=skrec.SKOPS_TRUSTED_TYPES)' in text
    code = {line.strip() for line in text.splitlines()}
    assert [line for line in README_LINES if line not in code] == []


def movielens_like(n_users=30, n_items=20, n_rows=400, seed=0):
    """A small frame with the columns of ``load_movielens(features=True).data``."""
    rng = np.random.default_rng(seed)
    users = rng.integers(1, n_users + 1, n_rows)
    items = rng.integers(1, n_items + 1, n_rows)
    release_year = (1950.0 + 2 * items).astype(np.float64)
    release_year[items == 3] = np.nan  # as for an item of unknown date
    X = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "age": 18 + 2 * users,
            "gender": np.where(users % 2, "F", "M"),
            "occupation": np.array(["artist", "doctor", "engineer"])[users % 3],
            "zip_prefix": (users % 10).astype(str),
            "release_year": release_year,
        }
    )
    for k, genre in enumerate(["action", "comedy", "drama", "sci_fi"]):
        X[f"genre_{genre}"] = (items % 4 == k).astype(np.int64)
    y = rng.integers(1, 6, n_rows).astype(np.float64)
    return X, y


def assert_skops_round_trip(model, X, path):
    """Dump ``model`` and load it as the README says; same predictions."""
    sio.dump(model, path)
    loaded = sio.load(path, trusted=skrec.SKOPS_TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    users = X["user_id"].unique()[:5]
    np.testing.assert_array_equal(
        loaded[-1].recommend(users, n=5), model[-1].recommend(users, n=5)
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_readme_pipeline_loads_with_the_listed_trusted_types(tmp_path):
    X, y = movielens_like()
    model = readme_pipeline(max_iter=2, embedding_dim=4).fit(X, y)
    assert_skops_round_trip(model, X, tmp_path / "model.skops")


@requires_movielens
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_readme_pipeline_on_movielens_loads_with_the_listed_trusted_types(
    tmp_path,
):
    data = load_movielens(fold=1, features=True, data_home=SHARED_DATA)
    model = readme_pipeline(max_iter=1).fit(data.data, data.target)
    assert_skops_round_trip(model, data.data_test, tmp_path / "model.skops")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_every_listed_trusted_type_is_needed(ratings):
    """The list holds no type that none of skrec's models needs: it trusts
    exactly what get_untrusted_types finds in them and the README's pipeline."""
    X, y = ratings
    found = set()
    for name, make in ESTIMATORS.items():
        data = X if name == "svdpp with declared features" else X.drop(columns="age")
        found.update(sio.get_untrusted_types(data=sio.dumps(make().fit(data, y))))
    X, y = movielens_like()
    model = readme_pipeline(max_iter=1, embedding_dim=4).fit(X, y)
    found.update(sio.get_untrusted_types(data=sio.dumps(model)))
    assert found == set(SKOPS_TRUSTED_TYPES)
