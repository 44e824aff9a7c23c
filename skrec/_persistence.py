"""What a fitted skrec estimator is made of, for loading with skops.io."""

from scipy.sparse import csr_matrix

from ._baselines import BaselineRecommender, PopularityRecommender
from ._neural import MatrixFactorization, NeuralRecommender


def _type_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


# The types to pass as ``trusted`` to ``skops.io.load``: skrec's estimators
# and the sparse matrix of seen pairs. A fitted estimator holds nothing else
# that skops does not trust by default: its network is saved as numpy arrays.
SKOPS_TRUSTED_TYPES = sorted(
    _type_name(cls)
    for cls in (
        BaselineRecommender,
        MatrixFactorization,
        NeuralRecommender,
        PopularityRecommender,
        csr_matrix,
    )
)
