"""make_sequences: the log's layout, its generative model, and its signal.

The signal tests are the contract a sequential recommender relies on: on
leave-last-out, a model that reads the order of a user's items (here a
first-order transition count written in this file) beats popularity and
matrix factorization by a wide margin, and has no edge when
``order_strength=0``.
"""

import numpy as np
import pandas as pd
import pytest

from skrec import MatrixFactorization, PopularityRecommender
from skrec.datasets import make_sequences
from skrec.datasets._sequences import _draw_successors, _PowerLaw
from skrec.metrics import hit_rate_at_k
from skrec.model_selection import LeaveLastOut

# Layout


def test_make_sequences_returns_a_timestamped_log():
    X = make_sequences(n_users=40, n_items=30, mean_length=8, random_state=0)

    assert isinstance(X, pd.DataFrame)
    assert list(X.columns) == ["user_id", "item_id", "timestamp"]
    assert (X.dtypes == np.int64).all()
    assert X.index.equals(pd.RangeIndex(len(X)))
    assert sorted(X.user_id.unique()) == list(range(40))
    assert X.item_id.between(0, 29).all()
    assert (X.timestamp >= 0).all()


def test_make_sequences_as_array_holds_the_same_columns():
    X = make_sequences(n_users=40, n_items=30, mean_length=8, random_state=0)
    array = make_sequences(
        n_users=40, n_items=30, mean_length=8, as_frame=False, random_state=0
    )

    assert isinstance(array, np.ndarray) and array.dtype == np.int64
    np.testing.assert_array_equal(array, X.to_numpy())


def test_make_sequences_is_reproducible_with_random_state():
    first = make_sequences(n_users=30, n_items=20, mean_length=6, random_state=3)
    again = make_sequences(
        n_users=30, n_items=20, mean_length=6, random_state=np.random.RandomState(3)
    )
    other = make_sequences(n_users=30, n_items=20, mean_length=6, random_state=4)

    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_make_sequences_rows_are_in_time_order_without_ties_per_user():
    X = make_sequences(n_users=200, n_items=40, mean_length=15, random_state=0)

    # A log: rows sorted by timestamp, then by user among equal timestamps.
    assert X.equals(X.sort_values(["timestamp", "user_id"], kind="stable"))
    # Users are interleaved, not one block each.
    assert (X.user_id.diff() != 0).sum() > 2 * 200
    gaps = X.groupby("user_id").timestamp.diff().dropna()
    assert (gaps >= 1).all()
    # One hour on average.
    assert 3000 < gaps.mean() < 4200


def test_make_sequences_users_meet_each_item_at_most_once():
    X = make_sequences(n_users=200, n_items=20, mean_length=15, random_state=0)

    assert not X.duplicated(["user_id", "item_id"]).any()
    # So no item follows itself, and the longest sequences hold every item.
    assert X.groupby("user_id").size().max() == 20


def test_make_sequences_lengths_start_at_min_length_with_mean_length():
    X = make_sequences(
        n_users=2000, n_items=500, mean_length=12, min_length=4, random_state=0
    )
    lengths = X.groupby("user_id").size()

    assert lengths.min() == 4
    assert abs(lengths.mean() - 12) < 0.5
    # A geometric, long tail.
    assert lengths.max() > 3 * 12


def test_make_sequences_lengths_are_fixed_when_mean_length_is_min_length():
    X = make_sequences(
        n_users=50, n_items=10, mean_length=5, min_length=5, random_state=0
    )

    assert (X.groupby("user_id").size() == 5).all()


def test_make_sequences_a_second_item_is_the_first_items_successor():
    # Two items per user: the second is never blocked, so with one successor
    # and order_strength=1 each first item is always followed by the same item.
    def followers(order_strength):
        X = make_sequences(
            n_users=300,
            n_items=30,
            mean_length=2,
            n_successors=1,
            order_strength=order_strength,
            min_length=2,
            random_state=0,
        )
        pairs = X.groupby("user_id").item_id.agg(["first", "last"])
        return pairs.groupby("first")["last"].nunique()

    assert (followers(1.0) == 1).all()
    assert followers(0.0).max() > 5


@pytest.mark.parametrize("popularity_skew", [0.0, 1.0, 50.0])
def test_successors_are_distinct_other_items_favouring_popular_ones(
    popularity_skew,
):
    generator = np.random.RandomState(0)
    law = _PowerLaw(40, popularity_skew, generator)
    successors = _draw_successors(law, 5, generator)

    assert successors.shape == (40, 5)
    assert (successors != np.arange(40)[:, None]).all()
    assert all(len(set(row)) == 5 for row in successors)
    # Each item is the successor of 5 others on average; the most popular one
    # of far more (measured: 28 to 30 of 39 at skew 1, all 39 at skew 50).
    top = (successors == law._rank_to_id[0]).any(axis=1).sum()
    if popularity_skew == 1.0:
        assert top >= 20
    elif popularity_skew == 50.0:
        assert top == 39


