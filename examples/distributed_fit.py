"""
Data-parallel fit with torchrun
===============================

Two processes fit one :class:`~skrec.NeuralRecommender` together, each on the
ratings of its own users. Launch it with torchrun, on one machine::

    torchrun --standalone --nproc_per_node 2 examples/distributed_fit.py

or on several (the same command on every machine, ``--node_rank`` 0 to
``nnodes - 1``)::

    torchrun --nnodes 2 --nproc_per_node 4 --node_rank 0 \\
        --rdzv_backend c10d --rdzv_endpoint host0:29500 examples/distributed_fit.py

Each process reads only its shard of the rows (here: the users whose ID
modulo the number of processes is its rank), calls ``fit`` as usual, and ends
with the same fitted estimator; process 0 saves it, and the saved model
predicts in any plain Python process. The data are MovieLens-100K u1 when
``load_movielens`` finds them, else synthetic ratings.

This example is not run when the documentation is built: it needs torchrun.
"""

import os
import pickle

import numpy as np
import torch
import torch.distributed as dist

from skrec import NeuralRecommender
from skrec.datasets import load_movielens, make_ratings


def load_ratings():
    """MovieLens-100K u1 as (X_train, X_test, y_train, y_test), else synthetic."""
    try:
        X_train, X_test, y_train, y_test = load_movielens(
            "100k", fold=1, data_home=os.environ.get("SKREC_DATA"), return_X_y=True
        )
        columns = ["user_id", "item_id"]
        return X_train[columns], X_test[columns], np.asarray(y_train), y_test
    except OSError:
        X, y = make_ratings(
            n_users=943, n_items=1682, n_ratings=100_000, random_state=0
        )
        return X[:80_000], X[80_000:], y[:80_000], y[80_000:]


def main():
    # NCCL between GPUs, gloo between CPUs; torchrun tells each process its
    # rank, the number of processes and where to meet.
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))

    X_train, X_test, y_train, y_test = load_ratings()
    users = np.asarray(X_train)[:, 0].astype(np.int64)
    mine = users % world == rank
    print(f"process {rank} of {world}: {mine.sum():,} of {len(mine):,} rows")

    # The same parameters on every process; verbose only on process 0.
    model = NeuralRecommender(random_state=0, verbose=rank == 0)
    model.fit(X_train[mine], y_train[mine])

    if rank == 0:
        rmse = np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2))
        print(f"test RMSE {rmse:.4f} after {model.n_iter_} epochs")
        with open("distributed_model.pkl", "wb") as file:
            pickle.dump(model, file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
