"""NeuralRecommender on the official MovieLens-100K fold u1, with default parameters."""

import numpy as np
import pytest

from skrec import NeuralRecommender
from skrec.datasets import load_movielens

from ._data import SHARED_DATA, requires_movielens

pytestmark = requires_movielens


@pytest.fixture(scope="module")
def u1():
    X_train, X_test, y_train, y_test = load_movielens(
        "100k", fold=1, data_home=SHARED_DATA, return_X_y=True
    )
    est = NeuralRecommender(random_state=0).fit(X_train, y_train)
    return est, X_train, X_test, y_train, y_test, est.predict(X_test)


def rmse(predicted, actual):
    return float(np.sqrt(np.mean((predicted - np.asarray(actual)) ** 2)))


def test_default_model_beats_svd_on_u1(u1):
    _, _, _, _, y_test, predicted = u1
    # Surprise's SVD scores 0.951 on u1.
    assert rmse(predicted, y_test) <= 0.94


def test_every_prediction_is_finite(u1):
    _, _, X_test, _, _, predicted = u1
    assert predicted.shape == (20_000,)
    assert np.isfinite(predicted).all()


def test_cold_items_beat_the_global_mean(u1):
    _, X_train, X_test, y_train, y_test, predicted = u1
    cold = ~X_test.item_id.isin(X_train.item_id).to_numpy()
    assert cold.sum() == 32
    global_mean = np.full(cold.sum(), y_train.mean())
    assert rmse(predicted[cold], y_test[cold]) < rmse(global_mean, y_test[cold])


def test_default_matrix_factorization_beats_svd_on_u1(u1):
    from skrec import MatrixFactorization

    _, X_train, X_test, y_train, y_test, _ = u1
    est = MatrixFactorization(random_state=0).fit(X_train, y_train)
    predicted = est.predict(X_test)
    # Surprise's SVD scores 0.951 on u1; this model scored 0.933.
    assert np.isfinite(predicted).all()
    assert rmse(predicted, y_test) <= 0.94
