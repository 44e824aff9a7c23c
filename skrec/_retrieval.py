"""Approximate top-n for ``recommend``: candidates from an item index.

The estimator supplies item vectors and user queries whose inner products
rank items as it does (exactly for a dot-product scorer, to first order
through an MLP), and the true score of any (user, item) pair. The index
returns each user's best candidates; the model re-scores them, seen items
are left out and the ``n`` best kept. Users the index cannot serve (unknown
users, users with too many seen items, users left with too few candidates)
are ranked exactly, so the result has the shape and types of the exact one.
"""

import numpy as np
import torch

from ._engine._ranking import top_k
from ._engine._retrieval import ItemIndex, import_faiss, module_version, search_depth
from ._parallel import cpu_threads

METHODS = ("auto", "exact", "approximate")
# method="auto" ranks exactly below this many candidate items. The index
# ranked 2.3 times as many users per second as exact ranking at 10,000 items
# and 4.4 times at 30,000 (12 at 100,000), missing about 3% of the top-10:
# below this the gain is too small to be worth the misses and the build
# (benchmarks/results/serving_ann.md).
AUTO_MIN_ITEMS = 30_000
# The recall@10 against exact ranking that the index is tuned to reach, on
# a sample of the fitted users.
TARGET_RECALL = 0.95
# Candidates re-scored per item returned when the index ranks by a
# first-order expansion of an MLP rather than by the model's own scores.
RESCORED_PER_ITEM = 20
# (user, candidate) pairs retrieved and re-scored per block.
PAIRS_PER_BLOCK = 1 << 18


def resolve_method(estimator, method, n_candidates):
    """``"exact"`` or ``"approximate"``: how ``recommend`` ranks for ``method``.

    Estimators without an index (``_retrieval_unsupported`` absent) rank
    exactly whatever the method: they score every user's items alike.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"method must be 'auto', 'exact' or 'approximate', got method={method!r}."
        )
    if method == "exact" or not hasattr(estimator, "_retrieval_unsupported"):
        return "exact"
    reason = estimator._retrieval_unsupported()
    if method == "approximate":
        if reason is not None:
            raise ValueError(f'method="approximate" is not available: {reason}')
        import_faiss()
        return "approximate"
    if reason is not None or n_candidates < AUTO_MIN_ITEMS or not _has_faiss():
        return "exact"
    return "approximate"


def _has_faiss():
    try:
        import_faiss()
    except ImportError:
        return False
    return True


class CachedIndex:
    """The item index of one version of an estimator's ``module_``."""

    def __init__(self, estimator):
        vectors, self.expansion = estimator._item_vectors()
        self.version = module_version(estimator.module_)
        self.exact = self.expansion is None
        users = _calibration_users(len(estimator.users_))
        with cpu_threads(estimator.n_jobs) as threads:
            queries = estimator._query_vectors(users, self.expansion)
            seen = estimator.user_items_[users.numpy() - 1]
            self.index = ItemIndex(
                vectors, queries, TARGET_RECALL, threads.current, sample_seen=seen
            )

    def is_current(self, estimator):
        return self.version == module_version(estimator.module_)


def item_index(estimator):
    """The estimator's cached index, built anew if its module changed since."""
    cached = getattr(estimator, "_item_index", None)
    if cached is None or not cached.is_current(estimator):
        cached = estimator._item_index = CachedIndex(estimator)
    return cached


class Rows:
    """The rows to rank (users or sessions), as ``approximate_top`` reads them.

    Parameters
    ----------
    known : ndarray of bool of shape (n_rows,)
        Rows with a query; the others (unknown users, empty sessions) get
        the most popular candidates.
    queries_of : callable
        ``queries_of(positions, expansion)``: the query vectors of the known
        rows at ``positions`` (indices into the known rows), for the index's
        ``expansion`` (see ``_query_vectors``).
    scores_of : callable
        ``scores_of(positions, item_codes)``: the model's scores of those
        rows' ``(len(positions), k)`` item codes.
    seen : scipy.sparse.csr_matrix of shape (n_known, n_items)
        Each known row's items, left out with ``exclude_seen``.
    exact_top : callable
        ``exact_top(rows)``: candidate columns and scores of ``rows`` (indices
        into all rows) by exact ranking, for the rows the index cannot serve.
    """

    def __init__(self, known, queries_of, scores_of, seen, exact_top):
        self.known = known
        self.queries_of = queries_of
        self.scores_of = scores_of
        self.seen = seen
        self.exact_top = exact_top


