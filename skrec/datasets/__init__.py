"""Loaders for public recommender data sets, generators of synthetic data sets."""

from ._movielens import get_data_home, load_movielens
from ._sequences import make_sequences
from ._synthetic import make_ratings

__all__ = ["get_data_home", "load_movielens", "make_ratings", "make_sequences"]
