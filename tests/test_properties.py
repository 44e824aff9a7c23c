"""Property-based checks of what any table gets from the estimators.

Whatever the IDs (ints, strings, floats, None, NaN, booleans, mixed), the
targets (NaN, infinite, constant) and the side features, ``fit`` and
``predict`` either raise a ValueError or TypeError of skrec's or
scikit-learn's, never an error from inside torch, or return finite
predictions of the right shape.
"""

import traceback
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skrec import (
    BaselineRecommender,
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
)

# The bar: every property holds on at least 200 generated tables.
N_EXAMPLES = 200
TINY = dict(embedding_dim=2, max_iter=2, early_stopping=False, random_state=0)
ESTIMATORS = {
    "neural": lambda: NeuralRecommender(hidden_layer_sizes=(4,), **TINY),
    "neural-bpr": lambda: NeuralRecommender(
        hidden_layer_sizes=(4,), loss="bpr", n_negatives=2, **TINY
    ),
    "mf": lambda: MatrixFactorization(**TINY),
    "biases": lambda: BaselineRecommender(strategy="biases"),
    "popularity": lambda: PopularityRecommender(),
}

odd_values = st.one_of(
    st.none(),
    st.just(np.nan),
    st.just(np.inf),
    st.booleans(),
    st.floats(-2, 2, allow_nan=False, width=32),
    st.text(max_size=2),
    st.integers(-(2**40), 2**40),
)


@st.composite
def id_columns(draw, n_rows):
    """A column of IDs: mostly clean ints or strings, sometimes with odd values."""
    kind = draw(st.sampled_from(["int"] * 4 + ["str"] * 2 + ["odd"]))
    if kind == "int":
        return draw(st.lists(st.integers(0, 5), min_size=n_rows, max_size=n_rows))
    if kind == "str":
        names = st.sampled_from(["a", "b", "c", "dé", ""])
        return draw(st.lists(names, min_size=n_rows, max_size=n_rows))
    return draw(
        st.lists(
            st.one_of(st.integers(0, 5), odd_values), min_size=n_rows, max_size=n_rows
        )
    )


@st.composite
def tables(draw):
    """``(X, y)``: a DataFrame of user and item IDs, maybe a side feature, and
    targets that may be missing, infinite or constant."""
    n_rows = draw(st.integers(0, 12))
    columns = {"user": draw(id_columns(n_rows)), "item": draw(id_columns(n_rows))}
    feature = draw(st.sampled_from([None] * 3 + ["number"] * 2 + ["odd"]))
    if feature == "number":
        columns["x"] = draw(
            st.lists(st.floats(-3, 3, width=32), min_size=n_rows, max_size=n_rows)
        )
    elif feature == "odd":
        columns["x"] = draw(st.lists(odd_values, min_size=n_rows, max_size=n_rows))
    X = pd.DataFrame(columns)
    ratings = st.floats(1, 5, allow_nan=False)
    targets = draw(
        st.sampled_from(["ratings"] * 5 + ["constant", "odd", "wrong length"])
    )
    if targets == "constant":
        y = [3.0] * n_rows
    elif targets == "odd":
        y = draw(
            st.lists(
                st.one_of(ratings, st.just(np.nan), st.just(np.inf)),
                min_size=n_rows,
                max_size=n_rows,
            )
        )
    elif targets == "wrong length":
        y = [3.0] * (n_rows + 1)
    else:
        y = draw(st.lists(ratings, min_size=n_rows, max_size=n_rows))
    return X, np.asarray(y, dtype=float)


def assert_clear_error(exc):
    """A skrec or scikit-learn error with a message, not one from torch."""
    assert isinstance(exc, ValueError | TypeError), repr(exc)
    assert str(exc).strip()
    origin = traceback.extract_tb(exc.__traceback__)[-1].filename
    assert "/torch/" not in origin, f"{exc!r} raised in {origin}"


def fit_or_clear_error(estimator, X, y):
    """The fitted estimator, or None after checking the error is clear."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return estimator.fit(X, y)
    except (ValueError, TypeError) as exc:
        assert_clear_error(exc)
        event("fit refused")
        return None


@pytest.mark.parametrize("name", ESTIMATORS)
@settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(train=tables(), test=tables())
def test_fit_and_predict_fail_clearly_or_give_finite_predictions(name, train, test):
    estimator = fit_or_clear_error(ESTIMATORS[name](), *train)
    if estimator is None:
        return
    X_test = test[0].reindex(columns=train[0].columns)
    try:
        predictions = estimator.predict(X_test)
    except (ValueError, TypeError) as exc:
        assert_clear_error(exc)
        return
    assert predictions.shape == (len(X_test),)
    assert np.isfinite(predictions).all()
    event("predicted")


@pytest.mark.parametrize("name", ["neural", "popularity"])
@settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    train=tables(),
    users=st.lists(st.one_of(st.integers(0, 7), odd_values), max_size=5),
    n=st.integers(-1, 4),
)
def test_recommend_fails_clearly_or_gives_n_items_per_user(name, train, users, n):
    X, y = train
    if "x" in X:
        X = X.drop(columns="x")
    estimator = fit_or_clear_error(ESTIMATORS[name](), X, y)
    if estimator is None:
        return
    try:
        items = estimator.recommend(users, n=n, exclude_seen=False)
    except (ValueError, TypeError) as exc:
        assert_clear_error(exc)
        return
    assert items.shape == (len(users), min(n, len(estimator.items_)))
    assert np.isin(items, estimator.items_).all()
    event("recommended")