def test_make_sequences_popularity_skew_concentrates_items():
    def top_share(popularity_skew):
        X = make_sequences(
            n_users=500,
            n_items=100,
            mean_length=5,
            order_strength=0,
            popularity_skew=popularity_skew,
            random_state=0,
        )
        counts = X.item_id.value_counts()
        return counts.iloc[:10].sum() / counts.sum()

    assert top_share(0.0) < 0.15
    assert top_share(2.0) > 0.5


def test_make_sequences_works_at_the_edges():
    X = make_sequences(
        n_users=5,
        n_items=2,
        mean_length=2,
        n_successors=1,
        min_length=2,
        random_state=0,
    )
    assert (X.groupby("user_id").item_id.agg(sorted).map(tuple) == (0, 1)).all()
    # A steep popularity law: the rejection draws give up and the exact draw
    # over the unmet items takes over.
    X = make_sequences(
        n_users=50,
        n_items=30,
        mean_length=30,
        n_successors=29,
        popularity_skew=50,
        min_length=30,
        random_state=0,
    )
    assert (X.groupby("user_id").size() == 30).all()
    assert not X.duplicated(["user_id", "item_id"]).any()


# The sequential signal


def _leave_last_out(X):
    train, test = next(LeaveLastOut(timestamp_col="timestamp").split(X))
    return X.iloc[train], X.iloc[test]


def _transition_recommendations(train, users, n_items, n=10):
    """Rank items by how often they followed each user's latest item in train.

    The counts are over the consecutive items of every user's training
    sequence; popularity breaks ties, and the user's training items are left
    out, as ``recommend`` does with ``exclude_seen=True``.
    """
    train = train.sort_values(["user_id", "timestamp"])
    user, item = train.user_id.to_numpy(), train.item_id.to_numpy()
    same_user = user[1:] == user[:-1]
    counts = np.zeros((n_items, n_items))
    np.add.at(counts, (item[:-1][same_user], item[1:][same_user]), 1)
    popularity = np.bincount(item, minlength=n_items)
    latest = train.groupby("user_id").item_id.last()
    scores = counts[latest.loc[users].to_numpy()] + popularity / (popularity.max() + 1)
    row_of = pd.Series(np.arange(len(users)), index=users)
    scores[row_of.loc[user].to_numpy(), item] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :n]


def _hit_rates(order_strength):
    """HR@10 of transitions, popularity and MF on leave-last-out."""
    X = make_sequences(
        n_users=500,
        n_items=200,
        mean_length=20,
        order_strength=order_strength,
        random_state=0,
    )
    train, test = _leave_last_out(X)
    users, truth = test.user_id.to_numpy(), [[item] for item in test.item_id]
    ids = train[["user_id", "item_id"]]
    transitions = _transition_recommendations(train, users, n_items=200)
    popularity = PopularityRecommender().fit(ids).recommend(users, n=10)
    mf = MatrixFactorization(loss="bce", random_state=0).fit(ids)
    return {
        "transitions": hit_rate_at_k(truth, transitions),
        "popularity": hit_rate_at_k(truth, popularity),
        "mf": hit_rate_at_k(truth, mf.recommend(users, n=10)),
    }


def test_make_sequences_order_predicts_the_next_item():
    # Measured (seed 0): transitions 0.806, popularity 0.340, MF 0.338; over
    # data seeds 0 to 2, transitions 0.79 to 0.81 and the others 0.34 to 0.39,
    # MF at popularity whatever its embedding size, penalty or loss.
    hit_rates = _hit_rates(order_strength=0.8)

    assert hit_rates["transitions"] > 0.7
    assert hit_rates["transitions"] > hit_rates["popularity"] + 0.3
    assert hit_rates["transitions"] > hit_rates["mf"] + 0.3


def test_make_sequences_without_order_transitions_do_not_beat_popularity():
    # Measured (seed 0): transitions 0.258, popularity 0.358, MF 0.354; over
    # data seeds 0 to 2 transitions trail popularity by 0.08 to 0.10, their
    # counts being a noisier popularity.
    hit_rates = _hit_rates(order_strength=0.0)

    assert hit_rates["transitions"] < hit_rates["popularity"] + 0.05
    assert abs(hit_rates["mf"] - hit_rates["popularity"]) < 0.05


# Parameter errors


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_users": 0}, "n_users"),
        ({"n_items": 1}, "n_items"),
        ({"mean_length": 0.5}, "mean_length"),
        ({"n_successors": 0}, "n_successors"),
        ({"n_items": 5, "mean_length": 4, "n_successors": 5}, "n_successors"),
        ({"order_strength": 1.5}, "order_strength"),
        ({"order_strength": -0.1}, "order_strength"),
        ({"popularity_skew": -1.0}, "popularity_skew"),
        ({"min_length": 0}, "min_length"),
        ({"n_items": 5, "mean_length": 5, "min_length": 6}, "min_length"),
        ({"mean_length": 2, "min_length": 3}, "mean_length"),
        ({"n_items": 5, "mean_length": 6}, "mean_length"),
        ({"as_frame": "yes"}, "as_frame"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_make_sequences_parameter_errors_name_the_parameter(params, name):
    # Either scikit-learn's message for one parameter or skrec's for a
    # combination, which starts with the offending parameter.
    with pytest.raises(ValueError, match=rf"^(The '{name}' parameter|{name}=)"):
        make_sequences(**params)
