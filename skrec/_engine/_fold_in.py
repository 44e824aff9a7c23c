"""Fold-in: the user embedding of a new session, from the items it holds,
with everything else of a fitted model fixed.

A session's embedding ``p`` maximises the likelihood of its items under a
softmax over the catalog, with the trainer's L2 penalty as its prior::

    L(p) = sum_{j in S} (logsumexp_k z_k(p) - z_j(p)) + alpha * |p|^2

``z(p)`` being the model's scores of every item. That is the training
objective of ``loss="softmax"`` restricted to one user's row (the user's bias
cancels in it), so a session holding a fitted user's items gets about that
user's embedding; it is convex when the scores are linear in ``p``.
"""

import torch

from ._modules import factorizes

# Newton steps for scores linear in p, at most: from p = 0 the objective is a
# smooth convex function of a few dozen variables, which Newton's method
# solves to float32 precision in three or four steps. It stops once no
# coordinate of p moves by more than TOLERANCE (relative to the largest).
NEWTON_STEPS = 8
TOLERANCE = 1e-4
# Step halvings tried when a Newton step does not lower a session's objective.
HALVINGS = 4
# L-BFGS iterations for scores through an MLP.
LBFGS_STEPS = 30
# Elements of the largest tensor of a chunk of sessions folded in together,
# (sessions, items, width): the products behind the Newton Hessians, or the
# hidden layer of an MLP. 16 MB in float32.
CHUNK_ELEMENTS = 1 << 22
# Below this many elements a chunk's operations are too small for threads to
# pay: they mostly wait for each other.
SMALL_CHUNK_ELEMENTS = 1 << 20
# Added to alpha so that an unpenalised objective keeps a definite Hessian.
JITTER = 1e-4


