"""The softmax losses of NeuralRecommender and MatrixFactorization."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skrec import MatrixFactorization, NeuralRecommender, PopularityRecommender
from skrec._engine._losses import (
    sampled_softmax_cross_entropy,
    softmax_cross_entropy,
)
from skrec._engine._modules import EmbeddingMLP, factorizes
from skrec._engine._softmax import (
    ItemSampler,
    full_softmax,
    sampled_cross_entropy,
    sampled_softmax,
)
from skrec._engine._training import Interactions, Trainer
from skrec.datasets import make_ratings
from skrec.metrics import make_ranking_scorer

from ._data import liked_pairs

SMALL = dict(embedding_dim=16, batch_size=256, random_state=0, n_jobs=1)


@pytest.fixture(scope="module")
def liked():
    return liked_pairs()


# -- the engine --------------------------------------------------------------


@pytest.mark.parametrize("grouped", [False, True])
def test_full_softmax_gradients_equal_plain_cross_entropy(grouped):
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(6, 5, dtype=torch.float64, generator=generator)
    table = torch.randn(30, 5, dtype=torch.float64, generator=generator)
    targets = torch.tensor([3, 3, 29, 0, 7, 3, 12, 0])
    owners = torch.tensor([0, 0, 1, 5, 5, 2, 3, 4]) if grouped else None
    if not grouped:
        targets = targets[:6]
    weights = torch.rand(len(targets), dtype=torch.float64, generator=generator)

    def gradients(loss_of):
        s, t = states.clone().requires_grad_(), table.clone().requires_grad_()
        losses = loss_of(s, t)
        (losses * weights).sum().backward()
        return losses.detach(), s.grad, t.grad

    ours = gradients(lambda s, t: full_softmax(s, targets, t, owners=owners))
    rows = torch.arange(len(targets)) if owners is None else owners
    plain = gradients(
        lambda s, t: F.cross_entropy((s @ t.T)[rows], targets, reduction="none")
    )
    for mine, reference in zip(ours, plain, strict=True):
        torch.testing.assert_close(mine, reference)


def test_sampled_softmax_gradient_is_the_full_one_on_average():
    generator = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 60, (40,), generator=generator) ** 2
    states = torch.randn(20, 6, generator=generator) * 0.5
    table = (torch.randn(40, 6, generator=generator) * 0.5).requires_grad_()
    targets = torch.multinomial(counts.float(), 20, generator=generator)
    full_softmax(states, targets, table).mean().backward()
    full = table.grad.clone()
    for by_frequency in (True, False):
        table.grad = None
        sampler = ItemSampler(counts, 16, generator, by_frequency=by_frequency)
        for _ in range(400):
            sampled_softmax(states, targets, table, sampler).mean().backward()
        cosine = F.cosine_similarity(full.ravel(), table.grad.ravel() / 400, dim=0)
        assert cosine > 0.95


def test_sampled_cross_entropy_leaves_out_negatives_that_hit_the_target():
    sampler = ItemSampler(torch.ones(5), 3, torch.Generator())
    positive = torch.tensor([1.0, 2.0])
    negative = torch.tensor([[0.5, 1.0, 3.0], [0.5, 1.0, 3.0]])
    negatives = torch.tensor([4, 0, 1])
    losses = sampled_cross_entropy(
        positive, negative, torch.tensor([0, 2]), negatives, sampler
    )
    # Uniform draws: the log-Q correction is the same for every logit.
    expected_first = torch.logsumexp(torch.tensor([1.0, 0.5, 3.0]), 0) - 1.0
    expected_second = torch.logsumexp(torch.tensor([2.0, 0.5, 1.0, 3.0]), 0) - 2.0
    torch.testing.assert_close(losses, torch.stack([expected_first, expected_second]))


@pytest.mark.parametrize(
    "architecture, hidden, factorized",
    [
        ("mf", (), True),
        ("gmf", (), True),
        ("svdpp", (), True),
        ("svdpp_user", (), True),
        ("neumf", (), True),
        ("mlp", (), True),
        ("neumf", (8,), False),
        ("mlp", (8,), False),
    ],
)
def test_factorized_scores_match_the_score_matrix(architecture, hidden, factorized):
    """``user_states . item_outputs`` is the score up to a constant per user."""
    torch.manual_seed(0)
    module = EmbeddingMLP(
        n_users=7,
        n_items=9,
        n_features=3,
        embedding_dim=4,
        hidden_layer_sizes=hidden,
        architecture=architecture,
        n_user_features=1,
        n_item_features=2,
    )
    assert factorizes(module) is factorized
    if not factorized:
        return
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_()
        module.user_side.normal_()
        module.item_side.normal_()
        module.set_history(torch.tensor([1, 1, 2, 3, 6]), torch.tensor([2, 5, 5, 1, 8]))
        users, items = torch.arange(1, 7), torch.arange(1, 9)
        expected = module.score_matrix(users, items)
        factorized = module.user_states(users)[0] @ module.item_outputs(items)[0].T
    difference = expected - factorized
    torch.testing.assert_close(
        difference, difference[:, :1].expand_as(difference), atol=1e-4, rtol=1e-4
    )


def _trainer(loss, architecture="mf", alpha=0.0, n_negatives=5):
    torch.manual_seed(0)
    module = EmbeddingMLP(
        n_users=5, n_items=8, embedding_dim=4, architecture=architecture
    )
    data = Interactions.from_arrays(
        np.array([1, 1, 2, 3, 4, 4]),
        np.array([2, 3, 3, 7, 1, 2]),
        targets=np.array([1.0, 2.0, 1.0, 1.0, 0.5, 1.0], dtype=np.float32),
    )
    trainer = Trainer(
        module,
        data,
        batch_size=6,
        learning_rate=0.01,
        alpha=alpha,
        seed=0,
        loss=loss,
        n_negatives=n_negatives,
    )
    return trainer, data


def test_softmax_loss_is_the_weighted_cross_entropy_over_the_catalog():
    trainer, data = _trainer("softmax")
    module = trainer.module
    loss, user_rows, item_rows = softmax_cross_entropy(module, data, trainer.sampler)
    scores = module.score_matrix(data.users, torch.arange(1, 8))
    expected = F.cross_entropy(scores, data.items - 1, reduction="none")
    torch.testing.assert_close(loss, (expected * data.targets).mean())
    # The penalty falls on the rows of the positive pairs.
    torch.testing.assert_close(user_rows, module.user_table(data.users))
    torch.testing.assert_close(item_rows, module.item_table(data.items))


def test_softmax_leaves_each_rows_item_out_of_its_users_history_sum():
    trainer, data = _trainer("softmax", "svdpp_user")
    module = trainer.module
    module.set_history(data.users, data.items)
    with torch.no_grad():
        module.history_tables["item"].normal_()
    loss, _, _ = softmax_cross_entropy(module, data, trainer.sampler)
    y = module.history_tables["item"]
    states = []
    for user, item in zip(data.users.tolist(), data.items.tolist(), strict=True):
        own = data.items[data.users == user].tolist()
        others = [j for j in own if j != item]
        p = module.user_table.weight[user, :-1] + y[others].sum(0) / len(own) ** 0.5
        states.append(module.states_of(p[None])[0])
    outputs = module.item_outputs(torch.arange(1, 8))[0]
    expected = F.cross_entropy(
        torch.stack(states) @ outputs.T, data.items - 1, reduction="none"
    )
    torch.testing.assert_close(loss, (expected * data.targets).mean())


@pytest.mark.parametrize("architecture", ["svdpp", "svdpp_user"])
@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
def test_a_users_only_item_gets_no_gradient_through_its_history_vector(
    loss, architecture
):
    """User 3's only item is 7: left out of the user's sum, its history
    vector enters no training score, so a model cannot learn to rank an item
    a user already has above the others through it."""
    trainer, data = _trainer(loss, architecture)
    module = trainer.module
    module.set_history(data.users, data.items)
    value, _, _ = trainer.loss(module, data, trainer.sampler)
    value.backward()
    gradient = module.history_tables["item"].grad
    assert torch.all(gradient[7] == 0)
    assert torch.any(gradient[2] != 0)


@pytest.mark.parametrize("architecture", ["mf", "neumf"])
def test_sampled_softmax_scores_the_shared_negatives(architecture):
    trainer, data = _trainer("sampled_softmax", architecture)
    module, sampler = trainer.module, trainer.sampler
    state = sampler.generator.get_state()
    loss, user_rows, item_rows = sampled_softmax_cross_entropy(module, data, sampler)
    sampler.generator.set_state(state)
    negatives = sampler.shared()
    scores = module.score_matrix(data.users, torch.arange(1, 8))
    rows = torch.arange(len(data))
    expected = sampled_cross_entropy(
        scores[rows, data.items - 1],
        scores[:, negatives],
        data.items - 1,
        negatives,
        sampler,
    )
    torch.testing.assert_close(loss, (expected * data.targets).mean())
    assert len(user_rows) == len(item_rows) == len(data)


def test_the_penalty_shrinks_the_rows_of_the_positive_pairs():
    norms = []
    for alpha in (0.0, 5.0):
        trainer, _ = _trainer("softmax", alpha=alpha)
        for _ in range(100):
            trainer.train_epoch()
        norms.append(trainer.module.user_table.weight[1:].norm())
    assert norms[1] < 0.5 * norms[0]


# -- the estimators ----------------------------------------------------------


@pytest.fixture(scope="module")
def dense_liked():
    """Liked pairs as in ``liked``, 20 per user on average, a quarter of them
    held out: enough for the latent structure to beat popularity."""
    X, y = make_ratings(
        n_users=500, n_items=200, n_ratings=40000, noise=0.2, random_state=0
    )
    X = X[y >= 4]
    held_out = np.random.default_rng(0).random(len(X)) < 0.25
    train, test = X[~held_out], X[held_out]
    return train, test[np.isin(test[:, 0], train[:, 0])]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MatrixFactorization(**SMALL, loss="softmax"),
        lambda: MatrixFactorization(**SMALL, loss="sampled_softmax"),
        lambda: NeuralRecommender(**SMALL, architecture="gmf", loss="softmax"),
        lambda: NeuralRecommender(**SMALL, architecture="svdpp", loss="softmax"),
        lambda: NeuralRecommender(**SMALL, loss="softmax"),
        lambda: NeuralRecommender(**SMALL, architecture="neumf", loss="softmax"),
        lambda: MatrixFactorization(loss="softmax", random_state=0, n_jobs=1),
    ],
    ids=[
        "mf",
        "mf-sampled",
        "gmf",
        "svdpp",
        "svdpp_user",
        "neumf-sampled",
        "mf-defaults",
    ],
)
def test_softmax_losses_rank_better_than_popularity(dense_liked, make):
    """NDCG@10 of the held-out quarter of each user's liked items, ranked
    among all items unseen in fit."""
    train, test = dense_liked
    ndcg = make_ranking_scorer("ndcg", k=10)
    popular = ndcg(PopularityRecommender().fit(train), test)
    est = make().fit(train)
    assert est.validation_scores_ is not None
    assert ndcg(est, test) > popular + 0.05


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_softmax_models_are_implicit(liked):
    est = MatrixFactorization(**SMALL, loss="softmax", max_iter=3).fit(liked[0])
    scores = est.predict(liked[1])
    assert scores.shape == (len(liked[1]),) and np.isfinite(scores).all()
    assert 0.0 <= est.score(liked[1]) <= 1.0
    assert len(est.validation_scores_) == est.n_iter_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_row_weights_weight_the_softmax_loss(liked):
    train = liked[0]
    ones = MatrixFactorization(**SMALL, loss="softmax", max_iter=2).fit(train)
    doubled = MatrixFactorization(**SMALL, loss="softmax", max_iter=2)
    doubled.fit(train, np.full(len(train), 2.0))
    assert doubled.loss_curve_[0] == pytest.approx(2 * ones.loss_curve_[0], rel=1e-2)


@pytest.mark.parametrize(
    "loss, architecture, expected",
    [
        ("softmax", "mf", "softmax"),
        ("softmax", "neumf", "sampled_softmax"),
        ("sampled_softmax", "mf", "sampled_softmax"),
        ("bce", "neumf", "bce"),
    ],
)
def test_softmax_on_an_mlp_trains_the_sampled_softmax(loss, architecture, expected):
    est = NeuralRecommender(loss=loss, architecture=architecture)
    module = EmbeddingMLP(n_users=3, n_items=3, architecture=architecture)
    assert est._engine_loss(module) == expected


def test_auto_negatives_depend_on_the_loss_and_the_network():
    mf = EmbeddingMLP(n_users=3, n_items=3, architecture="mf")
    neumf = EmbeddingMLP(n_users=3, n_items=3, architecture="neumf")
    assert NeuralRecommender(loss="bce")._n_negatives(neumf) == 4
    assert NeuralRecommender(loss="sampled_softmax")._n_negatives(mf) == 256
    assert NeuralRecommender(loss="softmax")._n_negatives(neumf) == 64
    explicit = NeuralRecommender(loss="sampled_softmax", n_negatives=9)
    assert explicit._n_negatives(mf) == 9


def _pairs(items_per_user, n_users=6, n_items=40, repeats=1):
    """Each user's ``items_per_user`` distinct items, each row ``repeats``
    times."""
    rng = np.random.RandomState(0)
    rows = [
        [user, item]
        for user in range(n_users)
        for item in rng.choice(n_items, items_per_user, replace=False)
    ]
    return np.repeat(np.array(rows), repeats, axis=0)


ONE_EPOCH = dict(SMALL, max_iter=1, early_stopping=False)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
@pytest.mark.parametrize(
    "items_per_user, architecture, history_kinds",
    [(19, "svdpp_user", ("user",)), (20, "svdpp", ("user", "item"))],
)
def test_auto_architecture_of_the_softmax_losses_follows_the_history_length(
    loss, items_per_user, architecture, history_kinds
):
    est = NeuralRecommender(loss=loss, **ONE_EPOCH).fit(_pairs(items_per_user))
    assert est.architecture_ == architecture
    assert est.module_.history_kinds == history_kinds
    assert est.get_params()["architecture"] == "auto"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_auto_architecture_counts_distinct_items():
    # 10 distinct items per user, each twice: 20 rows per user.
    est = NeuralRecommender(loss="softmax", **ONE_EPOCH)
    assert est.fit(_pairs(10, repeats=2)).architecture_ == "svdpp_user"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_auto_architecture_is_chosen_once_per_model():
    est = NeuralRecommender(loss="softmax", warm_start=True, **ONE_EPOCH)
    est.fit(_pairs(5))
    assert est.fit(_pairs(25)).architecture_ == "svdpp_user"
    assert est.set_params(warm_start=False).fit(_pairs(25)).architecture_ == "svdpp"
    chunked = NeuralRecommender(loss="softmax", **ONE_EPOCH).partial_fit(_pairs(25))
    assert chunked.partial_fit(_pairs(5)).architecture_ == "svdpp"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_loaded_model_keeps_the_architecture_it_was_trained_with():
    # Later chunks lengthen the histories past the rule's threshold: the
    # network rebuilt on loading must still be the one trained.
    est = NeuralRecommender(loss="softmax", **ONE_EPOCH).partial_fit(_pairs(10))
    est.partial_fit(_pairs(30))
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.module_.history_kinds == ("user",)
    X = _pairs(30)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "est, architecture",
    [
        (NeuralRecommender(loss="bce"), "neumf"),
        (NeuralRecommender(loss="softmax", architecture="mlp"), "mlp"),
        (NeuralRecommender(loss="softmax", architecture="svdpp_user"), "svdpp_user"),
        (MatrixFactorization(loss="sampled_softmax"), "mf"),
    ],
)
def test_named_architectures_and_other_losses_keep_theirs(est, architecture):
    est.set_params(**ONE_EPOCH)
    assert est.fit(_pairs(25)).architecture_ == architecture


def test_auto_alpha_and_learning_rate_depend_on_the_loss():
    for estimator, alpha, rate in (
        (NeuralRecommender, 80.0, 1e-3),
        (MatrixFactorization, 10.0, 5e-3),
    ):
        for loss in ("mse", "bce", "bpr"):
            est = estimator(loss=loss)
            assert (est._alpha(), est._learning_rate_init()) == (alpha, rate)
        for loss in ("softmax", "sampled_softmax"):
            est = estimator(loss=loss)
            assert (est._alpha(), est._learning_rate_init()) == (3.0, 1e-2)
        assert estimator(loss="softmax", alpha=0.5)._alpha() == 0.5


def test_hard_negatives_are_refused_by_the_sampled_softmax(liked):
    est = MatrixFactorization(**SMALL, loss="sampled_softmax", negative_sampling="hard")
    with pytest.raises(ValueError, match="negative_sampling='hard' picks negatives"):
        est.fit(liked[0])


def test_unknown_loss_names_the_softmax_losses(liked):
    with pytest.raises(ValueError, match="'sampled_softmax'"):
        MatrixFactorization(loss="softmax_full").fit(liked[0])
