"""Saving and loading fitted estimators: pickle, joblib and skops.io."""

import numpy as np
import pandas as pd
import pytest

from skrec import (
    SKOPS_TRUSTED_TYPES,
    BaselineRecommender,
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
)
from skrec.datasets import make_ratings

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
