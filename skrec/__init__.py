"""skrec: scikit-learn compatible neural recommenders built on PyTorch."""

from ._neural import NeuralRecommender

__version__ = "0.1.0.dev0"

__all__ = ["NeuralRecommender", "__version__"]
