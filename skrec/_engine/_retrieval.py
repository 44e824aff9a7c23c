"""Approximate top-k by inner product: a faiss index over item vectors.

A model that scores ``s(u, i) = x_u . y_i + c_u`` ranks a user's items by the
inner product ``x_u . y_i`` alone, so its top-k is a maximum inner product
search over the item vectors ``y``. The index answers it in Euclidean
geometry: each item vector gets one more coordinate, ``sqrt(M^2 - |y_i|^2)``
with ``M`` the largest norm, and each query a 0, so that
``|x - y|^2 = |x|^2 + M^2 - 2 x . y`` orders items exactly as the inner
product does (Bachrach et al., "Speeding up the Xbox recommender system
using a Euclidean transformation for inner-product spaces", RecSys 2014).

The index is an inverted file (faiss ``IndexIVFFlat``): k-means cuts the
item vectors into about ``4 sqrt(n_items)`` lists, and a query scans the
``n_probe`` lists of the nearest centroids, comparing full vectors. It won
against HNSW graphs on item vectors of a trained model's spectrum (1M items,
64 dimensions, 2 cores): 0.977 recall@10 at three times HNSW's queries per
second, and a build six times shorter. ``n_probe`` is the smallest that
reaches a target recall@10 on a sample of the fitted users' own queries.

Through an MLP the score is no inner product; ``expanded_vectors`` and
``expanded_queries`` give its first-order expansion, whose inner products
choose candidates for the MLP to re-score.
"""

import math

import numpy as np
import torch

# k-means lists: about 4 sqrt(n_items), with at least MIN_POINTS_PER_LIST
# items each (faiss's k-means warns below 39 points per centroid), trained on
# at most TRAINING_POINTS_PER_LIST items per list.
LISTS_PER_SQRT_ITEM = 4
MIN_POINTS_PER_LIST = 39
TRAINING_POINTS_PER_LIST = 64
# k-means iterations, most of the build: 10 instead of faiss's 25 chose the
# same n_probe, of the same recall, for 100,000 items.
KMEANS_ITERATIONS = 10
# n_probe is chosen on this many fitted users' top CALIBRATION_K, with a
# margin above the recall promised, for the error of the sample.
CALIBRATION_QUERIES = 256
CALIBRATION_K = 10
CALIBRATION_MARGIN = 0.01
# Queries per brute-force block of the calibration: (queries, items) scores.
EXACT_BLOCK_ELEMENTS = 1 << 24


