"""Out-of-core fitting: partial_fit over chunks of Parquet files, and the reader."""

import sys

import numpy as np
import pandas as pd
import pytest

from skrec import MatrixFactorization, NeuralRecommender
from skrec.datasets import iter_parquet_chunks, make_ratings

pytest.importorskip("pyarrow")

N_FILES = 4
RATINGS = dict(n_users=200, n_items=100, n_ratings=8000, noise=0.5, random_state=0)
MF = dict(embedding_dim=8, learning_rate_init=0.01, random_state=0, n_jobs=1)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Training rows in N_FILES Parquet files, and held-out rows with the
    noise-free ratings they were drawn from."""
    X, y = make_ratings(**RATINGS, as_frame=True)
    # The same seed with noise=0 draws the same pairs and latent factors, and
    # gives the clean signal, scaled to the rating range, as the ratings.
    X_clean, clean = make_ratings(
        **{**RATINGS, "noise": 0.0}, integer_ratings=False, as_frame=True
    )
    pd.testing.assert_frame_equal(X, X_clean)
    # make_ratings shuffles its rows: the first 1,600 are a random sample.
    test = np.arange(len(y)) < 1600
    train = X[~test].assign(rating=y[~test])
    folder = tmp_path_factory.mktemp("shards")
    paths = []
    for k, rows in enumerate(np.array_split(np.arange(len(train)), N_FILES)):
        paths.append(folder / f"part-{k}.parquet")
        train.iloc[rows].to_parquet(paths[-1])
    return paths, train, X[test], clean[test]


def fit_in_chunks(est, paths, n_epochs, **kwargs):
    for _ in range(n_epochs):
        for chunk in iter_parquet_chunks(paths, **kwargs):
            est.partial_fit(chunk[["user_id", "item_id"]], chunk["rating"])
    return est


# -- partial_fit over Parquet files ----------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_chunked_fit_is_as_accurate_as_one_fit_with_alpha_over_the_files(shards):
    paths, train, X_test, clean = shards
    X, y = train[["user_id", "item_id"]], train["rating"]
    params = dict(MF, alpha=10.0, max_iter=10, early_stopping=False)
    single = rmse(MatrixFactorization(**params).fit(X, y).predict(X_test), clean)
    # RMSE against the clean ratings. Over eight seeds of RATINGS, one fit
    # scored 0.70 to 0.74 times the training mean's RMSE.
    assert single < 0.8 * rmse(np.full(len(clean), y.mean()), clean)
    # Each call penalises the tables with the whole alpha, so an epoch over
    # N_FILES files penalises them N_FILES times: alpha / N_FILES matches one
    # fit. Over the same seeds the chunked RMSE was 0.957 to 0.984 times the
    # single fit's (rare users, in fewer files, are shrunk less), and with
    # alpha itself 1.093 to 1.162 times.
    chunked = fit_in_chunks(
        MatrixFactorization(**{**MF, "alpha": 10 / N_FILES}), paths, 10
    )
    assert chunked.n_iter_ == 10 * N_FILES
    assert rmse(chunked.predict(X_test), clean) < 1.03 * single
    undivided = fit_in_chunks(MatrixFactorization(**{**MF, "alpha": 10.0}), paths, 10)
    assert rmse(undivided.predict(X_test), clean) > 1.05 * single


@pytest.mark.parametrize("estimator_class", [MatrixFactorization, NeuralRecommender])
def test_vocabularies_grow_to_the_union_of_the_files_ids(
    shards, tmp_path, estimator_class
):
    _, train, X_test, _ = shards
    # Files of disjoint users: each brings new users, and items of the tail.
    by_user = train.sort_values("user_id", kind="stable")
    paths = []
    for k, rows in enumerate(np.array_split(np.arange(len(by_user)), N_FILES)):
        paths.append(tmp_path / f"users-{k}.parquet")
        by_user.iloc[rows].to_parquet(paths[-1])
    est = estimator_class(embedding_dim=8, random_state=0, n_jobs=1)
    users, items, grown = set(), set(), []
    for chunk in iter_parquet_chunks(paths):
        est.partial_fit(chunk[["user_id", "item_id"]], chunk["rating"])
        users |= set(chunk["user_id"])
        items |= set(chunk["item_id"])
        assert (len(est.users_), len(est.items_)) == (len(users), len(items))
        grown.append(len(est.users_))
    assert grown == sorted(set(grown))
    assert set(est.users_) == set(train["user_id"])
    assert set(est.items_) == set(train["item_id"])
    assert est.module_.user_table.num_embeddings == len(est.users_) + 1
    assert est.module_.item_table.num_embeddings == len(est.items_) + 1
    # The pairs of every file count as seen.
    assert est.user_items_.nnz == len(train)
    assert np.isfinite(est.predict(X_test)).all()


def test_a_file_of_new_users_and_items_extends_the_tables(shards, tmp_path):
    paths, train, X_test, _ = shards
    est = fit_in_chunks(MatrixFactorization(**MF), paths, 1)
    users, items = est.users_.copy(), est.items_.copy()
    before = est.predict(X_test)
    unknown = pd.DataFrame({"user_id": [10**6] * 3, "item_id": [10**6, 10**6 + 1, 0]})
    fallback = est.predict(unknown)
    new = unknown.assign(rating=[5.0, 5.0, 5.0])
    new.to_parquet(tmp_path / "new.parquet")
    fit_in_chunks(est, [tmp_path / "new.parquet"], 1)
    # The new IDs come last: the learned rows keep their codes.
    np.testing.assert_array_equal(est.users_, np.append(users, 10**6))
    np.testing.assert_array_equal(est.items_, np.append(items, [10**6, 10**6 + 1]))
    assert est.module_.user_table.num_embeddings == len(users) + 2
    assert est.module_.item_table.num_embeddings == len(items) + 3
    # The new user's rows, all 5s, lift their predictions above the fallback.
    assert (est.predict(unknown) > fallback).all()
    assert np.isfinite(est.predict(X_test)).all()
    assert rmse(est.predict(X_test), before) < 0.5


# -- iter_parquet_chunks ---------------------------------------------------------


def test_chunks_follow_the_files_and_batch_size(shards):
    paths, train, _, _ = shards
    chunks = list(iter_parquet_chunks(paths[:2], batch_size=700))
    # 1,600 rows per file: 700 + 700 + 200, never across two files.
    assert [len(chunk) for chunk in chunks] == [700, 700, 200] * 2
    read = pd.concat(chunks, ignore_index=True)
    expected = train.iloc[: len(read)].reset_index(drop=True)
    pd.testing.assert_frame_equal(read, expected)
    # A permutation of the paths, as numpy returns it, sets the order.
    reordered = iter_parquet_chunks(np.array(paths[:2])[::-1], batch_size=700)
    pd.testing.assert_frame_equal(next(reordered), chunks[3])


def test_columns_are_read_in_the_order_asked(shards):
    paths, train, _, _ = shards
    chunk = next(iter_parquet_chunks(paths[0], ["rating", "user_id"]))
    assert list(chunk.columns) == ["rating", "user_id"]
    np.testing.assert_array_equal(chunk["rating"], train["rating"][: len(chunk)])


def test_a_missing_file_fails_before_any_chunk(shards, tmp_path):
    paths, _, _, _ = shards
    missing = tmp_path / "part-9.parquet"
    with pytest.raises(FileNotFoundError, match=r"part-9\.parquet' does not exist"):
        iter_parquet_chunks([*paths, missing])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not parquet", "is not a readable Parquet file"),
        (None, r"is a directory; pass the paths of its files"),
    ],
)
def test_a_path_that_is_no_parquet_file_is_named(shards, tmp_path, content, message):
    paths, _, _, _ = shards
    bad = tmp_path / "bad.parquet"
    if content is None:
        bad.mkdir()
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        iter_parquet_chunks([paths[0], bad])
    assert "bad.parquet" in str(error.value)


def test_a_file_with_other_columns_is_named(shards, tmp_path):
    paths, train, _, _ = shards
    renamed = tmp_path / "renamed.parquet"
    train.rename(columns={"item_id": "movie_id"}).to_parquet(renamed)
    # pyarrow itself would silently leave the missing column out.
    with pytest.raises(ValueError, match=r"renamed\.parquet' has no column 'item_id'"):
        iter_parquet_chunks([paths[0], renamed], ["user_id", "item_id", "rating"])
    with pytest.raises(ValueError, match=r"renamed\.parquet' has the columns"):
        iter_parquet_chunks([paths[0], renamed])
    # Without the helper, partial_fit names the columns, not the file.
    est = MatrixFactorization(**MF).partial_fit(
        train[["user_id", "item_id"]], train["rating"]
    )
    other = pd.read_parquet(renamed)
    with pytest.raises(ValueError, match="feature names should match"):
        est.partial_fit(other[["user_id", "movie_id"]], other["rating"])


def test_ids_of_another_type_in_a_file_are_named(shards, tmp_path):
    paths, train, _, _ = shards
    strings = tmp_path / "strings.parquet"
    train.astype({"user_id": str}).to_parquet(strings)
    with pytest.raises(ValueError, match=r"'user_id' holds string values in .*strings"):
        iter_parquet_chunks([paths[0], strings])
    # Numbers of another type are the same IDs: 42 == 42.0.
    floats = tmp_path / "floats.parquet"
    train.astype({"user_id": np.int32, "item_id": np.float64}).to_parquet(floats)
    assert len(list(iter_parquet_chunks([paths[0], floats]))) == 2


def test_no_paths_is_an_error():
    with pytest.raises(ValueError, match="paths is empty"):
        iter_parquet_chunks([])


def test_without_pyarrow_the_error_names_the_extra(shards, monkeypatch):
    paths, _, _, _ = shards
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r'pip install "skrec\[parquet\]"'):
        iter_parquet_chunks(paths)
