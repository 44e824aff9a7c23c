"""Loaders for public recommender data sets, generators of synthetic data sets,
and a reader of Parquet files in chunks for out-of-core fitting."""

from ._movielens import get_data_home, load_movielens
from ._parquet import iter_parquet_chunks
from ._sequences import make_sequences
from ._synthetic import make_ratings

__all__ = [
    "get_data_home",
    "iter_parquet_chunks",
    "load_movielens",
    "make_ratings",
    "make_sequences",
]
