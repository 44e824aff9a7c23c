"""Training losses: one function per loss, each scoring a batch of positives.

A loss takes the module, a batch and a negative sampler, and returns the batch
loss with the table rows of the batch's observed (user, item) pairs, on which
the trainer puts its L2 penalty.
"""

import torch
import torch.nn.functional as F

from ._modules import EmbeddingMLP, embedding_tables, factorizes
from ._softmax import full_softmax, sampled_cross_entropy

# negative_sampling="hard": uniform draws per negative kept, among which
# the highest-scoring are the negatives.
HARD_NEGATIVE_POOL = 4

# Rounds of redrawing negatives that hit a known positive. Each round leaves a
# share (density of the user's row) of the previous collisions, so two rounds
# leave about density**3 of them without a per-step host synchronisation.
RESAMPLE_ROUNDS = 2


class PairSet:
    """A set of (user, item) code pairs with vectorised membership tests."""

    def __init__(self, users, items, n_items):
        self.n_items = n_items
        self.keys = torch.unique(users * n_items + items)  # sorted

    def contains(self, users, items):
        """Whether each (user, item) pair, broadcast together, is in the set."""
        keys = users * self.n_items + items
        found = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[found] == keys


class NegativeSampler:
    """Draws items among those a user has not interacted with.

    Parameters
    ----------
    users, items : torch.Tensor
        Codes of the observed pairs.
    n_items : int
        Rows of the item table; codes ``1 .. n_items - 1`` are drawn, 0 being
        the unknown item.
    n_negatives : int
        Items drawn per positive.
    generator : torch.Generator
    by_popularity : bool, default=False
        Draw each item with probability proportional to its number of observed
        pairs, by picking a random observed pair's item; else uniformly.
    hard : bool, default=False
        Make the losses keep, of ``HARD_NEGATIVE_POOL`` draws per negative,
        those the model scores highest (dynamic negative sampling).
    """

    def __init__(
        self,
        users,
        items,
        n_items,
        n_negatives,
        generator,
        by_popularity=False,
        hard=False,
    ):
        self.n_items = n_items
        self.n_negatives = n_negatives
        self.generator = generator
        self.positives = PairSet(users, items, n_items)
        self.pool = items if by_popularity else None
        self.hard = hard

    def sample(self, users, n_per_user=None):
        """Item codes of shape ``(len(users), n_per_user)``, by default
        ``(len(users), n_negatives)``."""
        shape = (len(users), n_per_user or self.n_negatives)
        items = self._draw(shape, users.device)
        for _ in range(RESAMPLE_ROUNDS):
            items = torch.where(
                self.positives.contains(users[:, None], items),
                self._draw(shape, users.device),
                items,
            )
        return items

    def _draw(self, shape, device):
        if self.pool is not None:
            rows = torch.randint(
                0, len(self.pool), shape, generator=self.generator, device=device
            )
            return self.pool[rows]
        return torch.randint(
            1, self.n_items, shape, generator=self.generator, device=device
        )


def scored_rows(module, users, items, features):
    """Scores of pairs and the embedding table rows they looked up.

    The rows carry the trainer's L2 penalty. The built-in modules hand over
    the rows they used; a custom module's rows are looked up again from the
    tables it reports, or are None when it reports none.
    """
    if isinstance(module, EmbeddingMLP):
        return module.score_with_rows(users, items, features)
    tables = embedding_tables(module)
    scores = module(users, items, features).reshape(-1)
    user_rows = tables["user"](users) if "user" in tables else None
    item_rows = tables["item"](items) if "item" in tables else None
    return scores, user_rows, item_rows


def squared_error(module, batch, sampler=None):
    scores, user_rows, item_rows = scored_rows(
        module, batch.users, batch.items, batch.features
    )
    return F.mse_loss(scores, batch.targets), user_rows, item_rows


def binary_cross_entropy(module, batch, sampler):
    """Positives labelled 1 (weighted by their target), sampled negatives 0."""
    scores, user_rows, item_rows = _score_with_negatives(module, batch, sampler)
    n_pos = len(batch)
    labels = torch.zeros_like(scores)
    labels[:n_pos] = 1.0
    weights = torch.ones_like(scores)
    weights[:n_pos] = batch.targets
    loss = F.binary_cross_entropy_with_logits(scores, labels, weight=weights)
    return loss, *_positive_rows(user_rows, item_rows, n_pos)


def bayesian_personalized_ranking(module, batch, sampler):
    """Each positive should outscore each of its sampled negatives (BPR)."""
    scores, user_rows, item_rows = _score_with_negatives(module, batch, sampler)
    n_pos = len(batch)
    positive, negative = scores[:n_pos], scores[n_pos:].view(n_pos, -1)
    margins = positive[:, None] - negative
    loss = -(F.logsigmoid(margins).mean(dim=1) * batch.targets).mean()
    return loss, *_positive_rows(user_rows, item_rows, n_pos)


