"""skrec: scikit-learn compatible neural recommenders built on PyTorch."""

from ._baselines import BaselineRecommender, PopularityRecommender
from ._neural import MatrixFactorization, NeuralRecommender

__version__ = "0.1.0.dev0"

__all__ = [
    "BaselineRecommender",
    "MatrixFactorization",
    "NeuralRecommender",
    "PopularityRecommender",
    "__version__",
]
