"""The reference models that the benchmarks compare skrec against.

benchmarks/_ease.py is not part of the package, but its figures are quoted
beside skrec's: it must compute EASE's closed form and recommend as skrec's
estimators do.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from ._data import BENCHMARKS, benchmark_module


@pytest.fixture(scope="module")
def ease():
    return benchmark_module("_ease.py")


def closed_form(matrix, l2):
    """EASE's weights as Steck (2019) writes them, for a dense 0/1 matrix."""
    precision = np.linalg.inv(matrix.T @ matrix + l2 * np.eye(matrix.shape[1]))
    weights = np.eye(matrix.shape[1]) - precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return weights


def test_ease_scores_are_the_closed_form(ease):
    rng = np.random.default_rng(0)
    matrix = (rng.random((30, 12)) < 0.3).astype(float)
    users, items = np.nonzero(matrix)
    X = np.column_stack([users + 100, items + 200])
    model = ease.EASERecommender(l2=5.0).fit(X)
    # IDs are sorted, so codes follow the rows and columns of the matrix.
    assert model.users_.tolist() == sorted(set(users + 100))
    user_codes = torch.arange(1, len(model.users_) + 1)
    item_codes = torch.arange(1, len(model.items_) + 1)
    scores = model._score_matrix(user_codes, item_codes).numpy()
    seen_rows = np.unique(users)
    expected = matrix[seen_rows] @ closed_form(matrix, 5.0)
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-12)


def test_ease_recommends_the_co_occurring_unseen_item(ease):
    # Items 1 and 2 always come together, item 3 is everyone's; user 9 has 1.
    X = [[u, i] for u in range(8) for i in (1, 2)] + [[u, 3] for u in range(8)]
    X += [[9, 1], [9, 4]]
    model = ease.EASERecommender(l2=1.0).fit(X)
    recommended = model.recommend([9], n=2)[0].tolist()
    assert recommended[0] == 2
    assert 1 not in recommended and 4 not in recommended


def test_softmax_benchmark_keeps_each_users_latest_rows(monkeypatch):
    """softmax.py --max-history: each user's latest rows, ties in time broken
    by the larger item ID last, as LeaveLastOut orders them."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    softmax = benchmark_module("softmax.py")
    rows = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 3],
            "item_id": [10, 11, 12, 13, 20, 21, 30],
            "timestamp": [4, 1, 5, 5, 2, 1, 7],
        }
    )
    kept = softmax.latest_rows(rows, 2)
    assert kept.values.tolist() == [
        [1, 12, 5],
        [1, 13, 5],
        [2, 21, 1],
        [2, 20, 2],
        [3, 30, 7],
    ]
