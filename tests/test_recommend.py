"""Implicit feedback: the bce and bpr losses and recommend()."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skrec import MatrixFactorization, NeuralRecommender
from skrec._engine._losses import (
    HARD_NEGATIVE_POOL,
    NegativeSampler,
    PairSet,
    _negatives,
)
from skrec._engine._ranking import mask_seen, ndcg_of_held_out
from skrec._engine._training import Interactions
from skrec._recommend import user_item_matrix
from skrec.datasets import make_ratings

SMALL = dict(
    embedding_dim=8,
    hidden_layer_sizes=(16,),
    alpha=1.0,
    batch_size=256,
    max_iter=20,
    learning_rate_init=0.01,
    random_state=0,
)


@pytest.fixture(scope="module")
def clicks():
    X, _ = make_ratings(
        n_users=60, n_items=40, n_ratings=900, as_frame=True, random_state=0
    )
    return X


@pytest.fixture(scope="module", params=["bce", "bpr"])
def ranker(request, clicks):
    return NeuralRecommender(**SMALL, loss=request.param).fit(clicks)


@pytest.mark.parametrize(
    "n_users, n_items, n_rows", [(5, 7, 40), (30, 20, 500), (3, 4, 0), (1, 1, 6)]
)
def test_user_item_matrix_holds_each_known_pair_once(n_users, n_items, n_rows):
    rng = np.random.default_rng(n_rows)
    users = rng.integers(0, n_users + 1, n_rows)
    items = rng.integers(0, n_items + 1, n_rows)
    matrix = user_item_matrix(users, items, n_users, n_items)
    # Code 0 is an unknown ID: it has no row or column.
    pairs = {
        (u - 1, i - 1) for u, i in zip(users, items, strict=True) if u > 0 and i > 0
    }
    assert matrix.shape == (n_users, n_items)
    assert matrix.has_canonical_format
    assert set(zip(*matrix.nonzero(), strict=True)) == pairs
    np.testing.assert_array_equal(matrix.data, 1.0)
    assert matrix.nnz == len(pairs)


def test_pair_set_membership():
    pairs = PairSet(torch.tensor([1, 1, 2]), torch.tensor([3, 5, 3]), n_items=6)
    found = pairs.contains(torch.tensor([[1], [2]]), torch.tensor([[3, 4, 5]]))
    assert found.tolist() == [[True, False, True], [True, False, False]]


def test_negative_sampler_avoids_positives():
    # User 1 interacted with items 1..8 of 1..9: almost every draw collides.
    users = torch.ones(8, dtype=torch.int64)
    items = torch.arange(1, 9)
    sampler = NegativeSampler(users, items, 10, 50, torch.Generator().manual_seed(0))
    negatives = sampler.sample(torch.ones(200, dtype=torch.int64))
    assert negatives.shape == (200, 50)
    assert negatives.min() >= 1 and negatives.max() <= 9
    # Two redraws leave about (8/9)**3 = 70% collisions at this density, while
    # a sparse user's draws are all clean.
    assert (negatives == 9).float().mean() > 0.25
    sparse = NegativeSampler(users[:1], items[:1], 10_000, 5, torch.Generator())
    draws = sparse.sample(torch.ones(1000, dtype=torch.int64))
    assert not (draws == 1).any()


def test_popularity_sampler_draws_in_proportion_to_rows():
    # Items 1, 2 and 3 have 1, 2 and 6 of the 9 rows.
    items = torch.tensor([1, 2, 2, 3, 3, 3, 3, 3, 3])
    users = torch.tensor([2, 3, 4, 5, 6, 7, 8, 9, 1])
    sampler = NegativeSampler(
        users, items, 10, 1, torch.Generator().manual_seed(0), by_popularity=True
    )
    draws = sampler.sample(torch.full((30_000,), 5, dtype=torch.int64)).ravel()
    shares = torch.bincount(draws, minlength=10).float() / len(draws)
    # User 5 has item 3, whose draws are redrawn twice: 3 is left only when
    # drawn three times in a row.
    assert shares[4:].sum() == 0 and shares[0] == 0
    first_round = torch.tensor([1, 2, 6]) / 9
    kept = (6 / 9) ** 3
    expected = first_round[:2] * (1 + 6 / 9 + (6 / 9) ** 2)
    assert torch.allclose(shares[1:3], expected, atol=0.01)
    assert shares[3] == pytest.approx(kept, abs=0.01)
    uniform = NegativeSampler(users, items, 10, 1, torch.Generator().manual_seed(0))
    draws = uniform.sample(torch.full((30_000,), 2, dtype=torch.int64)).ravel()
    assert torch.bincount(draws, minlength=10)[4:].sum() > 0


def test_hard_negatives_are_the_highest_scoring_of_the_draws():
    users = torch.tensor([1, 1, 2])
    items = torch.tensor([1, 2, 3])

    def sampler(hard):
        return NegativeSampler(
            users, items, 50, 3, torch.Generator().manual_seed(0), hard=hard
        )

    batch = Interactions(torch.tensor([1, 2, 1, 2]), torch.tensor([1, 3, 2, 3]))
    # The same seed draws the same pool that the hard sampler chooses from.
    pool = sampler(hard=False).sample(batch.users, 3 * HARD_NEGATIVE_POOL)
    negatives = _negatives(FixedScores(), batch, sampler(hard=True))
    assert negatives.shape == (4, 3)
    # FixedScores scores item i as i: the hardest are the largest codes.
    expected = pool.sort(dim=1, descending=True).values[:, :3]
    assert torch.equal(negatives.sort(dim=1, descending=True).values, expected)
    assert not NegativeSampler(users, items, 50, 3, torch.Generator()).hard


def test_mask_seen_sets_seen_candidates_to_minus_inf():
    scores = torch.zeros(3, 4)
    # CSR of seen item indices: row 0 -> {0, 2}, row 1 -> {}, row 2 -> {3}
    indptr, indices = torch.tensor([0, 2, 2, 3]), torch.tensor([0, 2, 3])
    item_columns = torch.tensor([0, 1, 2, 3])
    mask_seen(scores, torch.tensor([2, -1, 0]), item_columns, indptr, indices)
    expected = torch.zeros(3, 4)
    expected[0, 3] = expected[2, 0] = expected[2, 2] = -torch.inf
    assert torch.equal(scores, expected)


class FixedScores(torch.nn.Module):
    """Scores item i as i for every user: rank order is known."""

    def forward(self, users, items, features=None):
        return items.double()


def test_ndcg_of_held_out_by_hand():
    held_out = Interactions.from_arrays([1, 2, 2], [4, 2, 3])
    seen = PairSet(torch.tensor([1, 2]), torch.tensor([5, 4]), n_items=6)
    # Items 1..5 ranked 5, 4, 3, 2, 1. User 1 has seen 5: item 4 ranks first,
    # NDCG 1. User 2 has seen 4: ranks 5, 3, 2 -> hits at 2 and 3.
    user_2 = (1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    ndcg = ndcg_of_held_out(FixedScores(), held_out, seen, n_items=6, k=3)
    assert ndcg == pytest.approx((1 + user_2) / 2)


def test_implicit_fit_needs_no_target(ranker, clicks):
    assert ranker.n_iter_ == len(ranker.validation_scores_)
    assert 0 <= ranker.best_validation_score_ <= 1
    scores = ranker.predict(clicks.iloc[:5])
    assert scores.shape == (5,) and np.isfinite(scores).all()


@pytest.mark.parametrize("sampling", ["uniform", "hard"])
@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_implicit_losses_rank_observed_items_above_random_ones(clicks, loss, sampling):
    est = NeuralRecommender(
        **{**SMALL, "early_stopping": False}, loss=loss, negative_sampling=sampling
    )
    with pytest.warns(ConvergenceWarning):
        est.fit(clicks)
    # make_ratings draws items by popularity: the observed pairs favour popular
    # items, which uniformly drawn items do not.
    rng = np.random.RandomState(0)
    random_items = rng.choice(est.items_, len(clicks))
    random_pairs = clicks.assign(item_id=random_items)
    # The share of (observed, random) pairs ranked in that order: the AUC,
    # 0.5 for a model that learned nothing.
    observed, random = est.predict(clicks), est.predict(random_pairs)
    assert (observed[:, None] > random[None, :]).mean() > 0.58


def test_interaction_weights_must_be_non_negative(clicks):
    with pytest.raises(ValueError, match="non-negative; got a minimum of -1.0"):
        NeuralRecommender(**SMALL, loss="bce").fit(clicks, -np.ones(len(clicks)))


def test_recommend_excludes_seen_items(ranker, clicks):
    users = clicks.user_id.unique()[:10]
    recommended = ranker.recommend(users, n=5)
    assert recommended.shape == (10, 5)
    for user, items in zip(users, recommended, strict=True):
        seen = set(clicks.item_id[clicks.user_id == user])
        assert not seen & set(items)
        assert len(set(items)) == 5


def test_recommend_is_the_top_of_predict(ranker, clicks):
    user = clicks.user_id.iloc[0]
    items = ranker.items_
    pairs = pd.DataFrame({"user_id": user, "item_id": items})
    best_first = items[np.argsort(-ranker.predict(pairs), kind="stable")]
    recommended, scores = ranker.recommend(
        [user], n=3, exclude_seen=False, return_scores=True
    )
    np.testing.assert_array_equal(recommended[0], best_first[:3])
    np.testing.assert_allclose(
        scores[0], np.sort(ranker.predict(pairs))[::-1][:3], rtol=1e-5
    )


def test_recommend_restricted_to_candidates(ranker):
    candidates = ranker.items_[:6]
    recommended = ranker.recommend(
        ranker.users_[:4], n=3, exclude_seen=False, items=candidates
    )
    assert set(recommended.ravel()) <= set(candidates)
    with pytest.raises(ValueError, match="None of the candidate items were seen"):
        ranker.recommend(ranker.users_[:1], items=[-1, -2])


def test_unknown_users_get_the_most_popular_items(ranker, clicks):
    popular = clicks.item_id.value_counts().index[:3]
    recommended = ranker.recommend(["nobody", "no one"], n=3)
    assert set(recommended[0]) == set(popular)
    np.testing.assert_array_equal(recommended[0], recommended[1])


def test_recommend_works_for_rating_models(clicks):
    y = np.arange(len(clicks)) % 5 + 1.0
    est = NeuralRecommender(**SMALL).fit(clicks, y)
    assert est.recommend(est.users_[:2], n=4).shape == (2, 4)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_recommend_rejects_bad_n(ranker, n):
    with pytest.raises(ValueError, match="n must be a positive int"):
        ranker.recommend(ranker.users_[:1], n=n)


def test_recommend_for_no_users_has_n_columns(ranker):
    items, scores = ranker.recommend([], n=3, return_scores=True)
    assert items.shape == scores.shape == (0, 3)
    assert ranker.recommend(np.array([], dtype=object), n=100).shape == (0, 40)


@pytest.mark.parametrize(
    "users, error, message",
    [
        ([[0, 1]], ValueError, r"users must be 1-dimensional, got shape \(1, 2\)"),
        ([[0, 1], [2]], TypeError, r"users holds \[0, 1\] of type list"),
        ([{}], TypeError, r"users holds \{\} of type dict"),
    ],
)
def test_recommend_rejects_users_that_are_not_a_list_of_ids(
    ranker, users, error, message
):
    with pytest.raises(error, match=message):
        ranker.recommend(users)


def test_popularity_of_unknown_users_follows_a_refit():
    """The interaction counts behind the popularity ranking are computed
    once per fit, and again after the next one."""
    X = pd.DataFrame({"user_id": [1, 2, 3, 3], "item_id": ["a", "a", "b", "c"]})
    model = MatrixFactorization(loss="bce", embedding_dim=2, max_iter=2)
    model.fit(X)
    assert model.recommend(["new"], n=1)[0, 0] == "a"
    more = pd.DataFrame({"user_id": [4, 5, 6], "item_id": ["c", "c", "c"]})
    model.fit(pd.concat([X, more]))
    assert model.recommend(["new"], n=1)[0, 0] == "c"
