"""Searches and batch scoring on a Dask cluster give the numbers of one process.

One LocalCluster of two single-threaded worker processes serves the module.
Every estimator runs with ``n_jobs=1``: a fit then does the same arithmetic
in a worker as here, so cross-validation scores, chosen parameters,
predictions and recommendations must be equal to the last bit. (With the
default ``n_jobs=None`` a fit here runs on as many threads as the cores left
free, and a worker's on one; some operations round differently with another
thread count.)
"""

import os

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from torch import nn

from skrec import MatrixFactorization, NeuralRecommender, SequentialRecommender
from skrec.dask import predict_partitions, recommend_partitions
from skrec.datasets import make_ratings, make_sequences
from skrec.metrics import ndcg_scorer
from skrec.model_selection import LeaveLastOut

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(
    embedding_dim=8,
    hidden_layer_sizes=(8,),
    max_iter=5,
    learning_rate_init=0.01,
    random_state=0,
    n_jobs=1,
)
SEQUENCE_COLUMNS = dict(user_col="user_id", item_col="item_id")
ENVIRON = "distributed.nanny.pre-spawn-environ"


@pytest.fixture(scope="module")
def client():
    """A client of two worker processes of one thread each, started as the
    user guide advises: without ``MALLOC_TRIM_THRESHOLD_``.

    The cluster's nanny sets ``OMP_NUM_THREADS`` and the like to 1 in this
    process's environment before it starts a worker, so that the worker
    inherits them: they are restored afterwards for the tests that follow.
    """
    variables = dask.config.get(ENVIRON)
    saved = {name: os.environ.pop(name, None) for name in variables}
    with (
        dask.config.set({f"{ENVIRON}.MALLOC_TRIM_THRESHOLD_": None}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(
        n_users=60, n_items=40, n_ratings=1500, as_frame=True, random_state=0
    )
    return X, y


@pytest.fixture(scope="module")
def log():
    return make_sequences(n_users=40, n_items=20, mean_length=6, random_state=0)


@pytest.fixture(scope="module")
def ranker(ratings):
    return NeuralRecommender(**SMALL, loss="bce").fit(ratings[0])


def on_the_cluster(client, run):
    """``run(n_jobs)`` with ``n_jobs=1`` here, then with ``n_jobs=-1`` under
    joblib's Dask backend, checking that the second ran on the workers."""
    serial = run(n_jobs=1)
    with (
        distributed.get_task_stream(client) as tasks,
        joblib.parallel_config(backend="dask"),
    ):
        parallel = run(n_jobs=-1)
    workers = {task["worker"] for task in tasks.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])
    return serial, parallel


def assert_same_search(serial, parallel):
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(
            parallel.cv_results_[key], serial.cv_results_[key]
        )
    assert parallel.best_params_ == serial.best_params_
    assert parallel.best_score_ == serial.best_score_


def test_grid_search_of_neural_recommender(client, ratings):
    def run(n_jobs):
        return GridSearchCV(
            NeuralRecommender(**SMALL),
            {"embedding_dim": [4, 8], "learning_rate_init": [0.01, 0.03]},
            cv=KFold(3, shuffle=True, random_state=0),
            scoring="neg_root_mean_squared_error",
            n_jobs=n_jobs,
        ).fit(*ratings)

    serial, parallel = on_the_cluster(client, run)
    assert_same_search(serial, parallel)
    X = ratings[0]
    np.testing.assert_array_equal(
        parallel.best_estimator_.predict(X), serial.best_estimator_.predict(X)
    )


def test_cross_validate_of_matrix_factorization(client, ratings):
    def run(n_jobs):
        est = MatrixFactorization(embedding_dim=8, max_iter=5, random_state=0, n_jobs=1)
        return cross_validate(est, *ratings, cv=3, n_jobs=n_jobs)

    serial, parallel = on_the_cluster(client, run)
    np.testing.assert_array_equal(parallel["test_score"], serial["test_score"])


def test_grid_search_of_sequential_recommender_with_leave_last_out(client, log):
    def run(n_jobs):
        est = SequentialRecommender(
            n_layers=1,
            max_len=10,
            max_iter=3,
            early_stopping=False,
            learning_rate_init=0.01,
            random_state=0,
            n_jobs=1,
            time_col="timestamp",
            **SEQUENCE_COLUMNS,
        )
        return GridSearchCV(
            est,
            {"embedding_dim": [8, 16]},
            cv=LeaveLastOut(timestamp_col="timestamp", **SEQUENCE_COLUMNS),
            scoring=ndcg_scorer(k=10),
            n_jobs=n_jobs,
        ).fit(log)

    serial, parallel = on_the_cluster(client, run)
    assert_same_search(serial, parallel)
    assert 0.0 < serial.best_score_ <= 1.0


# -- batch scoring ----------------------------------------------------------------


def test_predict_partitions_equals_predict(client, ratings):
    X, y = ratings
    model = NeuralRecommender(**SMALL).fit(X, y)
    X_dask = dd.from_pandas(X, npartitions=3)
    y_pred = predict_partitions(model, X_dask)
    assert y_pred.npartitions == 3
    computed = y_pred.compute()
    pd.testing.assert_index_equal(computed.index, X.index)
    np.testing.assert_array_equal(computed.to_numpy(), model.predict(X))
    # The predictions align with their rows.
    scored = X_dask.assign(prediction=y_pred).compute()
    np.testing.assert_array_equal(scored["prediction"], model.predict(X))


def test_recommend_partitions_equals_recommend(client, ranker, ratings):
    # User 1000 is unknown: the most popular items, as recommend gives.
    users = np.append(ratings[0]["user_id"].unique(), 1000)
    items, scores = ranker.recommend(users, n=5, return_scores=True)
    top = recommend_partitions(
        ranker, dd.from_pandas(pd.Series(users, name="user_id"), npartitions=3), n=5
    )
    assert top.npartitions == 3
    computed = top.compute()
    assert list(computed.columns) == ["user", "rank", "item", "score"]
    np.testing.assert_array_equal(computed["user"], np.repeat(users, 5))
    np.testing.assert_array_equal(
        computed["rank"], np.tile(np.arange(1, 6), len(users))
    )
    np.testing.assert_array_equal(computed["item"], items.ravel())
    np.testing.assert_array_equal(computed["score"], scores.ravel())
    assert computed.dtypes.to_dict() == top.dtypes.to_dict()


def test_recommend_partitions_passes_its_options(client, ranker, ratings):
    users = ratings[0]["user_id"].unique()[:10]
    candidates = ranker.items_[::2]
    top = recommend_partitions(
        ranker,
        dd.from_pandas(pd.Series(users), npartitions=2),
        n=3,
        exclude_seen=False,
        items=candidates,
    ).compute()
    expected = ranker.recommend(users, n=3, exclude_seen=False, items=candidates)
    np.testing.assert_array_equal(top["item"], expected.ravel())


def models_held(client):
    """The keys of the fitted estimators that each worker holds."""
    return client.run(
        lambda dask_worker: {
            key
            for key, value in dask_worker.data.items()
            if isinstance(value, NeuralRecommender)
        }
    )


def test_the_model_goes_once_to_each_worker(client, ranker, ratings):
    users = dd.from_pandas(pd.Series(ratings[0]["user_id"].unique()), npartitions=3)
    before = models_held(client)
    top = recommend_partitions(ranker, users, n=2)
    after = models_held(client)
    # One copy per worker, before any task runs, whatever the partitions.
    assert {worker: len(after[worker] - before[worker]) for worker in after} == {
        worker: 1 for worker in after
    }
    assert len(top.compute()) == 2 * len(users)


def test_string_ids_over_partitions(client):
    # Dask stores strings as pyarrow strings; skrec reads them as the same IDs.
    X = pd.DataFrame(
        {"user": list("aabbccdd"), "item": ["x", "y", "x", "z", "y", "z", "x", "w"]}
    )
    model = NeuralRecommender(**SMALL, loss="bce").fit(X)
    X_dask = dd.from_pandas(X, npartitions=2)
    np.testing.assert_array_equal(
        predict_partitions(model, X_dask).compute(), model.predict(X)
    )
    # drop_duplicates shuffles the users: compare each with its own ranking.
    top = recommend_partitions(model, X_dask["user"].drop_duplicates(), n=2).compute()
    users = top["user"].to_numpy()[::2]
    assert sorted(users) == list("abcd")
    np.testing.assert_array_equal(top["item"], model.recommend(users, n=2).ravel())


def test_batch_scoring_rejects_pandas_input(ranker, ratings):
    with pytest.raises(TypeError, match="X must be a Dask DataFrame"):
        predict_partitions(ranker, ratings[0])
    with pytest.raises(TypeError, match="users must be a Dask Series"):
        recommend_partitions(ranker, ratings[0]["user_id"])


# -- threads in the workers -------------------------------------------------------


def threads_during_fit(X, y):
    """The torch thread counts of the training steps of a default fit, then
    torch's count, joblib's CPU count and the allocator variable in this
    process."""
    seen = []

    class DotProduct(nn.Module):
        def __init__(self, n_users, n_items, n_features):
            super().__init__()
            self.users = nn.Embedding(n_users, 4)
            self.items = nn.Embedding(n_items, 4)

        def forward(self, users, items, features):
            if self.training:
                seen.append(torch.get_num_threads())
            return (self.users(users) * self.items(items)).sum(dim=1)

    NeuralRecommender(module=DotProduct, max_iter=2, random_state=0).fit(X, y)
    return (
        sorted(set(seen)),
        torch.get_num_threads(),
        joblib.cpu_count(),
        os.environ.get("MALLOC_TRIM_THRESHOLD_"),
    )


def test_a_fit_in_a_single_threaded_worker_runs_torch_on_one_thread(client, ratings):
    # The nanny starts each worker with OMP_NUM_THREADS=1, whatever
    # threads_per_worker; n_jobs=None follows it. Two workers on two cores
    # then never run more than two torch threads between them.
    seen, torch_threads, cpus, trim_threshold = client.submit(
        threads_during_fit, *ratings, pure=False
    ).result()
    assert seen == [1]
    assert torch_threads == 1
    assert cpus == joblib.cpu_count()
    # Set, it would make every fit in the worker more than twice as slow.
    assert trim_threshold is None