def softmax_cross_entropy(module, batch, sampler):
    """Each positive's cross-entropy among every item of the catalog, on a
    module whose scores factorize (see ``EmbeddingMLP.user_states``).

    ``sampler`` is an ``ItemSampler`` over item codes ``1 .. n_items - 1``,
    its row ``r`` being item code ``r + 1``.
    """
    if "user" not in module.history_kinds:
        # A user's rows in the batch share the user's logits.
        users, owners = torch.unique(batch.users, return_inverse=True)
        states, user_rows = module.user_states(users)
        user_rows = user_rows[owners]
    else:
        # Each row's state leaves out its own item: no logits to share.
        states, user_rows = module.user_states(batch.users, leave_out=batch.items)
        owners = None
    catalog = torch.arange(1, len(sampler.probabilities) + 1, device=states.device)
    outputs, item_rows = module.item_outputs(catalog)
    losses = full_softmax(states, batch.items - 1, outputs, owners=owners)
    return (losses * batch.targets).mean(), user_rows, item_rows[batch.items - 1]


def sampled_softmax_cross_entropy(module, batch, sampler):
    """Each positive's cross-entropy among itself and the ``n_negatives``
    items that ``sampler`` draws for the whole batch, log-Q corrected.

    A factorized module scores the shared items with one matrix product, a
    built-in one with an MLP each (user, negative) pair of the batch's
    distinct users, and any other module each (row, negative) pair.
    """
    negatives = sampler.shared()
    n_pos = len(batch)
    if factorizes(module):
        states, user_rows = module.user_states(batch.users, leave_out=batch.items)
        outputs, item_rows = module.item_outputs(
            torch.cat([batch.items, negatives + 1])
        )
        positive = (states * outputs[:n_pos]).sum(dim=1)
        negative = states @ outputs[n_pos:].T
    elif isinstance(module, EmbeddingMLP) and not module.has_row_features(
        batch.features
    ):
        # A user's rows share the user's scores of the negatives.
        positive, user_rows, item_rows = module.score_with_rows(
            batch.users, batch.items, batch.features
        )
        users, owners = torch.unique(batch.users, return_inverse=True)
        negative = module.score_grid(users, negatives + 1)[0][owners]
    else:
        grid = (negatives + 1).expand(n_pos, -1)
        scores, user_rows, item_rows = _scores_with(module, batch, grid)
        positive, negative = scores[:n_pos], scores[n_pos:].view(n_pos, -1)
    losses = sampled_cross_entropy(
        positive, negative, batch.items - 1, negatives, sampler
    )
    return (losses * batch.targets).mean(), *_positive_rows(user_rows, item_rows, n_pos)


def _positive_rows(user_rows, item_rows, n_pos):
    """The table rows of the positives, which alone carry the penalty."""
    return tuple(
        None if rows is None else rows[:n_pos] for rows in (user_rows, item_rows)
    )


def _score_with_negatives(module, batch, sampler):
    """Scores of the batch's positives followed by their negatives, row-major."""
    return _scores_with(module, batch, _negatives(module, batch, sampler))


def _scores_with(module, batch, negatives):
    """Scores of the batch's positives followed by ``negatives``, item codes
    of shape ``(len(batch), n)``, paired row-major with the batch's users."""
    users, items, features = _paired_with(batch, negatives)
    return scored_rows(
        module,
        torch.cat([batch.users, users]),
        torch.cat([batch.items, items]),
        None if features is None else torch.cat([batch.features, features]),
    )


def _negatives(module, batch, sampler):
    """Negative item codes for the batch's rows, ``(len(batch), n_negatives)``.

    Hard negatives are the items the model currently ranks highest among
    uniform draws (Zhang et al., "Optimizing top-n collaborative filtering
    via dynamic negative item sampling", SIGIR 2013): as training goes on,
    random items are mostly ranked low already and teach little, while the
    highest-scoring ones are those that push a user's items out of the top.
    """
    if not sampler.hard:
        return sampler.sample(batch.users)
    candidates = sampler.sample(batch.users, sampler.n_negatives * HARD_NEGATIVE_POOL)
    with torch.no_grad():
        scores = scored_rows(module, *_paired_with(batch, candidates))[0]
    hardest = scores.view(candidates.shape).topk(sampler.n_negatives, dim=1).indices
    return candidates.gather(1, hardest)


def _paired_with(batch, negatives):
    """(users, items, features) of each row's negatives, row-major.

    A positive's per-row and user features, if any, are kept for its
    negatives: they describe the context in which the user chose among items.
    The module replaces the item features by each negative's own.
    """
    repeats = negatives.shape[1]
    features = batch.features
    if features is not None:
        features = features.repeat_interleave(repeats, dim=0)
    return batch.users.repeat_interleave(repeats), negatives.reshape(-1), features


LOSSES = {
    "mse": squared_error,
    "bce": binary_cross_entropy,
    "bpr": bayesian_personalized_ranking,
    "softmax": softmax_cross_entropy,
    "sampled_softmax": sampled_softmax_cross_entropy,
}
