"""Turning interaction logs into what the estimators fit: rows and sample weights."""

from ._matrix import interactions_from_matrix
from ._weights import recency_weights

__all__ = ["interactions_from_matrix", "recency_weights"]