def approximate_top(estimator, rows, candidates, n, exclude_seen):
    """The ``n`` best candidate columns of each row and their scores, through
    the estimator's item index; what exact ranking returns, up to the
    index's misses.

    Parameters
    ----------
    estimator : RecommendMixin
        With ``_item_vectors``, ``_query_vectors``, ``_item_columns`` and
        ``_popularity``.
    rows : Rows
    candidates : torch.Tensor of item codes
    n : int
    exclude_seen : bool

    Returns
    -------
    columns, values : torch.Tensor of shape (n_rows, min(n, len(candidates)))
    """
    n_columns = min(n, len(candidates))
    columns = torch.zeros((len(rows.known), n_columns), dtype=torch.int64)
    values = torch.full((len(rows.known), n_columns), -torch.inf)
    known = np.flatnonzero(rows.known)
    found, found_values, served = _indexed_top(
        estimator, rows, candidates, n_columns, exclude_seen
    )
    columns[known], values[known] = found, found_values
    unknown = np.flatnonzero(~rows.known)
    if len(unknown):
        popular, popular_values = top_k(estimator._popularity(candidates)[None], n)
        columns[unknown], values[unknown] = popular, popular_values
    missed = known[~served]
    if len(missed):
        columns[missed], values[missed] = rows.exact_top(missed)
    return columns, values


def _indexed_top(estimator, rows, candidates, n_columns, exclude_seen):
    """``approximate_top`` of the known rows, and whether each found
    ``n_columns`` items."""
    cached = item_index(estimator)
    n_rows, n_items = rows.seen.shape
    allowed = None
    if len(candidates) < n_items:
        allowed = np.zeros(n_items, dtype=bool)
        allowed[candidates.numpy() - 1] = True
    item_columns = estimator._item_columns(candidates)
    wanted = n_columns * (1 if cached.exact else RESCORED_PER_ITEM)
    if exclude_seen:
        wanted = wanted + np.diff(rows.seen.indptr)
    wanted = np.broadcast_to(wanted, (n_rows,))
    retrieved = np.minimum(search_depth(wanted), len(candidates))
    columns = torch.zeros((n_rows, n_columns), dtype=torch.int64)
    values = torch.full((n_rows, n_columns), -torch.inf)
    with cpu_threads(estimator.n_jobs) as threads:
        for k in np.unique(retrieved).tolist():
            same_k = np.flatnonzero(retrieved == k)
            block_size = max(1, PAIRS_PER_BLOCK // k)
            for start in range(0, len(same_k), block_size):
                block = same_k[start : start + block_size]
                queries = rows.queries_of(block, cached.expansion)
                found = cached.index.search(queries, k, allowed, threads.current)
                scores = rows.scores_of(block, found.clamp(min=0) + 1)
                seen = rows.seen[block] if exclude_seen else None
                top, values[block] = _best_found(found, scores, seen, n_columns)
                columns[block] = item_columns[top]
    return columns, values, ~torch.isinf(values[:, -1]).numpy()


def _best_found(found, scores, seen, n_columns):
    """The ``n_columns`` best item rows of ``found`` (-1: none) by their
    model ``scores``, leaving out ``seen`` pairs, and their scores; -inf
    marks a row left short."""
    scores = torch.where(found >= 0, scores.float().cpu(), -torch.inf)
    if seen is not None and seen.nnz:
        owners = np.repeat(np.arange(found.shape[0]), found.shape[1])
        hit = np.asarray(seen[owners, found.clamp(min=0).numpy().ravel()]).ravel()
        scores[torch.from_numpy(hit.reshape(found.shape) > 0)] = -torch.inf
    best, best_values = top_k(scores, n_columns)
    return torch.gather(found.clamp(min=0), 1, best), best_values


def _calibration_users(n_users):
    """User codes of a fixed sample of the fitted users."""
    rng = np.random.default_rng(0)
    size = min(n_users, 256)
    return torch.from_numpy(np.sort(rng.choice(n_users, size, replace=False)) + 1)
