"""From a user x item matrix, as the ``implicit`` library takes, to skrec's rows."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._sklearn_compat import validate_params


@validate_params(
    {
        "matrix": ["array-like", "sparse matrix"],
        "users": ["array-like", None],
        "items": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def interactions_from_matrix(matrix, *, users=None, items=None):
    """Turn a user x item matrix into one row per interaction and its weight.

    skrec's estimators read ``X`` as one row per interaction, a user ID and
    an item ID, and ``y`` as the ratings or interaction weights. This function
    converts the matrix form that the ``implicit`` library and many data
    pipelines use, rows users, columns items and nonzero values the strength
    of each interaction, into that ``(X, y)``.

    Every nonzero entry becomes one row: entries the matrix does not store
    and explicit zeros mean no interaction, and duplicate entries of a
    sparse matrix are summed, as scipy does when it converts to CSR.

    Parameters
    ----------
    matrix : {array-like, sparse matrix} of shape (n_users, n_items)
        The interactions: entry ``(u, i)`` is the weight of user ``u``'s
        interactions with item ``i`` (a count, a rating, 1 for a click), zero
        for none. Weights must be finite and non-negative.

    users : array-like of shape (n_users,), default=None
        The ID of the user of each row, all distinct. If None, a user's ID is
        the position of their row.

    items : array-like of shape (n_items,), default=None
        The ID of the item of each column, all distinct. If None, an item's
        ID is the position of its column.

    Returns
    -------
    X : DataFrame of shape (n_interactions, 2)
        The columns ``"user_id"`` and ``"item_id"``, one row per nonzero
        entry, in row-major order: by user, then by item.

    y : ndarray of shape (n_interactions,)
        The weight of each row of X, float64.

    Raises
    ------
    ValueError
        If `matrix` is not 2-dimensional or not numeric, holds a negative or
        non-finite value, or if `users` or `items` does not hold one distinct
        ID per row or column.

    See Also
    --------
    recency_weights : Weights that favour each user's recent interactions.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from skrec.preprocessing import interactions_from_matrix
    >>> matrix = sp.csr_array([[0, 2, 0], [1, 0, 3]])
    >>> X, y = interactions_from_matrix(matrix)
    >>> X
       user_id  item_id
    0        0        1
    1        1        0
    2        1        2
    >>> y
    array([2., 1., 3.])

    With the IDs of the rows and columns:

    >>> X, y = interactions_from_matrix(
    ...     matrix, users=["ann", "bob"], items=["up", "jaws", "heat"])
    >>> X
      user_id item_id
    0     ann    jaws
    1     bob      up
    2     bob    heat

    The result fits any skrec estimator, here with the weights of an implicit
    loss:

    >>> from skrec import PopularityRecommender
    >>> PopularityRecommender().fit(X, y).recommend(["ann"], n=1)
    array([['heat']], dtype=object)
    """
    rows, columns, weights, shape = _nonzero_entries(matrix)
    user_ids = _ids(users, "users", shape[0], "rows", rows)
    item_ids = _ids(items, "items", shape[1], "columns", columns)
    X = pd.DataFrame({"user_id": user_ids, "item_id": item_ids})
    return X, weights


def _nonzero_entries(matrix):
    """Row, column and float64 value of each nonzero entry, row-major, and the
    matrix's shape."""
    sparse = sp.issparse(matrix)
    if not sparse:
        matrix = np.asarray(matrix)
    if len(matrix.shape) != 2:
        raise ValueError(f"matrix must be 2-dimensional, got shape {matrix.shape}.")
    if sparse:
        # A copy: summing duplicates and dropping zeros happen in place.
        matrix = sp.csr_array(matrix, copy=True)
        matrix.sum_duplicates()
        _check_weights(matrix.data, matrix)
        matrix.eliminate_zeros()
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        columns, values = matrix.indices.astype(np.intp), matrix.data
    else:
        _check_weights(matrix, matrix)
        rows, columns = np.nonzero(matrix)
        values = matrix[rows, columns]
    return rows, columns, values.astype(np.float64), matrix.shape


def _check_weights(values, matrix):
    """Raise a ValueError naming the first negative or non-finite weight."""
    if values.dtype.kind not in "biuf":
        raise ValueError(
            f"matrix must hold numbers, got values of dtype {values.dtype}."
        )
    bad, problem = values < 0, "weights must be non-negative"
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad, problem = ~np.isfinite(values), "weights must be finite"
    if not bad.any():
        return
    first = np.flatnonzero(bad)[0]
    if sp.issparse(matrix):
        row = int(np.searchsorted(matrix.indptr, first, side="right") - 1)
        column = int(matrix.indices[first])
    else:
        row, column = (int(k) for k in np.unravel_index(first, matrix.shape))
    raise ValueError(
        f"matrix holds {values.flat[first].item()!r} at row {row}, column {column}; "
        f"interaction {problem} (zero for none). Drop or fix such entries first."
    )


def _ids(labels, name, n, axis, positions):
    """The ID of each entry: ``labels[positions]``, or the positions."""
    if labels is None:
        return positions
    if np.ndim(labels) != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {np.shape(labels)}.")
    labels = pd.Series(labels).reset_index(drop=True)
    if len(labels) != n:
        raise ValueError(
            f"{name} has {len(labels)} IDs, but matrix has {n} {axis}; give one "
            f"ID per {axis[:-1]}."
        )
    duplicated = labels.duplicated()
    if duplicated.any():
        raise ValueError(
            f"{name} holds {labels[duplicated].iloc[0]!r} more than once; the "
            f"IDs of the {axis} must be distinct."
        )
    return labels.take(positions).to_numpy()
