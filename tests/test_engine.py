"""The torch engine on its own: devices, tables, training and prediction."""

import numpy as np
import pytest
import torch

from skrec._engine import _modules
from skrec._engine._device import available_devices, resolve_device
from skrec._engine._modules import EmbeddingMLP
from skrec._engine._optimizers import SOLVERS, Adam, AdamW, LazyAdam, OptimizerGroup
from skrec._engine._training import (
    Interactions,
    Trainer,
    fill_unknown_rows,
    grow_embedding_tables,
    inverse_frequency,
    predict_scores,
    seeded,
)


def make_data(n_rows=500, n_users=20, n_items=15, n_features=0, seed=0):
    rng = np.random.RandomState(seed)
    features = rng.normal(size=(n_rows, n_features)) if n_features else None
    users = rng.randint(1, n_users + 1, n_rows)
    items = rng.randint(1, n_items + 1, n_rows)
    # Targets a model of user and item effects can learn.
    effects = rng.normal(size=n_users + 1)[users] + rng.normal(size=n_items + 1)[items]
    targets = effects + 0.1 * rng.normal(size=n_rows)
    return Interactions.from_arrays(users, items, features, targets)


def make_module(n_features=0, seed=0):
    with seeded(seed, torch.device("cpu")):
        return EmbeddingMLP(
            21, 16, n_features, embedding_dim=4, hidden_layer_sizes=(8,)
        )


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert available_devices()[-1] == "cpu"
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="device='cuda' was requested"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="device='mps' was requested"):
            resolve_device("mps")


def test_interactions_are_int64_codes_and_float32_values():
    data = make_data(n_features=2)
    assert data.users.dtype == data.items.dtype == torch.int64
    assert data.features.dtype == data.targets.dtype == torch.float32
    batch = data.rows(torch.tensor([3, 1]))
    assert torch.equal(batch.users, data.users[[3, 1]])
    assert batch.features.shape == (2, 2)


def test_forward_equals_embed_then_score():
    module = make_module(n_features=2)
    data = make_data(n_features=2)
    rows = module.embed(data.users, data.items)
    codes = (data.users, data.items)
    assert torch.equal(
        module(data.users, data.items, data.features),
        module.score(*rows, data.features, codes=codes),
    )


# 500 rows hold the 21 user and 16 item rows many times over: the first layer
# is computed per table row. 20 rows hold neither twice: it is computed per
# batch row. 35 rows: per table row for items (16) only.
@pytest.mark.parametrize("n_rows", [500, 35, 20])
@pytest.mark.parametrize("n_features", [0, 2])
def test_first_layer_per_table_row_gives_the_same_scores_and_gradients(
    n_rows, n_features
):
    modules = [make_module(n_features=n_features) for _ in range(2)]
    data = make_data(n_rows=n_rows, n_features=n_features)
    scores = []
    for module, codes in zip(modules, [(data.users, data.items), None], strict=True):
        rows = module.embed(data.users, data.items)
        scores.append(module.score(*rows, data.features, codes=codes))
        (scores[-1] - data.targets).square().mean().backward()
    torch.testing.assert_close(scores[0], scores[1], rtol=1e-5, atol=1e-6)
    for fast, reference in zip(*(m.parameters() for m in modules), strict=True):
        torch.testing.assert_close(fast.grad, reference.grad, rtol=1e-4, atol=1e-6)
    # Each table projected whole is gathered with one index_select.
    assert (
        _count_nodes(scores[0].grad_fn, "IndexSelectBackward0")
        == {
            500: 2,
            35: 1,
            20: 0,
        }[n_rows]
    )
    assert _count_nodes(scores[1].grad_fn, "IndexSelectBackward0") == 0


