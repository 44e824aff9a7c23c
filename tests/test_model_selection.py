import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate

from skrec.datasets import load_movielens, make_ratings
from skrec.model_selection import (
    LeaveLastOut,
    LeavePerUserOut,
    TemporalSplit,
    train_test_split_per_user,
)

from ._data import SHARED_DATA, requires_movielens

# alice's latest two rows share timestamp 30 (items 3 and 7); bob has two rows,
# carol one.
SMALL = pd.DataFrame(
    {
        "user_id": ["alice", "alice", "alice", "alice", "bob", "bob", "carol"],
        "item_id": [5, 3, 7, 1, 2, 4, 9],
        "timestamp": [10, 30, 30, 20, 5, 15, 1],
    }
)


@pytest.fixture(scope="module")
def ratings():
    """Synthetic interactions with distinct timestamps, and their ratings."""
    X, y = make_ratings(
        n_users=40, n_items=30, n_ratings=400, as_frame=True, random_state=0
    )
    X["timestamp"] = np.random.default_rng(0).permutation(len(X)) * 10
    return X, y


def only_split(cv, X, groups=None):
    (split,) = cv.split(X, groups=groups)
    return split


def assert_partition(train, test, n_rows):
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(n_rows))


def assert_n_per_user(users, test, n):
    """Each user with more than n rows has n of them in test, others none."""
    counts = users.value_counts()
    test_counts = users.iloc[test].value_counts().reindex(counts.index, fill_value=0)
    np.testing.assert_array_equal(test_counts, np.where(counts > n, n, 0))


@pytest.mark.parametrize(
    ("n", "expected_test"),
    # n=1: alice's tie at t=30 goes to item 7 (row 2), the greater item ID.
    # n=2: bob has only 2 rows, so he stays in train with carol.
    [(1, [2, 5]), (2, [1, 2])],
)
def test_leave_last_out_small(n, expected_test):
    cv = LeaveLastOut(n, timestamp_col="timestamp")
    train, test = only_split(cv, SMALL)
    np.testing.assert_array_equal(test, expected_test)
    assert_partition(train, test, len(SMALL))
    assert train.dtype.kind == "i"
    assert cv.get_n_splits() == 1


def test_leave_last_out_tie_break_ignores_row_order():
    shuffled = SMALL.sample(frac=1, random_state=1).reset_index(drop=True)
    _, test = only_split(LeaveLastOut(timestamp_col="timestamp"), shuffled)
    pairs = set(shuffled.iloc[test][["user_id", "item_id"]].itertuples(index=False))
    assert pairs == {("alice", 7), ("bob", 4)}


def test_leave_last_out_without_timestamps_uses_row_order():
    _, test = only_split(LeaveLastOut(), SMALL)
    np.testing.assert_array_equal(test, [3, 5])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_leave_last_out_holds_out_each_users_latest(ratings, n):
    X, _ = ratings
    train, test = only_split(LeaveLastOut(n, timestamp_col="timestamp"), X)
    assert_partition(train, test, len(X))
    assert_n_per_user(X["user_id"], test, n)
    latest_train = X.iloc[train].groupby("user_id")["timestamp"].max()
    earliest_test = X.iloc[test].groupby("user_id")["timestamp"].min()
    assert (earliest_test > latest_train.reindex(earliest_test.index)).all()


def test_leave_per_user_out(ratings):
    X, _ = ratings
    cv = LeavePerUserOut(2, n_splits=3, random_state=0)
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits() == 3
    for train, test in splits:
        assert_partition(train, test, len(X))
        assert_n_per_user(X["user_id"], test, 2)
    assert not np.array_equal(splits[0][1], splits[1][1])


def test_leave_per_user_out_is_deterministic(ratings):
    X, _ = ratings

    def tests(random_state):
        cv = LeavePerUserOut(n_splits=2, random_state=random_state)
        return [test for _, test in cv.split(X)]

    np.testing.assert_array_equal(tests(0), tests(0))
    assert not np.array_equal(tests(0), tests(1))
    rng = np.random.RandomState(3)
    assert not np.array_equal(tests(rng), tests(rng))


def test_leave_per_user_out_small():
    train, test = only_split(LeavePerUserOut(2, random_state=0), SMALL)
    assert set(SMALL["user_id"].iloc[test]) == {"alice"}
    assert len(test) == 2
    assert {4, 5, 6} <= set(train)


