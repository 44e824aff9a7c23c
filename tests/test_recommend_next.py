"""recommend_next: new sessions folded into a fitted model, without refitting."""

import numpy as np
import pandas as pd
import pytest
import torch

from skrec import MatrixFactorization, NeuralRecommender
from skrec._engine._fold_in import _objective, fold_in
from skrec._engine._modules import EmbeddingMLP
from skrec._recommend import encode_histories
from skrec.metrics import hit_rate_at_k

from ._data import liked_pairs

SMALL = dict(embedding_dim=16, batch_size=256, random_state=0, n_jobs=1)


@pytest.fixture(scope="module")
def liked():
    return liked_pairs()


@pytest.fixture(scope="module")
def softmax_mf(liked):
    return MatrixFactorization(**SMALL, loss="softmax").fit(liked[0])


def histories_of(est, train, users):
    items = pd.Series(train[:, 1]).groupby(train[:, 0]).apply(list)
    return [items[user] for user in users]


def overlap(first, second):
    """The mean share of each row's items that the other row also holds."""
    return np.mean(
        [len(set(a) & set(b)) / len(a) for a, b in zip(first, second, strict=True)]
    )


@pytest.mark.parametrize(
    "make, min_overlap",
    [
        (lambda: MatrixFactorization(**SMALL, loss="softmax"), 0.8),
        (lambda: MatrixFactorization(**SMALL, loss="bce"), 0.6),
        (lambda: NeuralRecommender(**SMALL, architecture="svdpp", loss="softmax"), 0.7),
        (
            lambda: NeuralRecommender(
                **SMALL, architecture="neumf", loss="softmax", n_negatives=20
            ),
            0.5,
        ),
    ],
    ids=["mf-softmax", "mf-bce", "svdpp-softmax", "neumf-softmax"],
)
def test_a_fitted_users_items_rank_like_that_user(liked, make, min_overlap):
    """A session holding a fitted user's items gets about that user's top 10
    (mean overlap of the two top-10 lists), and finds the user's held-out
    item about as often."""
    train, test = liked
    est = make().fit(train)
    users = test[:, 0]
    by_user = est.recommend(users, n=10)
    by_session = est.recommend_next(histories_of(est, train, users), n=10)
    assert overlap(by_user, by_session) >= min_overlap
    relevant = test[:, 1:]
    assert hit_rate_at_k(relevant, by_session, k=10) >= (
        hit_rate_at_k(relevant, by_user, k=10) - 0.05
    )


def test_return_types_are_those_of_recommend(softmax_mf):
    items, scores = softmax_mf.recommend_next([[1, 2], [3]], n=4, return_scores=True)
    expected_items, expected_scores = softmax_mf.recommend(
        softmax_mf.users_[:2], n=4, return_scores=True
    )
    assert items.shape == scores.shape == (2, 4)
    assert items.dtype == expected_items.dtype
    assert scores.dtype == expected_scores.dtype
    assert (np.diff(scores, axis=1) <= 0).all()


def test_empty_and_unknown_sessions_get_the_most_popular_items(softmax_mf):
    popular = softmax_mf.recommend(["nobody"], n=5)[0]
    recommended = softmax_mf.recommend_next([[], ["no-such-item", -7]], n=5)
    np.testing.assert_array_equal(recommended, [popular, popular])


def test_unknown_items_are_skipped(softmax_mf):
    known = [5, 9, 12]
    np.testing.assert_array_equal(
        softmax_mf.recommend_next([known + [10**6]], n=5),
        softmax_mf.recommend_next([known], n=5),
    )


def test_the_sessions_items_are_excluded(softmax_mf):
    session = list(softmax_mf.items_[:30])
    recommended = softmax_mf.recommend_next([session], n=10)[0]
    assert not set(recommended) & set(session)
    included = softmax_mf.recommend_next([session], n=40, exclude_seen=False)[0]
    assert set(included) & set(session)