def import_faiss():
    """The faiss module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            'method="approximate" ranks through a faiss index; install faiss '
            'with pip install "skrec[ann]".'
        ) from exc
    return faiss


class ItemIndex:
    """An inverted-file index of item vectors, searched by inner product.

    Parameters
    ----------
    item_vectors : torch.Tensor of shape (n_items, dim)
        Row ``r`` is the vector of item row ``r``.
    sample_queries : torch.Tensor of shape (n_queries, dim)
        Typical queries (fitted users), on which ``n_probe`` is chosen.
    target_recall : float
        The recall@10 that ``n_probe`` must reach on ``sample_queries``.
    n_threads : int
        The threads faiss builds on.

    Attributes
    ----------
    n_lists : int
        k-means lists; 1 is a flat index, searched exhaustively.
    n_probe : int
        Lists scanned per query.
    sample_recall : float
        Recall@10 on the sample at ``n_probe``.
    nbytes : int
        Memory held by the index.
    """

    def __init__(
        self, item_vectors, sample_queries, target_recall, n_threads, sample_seen=None
    ):
        self._faiss = import_faiss()
        vectors = _float32_numpy(item_vectors)
        n_items, dim = vectors.shape
        self.n_lists = max(
            1,
            min(
                round(LISTS_PER_SQRT_ITEM * math.sqrt(n_items)),
                n_items // MIN_POINTS_PER_LIST,
            ),
        )
        augmented = _augmented_items(vectors)
        with _faiss_threads(self._faiss, n_threads):
            self._index = self._trained_index(augmented)
            self._index.add(augmented)
            self.n_probe, self.sample_recall = self._calibrated(
                vectors, _float32_numpy(sample_queries), target_recall, sample_seen
            )
        self.nbytes = augmented.nbytes
        if self.n_lists > 1:
            # The item ids the inverted lists keep, and the centroids.
            self.nbytes += 8 * n_items + 4 * self.n_lists * augmented.shape[1]

    def search(self, queries, k, allowed=None, n_threads=1):
        """The item rows of the ``k`` best inner products of each query.

        Parameters
        ----------
        queries : torch.Tensor of shape (n_queries, dim)
        k : int
        allowed : ndarray of bool of shape (n_items,), default=None
            The item rows that may be returned; all if None.
        n_threads : int

        Returns
        -------
        rows : torch.Tensor of int64 of shape (n_queries, k)
            Best first; -1 where the scanned lists held fewer than ``k``
            allowed items.
        """
        return self._search(
            _float32_numpy(queries), k, self.n_probe, allowed, n_threads
        )

    def _search(self, queries, k, n_probe, allowed, n_threads):
        faiss = self._faiss
        augmented = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        selector = None
        if allowed is not None:
            # The bitmap must outlive the search: faiss keeps a pointer to it.
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        if self.n_lists > 1:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=n_probe)
        else:
            params = faiss.SearchParameters(sel=selector)
        with _faiss_threads(faiss, n_threads):
            _, rows = self._index.search(augmented, k, params=params)
        return torch.from_numpy(rows)

    def _trained_index(self, augmented):
        faiss = self._faiss
        dim = augmented.shape[1]
        if self.n_lists == 1:
            return faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, self.n_lists)
        index.cp.niter = KMEANS_ITERATIONS
        n_training = min(len(augmented), TRAINING_POINTS_PER_LIST * self.n_lists)
        rng = np.random.default_rng(0)
        sample = rng.choice(len(augmented), n_training, replace=False)
        index.train(augmented[np.sort(sample)])
        return index

    def _calibrated(self, vectors, queries, target_recall, seen=None):
        """The smallest ``n_probe`` (in steps of about sqrt(2)) whose recall@10
        on ``queries`` reaches ``target_recall`` plus a margin, and that
        recall.

        With ``seen`` (a CSR matrix of the queries' seen item rows), the
        recall is that of the best 10 unseen items, each query searching as
        deep as ``recommend`` will (10 plus its seen items): those items lie
        deeper in the ranking, and need more lists than the raw top 10.
        """
        k = min(CALIBRATION_K, len(vectors))
        if self.n_lists == 1 or len(queries) == 0:
            return 1, 1.0
        excluded = _rows_of(seen, len(queries))
        best = _exact_kth_scores(queries, vectors, k, excluded)
        depths = np.minimum(
            search_depth(k + np.array([len(rows) for rows in excluded])), len(vectors)
        )
        recall = 0.0
        for n_probe in _probe_ladder(self.n_lists):
            found = np.zeros(len(queries))
            for depth in np.unique(depths).tolist():
                chosen = np.flatnonzero(depths == depth)
                rows = self._search(queries[chosen], depth, n_probe, None, None).numpy()
                for query, row in zip(chosen.tolist(), rows, strict=True):
                    row = row[(row >= 0) & ~np.isin(row, excluded[query])]
                    top = np.sort(vectors[row] @ queries[query])[::-1][:k]
                    tolerance = 1e-5 * (1.0 + abs(best[query]))
                    found[query] = np.sum(top >= best[query] - tolerance) / k
            recall = float(found.mean())
            if recall >= target_recall + CALIBRATION_MARGIN:
                break
        return n_probe, recall


def _float32_numpy(tensor):
    return np.ascontiguousarray(tensor.detach().cpu().float().numpy())


def _augmented_items(vectors):
    """``[y, sqrt(M^2 - |y|^2)]``: Euclidean neighbours of ``[x, 0]`` are
    the largest inner products ``x . y``."""
    norms = np.einsum("ij,ij->i", vectors, vectors)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0.0))
    return np.hstack([vectors, extra[:, None].astype(np.float32)])


def _probe_ladder(n_lists):
    """1, 2, 3, 4, 6, 8, 12, ... up to ``n_lists``: lists to scan, about
    sqrt(2) apart."""
    ladder = {n_lists}
    power = 1
    while power < n_lists:
        ladder.update({power, min(n_lists, power * 3 // 2)})
        power *= 2
    return sorted(ladder)


def _exact_kth_scores(queries, vectors, k, excluded):
    """The ``k``-th largest inner product of each query with the items not
    in its ``excluded`` rows."""
    items = torch.from_numpy(vectors)
    block = max(1, EXACT_BLOCK_ELEMENTS // len(vectors))
    kth = []
    for start in range(0, len(queries), block):
        scores = torch.from_numpy(queries[start : start + block]) @ items.T
        for offset, rows in enumerate(excluded[start : start + block]):
            scores[
                offset, torch.from_numpy(np.asarray(rows, dtype=np.int64))
            ] = -torch.inf
        kth.append(torch.topk(scores, k).values[:, -1].numpy())
    return np.concatenate(kth)


def _rows_of(seen, n_queries):
    """Each query's seen item rows, from a CSR matrix (none without one)."""
    if seen is None:
        return [np.empty(0, dtype=np.int64)] * n_queries
    return [
        seen.indices[seen.indptr[row] : seen.indptr[row + 1]]
        for row in range(n_queries)
    ]


def search_depth(wanted):
    """``wanted`` rounded up to a power of two, at least 16: the number of
    items each query retrieves, and queries of one depth search together."""
    wanted = np.maximum(np.asarray(wanted, dtype=np.int64), 16)
    return np.left_shift(1, np.ceil(np.log2(wanted)).astype(np.int64))


class _faiss_threads:
    """faiss's OpenMP threads set to ``n_threads`` (unchanged if None) while
    the block runs: they are separate from torch's."""

    def __init__(self, faiss, n_threads):
        self.faiss = faiss
        self.n_threads = n_threads

    def __enter__(self):
        self.previous = self.faiss.omp_get_max_threads()
        if self.n_threads is not None:
            self.faiss.omp_set_num_threads(int(self.n_threads))

    def __exit__(self, *exc_info):
        self.faiss.omp_set_num_threads(self.previous)


def module_version(module):
    """What changes whenever a module's weights do: each tensor's identity,
    storage and in-place version counter. An index built for one value is
    stale under another."""
    return tuple(
        (id(tensor), tensor.data_ptr(), tensor._version, tuple(tensor.shape))
        for tensor in module.state_dict(keep_vars=True).values()
    )


# -- EmbeddingMLP: item vectors, queries and pair scores ----------------------


def expanded_vectors(module):
    """Item vectors of an ``EmbeddingMLP``, and the point of its expansion.

    When the module factorizes, these are its ``item_outputs``, and the
    queries of ``expanded_queries`` rank items exactly as it does. Through an
    MLP the score is ``p . q + b_i + f(a_u + h_i)``, ``f`` being the layers
    after the first, ``a_u`` and ``h_i`` the user's and the item's parts of
    the first layer; its first-order expansion in ``h_i`` about the mean item
    ``h`` is ``p . q + b_i + f'(a_u + h) . h_i`` plus terms of the user only:
    item vectors ``[q, h_i, b_i]``.

    Returns
    -------
    vectors : torch.Tensor of shape (n_items, dim)
        Row ``r`` is the vector of item code ``r + 1``.
    mean_item : torch.Tensor or None
        ``h``; None when the module factorizes.
    """
    module.eval()
    device = module.item_table.weight.device
    items = torch.arange(1, module.item_table.num_embeddings, device=device)
    with torch.inference_mode():
        if module.factorizes():
            return module.item_outputs(items)[0], None
        item_rows = module.item_table(items)
        q = item_rows[:, :-1]
        item_input = torch.cat([q, module.item_side[items]], dim=1)
        _, weight_item = module._split_weight(module.mlp[0].weight, q.shape[1])
        hidden = item_input @ weight_item.T
        bias = item_rows[:, -1] if module.biases else torch.zeros_like(item_rows[:, -1])
        parts = [hidden, bias[:, None]]
        if module.product == "dot":
            parts.insert(0, q)
        return torch.cat(parts, dim=1), hidden.mean(dim=0)


def expanded_queries(module, users, mean_item):
    """The user vectors that go with ``expanded_vectors``: ``user_states``
    when the module factorizes, else ``[p, f'(a_u + h), 1]``."""
    module.eval()
    if mean_item is None:
        with torch.inference_mode():
            return module.user_states(users)[0]
    with torch.inference_mode():
        user_rows = module.user_table(users)
        p = user_rows[:, :-1]
        user_input = torch.cat([p, module.user_side[users]], dim=1)
        weight_user, _ = module._split_weight(module.mlp[0].weight, p.shape[1])
        at = user_input @ weight_user.T + module.mlp[0].bias + mean_item
    # The gradient of each user's MLP output at its own point: one backward
    # pass of the summed outputs, the users being independent.
    with torch.inference_mode(False), torch.enable_grad():
        point = at.clone().requires_grad_(True)
        output = module.output(module.mlp[1:](point)).sum()
        (slope,) = torch.autograd.grad(output, point)
    parts = [slope, p.new_ones(len(p), 1)]
    if module.product == "dot":
        parts.insert(0, p)
    return torch.cat(parts, dim=1)


def pair_scores(module, users, items):
    """The module's score of each user of ``users`` with each item of its row
    of ``items``, shape ``(len(users), k)``, from the kept user and item
    features, as ``score_matrix`` gives them."""
    module.eval()
    rows = users[:, None].expand_as(items).reshape(-1)
    columns = items.reshape(-1)
    features = None
    if module.user_side.shape[1] or module.item_side.shape[1]:
        features = torch.cat([module.user_side[rows], module.item_side[columns]], 1)
    with torch.inference_mode():
        return module(rows, columns, features).view(items.shape)
