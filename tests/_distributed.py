"""Run scenarios in a group of processes on 127.0.0.1, for the data-parallel
tests. Each process runs every scenario in order, inside one gloo process
group, and writes what it saw to ``<out>/<rank>.pkl``."""

import datetime
import os
import pickle
import socket
import time
import traceback

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from skrec import MatrixFactorization, NeuralRecommender, SequentialRecommender
from skrec.datasets import make_ratings, make_sequences

# Seconds a collective waits for the other processes before failing: far
# beyond any step here, far below the test's own deadline.
COLLECTIVE_TIMEOUT = 60


def run_in_processes(scenarios, out, n_processes=2, deadline=240):
    """Run ``scenarios`` (names of functions below) in ``n_processes``
    processes; return each process's results, by rank. Processes still
    running after ``deadline`` seconds are killed and the call fails."""
    port = _free_port()
    context = mp.start_processes(
        _main,
        args=(n_processes, port, scenarios, str(out)),
        nprocs=n_processes,
        join=False,
        start_method="spawn",
    )
    stop_at = time.monotonic() + deadline
    while not context.join(timeout=1):
        if time.monotonic() > stop_at:
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"the processes did not finish in {deadline} s")
    return [
        pickle.loads((out / f"{rank}.pkl").read_bytes()) for rank in range(n_processes)
    ]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _main(rank, n_processes, port, scenarios, out):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=n_processes,
        timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT),
    )
    results = {}
    try:
        for name in scenarios:
            try:
                results[name] = SCENARIOS[name](rank, n_processes)
            except Exception as exc:  # reported to the test
                results[name] = {
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                }
    finally:
        with open(os.path.join(out, f"{rank}.pkl"), "wb") as file:
            pickle.dump(results, file)
        dist.destroy_process_group()


def ratings():
    return make_ratings(n_users=120, n_items=60, n_ratings=3000, random_state=0)[:2]


def shard_by_user(X, rank, n_processes):
    """The rows of the users of this process: the processes' vocabularies
    differ."""
    mine = X[:, 0] % n_processes == rank
    return mine


def _weights(estimator):
    return {
        name: value.detach().cpu().numpy().copy()
        for name, value in estimator.module_.state_dict().items()
    }


def _fitted(estimator, X_test):
    return {
        "weights": _weights(estimator),
        "pickle": pickle.dumps(estimator),
        "predictions": estimator.predict(X_test),
        "n_iter": estimator.n_iter_,
        "validation_scores": estimator.validation_scores_,
        "loss_curve": estimator.loss_curve_,
        "n_users": len(estimator.users_),
        "n_items": len(estimator.items_),
        "n_seen": estimator.user_items_.nnz,
    }


def ratings_fit(rank, n_processes, estimator=None):
    X, y = ratings()
    mine = shard_by_user(X, rank, n_processes)
    estimator = estimator or NeuralRecommender(
        embedding_dim=8, hidden_layer_sizes=(8,), max_iter=30, random_state=0
    )
    estimator.fit(X[mine], y[mine])
    return _fitted(estimator, X[:200])


def softmax_fit(rank, n_processes):
    X, _ = ratings()
    mine = shard_by_user(X, rank, n_processes)
    estimator = MatrixFactorization(
        loss="softmax", embedding_dim=8, max_iter=5, sparse_embeddings=True
    )
    estimator.set_params(random_state=0, early_stopping=False)
    estimator.fit(X[mine])
    return _fitted(estimator, X[:200])


def bce_fit(rank, n_processes):
    X, _ = ratings()
    mine = shard_by_user(X, rank, n_processes)
    estimator = NeuralRecommender(
        loss="bce", embedding_dim=8, hidden_layer_sizes=(8,), max_iter=4
    )
    estimator.set_params(random_state=0, early_stopping=True)
    estimator.fit(X[mine])
    return _fitted(estimator, X[:200])


def uneven_early_stopping(rank, n_processes):
    """Shards of very different sizes, each holding out its own rows."""
    X, y = ratings()
    mine = slice(0, 300) if rank == 0 else slice(300, None)
    estimator = MatrixFactorization(embedding_dim=8, max_iter=200, random_state=0)
    estimator.set_params(n_iter_no_change=2, learning_rate_init=0.05)
    estimator.fit(X[mine], y[mine])
    return _fitted(estimator, X[:200])


