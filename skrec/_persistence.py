"""What a fitted skrec estimator is made of, for loading with skops.io."""

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.compose import make_column_selector

from ._baselines import BaselineRecommender, PopularityRecommender
from ._neural import MatrixFactorization, NeuralRecommender
from ._sequential import SequentialRecommender


def _type_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


# The types to pass as ``trusted`` to ``skops.io.load``: what a fitted skrec
# estimator, alone or at the end of a scikit-learn pipeline of the kind the
# README builds, holds beyond the types skops trusts by default. Each is data
# only: skops rebuilds it without calling code named by the file.
#
# - skrec's five estimators: skops creates them with ``__new__`` and sets
#   their attributes; their network is saved as numpy arrays, not as torch
#   objects, and rebuilt from those arrays on first use.
# - ``csr_matrix``: the seen (user, item) pairs, read with numpy's loader
#   with ``allow_pickle=False``.
# - ``numpy.dtype``: the dtype ``SimpleImputer`` keeps from fit (``_fit_dtype``,
#   ``_fill_dtype``). skops stores a dtype as an empty array of that dtype and
#   reads it back with ``allow_pickle=False``, so it can only ever be a plain
#   numpy dtype.
# - ``make_column_selector``: ``user_features`` or ``item_features`` given as
#   a selector. Its state is a regular expression and the dtypes to include or
#   exclude; skops sets them as attributes, and any value in them that is not
#   itself trusted (a type, a function) is reported as untrusted on its own.
#   Calling it only filters column names and dtypes.
#
# No generic type (a builtin function, ``type``, an arbitrary callable) is
# listed: a file holding a custom ``module`` or other callables still needs
# those trusted by name after ``skops.io.get_untrusted_types``. The user-facing
# description is in docs/api.rst (autodata would show list's docstring: this
# name is imported into skrec/__init__.py, where Sphinx looks for its comment).
SKOPS_TRUSTED_TYPES = sorted(
    _type_name(cls)
    for cls in (
        BaselineRecommender,
        MatrixFactorization,
        NeuralRecommender,
        PopularityRecommender,
        SequentialRecommender,
        csr_matrix,
        make_column_selector,
        np.dtype,
    )
)
