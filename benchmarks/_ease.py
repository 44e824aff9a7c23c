"""EASE (Steck, 2019) behind skrec's recommender API: a reference point.

EASE learns an item-item weight matrix ``B`` in closed form, ``B = I -
P diag(1 / diag(P))`` with ``P = (X^T X + l2 I)^-1`` and ``X`` the binary
user-item matrix, and scores a user's items as ``x_u B``. It ignores the order
of a history, as NeuralRecommender and MatrixFactorization do, and is among
the strongest such models on small catalogs, so it shows how far a model
without order gets on a leave-last-out split. Like the ``implicit`` adapter,
it recommends through skrec's own ``RecommendMixin`` (same candidates, same
seen-item exclusion).
"""

from numbers import Integral, Real

import numpy as np
import torch

from skrec._base import BaseRecommender
from skrec._encoding import encode_ids
from skrec._recommend import RecommendMixin, user_item_matrix
from skrec._sklearn_compat import Interval, StrOptions
from skrec._validation import validate_table


class EASERecommender(RecommendMixin, BaseRecommender):
    """EASE on the (user, item) rows of ``X``; ``l2`` is its ridge penalty.

    ``random_state`` is accepted, so that a benchmark builds every model
    alike, and ignored: the fit is closed-form.
    """

    _parameter_constraints = {
        "l2": [Interval(Real, 0, None, closed="neither")],
        "random_state": [None, "random_state"],
        "handle_unknown": [StrOptions({"fallback", "error"})],
        "user_col": [Integral, str],
        "item_col": [Integral, str],
    }

    def __init__(
        self,
        l2=500.0,
        *,
        random_state=None,
        handle_unknown="fallback",
        user_col=0,
        item_col=1,
    ):
        self.l2 = l2
        self.random_state = random_state
        self.handle_unknown = handle_unknown
        self.user_col = user_col
        self.item_col = item_col

    def _fit(self, X, y):
        users, items = validate_table(self, X, reset=True)[:2]
        self.users_, self.items_ = self._vocabularies(users, items)
        shape = (len(self.users_), len(self.items_))
        self.user_items_ = user_item_matrix(
            encode_ids(users, self.users_), encode_ids(items, self.items_), *shape
        )
        matrix = self.user_items_.astype(np.float64)
        gram = (matrix.T @ matrix).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        self._weights = weights

    def _score_matrix(self, user_codes, item_codes):
        histories = self.user_items_[user_codes.numpy() - 1].astype(np.float64)
        scores = histories @ self._weights[:, item_codes.numpy() - 1]
        return torch.from_numpy(np.asarray(scores))
