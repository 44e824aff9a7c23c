"""Turning interaction logs into what the estimators fit: sample weights."""

from ._weights import recency_weights

__all__ = ["recency_weights"]
