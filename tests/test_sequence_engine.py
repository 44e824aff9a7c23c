"""The sequence engine on its own: windows, softmax losses, encoders, dropout."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skrec._engine._sequence_modules import (
    FIRST_ITEM_CODE,
    PAD_CODE,
    SEQUENCE_ARCHITECTURES,
    START_CODE,
    Dropout,
)
from skrec._engine._sequence_training import padded_windows
from skrec._engine._softmax import ItemSampler, full_softmax, sampled_softmax

# -- padded_windows -------------------------------------------------------------

# Three histories of item rows: [5, 6, 7], [8, 9] and an empty one.
ITEMS = np.array([5, 6, 7, 8, 9, 0])
FIRST = np.array([0, 3, 5])
LAST = np.array([3, 5, 5])
VALUES = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 9.0])


def test_padded_windows_left_pad_and_start_each_history_with_the_start_code():
    assert (PAD_CODE, START_CODE, FIRST_ITEM_CODE) == (0, 1, 2)
    windows, values = padded_windows(ITEMS, FIRST, LAST, 5, VALUES)
    assert windows.dtype == np.int64 and windows.shape == (3, 5)
    # Items as their row + 2, the latest last.
    np.testing.assert_array_equal(
        windows, [[0, 1, 7, 8, 9], [0, 0, 1, 10, 11], [0, 0, 0, 0, 1]]
    )
    assert values.dtype == np.float32
    np.testing.assert_array_equal(
        values, [[0, 0, 0.5, 1.0, 1.5], [0, 0, 0, 2.0, 2.5], [0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(padded_windows(ITEMS, FIRST, LAST, 5), windows)


def test_padded_windows_keep_the_latest_width_codes():
    windows, values = padded_windows(ITEMS, FIRST, LAST, 3, VALUES)
    # The start code is the first to go, then the earliest items.
    np.testing.assert_array_equal(windows, [[7, 8, 9], [1, 10, 11], [0, 0, 1]])
    np.testing.assert_array_equal(values, [[0.5, 1.0, 1.5], [0, 2.0, 2.5], [0, 0, 0]])
    np.testing.assert_array_equal(
        padded_windows(ITEMS, FIRST, LAST, 2), [[8, 9], [10, 11], [0, 1]]
    )


def test_padded_windows_of_empty_histories_only():
    empty = np.empty(0, dtype=np.int64)
    windows = padded_windows(empty, np.zeros(2, int), np.zeros(2, int), 3)
    np.testing.assert_array_equal(windows, [[0, 0, 1], [0, 0, 1]])


# -- softmax losses -------------------------------------------------------------


def test_full_softmax_is_cross_entropy_in_value_and_gradients():
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(6, 5, dtype=torch.float64, generator=generator)
    table = torch.randn(9, 5, dtype=torch.float64, generator=generator)
    targets = torch.tensor([0, 8, 3, 3, 5, 1])
    upstream = torch.rand(6, dtype=torch.float64, generator=generator)

    def value_and_gradients(loss):
        s, t = states.clone().requires_grad_(), table.clone().requires_grad_()
        losses = loss(s, t)
        (losses * upstream).sum().backward()
        return losses.detach(), s.grad, t.grad

    ours = value_and_gradients(lambda s, t: full_softmax(s, targets, t))
    reference = value_and_gradients(
        lambda s, t: F.cross_entropy(s @ t.T, targets, reduction="none")
    )
    for got, expected in zip(ours, reference, strict=True):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def _sampler(n_items, negatives):
    """An ItemSampler of uniform probabilities whose shared draws are
    ``negatives``, with ``n_negatives`` their count."""
    sampler = ItemSampler(torch.zeros(n_items), len(negatives), torch.Generator())
    sampler.shared = lambda: torch.as_tensor(negatives)
    return sampler


def test_sampled_softmax_with_every_item_drawn_once_is_the_full_softmax():
    generator = torch.Generator().manual_seed(1)
    states = torch.randn(7, 4, dtype=torch.float64, generator=generator)
    table = torch.randn(10, 4, dtype=torch.float64, generator=generator)
    targets = torch.tensor([0, 9, 4, 4, 2, 7, 1])
    # Each target is also among the negatives, as an accidental hit: left out.
    sampler = _sampler(10, torch.arange(10))
    np.testing.assert_allclose(sampler.probabilities.numpy(), 0.1)
    torch.testing.assert_close(
        sampled_softmax(states, targets, table, sampler),
        F.cross_entropy(states @ table.T, targets, reduction="none"),
        rtol=1e-6,
        atol=1e-6,
    )


def test_sampled_softmax_leaves_out_negatives_that_hit_the_target():
    generator = torch.Generator().manual_seed(2)
    states = torch.randn(2, 4, dtype=torch.float64, generator=generator)
    states.requires_grad_()
    table = torch.randn(8, 4, dtype=torch.float64, generator=generator)
    targets = torch.tensor([0, 1])
    negatives = [5, 6, 1]
    losses = sampled_softmax(states, targets, table, _sampler(8, negatives))
    # Uniform over 8 items, 3 draws: each logit less log(3 / 8).
    log_q = np.log(3 / 8)

    def expected(row, others):
        target = states[row] @ table[targets[row]] - log_q
        logits = [target] + [states[row] @ table[j] - log_q for j in others]
        return torch.logsumexp(torch.stack(logits), 0) - target

    # Item 1 is a negative of state 0 but state 1's own target: left out there.
    torch.testing.assert_close(losses[0], expected(0, [5, 6, 1]))
    torch.testing.assert_close(losses[1], expected(1, [5, 6]))
    losses.sum().backward()
    assert torch.isfinite(states.grad).all()


# -- encoders -------------------------------------------------------------------


def _encoder(architecture, n_layers=2, seed=0):
    torch.manual_seed(seed)
    encoder = SEQUENCE_ARCHITECTURES[architecture](
        12, dim=8, max_len=16, n_layers=n_layers, n_heads=2, dropout=0.3
    )
    return encoder.eval()


def _states(encoder, items):
    items = torch.tensor(items)
    with torch.no_grad():
        return encoder(items, items == PAD_CODE)


@pytest.mark.parametrize("architecture", sorted(SEQUENCE_ARCHITECTURES))
@pytest.mark.parametrize("n_layers", [1, 3])
def test_an_encoders_state_never_depends_on_later_items(architecture, n_layers):
    encoder = _encoder(architecture, n_layers)
    history = [[0, 0, 1, 3, 4, 5, 6, 7, 8, 9]]
    changed = [[0, 0, 1, 3, 4, 5, 11, 7, 8, 9]]
    before, after = _states(encoder, history), _states(encoder, changed)
    assert before.shape == (1, 10, 8)
    torch.testing.assert_close(before[:, :6], after[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


@pytest.mark.parametrize("architecture", sorted(SEQUENCE_ARCHITECTURES))
@pytest.mark.parametrize("n_layers", [1, 3])
def test_more_left_padding_leaves_the_last_state_unchanged(architecture, n_layers):
    encoder = _encoder(architecture, n_layers)
    short = _states(encoder, [[0, 1, 3, 4, 5]])
    long = _states(encoder, [[0] * 9 + [1, 3, 4, 5]])
    torch.testing.assert_close(short[:, -4:], long[:, -4:], rtol=1e-5, atol=1e-5)
    # A batch of histories of different lengths: each as alone.
    batch = _states(encoder, [[0, 0, 0, 1, 6], [0, 1, 3, 4, 5]])
    torch.testing.assert_close(batch[1:], short, rtol=1e-5, atol=1e-5)
    alone = _states(encoder, [[1, 6]])
    torch.testing.assert_close(batch[:1, -2:], alone, rtol=1e-5, atol=1e-5)


# -- dropout --------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_keeps_one_minus_p_and_preserves_the_mean(p):
    dropout = Dropout(p).train()
    x = torch.ones(400_000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        y = dropout(x)
    # p is rounded to 256ths.
    kept = (256 - round(p * 256)) / 256
    assert abs(float((y != 0).float().mean()) - kept) < 0.005
    assert abs(float(y.mean()) - 1.0) < 0.02
    np.testing.assert_allclose(y[y != 0].numpy(), 1 / kept, rtol=1e-6)


def test_dropout_of_a_p_close_to_one_stays_finite():
    x = torch.ones(400_000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        y = Dropout(0.999).train()(x)
    assert torch.isfinite(y).all()
    assert float((y != 0).float().mean()) < 0.01


def test_dropout_is_the_identity_in_eval_mode_and_at_p_zero():
    x = torch.randn(1000)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_an_epoch_shorter_than_the_averaging_stride_still_moves_the_average():
    # 0.99 averages every 5 steps; an epoch of 2 steps used to leave the
    # average at the initial weights, which early stopping then kept.
    from skrec._engine._sequence_modules import SelfAttentionEncoder
    from skrec._engine._sequence_training import NextItemData, SequenceTrainer

    torch.manual_seed(0)
    module = SelfAttentionEncoder(8, dim=4, max_len=4, n_layers=1, n_heads=1, dropout=0)
    windows = np.array([[0, 1, 2, 3, 4], [1, 5, 6, 7, 2]] * 2)
    data = NextItemData(windows, np.ones(windows.shape, dtype=np.float32), "cpu")
    trainer = SequenceTrainer(
        module,
        data,
        batch_size=2,
        learning_rate=0.1,
        seed=0,
        loss="softmax",
        n_negatives=2,
        averaging=0.99,
    )
    initial = [p.detach().clone() for p in trainer.averaged_module.parameters()]
    trainer.train_epoch()
    assert trainer.n_steps == 2 < trainer.average.every
    moved = [
        not torch.equal(before, after)
        for before, after in zip(
            initial, trainer.averaged_module.parameters(), strict=True
        )
    ]
    assert any(moved)


def _short_and_long_histories(loss, n_negatives=2):
    """A trainer on two histories of one next item and two of eight, in
    batches of 2, and their data."""
    from skrec._engine._sequence_modules import SelfAttentionEncoder
    from skrec._engine._sequence_training import NextItemData, SequenceTrainer

    module = SelfAttentionEncoder(
        12, dim=4, max_len=8, n_layers=1, n_heads=1, dropout=0
    )
    short = [0] * 7 + [1, 2]  # one next item
    long = [1, 3, 4, 5, 6, 7, 8, 9, 10]  # eight next items
    windows = np.array([short, short, long, long])
    data = NextItemData(windows, (windows >= 2).astype(np.float32), "cpu")
    trainer = SequenceTrainer(
        module,
        data,
        batch_size=2,
        learning_rate=0.0,
        seed=0,
        loss=loss,
        n_negatives=n_negatives,
    )
    return trainer, data


def test_every_next_item_weighs_the_same_whatever_its_batch():
    """Batches of similar lengths hold very different numbers of next items:
    each step's weighted sum is divided by the mean weight of a step, not by
    its own, so an epoch's objective is the mean over every item."""
    trainer, data = _short_and_long_histories("softmax")
    assert trainer.mean_step_weight == pytest.approx((2 * 1 + 2 * 8) / 2)
    with torch.no_grad():
        parts = [trainer.objective(*data.batch(rows)) for rows in trainer.batches()]
    total = sum(float(weighted_sum) for weighted_sum, _ in parts)
    items = sum(float(weight) for _, weight in parts)
    epoch_objective = sum(
        float(weighted_sum) / trainer.mean_step_weight for weighted_sum, _ in parts
    )
    # The steps' objectives add up to the item mean once per step.
    assert epoch_objective == pytest.approx(len(parts) * total / items)


@pytest.mark.parametrize("loss", ["softmax", "sampled_softmax"])
def test_a_sampled_softmax_step_counts_at_most_a_mean_steps_weight(loss):
    """The items a batch shares as negatives take the gradient of every
    position of it: with the sampled softmax, a step of more items than the
    mean is divided by its own weight; a smaller one, like every step of the
    other losses, by the mean's."""
    torch.manual_seed(0)
    trainer, data = _short_and_long_histories(loss, n_negatives=4)
    mean = trainer.mean_step_weight
    assert mean == pytest.approx(9.0)
    for rows, weight in ((torch.tensor([2, 3]), 16.0), (torch.tensor([0, 1]), 2.0)):
        batch = data.batch(rows)
        draws = trainer.generator.get_state()
        weighted_sum, _ = trainer.objective(*batch)
        divisor = max(weight, mean) if loss == "sampled_softmax" else mean
        expected = torch.autograd.grad(weighted_sum / divisor, trainer.parameters)
        trainer.generator.set_state(draws)
        trainer.train_step(*batch)
        for param, grad in zip(trainer.parameters, expected, strict=True):
            torch.testing.assert_close(param.grad, grad)
