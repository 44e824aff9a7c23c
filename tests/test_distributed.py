"""Data-parallel training over torch.distributed: processes on 127.0.0.1."""

import pickle

import numpy as np
import pytest
import torch.distributed as dist

from skrec import MatrixFactorization, NeuralRecommender, SequentialRecommender
from tests._distributed import ratings, run_in_processes

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="this torch build has no torch.distributed gloo backend",
)

FITS = [
    "ratings_fit",
    "softmax_fit",
    "bce_fit",
    "uneven_early_stopping",
    "partial_fit_chunks",
    "sequences_fit",
    "sequences_sampled_softmax_fit",
    "side_features_fit",
    "sequences_partial_fit",
]
ERRORS = [
    "no_rows",
    "mismatched_parameters",
    "bad_input_on_one",
    "user_on_two_processes",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every scenario, run once in two processes sharing one process group."""
    out = tmp_path_factory.mktemp("distributed")
    return run_in_processes([*FITS, *ERRORS, "opted_out"], out)


def _check_ran(result):
    assert "error" not in result, result.get("traceback")


@pytest.mark.parametrize("scenario", FITS)
def test_processes_end_with_identical_weights(results, scenario):
    first, second = (results[rank][scenario] for rank in range(2))
    _check_ran(first)
    _check_ran(second)
    assert first["weights"].keys() == second["weights"].keys()
    for name, value in first["weights"].items():
        np.testing.assert_array_equal(value, second["weights"][name], err_msg=name)
    assert first["n_iter"] == second["n_iter"]


@pytest.mark.parametrize("scenario", FITS)
def test_pickle_of_a_process_predicts_alone(results, scenario):
    """The estimator of process 0 unpickles in a process without a group and
    predicts what process 1 predicts."""
    estimator = pickle.loads(results[0][scenario]["pickle"])
    other = results[1][scenario]
    if "item_side" in other:
        X, _ = ratings()
        X = np.column_stack([X, (X[:, 1] % 7).astype(float)])
        np.testing.assert_array_equal(estimator.predict(X[:200]), other["predictions"])
    elif isinstance(estimator, SequentialRecommender):
        users = np.unique(estimator.users_)
        np.testing.assert_array_equal(
            estimator.recommend(users, n=5), other["recommended"]
        )
    else:
        X, _ = ratings()
        np.testing.assert_array_equal(estimator.predict(X[:200]), other["predictions"])


@pytest.mark.parametrize(
    "scenario", ["ratings_fit", "softmax_fit", "partial_fit_chunks"]
)
def test_vocabularies_and_seen_pairs_span_every_process(results, scenario):
    """Each process passed the rows of its own users; each ends knowing all."""
    X, _ = ratings()
    for rank in range(2):
        result = results[rank][scenario]
        assert result["n_users"] == len(np.unique(X[:, 0]))
        assert result["n_items"] == len(np.unique(X[:, 1]))
        assert result["n_seen"] == len({tuple(row) for row in X.tolist()})


def test_side_features_of_every_process_are_kept(results):
    """Each item's feature value, whichever process saw its rows."""
    X, _ = ratings()
    items = results[0]["side_features_fit"]["item_side"][1:, 0]
    estimator = pickle.loads(results[0]["side_features_fit"]["pickle"])
    # float32 tables: the values come back to within float32 rounding.
    np.testing.assert_allclose(
        items * estimator._feature_scale[0] + estimator._feature_mean[0],
        (estimator.items_ % 7).astype(float),
        atol=1e-6,
    )


@pytest.mark.parametrize("scenario", ["ratings_fit", "side_features_fit"])
def test_scalers_are_those_of_every_process_rows(results, scenario):
    """The ratings are standardised by the mean and deviation of all rows,
    not of each process's."""
    _, y = ratings()
    for rank in range(2):
        estimator = pickle.loads(results[rank][scenario]["pickle"])
        np.testing.assert_allclose(estimator._y_mean, y.mean(), rtol=1e-12)
        np.testing.assert_allclose(estimator._y_scale, y.std(), rtol=1e-12)


def test_partial_fit_of_sequences_appends_every_process_chunk(results):
    from skrec.datasets import make_sequences

    frame = make_sequences(n_users=60, n_items=30, random_state=0)
    for rank in range(2):
        result = results[rank]["sequences_partial_fit"]
        # Consecutive repeats are merged, so at most one history row per row.
        assert 0 < result["n_histories"] <= len(frame)
    assert (
        results[0]["sequences_partial_fit"]["n_histories"]
        == results[1]["sequences_partial_fit"]["n_histories"]
    )


def test_a_user_on_two_processes_is_named(results):
    for rank in range(2):
        result = results[rank]["user_on_two_processes"]
        assert result["error"] == "ValueError"
        assert "whole history on one process" in result["message"]


def test_early_stopping_stops_every_process_at_the_same_epoch(results):
    """Shards of 300 and 2,700 rows hold out different validation rows; the
    pooled score stops both processes at one epoch, before max_iter."""
    first, second = (results[rank]["uneven_early_stopping"] for rank in range(2))
    assert first["n_iter"] == second["n_iter"] < 200
    assert first["validation_scores"] == second["validation_scores"]
    assert first["loss_curve"] == second["loss_curve"]


def test_data_parallel_fit_matches_one_process(results):
    """The model two processes fit together predicts about as well as the
    same estimator fitted in one process on every row."""
    X, y = ratings()
    alone = NeuralRecommender(
        embedding_dim=8, hidden_layer_sizes=(8,), max_iter=30, random_state=0, n_jobs=1
    ).fit(X, y)
    together = results[0]["ratings_fit"]["predictions"]
    rmse_alone = np.sqrt(np.mean((alone.predict(X[:200]) - y[:200]) ** 2))
    rmse_together = np.sqrt(np.mean((together - y[:200]) ** 2))
    assert abs(rmse_together - rmse_alone) < 0.02


def test_an_error_on_one_process_is_raised_on_every_process(results):
    """The process that failed raises its own error, the other names it;
    neither waits for the other (the processes finished)."""
    assert results[1]["no_rows"]["error"] == "ValueError"
    assert "0 sample(s)" in results[1]["no_rows"]["message"]
    assert results[0]["no_rows"]["error"] == "RuntimeError"
    assert "Process 1 of the 2" in results[0]["no_rows"]["message"]
    assert "0 sample(s)" in results[0]["no_rows"]["message"]
    assert results[1]["bad_input_on_one"]["error"] == "ValueError"
    assert "NaN" in results[0]["bad_input_on_one"]["message"]


def test_mismatched_parameters_are_named_on_every_process(results):
    for rank in range(2):
        result = results[rank]["mismatched_parameters"]
        assert result["error"] == "ValueError"
        assert (
            "process 0 has embedding_dim=8 and process 1 has embedding_dim=9"
            in (result["message"])
        )


def test_distributed_false_trains_each_process_alone(results):
    """Each process sees only its own users: 60 of the 120."""
    assert [results[rank]["opted_out"]["n_users"] for rank in range(2)] == [60, 60]


def test_a_group_of_one_process_fits_as_without_a_group(tmp_path):
    (result,) = run_in_processes(["group_of_one"], tmp_path, n_processes=1)
    scenario = result["group_of_one"]
    _check_ran(scenario)
    np.testing.assert_array_equal(scenario["together"], scenario["alone"])


@pytest.mark.parametrize(
    "estimator", [NeuralRecommender(), MatrixFactorization(), SequentialRecommender()]
)
def test_distributed_true_needs_a_process_group(estimator):
    X, y = ratings()
    with pytest.raises(ValueError, match="distributed=True .* none is initialised"):
        estimator.set_params(distributed=True).fit(X, y)