def _count_nodes(grad_fn, name):
    """How many nodes of the autograd graph from ``grad_fn`` are ``name``."""
    seen, stack = set(), [grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return sum(type(node).__name__ == name for node in seen)


def test_inverse_frequency():
    weights = inverse_frequency(torch.tensor([1, 1, 3, 1]), 21)
    assert weights.shape == (21,)
    assert weights[1] == pytest.approx(1 / 3)
    assert weights[3] == 1.0
    assert weights[0] == weights[2] == 0.0


def test_fill_unknown_rows_sets_row_zero_to_the_mean_of_the_others():
    module = make_module()
    fill_unknown_rows(module)
    for table in module.embedding_tables().values():
        torch.testing.assert_close(table.weight[0], table.weight[1:].mean(dim=0))


def test_grow_embedding_tables_keeps_the_old_rows():
    module = make_module()
    before = module.user_table.weight.detach().clone()
    grow_embedding_tables(module, {"user": 25, "item": 16})
    table = module.user_table
    assert table.num_embeddings == 25 and table.weight.shape == (25, 5)
    assert torch.equal(table.weight[:21], before)
    torch.testing.assert_close(table.weight[24], before[1:].mean(dim=0))
    assert module.item_table.num_embeddings == 16


def test_training_lowers_the_loss_and_is_reproducible():
    def train(seed):
        module = make_module()
        data = make_data()
        trainer = Trainer(
            module, data, batch_size=64, learning_rate=1e-2, alpha=1.0, seed=seed
        )
        return [trainer.train_epoch() for _ in range(10)], module

    losses, module = train(seed=0)
    losses_again, module_again = train(seed=0)
    _, other = train(seed=1)
    assert losses[-1] < 0.5 * losses[0]
    assert losses == losses_again
    data = make_data()
    assert torch.equal(
        module(data.users, data.items), module_again(data.users, data.items)
    )
    assert not torch.equal(
        module(data.users, data.items), other(data.users, data.items)
    )


def table_norms(alpha):
    """Norms of the user and item tables after 10 epochs with penalty ``alpha``."""
    module = make_module()
    trainer = Trainer(
        module, make_data(), batch_size=64, learning_rate=1e-2, alpha=alpha, seed=0
    )
    for _ in range(10):
        trainer.train_epoch()
    return module.user_table.weight.norm().item(), (
        module.item_table.weight.norm().item()
    )


def test_the_penalty_shrinks_the_tables():
    assert table_norms(alpha=100.0)[0] < 0.5 * table_norms(alpha=0.0)[0]


def test_per_table_alpha_shrinks_only_its_table():
    users_free, items_free = table_norms(0.0)
    users_only = table_norms({"user": 100.0, "item": 0.0})
    items_only = table_norms({"user": 0.0, "item": 100.0})
    assert users_only[0] < 0.5 * users_free and items_only[1] < 0.5 * items_free
    assert users_only[1] > 0.8 * items_free and items_only[0] > 0.8 * users_free
    # A dict of equal strengths is the float.
    assert table_norms({"user": 3.0, "item": 3.0}) == table_norms(3.0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_trains(solver):
    module = make_module()
    trainer = Trainer(
        module,
        make_data(),
        batch_size=64,
        learning_rate=0.05 if solver in ("sgd", "adagrad") else 1e-2,
        alpha=1.0,
        seed=0,
        solver=solver,
    )
    losses = [trainer.train_epoch() for _ in range(10)]
    assert losses[-1] < 0.5 * losses[0]
    assert type(trainer.optimizer).__name__.lower() == solver


@pytest.mark.parametrize("architecture", ["neumf", "svdpp"])
@pytest.mark.parametrize("loss", ["mse", "bpr"])
# 64 rows outnumber both tables' rows, 10 rows neither: the gradient goes to
# the whole tables or to the batch's rows.
@pytest.mark.parametrize("n_rows", [64, 10])
def test_penalty_gradients_equal_those_of_the_penalised_loss(
    architecture, loss, n_rows
):
    with seeded(0, torch.device("cpu")):
        module = EmbeddingMLP(21, 16, embedding_dim=4, architecture=architecture)
    data = make_data()
    trainer = Trainer(
        module, data, batch_size=64, learning_rate=1e-2, alpha=3.0, seed=0, loss=loss
    )
    if architecture == "svdpp":
        module.set_history(data.users, data.items)
    batch = data.rows(slice(0, n_rows))
    state = trainer.generator.get_state()
    trainer.backward(batch)
    fast = {name: p.grad.clone() for name, p in module.named_parameters()}
    module.zero_grad()
    trainer.generator.set_state(state)  # the same negatives
    loss_value, user_rows, item_rows = trainer.loss(module, batch, trainer.sampler)
    penalty = trainer.row_penalty(user_rows, batch.users, "user")
    penalty = penalty + trainer.row_penalty(item_rows, batch.items, "item")
    for weight, table in trainer.whole_tables:
        penalty = penalty + weight * table.square().sum()
    (loss_value + penalty).backward()
    assert trainer.row_weights and (architecture != "svdpp" or trainer.whole_tables)
    for name, param in module.named_parameters():
        torch.testing.assert_close(fast[name], param.grad, rtol=1e-5, atol=1e-7)
    assert fast["user_table.weight"].abs().sum() > 0


@pytest.mark.parametrize(
    "lean, reference, options",
    [
        (Adam, torch.optim.Adam, {}),
        (AdamW, torch.optim.AdamW, {"weight_decay": 0.01}),
        (Adam, torch.optim.Adam, {"amsgrad": True}),
    ],
)
def test_lean_fused_adam_steps_exactly_as_torch(lean, reference, options, monkeypatch):
    modules = [make_module(), make_module()]
    optimizers = [
        lean(modules[0].parameters(), lr=1e-2, fused=True, **options),
        reference(modules[1].parameters(), lr=1e-2, fused=True, **options),
    ]
    data = make_data()
    for step in range(5):
        for module, optimizer in zip(modules, optimizers, strict=True):
            optimizer.zero_grad()
            loss = (module(data.users, data.items) - data.targets).square().mean()
            loss.backward()
            if step == 0:
                optimizer.step()
                continue
            if optimizer is optimizers[1]:
                optimizer.step()
                continue
            with monkeypatch.context() as patch:
                if not options.get("amsgrad"):
                    # The lean step must not fall back on torch's.
                    patch.setattr(type(optimizer), "step", None)
                optimizer.lean_step()
    for ours, theirs in zip(*(m.parameters() for m in modules), strict=True):
        assert torch.equal(ours, theirs)
    assert torch.equal(
        optimizers[0].state_dict()["state"][0]["step"],
        optimizers[1].state_dict()["state"][0]["step"],
    )


def test_lazy_adam_matches_torch_sparse_adam():
    torch.manual_seed(0)
    lazy, reference = (nn_embedding(sparse=True) for _ in range(2))
    reference.load_state_dict(lazy.state_dict())
    optimizers = {
        lazy: LazyAdam(lazy.parameters(), lr=0.01),
        reference: torch.optim.SparseAdam(list(reference.parameters()), lr=0.01),
    }
    for _ in range(20):
        # Repeated rows within a batch must be summed, not overwritten.
        rows = torch.randint(0, 50, (30,))
        for table, optimizer in optimizers.items():
            optimizer.zero_grad()
            (table(rows) ** 2).sum().backward()
            optimizer.step()
    assert not torch.equal(lazy.weight, nn_embedding(sparse=True).weight)
    torch.testing.assert_close(lazy.weight, reference.weight, rtol=0, atol=1e-5)


def nn_embedding(sparse):
    torch.manual_seed(0)
    return torch.nn.Embedding(50, 4, sparse=sparse)


def test_lazy_adam_moves_only_the_rows_of_the_batch():
    table = nn_embedding(sparse=True)
    before = table.weight.detach().clone()
    optimizer = LazyAdam(table.parameters(), lr=0.1)
    for rows in ([3, 3, 7], [7]):
        optimizer.zero_grad()
        table(torch.tensor(rows)).sum().backward()
        optimizer.step()
    moved = (table.weight != before).any(dim=1).nonzero().flatten().tolist()
    assert moved == [3, 7]
    # Adam's first step moves each coordinate by lr against the gradient's sign.
    torch.testing.assert_close(table.weight[3], before[3] - 0.1)


@pytest.mark.parametrize(
    "sparse, solver, expected",
    [
        (True, "adam", {"user", "item"}),
        (True, "adamw", {"user", "item"}),
        (True, "sgd", set()),
        (False, "adam", set()),
        # 21 user rows exceed 16 rows per batch row at batch 1, 16 item rows do not.
        ("auto", "adam", {"user"}),
    ],
)
def test_trainer_gives_sparse_gradients_to_the_chosen_tables(sparse, solver, expected):
    module = make_module()
    trainer = Trainer(
        module,
        make_data(),
        batch_size=1,
        learning_rate=1e-2,
        alpha=1.0,
        seed=0,
        solver=solver,
        sparse=sparse,
    )
    data = make_data()
    trainer.train_step(data.rows(slice(0, 1)))
    tables = module.embedding_tables()
    assert {kind for kind, table in tables.items() if table.weight.grad.is_sparse} == (
        expected
    )
    assert isinstance(trainer.optimizer, OptimizerGroup) == bool(expected)


def test_sparse_tables_train_and_leave_unseen_rows_alone():
    module = make_module()
    data = make_data()
    # User 20 has no rows: a dense Adam would still move it by the penalty's
    # momentum; the sparse update never touches it.
    data = data.rows(data.users != 20)
    before = module.user_table.weight[20].detach().clone()
    trainer = Trainer(
        module, data, batch_size=64, learning_rate=1e-2, alpha=1.0, seed=0, sparse=True
    )
    losses = [trainer.train_epoch() for _ in range(10)]
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(module.user_table.weight[20], before)


def test_adamw_decays_the_layers_but_not_the_tables():
    trainer = Trainer(
        make_module(),
        make_data(),
        batch_size=64,
        learning_rate=1e-2,
        alpha=1.0,
        seed=0,
        solver="adamw",
    )
    tables, layers = trainer.optimizer.param_groups
    assert tables["weight_decay"] == 0.0 and layers["weight_decay"] == 0.01
    module = trainer.module
    assert {id(p) for p in tables["params"]} == {
        id(module.user_table.weight),
        id(module.item_table.weight),
    }


def test_learning_rate_can_be_lowered_mid_training():
    trainer = Trainer(
        make_module(), make_data(), batch_size=64, learning_rate=1e-2, alpha=1.0, seed=0
    )
    trainer.train_epoch()
    trainer.learning_rate /= 5
    assert trainer.learning_rate == pytest.approx(2e-3)
    assert all(
        group["lr"] == trainer.learning_rate for group in trainer.optimizer.param_groups
    )


def test_predict_in_chunks_equals_one_pass():
    module = make_module(n_features=2)
    data = make_data(n_features=2)
    whole = predict_scores(module, data, chunk_size=10_000)
    # Equal up to float32 rounding: matrix products block differently by size.
    np.testing.assert_allclose(
        predict_scores(module, data, chunk_size=7), whole, rtol=1e-5, atol=1e-6
    )
    assert whole.dtype == np.float64 and whole.shape == (500,)
    assert predict_scores(module, data.rows(slice(0, 0))).shape == (0,)


@pytest.mark.parametrize(
    "hidden_layer_sizes, activation, dropout",
    [
        ((8, 4), "relu", 0.0),
        ((8, 4), "tanh", 0.5),
        ((8,), "logistic", 0.0),
        ((), "relu", 0.0),
    ],
)
@pytest.mark.parametrize("block_pairs", [1 << 13, 20, 5])
@pytest.mark.parametrize("architecture", ["neumf", "mlp", "gmf", "mf"])
def test_score_matrix_equals_scoring_every_pair(
    hidden_layer_sizes, activation, dropout, block_pairs, architecture, monkeypatch
):
    # Blocks of 20 pairs hold one user's 16 items; blocks of 5 pairs split a
    # user's items in 4, the last one short.
    monkeypatch.setattr(_modules, "GRID_BLOCK_PAIRS", block_pairs)
    with seeded(0, torch.device("cpu")):
        module = EmbeddingMLP(
            21,
            16,
            embedding_dim=4,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            dropout=dropout,
            architecture=architecture,
        )
    if architecture == "gmf":
        with torch.no_grad():
            module.product_weight.normal_()
    module.eval()
    users, items = torch.tensor([0, 3, 7]), torch.arange(16)
    pairs = module(users.repeat_interleave(16), items.repeat(3)).view(3, 16)
    with torch.inference_mode():
        torch.testing.assert_close(module.score_matrix(users, items), pairs)


def test_architectures_score_as_their_formulas():
    users, items = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    features = torch.randn(3, 2)
    modules = {}
    for architecture in ("neumf", "mlp", "gmf", "mf"):
        with seeded(0, torch.device("cpu")):
            modules[architecture] = EmbeddingMLP(
                21,
                16,
                n_features=0 if architecture in ("gmf", "mf") else 2,
                embedding_dim=4,
                hidden_layer_sizes=(8,),
                architecture=architecture,
            )
    for module in modules.values():
        with torch.no_grad():
            module.user_table.weight.normal_()
            module.item_table.weight.normal_()
            module.global_bias.fill_(0.5)
    user_rows, item_rows = modules["mf"].embed(users, items)
    p, q = user_rows[:, :-1], item_rows[:, :-1]
    biases = user_rows[:, -1] + item_rows[:, -1] + 0.5
    torch.testing.assert_close(modules["mf"](users, items), (p * q).sum(1) + biases)
    with torch.no_grad():
        modules["gmf"].product_weight.copy_(torch.tensor([1.0, 0.0, 2.0, -1.0]))
    user_rows, item_rows = modules["gmf"].embed(users, items)
    p, q = user_rows[:, :-1], item_rows[:, :-1]
    weighted = p[:, 0] * q[:, 0] + 2 * p[:, 2] * q[:, 2] - p[:, 3] * q[:, 3]
    biases = user_rows[:, -1] + item_rows[:, -1] + 0.5
    torch.testing.assert_close(modules["gmf"](users, items), weighted + biases)
    # NeuMF is the MLP architecture's score plus the dot product.
    neumf, mlp = modules["neumf"], modules["mlp"]
    mlp.load_state_dict(neumf.state_dict())
    user_rows, item_rows = neumf.embed(users, items)
    dot = (user_rows[:, :-1] * item_rows[:, :-1]).sum(1)
    torch.testing.assert_close(
        neumf(users, items, features), mlp(users, items, features) + dot
    )
    assert not hasattr(modules["mf"], "product_weight") and modules["mf"].mlp is None


@pytest.mark.parametrize("architecture", ["gmf", "mf"])
def test_architectures_without_an_mlp_add_a_linear_feature_term(architecture):
    with seeded(0, torch.device("cpu")):
        module = EmbeddingMLP(21, 16, n_features=2, architecture=architecture)
    users, items = torch.tensor([1, 2]), torch.tensor([3, 4])
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    with torch.no_grad():
        module.feature_weights.weight.copy_(torch.tensor([[0.5, -1.0]]))
    torch.testing.assert_close(
        module(users, items, features) - module(users, items, torch.zeros(2, 2)),
        torch.tensor([0.5, -2.0]),
    )


def test_svdpp_adds_the_normalised_history_sums():
    torch.manual_seed(0)
    module = EmbeddingMLP(n_users=4, n_items=5, embedding_dim=3, architecture="svdpp")
    users = torch.tensor([1, 1, 2, 3, 3, 3])
    items = torch.tensor([1, 2, 2, 1, 3, 4])
    module.set_history(users, items)
    y, x = module.history_tables["item"], module.history_tables["user"]
    rows = module.embed(torch.tensor([3]), torch.tensor([2]))
    user_row, item_row = module.with_history(
        *rows, torch.tensor([3]), torch.tensor([2])
    )
    expected_p = rows[0][0, :-1] + (y[1] + y[3] + y[4]) / 3**0.5
    expected_q = rows[1][0, :-1] + (x[1] + x[2]) / 2**0.5
    torch.testing.assert_close(user_row[0, :-1], expected_p)
    torch.testing.assert_close(item_row[0, :-1], expected_q)
    assert user_row[0, -1] == rows[0][0, -1]
    # The sparse product's hand-written backward is the dense one's.
    (user_row.sum() + item_row.sum()).backward()
    dense_y = y.detach().clone().requires_grad_()
    dense_x = x.detach().clone().requires_grad_()
    ((dense_y[1] + dense_y[3] + dense_y[4]) / 3**0.5).sum().backward()
    ((dense_x[1] + dense_x[2]) / 2**0.5).sum().backward()
    torch.testing.assert_close(y.grad, dense_y.grad)
    torch.testing.assert_close(x.grad, dense_x.grad)


@pytest.mark.parametrize("averaging, every", [(0.5, 1), (0.99, 5)])
def test_trainer_keeps_the_moving_average_of_the_weights(averaging, every):
    module = make_module()
    data = make_data()
    trainer = Trainer(
        module,
        data,
        batch_size=8,
        learning_rate=0.01,
        alpha=1.0,
        seed=0,
        averaging=averaging,
    )
    # A long horizon (100 steps at 0.99) is updated every few steps, by the
    # decay of those steps together.
    assert trainer.average.every == every
    expected = [p.detach().clone() for p in module.parameters()]
    for step in range(1, 11):
        trainer.train_step(data.rows(slice(0, 8)))
        if step % every == 0:
            decay = min(averaging, step / (9 + step)) ** every
            expected = [
                decay * e + (1 - decay) * p.detach()
                for e, p in zip(expected, module.parameters(), strict=True)
            ]
    for average, value in zip(
        trainer.averaged_module.parameters(), expected, strict=True
    ):
        torch.testing.assert_close(average, value)
    assert trainer.averaged_module is not module
