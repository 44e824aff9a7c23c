"""Top-k items per user: score matrices, masking of seen items, torch.topk.

Users are scored in chunks of whole rows of the (user, candidate item) score
matrix, so that ranking every item never loops over users in Python.
"""

import torch

from ._losses import PairSet

# Pairs scored per chunk: bounds the memory of one score matrix (16 MB in
# float32), while giving each chunk enough users to share the work done once
# per item, such as the item half of the first MLP layer.
PAIRS_PER_CHUNK = 1 << 22


def score_matrix(module, user_codes, item_codes):
    """Scores of every (user, item) pair, shape ``(len(users), len(items))``.

    Modules that can score a user-by-item grid faster than pair by pair do so
    through their own ``score_matrix``.
    """
    module.eval()
    with torch.inference_mode():
        if hasattr(module, "score_matrix"):
            return module.score_matrix(user_codes, item_codes)
        users = user_codes.repeat_interleave(len(item_codes))
        items = item_codes.repeat(len(user_codes))
        # No side features: only declared ones, which live in the module.
        scores = module(users, items, None)
        return scores.view(len(user_codes), len(item_codes))


def users_per_chunk(n_items):
    """How many users' score rows fit in one chunk."""
    return max(1, PAIRS_PER_CHUNK // max(1, n_items))


def mask_seen(scores, csr_rows, item_columns, indptr, indices):
    """Set to -inf the scores of the items each user interacted with in fit.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_users, n_candidates)
    csr_rows : torch.Tensor of shape (n_users,)
        Each user's row in the CSR arrays ``indptr``/``indices`` of seen item
        indices; -1 for a user with no row (an unknown user).
    item_columns : torch.Tensor
        Column in ``scores`` of each item index, -1 for non-candidates.
    """
    has_row = csr_rows >= 0
    starts = indptr[csr_rows.clamp(min=0)]
    counts = torch.where(has_row, indptr[csr_rows.clamp(min=0) + 1] - starts, 0)
    rows = torch.repeat_interleave(torch.arange(len(csr_rows)), counts)
    first = torch.repeat_interleave(starts - (counts.cumsum(0) - counts), counts)
    positions = first + torch.arange(len(rows))
    columns = item_columns[indices[positions]]
    keep = columns >= 0
    scores[rows[keep].to(scores.device), columns[keep].to(scores.device)] = -torch.inf
    return scores


def top_k(scores, k):
    """The ``k`` best columns of each row, best first, and their scores."""
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    return top.indices, top.values


@torch.inference_mode()
def ndcg_of_held_out(module, held_out, seen, n_items, k=10):
    """Mean NDCG@k of held-out pairs when each user ranks all unseen items.

    Parameters
    ----------
    module : torch.nn.Module
    held_out : Interactions
        The pairs to find, e.g. a validation split.
    seen : PairSet
        The pairs each user already has (training rows): never recommended.
        Passed in built, since early stopping calls this every epoch.
    n_items : int
        Rows of the item table; codes ``1 .. n_items - 1`` are ranked.
    k : int
    """
    device = held_out.users.device
    relevant = PairSet(held_out.users, held_out.items, n_items)
    users, n_relevant = torch.unique(held_out.users, return_counts=True)
    items = torch.arange(1, n_items, device=device)
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, device=device).double())
    ideal = discounts.cumsum(0)
    total = torch.zeros((), dtype=torch.float64, device=device)
    chunk = users_per_chunk(len(items))
    for start in range(0, len(users), chunk):
        codes = users[start : start + chunk]
        scores = score_matrix(module, codes, items)
        scores[seen.contains(codes[:, None], items[None, :])] = -torch.inf
        columns, _ = top_k(scores, k)
        hits = relevant.contains(codes[:, None], items[columns]).double()
        gains = (hits * discounts[: hits.shape[1]]).sum(dim=1)
        best = ideal[(n_relevant[start : start + chunk].clamp(max=k) - 1)]
        total += (gains / best).sum()
    return float(total) / len(users)
