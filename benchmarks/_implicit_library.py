"""The ``implicit`` library's ALS and BPR behind skrec's recommender API.

The adapter encodes IDs, keeps the seen pairs and recommends exactly as skrec's
estimators do (the same ``RecommendMixin``), so that a benchmark scores both
libraries' factors with the same code and the same candidates.
"""

import importlib.metadata
import importlib.util
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from skrec._base import BaseRecommender
from skrec._encoding import encode_ids
from skrec._recommend import RecommendMixin, user_item_matrix
from skrec._validation import validate_table, validate_weights


class ImplicitLibraryRecommender(RecommendMixin, BaseRecommender):
    """``implicit``'s ALS or BPR fitted on the (user, item) rows of ``X``.

    ``y`` weighs the rows as for skrec's implicit losses: it is the confidence
    of ALS (times ``alpha``, as ``implicit`` reads it); BPR samples a user's
    positives without weights, as ``implicit`` does.
    """

    _parameter_constraints = {
        "algorithm": [str],
        "factors": [Integral],
        "regularization": [Real],
        "alpha": [Real],
        "learning_rate": [Real],
        "iterations": [Integral],
        "random_state": [Integral, None],
        "handle_unknown": [str],
        "user_col": [Integral, str],
        "item_col": [Integral, str],
    }

    def __init__(
        self,
        algorithm="als",
        *,
        factors=64,
        regularization=0.01,
        alpha=1.0,
        learning_rate=0.01,
        iterations=15,
        random_state=None,
        handle_unknown="fallback",
        user_col=0,
        item_col=1,
    ):
        self.algorithm = algorithm
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.iterations = iterations
        self.random_state = random_state
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col

    def _fit(self, X, y):
        users, items = validate_table(self, X, reset=True)[:2]
        weights = validate_weights(y, users, type(self).__name__)
        self.users_, self.items_ = self._vocabularies(users, items)
        user_codes = encode_ids(users, self.users_)
        item_codes = encode_ids(items, self.items_)
        shape = (len(self.users_), len(self.items_))
        confidence = sp.csr_matrix(
            (weights.astype(np.float32), (user_codes - 1, item_codes - 1)), shape
        )
        confidence.sum_duplicates()
        self.user_items_ = user_item_matrix(user_codes, item_codes, *shape)
        # implicit parallelises over users itself: a BLAS thread pool inside
        # each of its threads only oversubscribes the cores.
        with threadpool_limits(1, "blas"):
            model = self._library_model()
            model.fit(confidence, show_progress=False)
        self._user_factors = np.asarray(model.user_factors)
        self._item_factors = np.asarray(model.item_factors)

    def _library_model(self):
        # Imported here, so that the benchmark loads (and skips these models)
        # where the library is not installed.
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        common = dict(
            factors=self.factors,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.random_state,
        )
        if self.algorithm == "als":
            return AlternatingLeastSquares(alpha=self.alpha, **common)
        return BayesianPersonalizedRanking(learning_rate=self.learning_rate, **common)

    def predict(self, X):
        user_codes, item_codes, _ = self._encode_rows(X)
        scores = np.einsum(
            "ij,ij->i",
            self._user_factors[user_codes - 1],
            self._item_factors[item_codes - 1],
        )
        # Unknown users and items score 0, below every known item.
        return np.where((user_codes > 0) & (item_codes > 0), scores, 0.0)

    def _score_matrix(self, user_codes, item_codes):
        user_rows = self._user_factors[user_codes.numpy() - 1]
        item_rows = self._item_factors[item_codes.numpy() - 1]
        return torch.from_numpy(user_rows @ item_rows.T)


def library_version():
    """implicit's version, or None when it is not installed."""
    if importlib.util.find_spec("implicit") is None:
        return None
    return importlib.metadata.version("implicit")
