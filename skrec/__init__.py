"""skrec: scikit-learn compatible neural recommenders built on PyTorch."""

from ._baselines import BaselineRecommender, PopularityRecommender
from ._neural import MatrixFactorization, NeuralRecommender
from ._persistence import SKOPS_TRUSTED_TYPES
from ._sequential import SequentialRecommender
from ._version import __version__

__all__ = [
    "BaselineRecommender",
    "MatrixFactorization",
    "NeuralRecommender",
    "PopularityRecommender",
    "SKOPS_TRUSTED_TYPES",
    "SequentialRecommender",
    "__version__",
]
