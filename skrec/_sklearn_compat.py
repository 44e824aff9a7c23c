"""The one place that imports private scikit-learn API.

A scikit-learn release that moves one of these names should only ever require
a change in this file.
"""

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = [
    "Interval",
    "StrOptions",
    "_fit_context",
    "_safe_indexing",
    "validate_params",
]
