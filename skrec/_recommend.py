"""recommend(): top-n items per user for any skrec estimator that scores pairs."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted

from ._encoding import UNKNOWN_CODE, encode_ids
from ._engine._ranking import mask_seen, top_k, users_per_chunk
from ._retrieval import Rows, approximate_top, resolve_method
from ._validation import check_hashable


def user_item_matrix(user_codes, item_codes, n_users, n_items):
    """CSR matrix of the (user, item) pairs seen in fit, rows aligned with users_.

    Built from one sorted array of pair keys rather than through a COO
    matrix, whose conversion holds several copies of the rows at once.
    """
    known = (user_codes > 0) & (item_codes > 0)
    # user * n_items + item stays below 2**63 for any vocabulary that fits in
    # memory.
    keys = (user_codes - 1) * np.int64(n_items)
    keys += item_codes - 1
    if not known.all():
        keys = keys[known]
    del known
    keys.sort()
    if len(keys) > 1:
        distinct = np.empty(len(keys), dtype=bool)
        distinct[0] = True
        np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
        if not distinct.all():
            keys = keys[distinct]
        del distinct
    row_starts = np.arange(n_users + 1, dtype=np.int64) * n_items
    index_dtype = np.int32 if max(len(keys), n_items) < 2**31 else np.int64
    indptr = np.searchsorted(keys, row_starts).astype(index_dtype)
    np.remainder(keys, n_items, out=keys)
    indices = keys.astype(index_dtype)
    del keys
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))


def union_of_pairs(before, after):
    """The pairs of either matrix; ``before`` may have fewer rows and columns.

    ``before`` is read in place: after many ``partial_fit`` calls it is the
    largest array of a model, and a copy of it would double the memory that
    each call needs on top of its chunk.
    """
    union = (_widened(before, after.shape) + after).tocsr()
    union.data[:] = 1.0
    return union


def new_pairs(before, after):
    """The pairs of ``after`` that ``before`` lacks, in the shape of ``after``."""
    return (after - after.multiply(_widened(before, after.shape))).tocsr()


def pairs_without(union, pairs, shape):
    """``union`` less ``pairs``, cut to ``shape``: undoes ``union_of_pairs``
    given the pairs that it added."""
    before = (union - pairs).tocsr()
    before.resize(shape)
    return before


def _widened(pairs, shape):
    """``pairs`` with empty rows appended up to ``shape``, sharing its arrays."""
    indptr = np.empty(shape[0] + 1, dtype=pairs.indptr.dtype)
    indptr[: len(pairs.indptr)] = pairs.indptr
    indptr[len(pairs.indptr) :] = pairs.indptr[-1]
    return sp.csr_matrix((pairs.data, pairs.indices, indptr), shape=shape, copy=False)


class RecommendMixin:
    """Adds ``recommend`` to an estimator that implements ``_score_matrix``.

    ``_score_matrix(user_codes, item_codes)`` returns a float torch tensor of
    shape ``(len(user_codes), len(item_codes))``; the estimator also has
    ``users_``, ``items_`` and ``user_items_`` (the pairs seen in fit).
    """

    def recommend(
        self,
        users,
        n=10,
        *,
        exclude_seen=True,
        items=None,
        return_scores=False,
        method="auto",
    ):
        """Recommend the ``n`` best items for each user, best first.

        Parameters
        ----------
        users : array-like of shape (n_users,)
            User IDs, as in the user column of ``X``. Users not seen in fit get
            the most popular items.

        n : int, default=10
            Items per user. At most the number of candidate items.

        exclude_seen : bool, default=True
            Leave out the items each user interacted with in fit. A user with
            fewer than ``n`` unseen candidates gets seen items last, with a
            score of ``-inf``.

        items : array-like of shape (n_candidates,), default=None
            Candidate item IDs to choose from; all items seen in fit if None.
            IDs not seen in fit are ignored.

        return_scores : bool, default=False
            Also return the score of each recommended item.

        method : {"auto", "exact", "approximate"}, default="auto"
            How to find the best items. ``"exact"`` scores every candidate
            for every user. ``"approximate"`` searches an index of the item
            vectors (faiss, ``pip install "skrec[ann]"``), built on first use
            and kept until the model changes, and re-scores what it finds
            with the model: its recall@10 against ``"exact"`` is tuned to
            0.95 or more, at a fraction of the time on large catalogs.
            ``"auto"`` is ``"approximate"`` from 30,000 candidate items on
            when faiss is installed, ``"exact"`` otherwise. Models that score
            every user's items alike (popularity) need no index and always
            rank exactly. See :ref:`retrieval`.

        Returns
        -------
        item_ids : ndarray of shape (n_users, n)
            Recommended item IDs, best first.

        scores : ndarray of shape (n_users, n)
            Their scores; only when ``return_scores`` is True. With
            ``method="approximate"`` too, these are the model's own scores.

        Examples
        --------
        Every estimator that recommends does so the same way; here the
        popularity baseline, whose rankings are easy to follow:

        >>> from skrec import PopularityRecommender
        >>> X = [["ann", "up"], ["bob", "up"], ["bob", "jaws"], ["cat", "alien"]]
        >>> est = PopularityRecommender().fit(X)
        >>> est.recommend(["ann", "eve"], n=2)
        array([['alien', 'jaws'],
               ['up', 'alien']], dtype=object)
        >>> est.recommend(["ann"], n=1, exclude_seen=False)
        array([['up']], dtype=object)
        >>> est.recommend(["ann"], n=1, items=["jaws", "up"], return_scores=True)
        (array([['jaws']], dtype=object), array([[1.]]))
        """
        check_is_fitted(self)
        check_n(n)
        user_codes = encode_ids(_as_ids(users, "users"), self.users_)
        candidates = self._candidate_codes(items)
        if resolve_method(self, method, len(candidates)) == "approximate":
            columns, values = approximate_top(
                self,
                self._user_rows(user_codes, candidates, n, exclude_seen),
                candidates,
                n,
                exclude_seen,
            )
        else:
            columns, values = self._exact_top(user_codes, candidates, n, exclude_seen)
        return self._ranked_items(candidates, columns, values, return_scores)

    def _exact_top(self, user_codes, candidates, n, exclude_seen):
        """The ``n`` best candidate columns of each user by scoring every
        candidate, and their scores."""
        item_columns = self._item_columns(candidates)
        seen = self.user_items_
        indptr = torch.from_numpy(seen.indptr.astype(np.int64))
        indices = torch.from_numpy(seen.indices.astype(np.int64))
        popularity = self._popularity(candidates)
        chunk = users_per_chunk(len(candidates))
        top_columns, top_scores = [], []
        for start in range(0, len(user_codes), chunk):
            codes = torch.from_numpy(user_codes[start : start + chunk])
            with torch.inference_mode():
                columns, values = self._top_columns(
                    codes,
                    candidates,
                    n,
                    exclude_seen,
                    item_columns,
                    indptr,
                    indices,
                    popularity,
                )
            top_columns.append(columns.cpu())
            top_scores.append(values.cpu())
        if not top_columns:
            # No users: no rows, but as many columns as for any user.
            top_columns = [torch.empty((0, min(n, len(candidates))), dtype=torch.long)]
            top_scores = [torch.empty(top_columns[0].shape)]
        return torch.cat(top_columns), torch.cat(top_scores)

    def _user_rows(self, user_codes, candidates, n, exclude_seen):
        """The users of ``recommend`` as ``approximate_top`` reads them."""
        known = user_codes != UNKNOWN_CODE
        codes = torch.from_numpy(user_codes[known])
        return Rows(
            known,
            lambda positions, expansion: self._query_vectors(
                codes[positions], expansion
            ),
            lambda positions, items: self._pair_scores(codes[positions], items),
            self.user_items_[user_codes[known] - 1],
            lambda rows: self._exact_top(user_codes[rows], candidates, n, exclude_seen),
        )

    def __getstate__(self):
        # The item index is rebuilt on first use after loading: faiss indexes
        # do not pickle, and it is quicker to build than to store.
        state = super().__getstate__()
        state.pop("_item_index", None)
        state.pop("_item_counts", None)
        return state

    def _top_columns(
        self,
        codes,
        candidates,
        n,
        exclude_seen,
        item_columns,
        indptr,
        indices,
        popularity,
    ):
        scores = self._score_matrix(codes, candidates).float()
        unknown = codes == UNKNOWN_CODE
        if unknown.any():
            scores[unknown.to(scores.device)] = popularity.to(scores.device)
        if exclude_seen:
            mask_seen(scores, codes - 1, item_columns, indptr, indices)
        return top_k(scores, n)

    def _top_of_sessions(self, scores, rows, starts, candidates, n, exclude_seen):
        """The ``n`` best candidates of each session, and their scores.

        ``scores`` of shape ``(n_sessions, len(candidates))`` rank the
        candidates of each session; sessions without rows get the popularity
        ranking, and with ``exclude_seen`` each session's own items are left
        out, as ``recommend`` does for a user.
        """
        empty = torch.from_numpy(np.diff(starts) == 0).to(scores.device)
        if empty.any():
            scores[empty] = self._popularity(candidates).to(scores.device)
        if exclude_seen:
            mask_seen(
                scores,
                torch.arange(len(starts) - 1),
                self._item_columns(candidates),
                torch.from_numpy(starts),
                torch.from_numpy(rows),
            )
        return top_k(scores, n)

    def _item_columns(self, candidates):
        """The column of each item index among ``candidates``, -1 for the
        items that are not candidates."""
        item_columns = torch.full((len(self.items_),), -1, dtype=torch.int64)
        item_columns[candidates - 1] = torch.arange(len(candidates))
        return item_columns

    def _ranked_items(self, candidates, columns, values, return_scores):
        """The item IDs at the candidate ``columns`` of each row, and their
        scores ``values`` if ``return_scores``: what ``recommend`` returns."""
        item_ids = self.items_[candidates[columns.long().cpu()].numpy() - 1]
        if return_scores:
            return item_ids, values.double().cpu().numpy()
        return item_ids

    def _candidate_codes(self, items):
        if items is None:
            return torch.arange(1, len(self.items_) + 1)
        codes = encode_ids(_as_ids(items, "items"), self.items_)
        codes = np.unique(codes[codes != UNKNOWN_CODE])
        if len(codes) == 0:
            raise ValueError("None of the candidate items were seen in fit.")
        return torch.from_numpy(codes)

    def _popularity(self, candidates):
        """Interactions per candidate item in fit: the unknown users' scores."""
        return torch.from_numpy(self._interaction_counts()[candidates.numpy() - 1])

    def _interaction_counts(self):
        """Interactions per item in fit, as float32, computed once per fit:
        summing the seen pairs at every call would cost a single-user
        ``recommend`` more than its scoring."""
        seen = self.user_items_
        cached = getattr(self, "_item_counts", None)
        if cached is None or cached[0] is not seen:
            counts = np.asarray(seen.sum(axis=0), dtype=np.float32).ravel()
            self._item_counts = cached = (seen, counts)
        return cached[1]