def test_candidates_restrict_the_recommendations(softmax_mf):
    candidates = softmax_mf.items_[10:16]
    recommended = softmax_mf.recommend_next([[1, 2, 3]], n=3, items=candidates)
    assert set(recommended[0]) <= set(candidates)


def test_sessions_are_folded_in_independently(softmax_mf):
    sessions = [[1, 2, 3], [40, 41], [7]]
    together = softmax_mf.recommend_next(sessions, n=5, return_scores=True)
    for k, session in enumerate(sessions):
        alone = softmax_mf.recommend_next([session], n=5, return_scores=True)
        np.testing.assert_array_equal(alone[0][0], together[0][k])
        np.testing.assert_allclose(alone[1][0], together[1][k], rtol=1e-4)


@pytest.mark.parametrize("architecture", ["mf", "gmf", "svdpp", "svdpp_user", "neumf"])
def test_fold_in_minimises_the_sessions_objective(architecture):
    """The folded-in embedding is a stationary point of ``L``. (A smooth
    activation: through ReLUs the minimum may sit on a kink.)"""
    torch.manual_seed(0)
    module = EmbeddingMLP(
        n_users=4,
        n_items=12,
        embedding_dim=5,
        architecture=architecture,
        activation="tanh",
    )
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(std=0.5)
    module.set_history(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]))
    items, starts = torch.tensor([2, 2, 7, 9, 3]), torch.tensor([0, 3, 5])
    owners, catalog = torch.tensor([0, 0, 0, 1, 1]), torch.arange(1, 12)
    vectors = fold_in(module, items, starts, catalog, alpha=0.5)
    with torch.no_grad():
        history = module.session_history(items, owners, 2)
    p = (vectors - history).requires_grad_()
    counts = torch.zeros(2, 11).index_put_((owners, items - 1), torch.ones(5), True)
    objective = _objective(module.vector_scores(p + history, catalog), counts, p, 0.5)
    (gradient,) = torch.autograd.grad(objective.sum(), p)
    assert gradient.abs().max() < 1e-3


def test_encode_histories_skips_unknown_ids():
    rows, starts = encode_histories(
        [["b", "zz", "a"], [], ["c", "c"]], np.array(["a", "b", "c"])
    )
    np.testing.assert_array_equal(rows, [1, 0, 2, 2])
    np.testing.assert_array_equal(starts, [0, 2, 2, 4])


@pytest.mark.parametrize(
    "histories, message",
    [
        ("abc", "histories must be a list of item-ID sequences, one per session"),
        (None, "histories must be a list of item-ID sequences, one per session"),
        ([1, 2, 3], r"histories\[0\] is 1; wrap a single session's items in a list"),
        ([[1], "ab"], r"histories\[1\] is 'ab'"),
        ([[{}]], r"histories holds \{\} of type dict"),
    ],
)
def test_histories_must_be_a_list_of_id_sequences(softmax_mf, histories, message):
    with pytest.raises(TypeError, match=message):
        softmax_mf.recommend_next(histories)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_recommend_next_rejects_bad_n(softmax_mf, n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        softmax_mf.recommend_next([[1]], n=n)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_recommend_next_needs_a_built_in_network(liked):
    class Dot(torch.nn.Module):
        def __init__(self, n_users, n_items, n_features):
            super().__init__()
            self.users = torch.nn.Embedding(n_users, 4)
            self.items = torch.nn.Embedding(n_items, 4)

        def forward(self, users, items, features):
            return (self.users(users) * self.items(items)).sum(dim=1)

    est = NeuralRecommender(module=Dot, loss="bce", max_iter=2, **SMALL)
    est.fit(liked[0])
    with pytest.raises(TypeError, match="custom one, which it cannot read"):
        est.recommend_next([[1, 2]])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_recommend_next_needs_scores_without_row_features(liked):
    X = np.column_stack([liked[0], np.arange(len(liked[0])) % 3])
    est = MatrixFactorization(**SMALL, loss="softmax", max_iter=2).fit(X)
    with pytest.raises(ValueError, match="recommend_next needs a score for every"):
        est.recommend_next([[1, 2]])
