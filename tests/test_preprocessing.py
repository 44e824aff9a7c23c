import numpy as np
import pandas as pd
import pytest

from skrec import NeuralRecommender
from skrec.preprocessing import recency_weights


@pytest.fixture
def log():
    return pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b", "b", "c"],
            "item_id": [1, 2, 3, 4, 1, 5, 2],
            "timestamp": [10, 40, 20, 40, 7, 3, 100],
        }
    )


def test_weights_halve_every_half_life_interactions_back(log):
    weights = recency_weights(log, half_life=2, timestamp_col="timestamp")
    # User a: the two rows at 40 are the latest, 20 has two later rows and
    # 10 three; user b: 7 then 3; user c has one row.
    expected = [0.5**1.5, 1.0, 0.5**1.0, 1.0, 1.0, 0.5**0.5, 1.0]
    np.testing.assert_allclose(weights, expected)


def test_rows_keep_their_weight_whatever_the_order_of_x(log):
    shuffled = log.sample(frac=1, random_state=0)
    weights = recency_weights(shuffled, half_life=3, timestamp_col="timestamp")
    by_row = pd.Series(weights, index=shuffled.index).sort_index()
    np.testing.assert_allclose(
        by_row, recency_weights(log, half_life=3, timestamp_col="timestamp")
    )


def test_arrays_datetimes_and_positions_give_the_same_weights(log):
    expected = recency_weights(log, half_life=1, timestamp_col="timestamp")
    as_dates = log.assign(timestamp=pd.to_datetime(log["timestamp"], unit="s"))
    np.testing.assert_allclose(
        recency_weights(as_dates, half_life=1, timestamp_col="timestamp"), expected
    )
    # An object array, as mixed ID types give, and columns by position.
    array = log[["item_id", "user_id", "timestamp"]].to_numpy()
    np.testing.assert_allclose(
        recency_weights(array, half_life=1, timestamp_col=2, user_col=1), expected
    )


@pytest.mark.parametrize(
    "change, params, message",
    [
        ({}, {"half_life": 0}, "'half_life' parameter of recency_weights"),
        ({}, {"timestamp_col": "time"}, "timestamp_col='time' is not a column"),
        ({}, {"user_col": 5}, "user_col=5 is out of range"),
        (
            {"timestamp": ["x"] * 7},
            {},
            "timestamp_col='timestamp' holds values of dtype",
        ),
        (
            {"timestamp": [1.0, np.nan, 2, 3, 4, 5, 6]},
            {},
            "timestamp_col='timestamp' contains 1 missing values",
        ),
        (
            {"user_id": ["a", None, "b", "b", "c", "c", "c"]},
            {},
            "user_col=0 contains 1 missing values",
        ),
    ],
)
def test_bad_input_names_the_parameter(log, change, params, message):
    with pytest.raises(ValueError, match=message):
        recency_weights(
            log.assign(**change),
            **{"half_life": 1, "timestamp_col": "timestamp", **params},
        )


def test_recency_weights_steer_recommendations_to_recent_tastes():
    # Items 0-9 and 10-19 are two tastes, each shared by 40 users. User 999
    # liked the first long ago and the second lately.
    rng = np.random.RandomState(0)
    rows = []
    for user in range(80):
        taste = 10 * (user % 2)
        for t, item in enumerate(rng.choice(10, 7, replace=False)):
            rows.append((user, taste + item, t))
    rows += [(999, item, t) for t, item in enumerate([0, 1, 2, 3, 4, 10, 11])]
    X = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    weights = recency_weights(X, half_life=1, timestamp_col="timestamp")
    params = dict(
        loss="bpr",
        hidden_layer_sizes=(),
        embedding_dim=8,
        alpha=0.1,
        learning_rate_init=0.02,
        max_iter=60,
        early_stopping=False,
        random_state=0,
    )

    def recent_taste_share(y):
        model = NeuralRecommender(**params).fit(X[["user_id", "item_id"]], y)
        recommended = model.recommend([999], n=4)[0]
        return np.mean(recommended >= 10)

    # Unweighted, the five old items outweigh the two recent ones.
    assert recent_taste_share(None) < 0.5
    assert recent_taste_share(weights) == 1.0
