"""Where the tests find MovieLens-100K, and how they skip without it; the
synthetic implicit feedback several test files share; the benchmark scripts'
helper modules."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from skrec.datasets import make_ratings

# CI clones the repository with shared/ beside it; the data's licence forbids
# shipping them inside the repository.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
requires_movielens = pytest.mark.skipif(
    not (SHARED_DATA / "ml-100k").is_dir(),
    reason=f"MovieLens-100K is not at {SHARED_DATA / 'ml-100k'}; its licence "
    "forbids shipping it with the repository.",
)


def liked_pairs():
    """Implicit feedback with a latent structure: the pairs that
    ``make_ratings`` rates 4 or 5, one per user held out at random (of the
    users with others), as (train, test) arrays."""
    X, y = make_ratings(n_users=150, n_items=80, n_ratings=4500, random_state=0)
    X = X[y >= 4]
    rng = np.random.default_rng(0)
    X = X[rng.permutation(len(X))]
    _, first = np.unique(X[:, 0], return_index=True)
    held_out = np.zeros(len(X), dtype=bool)
    held_out[first] = True
    train, test = X[~held_out], X[held_out]
    return train, test[np.isin(test[:, 0], train[:, 0])]


def benchmark_module(file_name):
    """A module of benchmarks/, loaded from its file: the folder is not a
    package, and its scripts import their helpers as top-level modules."""
    name = "benchmarks" + Path(file_name).stem
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