def session_scores(module, items, starts, candidates, alpha, on_step=None):
    """Scores of ``candidates`` for each session, from its folded-in embedding.

    Parameters
    ----------
    module : EmbeddingMLP
    items : torch.Tensor of int64
        Item codes of every session, session after session.
    starts : torch.Tensor of int64 of shape (n_sessions + 1,)
        Where each session's codes start in ``items``, and the end.
    candidates : torch.Tensor of int64
        Item codes to score.
    alpha : float
        Strength of the penalty on the user embedding.
    on_step : callable, default=None
        Called after every step of the solvers, e.g. to follow the load of
        the cores.

    Returns
    -------
    scores : torch.Tensor of shape (n_sessions, len(candidates))
    """
    module.eval()
    catalog = torch.arange(1, module.item_table.num_embeddings, device=items.device)
    outputs = _catalog_outputs(module, catalog)
    per_chunk = max(1, CHUNK_ELEMENTS // _elements_per_session(module))
    n_sessions = len(starts) - 1
    chunks = []
    for first in range(0, n_sessions, per_chunk):
        chunk_starts = starts[first : min(first + per_chunk, n_sessions) + 1]
        vectors = fold_in(module, items, chunk_starts, catalog, alpha, on_step, outputs)
        with torch.no_grad():
            if outputs is None:
                chunks.append(module.vector_scores(vectors, candidates))
            else:
                chunks.append(module.states_of(vectors) @ outputs[candidates - 1].T)
    if not chunks:
        return torch.empty((0, len(candidates)), device=items.device)
    return torch.cat(chunks)


def fold_in(module, items, starts, catalog, alpha, on_step=None, outputs=None):
    """The user embeddings of sessions (``svdpp``'s history sums included)
    that minimise ``L`` over the items of ``catalog``; parameters as in
    ``session_scores``, and ``outputs``, the catalog's ``_catalog_outputs``
    if already computed."""
    n_sessions = len(starts) - 1
    session_items = items[starts[0] : starts[-1]]
    owners = torch.repeat_interleave(
        torch.arange(n_sessions, device=items.device), starts.diff()
    )
    with torch.no_grad():
        counts = torch.zeros(n_sessions, len(catalog), device=items.device)
        counts.index_put_(
            (owners, session_items - 1),
            torch.ones(len(owners), device=items.device),
            accumulate=True,
        )
        history = module.session_history(session_items, owners, n_sessions)
        if factorizes(module):
            if outputs is None:
                outputs = _catalog_outputs(module, catalog)
            return history + _newton(module, outputs, counts, history, alpha, on_step)
    with torch.enable_grad():
        return history + _lbfgs(module, catalog, counts, alpha, on_step)


@torch.no_grad()
def _catalog_outputs(module, catalog):
    """The item side of factorized scores of the catalog (see
    ``EmbeddingMLP.item_outputs``), None through an MLP: computed once per
    call, since for ``svdpp`` it sums over every interaction."""
    return module.item_outputs(catalog)[0] if factorizes(module) else None


def is_small(module, n_sessions):
    """Whether folding in ``n_sessions`` is work too small to share between
    threads."""
    return n_sessions * _elements_per_session(module) < SMALL_CHUNK_ELEMENTS


def _elements_per_session(module):
    """Elements of the largest tensor a session costs: items x width."""
    width = module.user_table.embedding_dim - 1
    if not factorizes(module):
        width = max(width, module.mlp[0].out_features)
    return module.item_table.num_embeddings * width


def _objective(scores, counts, p, alpha):
    """``L(p)`` of each session, from its scores of the catalog."""
    log_likelihood = (counts * scores.log_softmax(dim=1)).sum(dim=1)
    return alpha * p.square().sum(dim=1) - log_likelihood


def _newton(module, outputs, counts, history, alpha, on_step):
    """The minimiser of ``L`` for scores linear in ``p``: ``z = E p + o``,
    from the catalog's ``outputs``."""
    dim = history.shape[1]
    # states_of is linear in p with a constant last column: its matrix
    # gives the scores' matrix E; the history and the offsets give o.
    eye = torch.eye(dim, device=history.device)
    effect = outputs[:, :-1] @ module.states_of(eye)[:, :-1].T
    offsets = module.states_of(history) @ outputs.T
    alpha = alpha + JITTER
    sizes = counts.sum(dim=1)
    p = history.new_zeros(len(counts), dim)
    scores = offsets
    objective = _objective(scores, counts, p, alpha)
    for _ in range(NEWTON_STEPS):
        probabilities = scores.softmax(dim=1)
        mean = probabilities @ effect
        gradient = sizes[:, None] * mean - counts @ effect + 2 * alpha * p
        weighted = probabilities[:, :, None] * effect
        hessian = sizes[:, None, None] * (
            weighted.transpose(1, 2) @ effect - mean[:, :, None] * mean[:, None, :]
        )
        hessian += 2 * alpha * eye
        step = torch.linalg.solve(hessian, gradient)
        p, scores, objective = _descend(
            p, step, scores, objective, lambda p: p @ effect.T + offsets, counts, alpha
        )
        if on_step is not None:
            on_step()
        if float(step.abs().max()) <= TOLERANCE * (1 + float(p.abs().max())):
            break
    return p


def _descend(p, step, scores, objective, score, counts, alpha):
    """``p - t * step`` with, per session, the largest ``t`` in 1, 1/2, 1/4,
    ... that lowers its objective (0 if none does), its scores ``score(p)``
    and its objective."""
    scale = torch.ones(len(p), device=p.device)
    for _ in range(HALVINGS + 1):
        candidate = p - scale[:, None] * step
        candidate_scores = score(candidate)
        value = _objective(candidate_scores, counts, candidate, alpha)
        better = value <= objective
        if better.all():
            break
        scale = torch.where(better, scale, scale / 2)
    return (
        torch.where(better[:, None], candidate, p),
        torch.where(better[:, None], candidate_scores, scores),
        torch.where(better, value, objective),
    )


def _lbfgs(module, catalog, counts, alpha, on_step):
    """A minimiser of ``L`` for scores through an MLP, by L-BFGS from 0."""
    # The module's weights stay fixed: no gradients are computed for them.
    flags = [(parameter, parameter.requires_grad) for parameter in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    dim = module.user_table.embedding_dim - 1
    p = torch.zeros(len(counts), dim, device=counts.device, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [p], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        scores = module.vector_scores(p, catalog)
        loss = _objective(scores, counts, p, alpha).sum()
        loss.backward()
        if on_step is not None:
            on_step()
        return loss

    try:
        optimizer.step(closure)
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
    return p.detach()