def encode_histories(histories, items_):
    """The item rows of sessions, as ``recommend_next`` reads them.

    Parameters
    ----------
    histories : list of array-like of item IDs
        One sequence of item IDs per session, the most recent last.
    items_ : ndarray
        The item vocabulary of fit.

    Returns
    -------
    rows : ndarray of int64
        The 0-based rows in ``items_`` of every history's known items, history
        after history, in order; IDs not seen in fit are left out.
    starts : ndarray of int64 of shape (n_histories + 1,)
        Where each history's rows start in ``rows``, and the end.
    """
    if isinstance(histories, str | bytes) or not _is_sequence(histories):
        raise TypeError(
            "histories must be a list of item-ID sequences, one per session "
            f"(the most recent item last), got {type(histories).__name__}."
        )
    histories = list(histories)
    for position, history in enumerate(histories):
        if isinstance(history, str | bytes) or not _is_sequence(history):
            raise TypeError(
                "histories must be a list of item-ID sequences, one per "
                f"session, but histories[{position}] is {history!r}; wrap a "
                "single session's items in a list: [[item, item, ...]]."
            )
    lengths = np.array([len(history) for history in histories], dtype=np.int64)
    flat = [item for history in histories for item in history]
    if flat:
        codes = encode_ids(_as_ids(flat, "histories"), items_)
    else:
        codes = np.empty(0, dtype=np.int64)
    known = codes != UNKNOWN_CODE
    owners = np.repeat(np.arange(len(histories)), lengths)[known]
    counts = np.bincount(owners, minlength=len(histories))
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return codes[known].astype(np.int64) - 1, starts


def check_n(n):
    """Raise ``ValueError`` unless ``n`` is a positive int."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int, got n={n!r}.")


def _is_sequence(value):
    return isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index)


def _as_ids(values, name):
    # Through pandas, a list mixing ints and strings keeps each ID's type,
    # where numpy would turn every one into a string.
    if not isinstance(values, np.ndarray):
        shape = np.shape(np.asarray(values, dtype=object))
        if len(shape) != 1:
            raise ValueError(f"{name} must be 1-dimensional, got shape {shape}.")
        values = pd.Series(values).to_numpy()
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {values.shape}.")
    if values.dtype == object:
        check_hashable(values, name)
    return values
