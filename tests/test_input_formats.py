"""The forms X comes in: scipy.sparse matrices, polars frames, timestamp columns."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skrec import (
    BaselineRecommender,
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
)
from skrec.exceptions import TimestampFeatureWarning
from skrec.metrics import make_ranking_scorer
from skrec.model_selection import (
    LeaveLastOut,
    LeavePerUserOut,
    TemporalSplit,
    train_test_split_per_user,
)
from skrec.preprocessing import interactions_from_matrix, recency_weights

FAST = dict(
    embedding_dim=4,
    hidden_layer_sizes=(8,),
    max_iter=3,
    early_stopping=False,
    random_state=0,
)
# 2020-09-13 in Unix seconds.
EPOCH = 1_600_000_000


@pytest.fixture(autouse=True)
def quiet_convergence():
    # The models train for a few epochs only; their ConvergenceWarning is noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*before converging")
        yield


def interactions(n_rows=300, seed=0):
    """Users "u0".., items "i0".., a user-level age, a per-row feature, times."""
    rng = np.random.RandomState(seed)
    users = rng.randint(25, size=n_rows)
    return pd.DataFrame(
        {
            "user": [f"u{k}" for k in users],
            "item": [f"i{k}" for k in rng.randint(40, size=n_rows)],
            "age": (20 + users % 30).astype(float),
            "light": rng.uniform(size=n_rows),
            "timestamp": EPOCH + rng.permutation(n_rows) * 60,
        }
    )


def user_item_matrix(seed=0):
    """A 6 x 5 sparse matrix with an empty row (user 2) and column (item 4)."""
    rng = np.random.RandomState(seed)
    dense = rng.randint(0, 4, size=(6, 5)) * (rng.uniform(size=(6, 5)) < 0.6)
    dense[2, :] = 0
    dense[:, 4] = 0
    dense[0, 0] = dense[5, 3] = 2
    return sp.csr_matrix(dense.astype(float))


def fitted_recommender(X, **params):
    return NeuralRecommender(loss="bce", **FAST, **params).fit(X)


# -- scipy.sparse input ---------------------------------------------------------


SPARSE_FORMATS = [sp.csr_matrix, sp.csr_array, sp.coo_matrix, sp.csc_array]


@pytest.mark.parametrize("container", SPARSE_FORMATS)
def test_sparse_x_to_fit_points_to_interactions_from_matrix(container):
    matrix = container(user_item_matrix())
    with pytest.raises(TypeError, match="interactions_from_matrix") as error:
        NeuralRecommender(loss="bce").fit(matrix)
    message = str(error.value)
    assert "toarray" not in message
    assert "scipy.sparse" in message and "one row per interaction" in message
    assert type(matrix).__name__ in message and "(6, 5)" in message


# Every reader of X, called as read(X, model fitted on two ID columns).
READERS = {
    "NeuralRecommender.partial_fit": lambda X, _: NeuralRecommender().partial_fit(X),
    "NeuralRecommender.predict": lambda X, model: model.predict(X),
    "MatrixFactorization.fit": lambda X, _: MatrixFactorization().fit(X),
    "BaselineRecommender.fit": lambda X, _: BaselineRecommender().fit(X, np.ones(6)),
    "PopularityRecommender.fit": lambda X, _: PopularityRecommender().fit(X),
    "scorer": lambda X, model: make_ranking_scorer("ndcg")(model, X),
    "LeaveLastOut": lambda X, _: list(LeaveLastOut(timestamp_col=2).split(X)),
    "LeavePerUserOut": lambda X, _: list(LeavePerUserOut().split(X)),
    "TemporalSplit": lambda X, _: list(TemporalSplit(timestamp_col=2).split(X)),
    "train_test_split_per_user": lambda X, _: train_test_split_per_user(X),
    "recency_weights": lambda X, _: recency_weights(X, half_life=1, timestamp_col=2),
}


@pytest.fixture(scope="module")
def fitted_on_ids():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*before converging")
        return fitted_recommender(interactions(60)[["user", "item"]].to_numpy())


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_every_reader_of_x_rejects_a_sparse_matrix(read, fitted_on_ids):
    with pytest.raises(TypeError, match="interactions_from_matrix") as error:
        read(user_item_matrix(), fitted_on_ids)
    assert "toarray" not in str(error.value)


def test_fit_on_interactions_from_matrix_knows_the_nonzero_rows_and_columns():
    matrix = user_item_matrix()
    X, y = interactions_from_matrix(matrix)
    est = NeuralRecommender(loss="bce", **FAST).fit(X, y)
    rows, columns = matrix.nonzero()
    np.testing.assert_array_equal(est.users_, np.unique(rows))
    np.testing.assert_array_equal(est.items_, np.unique(columns))
    assert 2 not in est.users_ and 4 not in est.items_
    assert est.n_features_in_ == 2 and list(est.feature_names_in_) == list(X.columns)


def test_interactions_from_matrix_gives_the_nonzero_entries_row_by_row():
    matrix = user_item_matrix()
    X, y = interactions_from_matrix(matrix)
    dense = matrix.toarray()
    rows, columns = np.nonzero(dense)
    assert list(X.columns) == ["user_id", "item_id"]
    np.testing.assert_array_equal(X["user_id"], rows)
    np.testing.assert_array_equal(X["item_id"], columns)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, dense[rows, columns])
    # Every form of the same matrix gives the same rows.
    for same in (dense, dense.tolist(), sp.coo_array(matrix), sp.csc_matrix(matrix)):
        X_same, y_same = interactions_from_matrix(same)
        pd.testing.assert_frame_equal(X_same, X)
        np.testing.assert_array_equal(y_same, y)


def test_interactions_from_matrix_drops_explicit_zeros_and_sums_duplicates():
    # Entry (0, 1) is stored twice; entry (1, 0) is a stored zero.
    coo = sp.coo_matrix(([1.0, 2.0, 0.0, 5.0], ([0, 0, 1, 1], [1, 1, 0, 2])))
    X, y = interactions_from_matrix(coo)
    assert X.to_numpy().tolist() == [[0, 1], [1, 2]]
    np.testing.assert_array_equal(y, [3.0, 5.0])
    # The caller's matrix is left as it was.
    assert coo.nnz == 4
    X, y = interactions_from_matrix(np.array([[True, False], [False, True]]))
    np.testing.assert_array_equal(y, [1.0, 1.0])


def test_interactions_from_matrix_labels_rows_and_columns():
    matrix = sp.csr_array([[0, 2, 0], [1, 0, 3]])
    X, y = interactions_from_matrix(
        matrix, users=np.array(["ann", "bob"]), items=pd.Index([10, 20, 30])
    )
    assert X.to_numpy().tolist() == [["ann", 20], ["bob", 10], ["bob", 30]]
    np.testing.assert_array_equal(y, [2.0, 1.0, 3.0])
    # A Series' own index does not matter, only the order of its values.
    X, _ = interactions_from_matrix(matrix, users=pd.Series(["a", "b"], index=[7, 3]))
    assert X["user_id"].tolist() == ["a", "b", "b"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"users": ["a"]}, "users has 1 IDs, but matrix has 2 rows"),
        ({"items": ["x", "y"]}, "items has 2 IDs, but matrix has 3 columns"),
        ({"users": ["a", "a"]}, "users holds 'a' more than once"),
        ({"users": [["a", "b"]]}, r"users must be 1-dimensional, got shape \(1, 2\)"),
    ],
)
def test_interactions_from_matrix_checks_the_labels(kwargs, message):
    with pytest.raises(ValueError, match=message):
        interactions_from_matrix(sp.csr_array([[0, 2, 0], [1, 0, 3]]), **kwargs)


@pytest.mark.parametrize("as_sparse", [False, True])
@pytest.mark.parametrize(
    "value, message",
    [
        (-2.0, "holds -2.0 at row 1, column 2; interaction weights must be non-"),
        (np.nan, "holds nan at row 1, column 2; interaction weights must be finite"),
        (np.inf, "holds inf at row 1, column 2; interaction weights must be finite"),
    ],
)
def test_interactions_from_matrix_rejects_negative_and_non_finite_values(
    as_sparse, value, message
):
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, value]])
    matrix = sp.csr_matrix(dense) if as_sparse else dense
    with pytest.raises(ValueError, match=message):
        interactions_from_matrix(matrix)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.ones(3), r"matrix must be 2-dimensional, got shape \(3,\)"),
        (np.ones((2, 2, 2)), r"matrix must be 2-dimensional, got shape \(2, 2, 2\)"),
        (np.array([["a", "b"]]), "matrix must hold numbers"),
    ],
)
def test_interactions_from_matrix_needs_a_numeric_matrix(matrix, message):
    with pytest.raises(ValueError, match=message):
        interactions_from_matrix(matrix)


# -- polars DataFrames ----------------------------------------------------------


def test_polars_frame_fits_predicts_and_recommends_as_pandas():
    pl = pytest.importorskip("polars")
    frame = interactions()[["user", "item", "age"]]
    polars_frame = pl.DataFrame(frame.to_dict(orient="list"))
    params = dict(user_col="user", item_col="item", user_features=["age"])
    on_pandas = fitted_recommender(frame, **params)
    on_polars = fitted_recommender(polars_frame, **params)
    np.testing.assert_array_equal(on_polars.feature_names_in_, frame.columns)
    assert on_polars.n_features_in_ == 3
    np.testing.assert_array_equal(on_polars.users_, on_pandas.users_)
    np.testing.assert_array_equal(on_polars.items_, on_pandas.items_)
    np.testing.assert_array_equal(
        on_polars.predict(polars_frame), on_pandas.predict(frame)
    )
    # A model fitted on either reads the other.
    np.testing.assert_array_equal(
        on_pandas.predict(polars_frame), on_pandas.predict(frame)
    )
    users = polars_frame["user"].unique().sort()
    np.testing.assert_array_equal(
        on_polars.recommend(users, n=5), on_pandas.recommend(users.to_list(), n=5)
    )
    scorer = make_ranking_scorer("hit_rate", k=10)
    assert scorer(on_polars, polars_frame) == scorer(on_pandas, frame)


def test_polars_partial_fit_and_baselines_read_columns_by_name():
    pl = pytest.importorskip("polars")
    frame = interactions()[["user", "item"]]
    polars_frame = pl.DataFrame(frame.to_dict(orient="list"))
    y = np.linspace(1, 5, len(frame))
    names = dict(user_col="user", item_col="item")
    baseline = BaselineRecommender(**names)
    np.testing.assert_array_equal(
        baseline.fit(polars_frame, y).predict(polars_frame),
        baseline.fit(frame, y).predict(frame),
    )
    on_polars = NeuralRecommender(**FAST, **names).partial_fit(polars_frame, y)
    on_pandas = NeuralRecommender(**FAST, **names).partial_fit(frame, y)
    np.testing.assert_array_equal(
        on_polars.predict(polars_frame), on_pandas.predict(frame)
    )


def test_polars_columns_keep_their_kind():
    pl = pytest.importorskip("polars")
    polars_frame = pl.DataFrame(
        {
            "user": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
            "item": [3, 1, 2],
            "weight": [0.5, 1.0, 2.0],
            "seen": pl.Series([1, 2, 3]).cast(pl.Datetime("ms")),
        }
    )
    est = PopularityRecommender(user_col="user", item_col="item")
    with pytest.raises(ValueError, match="Side-feature seen holds datetimes"):
        est.fit(polars_frame)
    est.fit(polars_frame.drop("seen"))
    np.testing.assert_array_equal(est.users_, ["a", "b"])
    np.testing.assert_array_equal(est.items_, [1, 2, 3])
    assert est.items_.dtype.kind == "i"


def test_polars_frame_in_splitters_and_recency_weights():
    pl = pytest.importorskip("polars")
    frame = interactions()
    polars_frame = pl.DataFrame(frame.to_dict(orient="list"))
    for cv in (
        LeaveLastOut(user_col="user", item_col="item", timestamp_col="timestamp"),
        TemporalSplit(timestamp_col="timestamp"),
        LeavePerUserOut(user_col="user", n_splits=2, random_state=0),
    ):
        for (train, test), (train_pd, test_pd) in zip(
            cv.split(polars_frame), cv.split(frame), strict=True
        ):
            np.testing.assert_array_equal(train, train_pd)
            np.testing.assert_array_equal(test, test_pd)
    weights = recency_weights(
        polars_frame, half_life=2, timestamp_col="timestamp", user_col="user"
    )
    np.testing.assert_array_equal(
        weights,
        recency_weights(frame, half_life=2, timestamp_col="timestamp", user_col=0),
    )
    X_train, X_test, y_train, y_test = train_test_split_per_user(
        polars_frame,
        polars_frame["light"],
        user_col="user",
        timestamp_col="timestamp",
    )
    assert isinstance(X_train, pl.DataFrame) and isinstance(y_test, pl.Series)
    expected = train_test_split_per_user(
        frame, user_col="user", timestamp_col="timestamp"
    )[1]
    assert X_test.to_dict(as_series=False) == expected.to_dict(orient="list")


# -- timestamps left in X ----------------------------------------------------------


def test_epoch_seconds_timestamp_column_warns_with_the_time_tools():
    X = interactions()[["user", "item", "timestamp"]]
    est = NeuralRecommender(loss="bce", user_col="user", item_col="item", **FAST)
    with pytest.warns(TimestampFeatureWarning, match="recency_weights") as record:
        est.fit(X)
    record = [w for w in record if w.category is TimestampFeatureWarning]
    assert len(record) == 1
    message = str(record[0].message)
    assert "'timestamp'" in message
    assert "numeric side feature" in message
    assert "LeaveLastOut" in message and "TemporalSplit" in message
    assert "X.drop(columns=['timestamp'])" in message
    # The warning points at the caller's fit, not into skrec.
    assert record[0].filename == __file__
    # Once per fit: predict, scoring and a warm start say nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampFeatureWarning)
        est.predict(X)
        make_ranking_scorer("ndcg", n_sampled=5, random_state=0)(est, X)
        est.set_params(warm_start=True).fit(X)


def test_a_small_float_column_not_named_as_a_time_does_not_warn():
    X = interactions()[["user", "item", "timestamp"]]
    X = X.rename(columns={"timestamp": "x"}).assign(x=np.linspace(0, 1, len(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampFeatureWarning)
        NeuralRecommender(loss="bce", user_col="user", item_col="item", **FAST).fit(X)


@pytest.mark.parametrize(
    "name",
    ["time", "Timestamp", "date", "event_time", "rating-date", "unix time", "ts",
     "ts_ms", "created_at", "epoch", "createdAt", "eventTime"],
)  # fmt: skip
def test_a_column_named_as_a_time_warns_whatever_its_values(name):
    X = interactions()[["user", "item"]].assign(**{name: np.arange(300.0)})
    with pytest.warns(TimestampFeatureWarning, match=f"'{name}'.*by its name"):
        fitted_recommender(X, user_col="user", item_col="item")


@pytest.mark.parametrize(
    "name", ["runtime", "lifetime", "stats", "release_year", "dates_seen", "x"]
)
def test_other_names_with_small_values_do_not_warn(name):
    X = interactions()[["user", "item"]].assign(**{name: np.arange(300.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampFeatureWarning)
        fitted_recommender(X, user_col="user", item_col="item")


@pytest.mark.parametrize("unit, scale", [("seconds", 1), ("milliseconds", 1000)])
def test_epoch_values_warn_under_any_name_and_in_arrays(unit, scale):
    frame = interactions()
    values = frame["timestamp"].to_numpy() * scale
    with pytest.warns(TimestampFeatureWarning, match=f"Unix times in {unit}"):
        fitted_recommender(frame[["user", "item"]].assign(x=values), user_col="user")
    X = np.column_stack([frame["user"], frame["item"], values]).astype(object)
    with pytest.warns(TimestampFeatureWarning, match="Column 2 of X") as record:
        fitted_recommender(X)
    assert "np.delete(X, 2, axis=1)" in str(record[0].message)


def test_epoch_like_but_fractional_or_out_of_range_values_do_not_warn():
    frame = interactions()[["user", "item"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampFeatureWarning)
        for values in (
            EPOCH + np.linspace(0, 0.5, len(frame)),  # not whole numbers
            np.full(len(frame), 600_000_000),  # 1989
            np.full(len(frame), 5_000_000_000),  # 2128, or 1970 in milliseconds
        ):
            fitted_recommender(frame.assign(x=values), user_col="user")


def test_timestamps_declared_or_ignored_do_not_warn():
    X = interactions()[["user", "item", "age", "timestamp"]]
    # An item-level time, constant per item: when the item was released.
    released = EPOCH + X["item"].str[1:].astype(int) * 86_400
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampFeatureWarning)
        fitted_recommender(
            X.assign(timestamp=released),
            user_col="user",
            item_col="item",
            item_features=["timestamp"],
        )
        BaselineRecommender(user_col="user", item_col="item").fit(X, np.ones(len(X)))
        PopularityRecommender(user_col="user", item_col="item").fit(X)


def test_partial_fit_warns_on_its_first_call_only():
    X = interactions()[["user", "item", "timestamp"]]
    est = NeuralRecommender(loss="bce", user_col="user", item_col="item", **FAST)
    with pytest.warns(TimestampFeatureWarning):
        est.partial_fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampFeatureWarning)
        est.partial_fit(X)


@pytest.mark.parametrize(
    "estimator", [NeuralRecommender(**FAST), BaselineRecommender()]
)
def test_a_datetime_column_is_an_error_with_the_time_tools(estimator):
    frame = interactions()
    X = frame[["user", "item"]].assign(
        when=pd.to_datetime(frame["timestamp"], unit="s")
    )
    with pytest.raises(ValueError, match="Side-feature when holds datetimes") as error:
        estimator.fit(X, np.ones(len(X)))
    message = str(error.value)
    assert "recency_weights" in message and "LeaveLastOut" in message
    # The same in an object array, as a list of rows gives.
    with pytest.raises(ValueError, match="Side-feature column 2 holds datetimes"):
        estimator.fit(X.to_numpy(dtype=object), np.ones(len(X)))
