"""Weights of interactions that make the estimators favour recent behaviour."""

from numbers import Integral, Real

import numpy as np
import pandas as pd

from .._sklearn_compat import Interval, validate_params
from .._validation import column_label, interaction_column


@validate_params(
    {
        # A sparse X passes, to get the error that says what X must be.
        "X": ["array-like", "sparse matrix"],
        "half_life": [Interval(Real, 0, None, closed="neither")],
        "timestamp_col": [Integral, str],
        "user_col": [Integral, str],
    },
    prefer_skip_nested_validation=True,
)
def recency_weights(X, *, half_life, timestamp_col, user_col=0):
    """Weigh each user's interactions by how recent they are in the user's history.

    A user's latest interaction weighs 1, and each weight halves every
    `half_life` interactions further back: the ``k``-th latest interaction of
    a user (``k = 0`` for the latest) weighs ``0.5 ** (k / half_life)``.
    Interactions with the same timestamp weigh the same, as much as the first
    of them counted from the latest. Passed as ``y`` to an estimator fitted
    with an implicit loss (``loss="bce"`` or ``"bpr"``), the weights make each
    user's representation reflect what they did last, which is what their
    next interaction most resembles.

    Counting in interactions rather than in seconds makes one `half_life` fit
    users who are active every day and users who come back once a month.

    Parameters
    ----------
    X : {array-like, DataFrame} of shape (n_samples, n_features)
        The interactions, one a row, with a user column and a timestamp
        column.

    half_life : float
        The number of more recent interactions of the same user over which a
        weight halves; must be positive.

    timestamp_col : int or str
        The column of X that orders the interactions in time: a position, or
        a name when X is a DataFrame. Numbers or datetimes.

    user_col : int or str, default=0
        The column of X that holds the user IDs: a position, or a name when X
        is a DataFrame.

    Returns
    -------
    weights : ndarray of shape (n_samples,)
        The weight of each row of X, in ``(0, 1]``.

    See Also
    --------
    skrec.model_selection.LeaveLastOut : Hold out each user's latest
        interactions, the evaluation that recency weights are made for.

    Examples
    --------
    >>> import pandas as pd
    >>> from skrec.preprocessing import recency_weights
    >>> X = pd.DataFrame({"user_id": [1, 1, 1, 2, 2],
    ...                   "item_id": [10, 11, 12, 10, 13],
    ...                   "timestamp": [3, 1, 2, 5, 5]})
    >>> recency_weights(X, half_life=1, timestamp_col="timestamp")
    array([1.  , 0.25, 0.5 , 1.  , 1.  ])
    """
    owner = _Columns(timestamp_col=timestamp_col, user_col=user_col)
    users = interaction_column(owner, X, "user_col")
    timestamps = interaction_column(owner, X, "timestamp_col")
    if not (
        pd.api.types.is_numeric_dtype(timestamps)
        or pd.api.types.is_datetime64_any_dtype(timestamps)
    ) or pd.api.types.is_bool_dtype(timestamps):
        raise ValueError(
            f"Column {column_label(owner, 'timestamp_col')} holds values of dtype "
            f"{timestamps.dtype}; timestamps must be numbers or datetimes."
        )
    frame = pd.DataFrame(
        {"user": pd.factorize(users)[0], "time": timestamps.to_numpy()}
    )
    # "min": tied rows share the rank of the first of them from the latest.
    n_later = frame.groupby("user")["time"].rank(method="min", ascending=False) - 1
    return np.power(0.5, n_later.to_numpy(dtype=np.float64) / half_life)


class _Columns:
    """The column parameters of a function, where errors look for them."""

    def __init__(self, **columns):
        vars(self).update(columns)
