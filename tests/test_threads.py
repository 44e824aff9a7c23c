"""CPU threads: n_jobs, the limits skrec respects, and fewer threads on busy cores."""

import os

import joblib
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from skrec import MatrixFactorization, NeuralRecommender
from skrec._engine import _threads
from skrec._engine._threads import CpuThreads, threads_for_free_cores
from skrec._engine._training import Trainer
from skrec.datasets import make_ratings

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
SMALL = dict(embedding_dim=8, hidden_layer_sizes=(8,), max_iter=3, random_state=0)
MANY_CORES = pytest.mark.skipif(
    _threads.usable_cores() < 2 or torch.get_num_threads() < 2,
    reason="needs two usable cores and two torch threads",
)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=60, n_items=40, n_ratings=2000, random_state=0)


@pytest.fixture
def threads_in_steps(monkeypatch):
    """The torch thread count at every training step of the fits that follow."""
    seen = []
    train_step = Trainer.train_step

    def recording_step(self, batch):
        seen.append(torch.get_num_threads())
        return train_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", recording_step)
    return seen


@pytest.mark.parametrize(
    "free_cores, n_threads, expected",
    [(2.0, 2, 2), (1.6, 2, 2), (1.4, 2, 1), (0.1, 2, 1), (-1.0, 4, 1), (9.7, 4, 4)],
)
def test_a_core_is_free_when_others_use_less_than_half_of_it(
    free_cores, n_threads, expected
):
    assert threads_for_free_cores(free_cores, n_threads) == expected


def test_cpu_threads_sets_the_count_and_restores_the_previous_one():
    before = torch.get_num_threads()
    with CpuThreads(1) as threads:
        assert torch.get_num_threads() == threads.current == 1
    assert torch.get_num_threads() == before


def test_following_the_load_lowers_and_raises_the_count(monkeypatch):
    # (wall s, busy s of the 2 cores, own CPU s): others keep 1.8 cores busy,
    # then none, then 0.4.
    samples = iter([(0.0, 0.0, 0.0), (1.0, 2.0, 0.2), (2.0, 2.3, 0.5), (3.0, 3.7, 1.5)])
    monkeypatch.setattr(_threads, "_load_sample", lambda cpus: next(samples))
    monkeypatch.setattr(_threads, "_affinity", lambda: [0, 1])
    monkeypatch.setattr(_threads.time, "monotonic", lambda: 10.0**6)
    with CpuThreads(2, follow_load=True) as threads:
        threads.follow_load_now()
        assert threads.current == 1  # others used 1.8 cores
        threads.follow_load_now()
        assert threads.current == 2  # others used none
        threads.follow_load_now()
        # 1.4 busy seconds, 1 of them its own: others used 0.4 of a core,
        # not enough to drop a thread.
        assert threads.current == 2


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")
def test_the_load_sample_reads_this_machines_counters():
    wall, busy, own = _threads._load_sample(_threads._affinity())
    assert wall > 0 and busy > 0 and own > 0
    assert own <= busy + 1  # this process's CPU time is part of its cores'


@pytest.mark.parametrize("estimator", [NeuralRecommender, MatrixFactorization])
def test_n_jobs_fixes_the_threads_of_fit_and_restores_torchs(
    estimator, ratings, threads_in_steps
):
    before = torch.get_num_threads()
    est = estimator(n_jobs=1, **({"random_state": 0, "max_iter": 2})).fit(*ratings)
    assert set(threads_in_steps) == {1}
    assert torch.get_num_threads() == before
    est.predict(ratings[0])
    assert torch.get_num_threads() == before


def test_n_jobs_minus_one_uses_every_usable_core(ratings, threads_in_steps):
    NeuralRecommender(n_jobs=-1, **SMALL).fit(*ratings)
    assert set(threads_in_steps) == {joblib.cpu_count()}


def test_default_threads_respect_a_threadpoolctl_limit(ratings, threads_in_steps):
    with threadpool_limits(limits=1):
        NeuralRecommender(**SMALL).fit(*ratings)
    assert set(threads_in_steps) == {1}


@MANY_CORES
def test_fit_drops_to_one_thread_while_others_keep_the_cores_busy(
    ratings, threads_in_steps, monkeypatch
):
    monkeypatch.setattr(_threads, "MIN_WINDOW_SECONDS", 0.0)
    monkeypatch.setattr(_threads, "_cores_used_by_others", lambda before, after: 64.0)
    NeuralRecommender(**SMALL).fit(*ratings)
    assert threads_in_steps[-1] == 1
    # An int n_jobs holds whatever the load: fits that repeat bit for bit.
    threads_in_steps.clear()
    NeuralRecommender(n_jobs=2, **SMALL).fit(*ratings)
    assert set(threads_in_steps) == {2}


@MANY_CORES
def test_a_fixed_thread_count_gives_identical_predictions(ratings):
    X, y = ratings
    first = NeuralRecommender(n_jobs=2, **SMALL).fit(X, y).predict(X)
    second = NeuralRecommender(n_jobs=2, **SMALL).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2"])
def test_invalid_n_jobs_is_rejected_by_name(ratings, n_jobs):
    with pytest.raises((ValueError, TypeError), match="n_jobs"):
        NeuralRecommender(n_jobs=n_jobs).fit(*ratings)


@MANY_CORES
def test_processes_of_one_launch_share_the_cores(
    ratings, threads_in_steps, monkeypatch
):
    """Two processes that torchrun started on this machine each take half of
    its cores, rather than both spinning on all of them."""
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    NeuralRecommender(n_jobs=None, **SMALL).fit(*ratings)
    assert max(threads_in_steps) <= max(1, joblib.cpu_count() // 2)


def test_a_small_sequential_fit_runs_on_one_thread(monkeypatch):
    """A few hundred interactions: threads would only spin on each other, and
    a fit that follows the load would round differently from the next."""
    from skrec import SequentialRecommender
    from skrec._engine._sequence_training import SequenceTrainer
    from skrec.datasets import make_sequences

    seen = []
    train_step = SequenceTrainer.train_step

    def recording_step(self, *args):
        seen.append(torch.get_num_threads())
        return train_step(self, *args)

    monkeypatch.setattr(SequenceTrainer, "train_step", recording_step)
    frame = make_sequences(n_users=20, n_items=30, random_state=0)
    assert len(frame) <= 2_000
    SequentialRecommender(max_iter=2, random_state=0).fit(frame)
    assert set(seen) == {1}


@MANY_CORES
def test_single_requests_run_on_one_thread(ratings, monkeypatch):
    """One row to predict, one user to recommend for: threads that spin
    while they wait for each other would cost more than the request (on a
    busy machine, a hundred times more)."""
    import skrec._neural as neural
    from skrec._engine import _training

    seen = []
    score_matrix, predict_scores = neural.score_matrix, _training.predict_scores

    def recording(function):
        def wrapper(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(neural, "score_matrix", recording(score_matrix))
    monkeypatch.setattr(neural, "predict_scores", recording(predict_scores))
    X, y = ratings
    est = NeuralRecommender(**SMALL).fit(X, y)
    seen.clear()
    est.predict(X[:1])
    est.recommend(X[:1, 0], n=5)
    assert seen == [1, 1]
    est.predict(X)  # 2,000 rows: the usual threads
    assert seen[-1] == min(torch.get_num_threads(), joblib.cpu_count())