def test_temporal_split_explicit_cut(ratings):
    X, _ = ratings
    train, test = only_split(TemporalSplit(timestamp_col="timestamp", cut=3000), X)
    np.testing.assert_array_equal(test, np.flatnonzero(X["timestamp"] >= 3000))
    assert_partition(train, test, len(X))


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5, 0.7])
def test_temporal_split_test_size(ratings, test_size):
    X, _ = ratings
    cv = TemporalSplit(test_size, timestamp_col="timestamp")
    train, test = only_split(cv, X)
    assert abs(len(test) - test_size * len(X)) <= 1
    assert X["timestamp"].iloc[test].min() > X["timestamp"].iloc[train].max()


def test_temporal_split_ties_at_the_cut_go_to_test():
    # 0.1 of 7 rows asks for 1 test row; the latest timestamp, 30, has 2.
    _, test = only_split(TemporalSplit(0.1, timestamp_col="timestamp"), SMALL)
    np.testing.assert_array_equal(test, [1, 2])


def test_temporal_split_datetimes():
    X = SMALL.assign(timestamp=pd.to_datetime(SMALL["timestamp"], unit="D"))
    cut = pd.Timestamp("1970-01-16")
    _, test = only_split(TemporalSplit(timestamp_col="timestamp", cut=cut), X)
    np.testing.assert_array_equal(test, [1, 2, 3, 5])


@pytest.mark.parametrize("cut", [0, 31])
def test_temporal_split_empty_fold_is_an_error(cut):
    cv = TemporalSplit(timestamp_col="timestamp", cut=cut)
    with pytest.raises(ValueError, match=f"cut={cut} leaves the .* set empty"):
        list(cv.split(SMALL))


@pytest.mark.parametrize(
    "cv",
    [
        LeaveLastOut(2, timestamp_col=2),
        LeavePerUserOut(n_splits=2, random_state=0),
        TemporalSplit(0.3, timestamp_col=2),
    ],
    ids=repr,
)
def test_dataframe_and_ndarray_give_the_same_splits(ratings, cv):
    X, _ = ratings
    for (train_df, test_df), (train_np, test_np) in zip(
        cv.split(X), cv.split(X.to_numpy()), strict=True
    ):
        np.testing.assert_array_equal(train_df, train_np)
        np.testing.assert_array_equal(test_df, test_np)


@pytest.mark.parametrize(
    "cv",
    [
        LeaveLastOut(timestamp_col="timestamp"),
        LeavePerUserOut(n_splits=3, random_state=0),
        TemporalSplit(timestamp_col="timestamp"),
    ],
    ids=repr,
)
def test_splitters_work_as_cv(ratings, cv):
    X, y = ratings
    result = cross_validate(DummyRegressor(), X, y, cv=cv, return_indices=True)
    for (train, test), cv_train, cv_test in zip(
        cv.split(X),
        result["indices"]["train"],
        result["indices"]["test"],
        strict=True,
    ):
        np.testing.assert_array_equal(train, cv_train)
        np.testing.assert_array_equal(test, cv_test)
    scores = cross_val_score(DummyRegressor(), X, y, cv=cv)
    assert scores.shape == (cv.get_n_splits(),)
    search = GridSearchCV(DummyRegressor(), {"strategy": ["mean", "median"]}, cv=cv)
    search.fit(X, y)
    assert search.n_splits_ == cv.get_n_splits()


@pytest.mark.parametrize("test_size", [0.2, 0.5])
def test_train_test_split_per_user_shares(ratings, test_size):
    X, y = ratings
    X_train, X_test, y_train, y_test = train_test_split_per_user(
        X, y, test_size=test_size, random_state=0
    )
    counts = X["user_id"].value_counts()
    test_counts = X_test["user_id"].value_counts().reindex(counts.index, fill_value=0)
    expected = np.minimum(np.floor(test_size * counts), counts - 1).astype(int)
    np.testing.assert_array_equal(test_counts, expected)
    assert_partition(X_train.index, X_test.index, len(X))
    assert X_test.index.is_monotonic_increasing
    pd.testing.assert_series_equal(y_train, y.loc[X_train.index])
    pd.testing.assert_series_equal(y_test, y.loc[X_test.index])
    pd.testing.assert_series_equal(X_train.dtypes, X.dtypes)


def test_train_test_split_per_user_min_train():
    X = SMALL.assign(user_id=["a"] * 4 + ["b"] * 3)
    _, X_test = train_test_split_per_user(X, test_size=0.8, random_state=0)
    assert X_test["user_id"].value_counts().to_dict() == {"a": 3, "b": 2}
    _, X_test = train_test_split_per_user(X, test_size=0.8, min_train=3, random_state=0)
    assert X_test["user_id"].value_counts().to_dict() == {"a": 1}


