"""Loaders for public recommender data sets and generators of synthetic ratings."""

from ._movielens import get_data_home, load_movielens
from ._synthetic import make_ratings

__all__ = ["get_data_home", "load_movielens", "make_ratings"]
