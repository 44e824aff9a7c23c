"""The version of skrec, and of the layout of its pickled models."""

__version__ = "0.1.0.dev0"

# The layout of what a pickled estimator holds. A release that changes it
# bumps it, so that models saved before fail to load with a clear message
# instead of a broken estimator.
PICKLE_FORMAT = 1
