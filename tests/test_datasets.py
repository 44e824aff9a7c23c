import hashlib
import io
import re
import zipfile
from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

from skrec.datasets import _movielens, get_data_home, load_movielens, make_ratings

from ._data import SHARED_DATA, requires_movielens

N_RATINGS, N_USERS, N_ITEMS = 100_000, 943, 1682


# get_data_home


def test_get_data_home_creates_the_given_directory(tmp_path):
    data_home = tmp_path / "a" / "b"
    assert get_data_home(data_home) == str(data_home)
    assert data_home.is_dir()


def test_get_data_home_reads_skrec_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SKREC_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == str(tmp_path / "from_env")


def test_get_data_home_defaults_to_skrec_data_in_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SKREC_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_data_home() == str(tmp_path / "skrec_data")
    assert get_data_home("~/elsewhere") == str(tmp_path / "elsewhere")


# load_movielens on the real data


@requires_movielens
def test_load_movielens_returns_all_ratings_in_a_bunch():
    bunch = load_movielens(data_home=SHARED_DATA)

    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (N_RATINGS, 2)
    assert list(bunch.data.columns) == ["user_id", "item_id"]
    assert (bunch.data.dtypes == np.int64).all()
    assert bunch.target.name == "rating"
    assert bunch.target.dtype == np.float64
    assert list(bunch.frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert bunch.frame.timestamp.dtype == np.int64
    assert bunch.feature_names == ["user_id", "item_id"]
    assert bunch.target_names == ["rating"]
    assert "data_test" not in bunch


@requires_movielens
def test_load_movielens_keeps_the_raw_grouplens_ids():
    X, y = load_movielens(data_home=SHARED_DATA, return_X_y=True)

    assert X.user_id.nunique() == N_USERS
    assert X.item_id.nunique() == N_ITEMS
    assert (X.user_id.min(), X.user_id.max()) == (1, N_USERS)
    assert (X.item_id.min(), X.item_id.max()) == (1, N_ITEMS)
    assert sorted(y.unique()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # The first line of u.data.
    assert X.iloc[0].tolist() == [196, 242]
    assert y.iloc[0] == 3.0


@requires_movielens
def test_load_movielens_describes_the_data_and_licence():
    descr = load_movielens(data_home=SHARED_DATA).DESCR

    assert descr.startswith("MovieLens-100K")
    assert "may not be redistributed" in descr
    # The opening of the GroupLens README follows.
    assert "SUMMARY & USAGE LICENSE" in descr
    assert "CITATION\n===" not in descr


@requires_movielens
@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_load_movielens_fold_returns_the_official_split(fold):
    X_train, X_test, y_train, y_test = load_movielens(
        fold=fold, data_home=SHARED_DATA, return_X_y=True
    )

    assert X_train.shape == (80_000, 2)
    assert X_test.shape == (20_000, 2)
    assert y_train.shape == (80_000,)
    assert y_test.shape == (20_000,)
    train_pairs = set(zip(X_train.user_id, X_train.item_id, strict=True))
    test_pairs = set(zip(X_test.user_id, X_test.item_id, strict=True))
    assert not train_pairs & test_pairs


@requires_movielens
def test_load_movielens_fold_bunch_has_train_and_test_entries():
    bunch = load_movielens(fold=2, data_home=SHARED_DATA)

    assert bunch.data.shape == (80_000, 2)
    assert bunch.target.shape == (80_000,)
    assert bunch.frame.shape == (80_000, 4)
    assert bunch.data_test.shape == (20_000, 2)
    assert bunch.target_test.shape == (20_000,)
    assert bunch.frame_test.shape == (20_000, 4)
    assert bunch.target_names == ["rating"]


@requires_movielens
def test_load_movielens_features_join_user_and_item_tables():
    bunch = load_movielens(data_home=SHARED_DATA, features=True)
    X = bunch.data
    assert X.shape == (N_RATINGS, 26) and list(X.columns) == bunch.feature_names
    assert list(X.columns[:7]) == [
        "user_id",
        "item_id",
        "age",
        "gender",
        "occupation",
        "zip_prefix",
        "release_year",
    ]
    assert bunch.user_features.shape == (N_USERS, 4)
    assert bunch.item_features.shape == (N_ITEMS, 20)
    # u.user: 1|24|M|technician|85711; u.item: Toy Story (1995), genres
    # Animation, Children's and Comedy.
    row = X[(X["user_id"] == 1) & (X["item_id"] == 1)].iloc[0]
    assert (row["age"], row["gender"], row["occupation"], row["zip_prefix"]) == (
        24,
        "M",
        "technician",
        "8",
    )
    assert row["release_year"] == 1995.0
    genres = [name for name in X.columns if name.startswith("genre_") and row[name]]
    assert genres == ["genre_animation", "genre_childrens", "genre_comedy"]
    # Every rating's features are its user's and its item's.
    users = bunch.user_features.reindex(X["user_id"]).to_numpy()
    pd.testing.assert_frame_equal(
        X[bunch.user_features.columns],
        pd.DataFrame(users, columns=bunch.user_features.columns).astype(
            X[bunch.user_features.columns].dtypes
        ),
    )
    assert bunch.item_features["release_year"].isna().sum() == 1
    assert X["release_year"].isna().sum() == (X["item_id"] == 267).sum()
    pd.testing.assert_series_equal(
        bunch.target, load_movielens(data_home=SHARED_DATA).target
    )


@requires_movielens
def test_load_movielens_features_in_a_pipeline_with_a_fold():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from skrec import NeuralRecommender

    X_train, X_test, y_train, y_test = load_movielens(
        fold=1, data_home=SHARED_DATA, features=True, return_X_y=True
    )
    assert X_test.shape == (20_000, 26)
    encode = ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
                ["gender", "occupation", "zip_prefix"],
            ),
            ("year", SimpleImputer(), ["release_year"]),
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    model = make_pipeline(
        encode,
        NeuralRecommender(
            user_col="user_id", item_col="item_id", max_iter=2, random_state=0
        ),
    )
    predicted = model.fit(X_train, y_train).predict(X_test)
    assert np.isfinite(predicted).all()
    assert np.sqrt(np.mean((predicted - y_test) ** 2)) < 1.1


def test_load_movielens_features_need_a_frame():
    with pytest.raises(ValueError, match="features=True needs as_frame=True"):
        load_movielens(features=True, as_frame=False, download_if_missing=False)


@requires_movielens
def test_load_movielens_fold_test_sets_partition_the_ratings():
    full = load_movielens(data_home=SHARED_DATA).frame
    tests = [
        load_movielens(fold=k, data_home=SHARED_DATA).frame_test
        for k in (1, 2, 3, 4, 5)
    ]

    union = pd.concat(tests).sort_values(["user_id", "item_id"], ignore_index=True)
    expected = full.sort_values(["user_id", "item_id"], ignore_index=True)
    pd.testing.assert_frame_equal(union, expected)


@requires_movielens
def test_load_movielens_as_arrays():
    X, y = load_movielens(data_home=SHARED_DATA, return_X_y=True, as_frame=False)
    bunch = load_movielens(data_home=SHARED_DATA, as_frame=False)

    assert (
        isinstance(X, np.ndarray) and X.dtype == np.int64 and X.shape == (N_RATINGS, 2)
    )
    assert (
        isinstance(y, np.ndarray) and y.dtype == np.float64 and y.shape == (N_RATINGS,)
    )
    np.testing.assert_array_equal(X, bunch.frame[["user_id", "item_id"]].to_numpy())
    np.testing.assert_array_equal(y, bunch.frame.rating.to_numpy())
    # The frame stays a DataFrame: it is the only holder of the timestamps.
    assert isinstance(bunch.frame, pd.DataFrame)


@requires_movielens
def test_load_movielens_fold_as_arrays():
    X_train, X_test, y_train, y_test = load_movielens(
        fold=1, data_home=SHARED_DATA, return_X_y=True, as_frame=False
    )

    assert X_train.shape == (80_000, 2) and X_train.dtype == np.int64
    assert X_test.shape == (20_000, 2) and X_test.dtype == np.int64
    assert y_train.dtype == y_test.dtype == np.float64


@requires_movielens
def test_load_movielens_reads_skrec_data(monkeypatch):
    monkeypatch.setenv("SKREC_DATA", str(SHARED_DATA))

    X, _ = load_movielens(return_X_y=True, download_if_missing=False)

    assert X.shape == (N_RATINGS, 2)


# load_movielens: errors and download, with no network and no real data


@pytest.mark.parametrize("variant", ["1m", "100K", None])
def test_load_movielens_rejects_unknown_variant(variant, tmp_path):
    with pytest.raises(ValueError, match=f"'variant' parameter.*Got {variant!r}"):
        load_movielens(variant, data_home=tmp_path)


@pytest.mark.parametrize("fold", [0, 6, -1, "1", 1.0])
def test_load_movielens_rejects_bad_fold(fold, tmp_path):
    with pytest.raises(ValueError, match=f"'fold' parameter.*Got {fold!r}"):
        load_movielens(fold=fold, data_home=tmp_path)


def test_load_movielens_missing_data_without_download(tmp_path, monkeypatch):
    monkeypatch.setattr(_movielens, "_download_file", _fail_if_called)
    expected = re.escape(f"not found at {tmp_path / 'ml-100k'} and download_if_missing")

    with pytest.raises(OSError, match=expected):
        load_movielens(data_home=tmp_path, download_if_missing=False)


def test_load_movielens_failed_download_says_where_and_how_to_fix(
    tmp_path, monkeypatch
):
    def unreachable(url, path):
        path.write_bytes(b"partial")
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(_movielens, "_download_file", unreachable)

    with pytest.raises(OSError) as excinfo:
        load_movielens(data_home=tmp_path)

    message = str(excinfo.value)
    assert f"not found at {tmp_path / 'ml-100k'}" in message
    assert "failed: [Errno -2] Name or service not known" in message
    assert "SKREC_DATA" in message and "data_home" in message
    assert isinstance(excinfo.value.__cause__, URLError)
    assert list(tmp_path.iterdir()) == []


def test_load_movielens_downloads_checks_and_unpacks_the_archive(tmp_path, monkeypatch):
    archive = _fake_archive()
    calls = []

    def download(url, path):
        calls.append(url)
        path.write_bytes(archive)

    monkeypatch.setattr(_movielens, "_download_file", download)
    monkeypatch.setattr(
        _movielens, "ARCHIVE_SHA256", hashlib.sha256(archive).hexdigest()
    )

    X, y = load_movielens(data_home=tmp_path, as_frame=False, return_X_y=True)

    assert calls == [_movielens.ARCHIVE_URL]
    np.testing.assert_array_equal(X, [[1, 10], [2, 20], [3, 30]])
    np.testing.assert_array_equal(y, [4.0, 3.0, 5.0])
    # Only ml-100k/ is unpacked, and the archive is removed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k"]

    X_train, X_test, _, _ = load_movielens(fold=1, data_home=tmp_path, return_X_y=True)
    assert (len(X_train), len(X_test)) == (2, 1)
    assert len(calls) == 1


def test_load_movielens_rejects_archive_with_wrong_checksum(tmp_path, monkeypatch):
    archive = _fake_archive()
    monkeypatch.setattr(
        _movielens, "_download_file", lambda url, path: path.write_bytes(archive)
    )

    digest = hashlib.sha256(archive).hexdigest()
    with pytest.raises(
        OSError, match=f"checksum .*{digest}.* differs from the expected"
    ):
        load_movielens(data_home=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_official_checksum_is_a_sha256():
    assert re.fullmatch("[0-9a-f]{64}", _movielens.ARCHIVE_SHA256)


def _fail_if_called(url, path):
    raise AssertionError("no download expected")


def _fake_archive():
    """Return the bytes of a zip laid out like ml-100k.zip, with three ratings."""
    ratings = ["1\t10\t4\t881250949", "2\t20\t3\t891717742", "3\t30\t5\t878887116"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-100k/u.data", "\n".join(ratings) + "\n")
        archive.writestr("ml-100k/u1.base", "\n".join(ratings[:2]) + "\n")
        archive.writestr("ml-100k/u1.test", ratings[2] + "\n")
        archive.writestr("ml-100k/README", "SUMMARY & USAGE LICENSE\n")
        archive.writestr("__MACOSX/ml-100k/._u.data", "resource fork")
    return buffer.getvalue()


# make_ratings


def test_make_ratings_default_shapes_and_dtypes():
    X, y = make_ratings(random_state=0)

    assert X.shape == (1000, 2) and X.dtype == np.int64
    assert y.shape == (1000,) and y.dtype == np.float64


def test_make_ratings_as_frame():
    X, y = make_ratings(n_ratings=200, as_frame=True, random_state=0)
    X_array, y_array = make_ratings(n_ratings=200, random_state=0)

    assert list(X.columns) == ["user_id", "item_id"]
    assert (X.dtypes == np.int64).all()
    assert y.name == "rating" and y.dtype == np.float64
    np.testing.assert_array_equal(X.to_numpy(), X_array)
    np.testing.assert_array_equal(y.to_numpy(), y_array)


def test_make_ratings_is_deterministic_given_random_state():
    X1, y1 = make_ratings(random_state=42)
    X2, y2 = make_ratings(random_state=np.random.RandomState(42))
    X3, y3 = make_ratings(random_state=43)

    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize(
    "n_users, n_items, n_ratings, popularity_skew",
    [
        (100, 50, 1000, 1.0),
        (100, 50, 2500, 3.0),  # half of all pairs: drawn with repeats rejected
        (100, 50, 2501, 1.0),  # over half: weighted sampling over every pair
        (100, 50, 5000, 1.0),  # every pair
        (1, 1, 1, 0.0),
        (7, 1000, 3000, 0.0),
        (2000, 30, 20_000, 5.0),  # steep: the popular pairs run out
    ],
)
def test_make_ratings_pairs_are_distinct_and_in_range(
    n_users, n_items, n_ratings, popularity_skew
):
    X, y = make_ratings(
        n_users, n_items, n_ratings, popularity_skew=popularity_skew, random_state=0
    )

    assert X.shape == (n_ratings, 2)
    assert X[:, 0].min() >= 0 and X[:, 0].max() < n_users
    assert X[:, 1].min() >= 0 and X[:, 1].max() < n_items
    assert len(np.unique(X[:, 0] * n_items + X[:, 1])) == n_ratings
    assert set(np.unique(y)) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_make_ratings_are_not_sorted():
    X, _ = make_ratings(n_ratings=500, random_state=0)

    assert not (np.diff(X[:, 0]) >= 0).all()


def test_make_ratings_one_million_distinct_pairs():
    n_items = 10_000
    X, y = make_ratings(100_000, n_items, 1_000_000, random_state=0)

    assert X.shape == (1_000_000, 2) and y.shape == (1_000_000,)
    keys = np.sort(X[:, 0] * n_items + X[:, 1])
    assert (np.diff(keys) > 0).all()


def test_make_ratings_item_popularity_is_long_tailed():
    def top_decile_share(popularity_skew):
        X, _ = make_ratings(
            1000, 1000, 50_000, popularity_skew=popularity_skew, random_state=0
        )
        counts = np.sort(np.bincount(X[:, 1], minlength=1000))[::-1]
        return counts[:100].sum() / counts.sum()

    # With exponent 1 the top 10% of 1,000 items carry two thirds of the
    # weight, and hold about half of the ratings once repeated pairs are
    # rejected; uniform draws give them a little over 10%.
    assert top_decile_share(1.0) > 0.4
    assert top_decile_share(0.0) < 0.15


def test_make_ratings_rating_range_and_rounding():
    _, y_int = make_ratings(n_ratings=2000, rating_range=(0, 10), random_state=0)
    _, y_float = make_ratings(
        n_ratings=2000, rating_range=(0.5, 5.0), integer_ratings=False, random_state=0
    )

    assert set(np.unique(y_int)) <= set(range(11))
    assert len(np.unique(y_int)) >= 8
    assert y_float.min() >= 0.5 and y_float.max() <= 5.0
    assert (y_float != np.round(y_float)).mean() > 0.9


def test_make_ratings_integer_ratings_stay_inside_a_fractional_range():
    _, y = make_ratings(n_ratings=2000, rating_range=(0.5, 5.5), random_state=0)

    assert set(np.unique(y)) == {1.0, 2.0, 3.0, 4.0, 5.0}


def _held_out_r2_of_user_item_means(noise):
    X, y = make_ratings(300, 200, 30_000, noise=noise, random_state=0, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    train = X_train.assign(rating=y_train)
    mean = train.rating.mean()
    user_offset = train.groupby("user_id").rating.mean() - mean
    item_offset = train.groupby("item_id").rating.mean() - mean
    predicted = (
        mean
        + X_test.user_id.map(user_offset).fillna(0.0)
        + X_test.item_id.map(item_offset).fillna(0.0)
    )
    return r2_score(y_test, predicted)


def test_make_ratings_carry_signal_a_bias_baseline_can_learn():
    # Biases carry half of the clean variance, so user and item means explain
    # a clear share of held-out ratings, and less of them as noise grows.
    r2 = _held_out_r2_of_user_item_means(noise=0.5)
    noisy_r2 = _held_out_r2_of_user_item_means(noise=2.0)

    assert r2 > 0.25
    assert noisy_r2 < r2 - 0.15


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"n_ratings": 5001}, ValueError, "n_ratings=5001 exceeds .* 5000 distinct"),
        ({"n_users": 0}, ValueError, "'n_users' parameter"),
        ({"n_items": 2.5}, ValueError, "'n_items' parameter"),
        ({"n_ratings": 0}, ValueError, "'n_ratings' parameter"),
        ({"n_factors": 0}, ValueError, "'n_factors' parameter"),
        ({"noise": -0.1}, ValueError, "'noise' parameter"),
        ({"popularity_skew": -1}, ValueError, "'popularity_skew' parameter"),
        ({"rating_range": 5}, ValueError, "'rating_range' parameter"),
        ({"rating_range": (5, 1)}, ValueError, r"rating_range must be .*\(5, 1\)"),
        ({"rating_range": (1, 2, 3)}, ValueError, "rating_range must be a pair"),
        ({"rating_range": ("a", "b")}, ValueError, "rating_range must be a pair"),
        (
            {"rating_range": (0.2, 0.8)},
            ValueError,
            r"rating_range=\(0.2, 0.8\) holds no integer",
        ),
        ({"integer_ratings": "yes"}, ValueError, "'integer_ratings' parameter"),
        ({"random_state": "seed"}, ValueError, "'random_state' parameter"),
    ],
)
def test_make_ratings_rejects_bad_parameters(params, error, message):
    with pytest.raises(error, match=message):
        make_ratings(**params)