def test_train_test_split_per_user_latest():
    X_train, X_test = train_test_split_per_user(
        SMALL, test_size=0.5, timestamp_col="timestamp"
    )
    # alice's two rows at t=30 and bob's at t=15; carol's floor(0.5) is 0.
    assert X_test.index.tolist() == [1, 2, 5]
    assert X_train.index.tolist() == [0, 3, 4, 6]


@pytest.mark.parametrize("timestamp_col", [None, 2])
def test_train_test_split_per_user_ndarray_matches_dataframe(ratings, timestamp_col):
    X, y = ratings
    # An index that is not 0..n-1, so that splitting by label would go wrong.
    X_frame = X.set_axis(X.index + 1000)
    frame_split = train_test_split_per_user(
        X_frame, test_size=0.3, timestamp_col=timestamp_col, random_state=0
    )
    array_split = train_test_split_per_user(
        X.to_numpy(),
        y.to_numpy(),
        test_size=0.3,
        timestamp_col=timestamp_col,
        random_state=0,
    )
    assert len(frame_split) == 2
    assert len(array_split) == 4
    for frame_part, array_part in zip(frame_split, array_split[:2], strict=True):
        assert isinstance(array_part, np.ndarray)
        np.testing.assert_array_equal(frame_part.to_numpy(), array_part)
    np.testing.assert_array_equal(
        y.to_numpy()[frame_split[1].index - 1000], array_split[3]
    )


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: LeaveLastOut(n=0), ValueError, "'n' parameter of LeaveLastOut"),
        (lambda: LeavePerUserOut(n_splits=0), ValueError, "'n_splits' parameter"),
        (
            lambda: TemporalSplit(1.5, timestamp_col=2),
            ValueError,
            r"'test_size' parameter .* range \(0.0, 1.0\). Got 1.5",
        ),
        (
            lambda: train_test_split_per_user(SMALL, test_size=1.5),
            ValueError,
            r"'test_size' parameter of train_test_split_per_user .* Got 1.5",
        ),
        (
            lambda: train_test_split_per_user(SMALL, min_train=-1),
            ValueError,
            "'min_train' parameter",
        ),
        (lambda: LeaveLastOut(user_col=1.5), TypeError, "'user_col' parameter"),
    ],
)
def test_invalid_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    ("cv", "X", "match"),
    [
        (
            LeaveLastOut(timestamp_col="time"),
            SMALL,
            r"timestamp_col='time' is not a column of X; its columns are "
            r"\['user_id', 'item_id', 'timestamp'\]",
        ),
        (
            LeavePerUserOut(user_col="user_id"),
            SMALL.to_numpy(),
            "user_col='user_id' is a column name, but X has no column names",
        ),
        (
            TemporalSplit(timestamp_col=3),
            SMALL,
            "timestamp_col=3 is out of range for X with 3 columns",
        ),
        (
            LeaveLastOut(),
            SMALL.assign(user_id=["a", None, "a", "b", "b", "c", "c"]),
            r"Column user_col=0 contains 1 missing values",
        ),
    ],
)
def test_invalid_columns(cv, X, match):
    with pytest.raises(ValueError, match=match):
        list(cv.split(X))


def test_unknown_column_in_train_test_split_per_user():
    with pytest.raises(ValueError, match="user_col='user' is not a column of X"):
        train_test_split_per_user(SMALL, user_col="user")


def test_groups_are_ignored_with_a_warning():
    groups = np.ones(len(SMALL))
    with pytest.warns(UserWarning, match="groups parameter is ignored by LeaveLastOut"):
        _, test = only_split(LeaveLastOut(), SMALL, groups)
    np.testing.assert_array_equal(test, [3, 5])


def test_repr():
    assert repr(LeaveLastOut(2, timestamp_col="timestamp")) == (
        "LeaveLastOut(item_col=1, n=2, timestamp_col='timestamp', user_col=0)"
    )
    assert repr(TemporalSplit(timestamp_col=3, cut=10)) == (
        "TemporalSplit(cut=10, test_size=0.2, timestamp_col=3)"
    )


@requires_movielens
def test_leave_last_out_movielens():
    frame = load_movielens("100k", data_home=SHARED_DATA).frame
    train, test = only_split(LeaveLastOut(timestamp_col="timestamp"), frame)
    assert len(test) == 943
    assert len(train) == 99_057
    assert frame["user_id"].iloc[test].nunique() == 943
    assert_partition(train, test, len(frame))