def partial_fit_chunks(rank, n_processes):
    X, y = ratings()
    mine = shard_by_user(X, rank, n_processes)
    estimator = MatrixFactorization(embedding_dim=8, random_state=0)
    half = int(mine.sum()) // 2
    X_mine, y_mine = X[mine], y[mine]
    estimator.partial_fit(X_mine[:half], y_mine[:half])
    estimator.partial_fit(X_mine[half:], y_mine[half:])
    return _fitted(estimator, X[:200])


def sequences_fit(rank, n_processes, **params):
    frame = make_sequences(n_users=60, n_items=30, random_state=0)
    users = frame.iloc[:, 0].to_numpy()
    mine = frame[users % n_processes == rank]
    estimator = SequentialRecommender(
        embedding_dim=16, max_len=20, max_iter=4, random_state=0, **params
    )
    estimator.fit(mine)
    return {
        "weights": _weights(estimator),
        "pickle": pickle.dumps(estimator),
        "recommended": estimator.recommend(np.unique(users), n=5),
        "n_iter": estimator.n_iter_,
        "validation_scores": estimator.validation_scores_,
    }


def sequences_sampled_softmax_fit(rank, n_processes):
    """Its steps are divided by the whole group's step weight when that is
    larger than a mean step's."""
    return sequences_fit(rank, n_processes, loss="sampled_softmax", n_negatives=8)


def side_features_fit(rank, n_processes):
    """An item feature, constant per item, on rows split by user: each
    process sees some items, both processes many of the same."""
    X, y = ratings()
    feature = (X[:, 1] % 7).astype(float)
    table = np.column_stack([X, feature])
    mine = shard_by_user(X, rank, n_processes)
    estimator = NeuralRecommender(
        embedding_dim=8, hidden_layer_sizes=(8,), max_iter=3, random_state=0
    )
    estimator.set_params(item_features=[2])
    estimator.fit(table[mine], y[mine])
    result = _fitted(estimator, table[:200])
    result["item_side"] = estimator.module_.item_side.numpy().copy()
    return result


def sequences_partial_fit(rank, n_processes):
    frame = make_sequences(n_users=60, n_items=30, random_state=0)
    users = frame.iloc[:, 0].to_numpy()
    mine = frame[users % n_processes == rank]
    estimator = SequentialRecommender(embedding_dim=16, max_len=20, random_state=0)
    half = len(mine) // 2
    estimator.partial_fit(mine.iloc[:half])
    estimator.partial_fit(mine.iloc[half:])
    return {
        "weights": _weights(estimator),
        "pickle": pickle.dumps(estimator),
        "recommended": estimator.recommend(np.unique(users), n=5),
        "n_iter": estimator.n_iter_,
        "n_histories": len(estimator._history_codes),
    }


def user_on_two_processes(rank, n_processes):
    frame = make_sequences(n_users=20, n_items=30, random_state=0)
    SequentialRecommender(max_iter=2).fit(frame.iloc[rank::n_processes])


def no_rows(rank, n_processes):
    X, y = ratings()
    if rank == 1:
        X, y = X[:0], y[:0]
    NeuralRecommender(max_iter=2).fit(X, y)


def mismatched_parameters(rank, n_processes):
    X, y = ratings()
    NeuralRecommender(embedding_dim=8 + rank, max_iter=2).fit(X, y)


def bad_input_on_one(rank, n_processes):
    X, y = ratings()
    y = y.copy()
    if rank == 1:
        y[3] = np.nan
    NeuralRecommender(max_iter=2).fit(X, y)


def opted_out(rank, n_processes):
    X, y = ratings()
    mine = shard_by_user(X, rank, n_processes)
    estimator = MatrixFactorization(
        embedding_dim=8, max_iter=3, random_state=0, distributed=False
    )
    estimator.fit(X[mine], y[mine])
    return {"n_users": len(estimator.users_)}


def group_of_one(rank, n_processes):
    """In a group of one process, a fit is the plain fit."""
    X, y = ratings()
    params = {"embedding_dim": 8, "max_iter": 5, "random_state": 0, "n_jobs": 1}
    together = MatrixFactorization(**params).fit(X, y)
    alone = MatrixFactorization(distributed=False, **params).fit(X, y)
    return {
        "together": together.predict(X[:200]),
        "alone": alone.predict(X[:200]),
    }


SCENARIOS = {
    function.__name__: function
    for function in (
        ratings_fit,
        softmax_fit,
        bce_fit,
        uneven_early_stopping,
        partial_fit_chunks,
        sequences_fit,
        sequences_sampled_softmax_fit,
        side_features_fit,
        sequences_partial_fit,
        user_on_two_processes,
        no_rows,
        mismatched_parameters,
        bad_input_on_one,
        opted_out,
        group_of_one,
    )
}
