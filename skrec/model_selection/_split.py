"""Splitters that hold out interactions per user or after a point in time.

Each splitter follows scikit-learn's cross-validator protocol, so that it can be
passed as ``cv`` to ``GridSearchCV``, ``cross_val_score`` or ``cross_validate``.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length

from .._sklearn_compat import Interval, _safe_indexing, validate_params
from .._validation import interaction_column

_COLUMN = [Integral, str]


class _InteractionSplitter(BaseCrossValidator):
    """The shared ``split`` of the splitters, which ignore ``groups``."""

    def split(self, X, y=None, groups=None):
        """Generate indices to split data into training and test set.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            The interactions, one a row, with the columns that the splitter's
            ``*_col`` parameters name.

        y : array-like of shape (n_samples,), default=None
            The target variable. Always ignored, exists for API compatibility.

        groups : array-like of shape (n_samples,), default=None
            Always ignored, exists for API compatibility.

        Yields
        ------
        train : ndarray
            The training set indices for that split.

        test : ndarray
            The testing set indices for that split.

        Examples
        --------
        >>> import numpy as np
        >>> from skrec.model_selection import LeaveLastOut
        >>> X = np.array([[1, 10], [1, 11], [2, 10], [2, 12], [3, 11]])
        >>> for train, test in LeaveLastOut().split(X):
        ...     print(f"train: {train}, test: {test}")
        train: [0 2 4], test: [1 3]
        """
        if groups is not None:
            warnings.warn(
                f"The groups parameter is ignored by {self.__class__.__name__}",
                UserWarning,
                stacklevel=2,
            )
        yield from super().split(X, y, groups)

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of splitting iterations in the cross-validator.

        Parameters
        ----------
        X, y, groups : object
            Always ignored, exist for API compatibility.

        Returns
        -------
        n_splits : int
            Returns the number of splitting iterations in the cross-validator.

        Examples
        --------
        >>> from skrec.model_selection import LeaveLastOut, LeavePerUserOut
        >>> LeaveLastOut().get_n_splits()
        1
        >>> LeavePerUserOut(n_splits=3).get_n_splits()
        3
        """
        return getattr(self, "n_splits", 1)


class LeaveLastOut(_InteractionSplitter):
    """Leave-last-out cross-validator: each user's latest interactions are test.

    For each user, the latest `n` interactions form the test set and the
    earlier ones the training set. This is the leave-one-out protocol of
    top-N recommendation (He et al., 2017), which asks a model to predict what
    each user did next from what they did before. There is a single split.

    Parameters
    ----------
    n : int, default=1
        The number of interactions held out per user. Users with `n` or fewer
        interactions stay entirely in the training set, so that every user of
        the test set has a training history.

    user_col : int or str, default=0
        The column of X that holds the user IDs: a position, or a name when X
        is a DataFrame.

    timestamp_col : int or str, default=None
        The column of X that orders the interactions in time: a position, or
        a name when X is a DataFrame. Its values need only be ordered
        (numbers, datetimes). If None, the row order of X is the time order:
        later rows are later interactions.

    item_col : int or str, default=1
        The column of X that holds the item IDs: a position, or a name when X
        is a DataFrame. Only used to order interactions of a user that share a
        timestamp; unused when `timestamp_col` is None.

    See Also
    --------
    LeavePerUserOut : Hold out random interactions of each user.
    TemporalSplit : Hold out every interaction after one point in time.
    train_test_split_per_user : Split a share of each user's interactions.

    Notes
    -----
    Interactions of a user with the same timestamp are ordered by item ID,
    ascending: among tied rows, the one with the greatest item ID counts as
    the latest. So the test set is the same on every run and does not depend
    on the row order of X; only rows that also share the item ID keep their
    row order.

    References
    ----------
    .. [1] X. He, L. Liao, H. Zhang, L. Nie, X. Hu and T.-S. Chua, "Neural
       Collaborative Filtering", Proceedings of the 26th International
       Conference on World Wide Web (WWW), 2017.

    Examples
    --------
    >>> import pandas as pd
    >>> from skrec.model_selection import LeaveLastOut
    >>> X = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3],
    ...                   "item_id": [10, 11, 12, 10, 13, 11],
    ...                   "timestamp": [30, 10, 20, 50, 40, 60]})
    >>> cv = LeaveLastOut(timestamp_col="timestamp")
    >>> cv
    LeaveLastOut(item_col=1, n=1, timestamp_col='timestamp', user_col=0)
    >>> for train, test in cv.split(X):
    ...     print(f"train: {train}, test: {test}")
    train: [1 2 4 5], test: [0 3]
    """

    @validate_params(
        {
            "n": [Interval(Integral, 1, None, closed="left")],
            "user_col": _COLUMN,
            "timestamp_col": [*_COLUMN, None],
            "item_col": _COLUMN,
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(self, n=1, *, user_col=0, timestamp_col=None, item_col=1):
        self.n = n
        self.user_col = user_col
        self.timestamp_col = timestamp_col
        self.item_col = item_col

    def _iter_test_masks(self, X, y=None, groups=None):
        users = interaction_column(self, X, "user_col")
        if self.timestamp_col is None:
            time_order = ()
        else:
            time_order = (
                _ranks(interaction_column(self, X, "timestamp_col")),
                _ranks(interaction_column(self, X, "item_col")),
            )
        yield _last_per_user(users, _at_most(self.n), time_order)


class LeavePerUserOut(_InteractionSplitter):
    """Random per-user holdout cross-validator.

    Each split holds out `n` interactions of each user, drawn at random, as
    the test set; the user's other interactions form the training set. This
    is the random counterpart of :class:`LeaveLastOut`, for data without
    timestamps. With several splits, the draws are independent, as in
    :class:`~sklearn.model_selection.ShuffleSplit`, so test sets may overlap.

    Parameters
    ----------
    n : int, default=1
        The number of interactions held out per user. Users with `n` or fewer
        interactions stay entirely in the training set, so that every user of
        the test set has a training history.

    n_splits : int, default=1
        The number of independent random splits.

    user_col : int or str, default=0
        The column of X that holds the user IDs: a position, or a name when X
        is a DataFrame.

    random_state : int, RandomState instance or None, default=None
        Controls the random draws. Pass an int for reproducible output across
        multiple function calls.

    See Also
    --------
    LeaveLastOut : Hold out the latest interactions of each user.
    sklearn.model_selection.ShuffleSplit : Random splits that ignore users.

    Examples
    --------
    >>> import numpy as np
    >>> from skrec.model_selection import LeavePerUserOut
    >>> X = np.array([[1, 10], [1, 11], [1, 12], [2, 10], [2, 13], [3, 11]])
    >>> cv = LeavePerUserOut(n_splits=2, random_state=0)
    >>> cv.get_n_splits()
    2
    >>> for train, test in cv.split(X):
    ...     print(f"test users: {X[test, 0]}, train size: {len(train)}")
    test users: [1 2], train size: 4
    test users: [1 2], train size: 4
    """

    @validate_params(
        {
            "n": [Interval(Integral, 1, None, closed="left")],
            "n_splits": [Interval(Integral, 1, None, closed="left")],
            "user_col": _COLUMN,
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(self, n=1, *, n_splits=1, user_col=0, random_state=None):
        self.n = n
        self.n_splits = n_splits
        self.user_col = user_col
        self.random_state = random_state

    def _iter_test_masks(self, X, y=None, groups=None):
        users = interaction_column(self, X, "user_col")
        rng = check_random_state(self.random_state)
        for _ in range(self.n_splits):
            random_order = (rng.permutation(len(users)),)
            yield _last_per_user(users, _at_most(self.n), random_order)


class TemporalSplit(_InteractionSplitter):
    """Global temporal cross-validator: interactions after a cut are test.

    Every interaction with a timestamp at or after the cut is in the test set,
    every earlier one in the training set, whoever the user. This simulates
    training a model on the past and using it on the future. There is a
    single split.

    Parameters
    ----------
    test_size : float, default=0.2
        The share of interactions to put in the test set, between 0 and 1
        (exclusive), when `cut` is None: the cut is then the timestamp of the
        ``ceil(test_size * n_samples)``-th latest interaction. Ignored when
        `cut` is given.

    timestamp_col : int or str
        The column of X that orders the interactions in time: a position, or
        a name when X is a DataFrame. Its values need only be ordered
        (numbers, datetimes).

    cut : object, default=None
        The first timestamp of the test set, comparable with the values of
        the timestamp column. If None, it is derived from `test_size`.

    See Also
    --------
    LeaveLastOut : Hold out the latest interactions of each user.
    sklearn.model_selection.TimeSeriesSplit : Growing windows over ordered rows.

    Notes
    -----
    All the interactions that share the timestamp of the cut go to the test
    set, so with ties the test set can be larger than `test_size` asks. A
    split that would leave the training or the test set empty raises a
    ValueError. Users and items first seen after the cut appear in the test
    set only: a recommender meets them as unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> from skrec.model_selection import TemporalSplit
    >>> X = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3],
    ...                   "item_id": [10, 11, 12, 10, 13, 11],
    ...                   "timestamp": [30, 10, 20, 50, 40, 60]})
    >>> cv = TemporalSplit(test_size=0.3, timestamp_col="timestamp")
    >>> for train, test in cv.split(X):
    ...     print(f"train: {train}, test: {test}")
    train: [0 1 2 4], test: [3 5]
    >>> for train, test in TemporalSplit(timestamp_col=2, cut=40).split(X):
    ...     print(f"train: {train}, test: {test}")
    train: [0 1 2], test: [3 4 5]
    """

    @validate_params(
        {
            "test_size": [Interval(Real, 0, 1, closed="neither")],
            "timestamp_col": _COLUMN,
            "cut": "no_validation",
        },
        prefer_skip_nested_validation=True,
    )
    def __init__(self, test_size=0.2, *, timestamp_col, cut=None):
        self.test_size = test_size
        self.timestamp_col = timestamp_col
        self.cut = cut

    def _iter_test_masks(self, X, y=None, groups=None):
        timestamps = interaction_column(self, X, "timestamp_col")
        cut = self.cut
        if cut is None:
            n_test = int(np.ceil(_times(self.test_size, len(timestamps))))
            cut = timestamps.sort_values().iloc[len(timestamps) - n_test]
        test = (timestamps >= cut).to_numpy()
        if test.all() or not test.any():
            empty = "training" if test.all() else "test"
            raise ValueError(
                f"TemporalSplit with cut={cut!r} leaves the {empty} set empty: the "
                f"timestamps in column timestamp_col={self.timestamp_col!r} run "
                f"from {timestamps.min()} to {timestamps.max()}."
            )
        yield test


@validate_params(
    {
        # A sparse X passes, to get the error that says what X must be.
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like", None],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "user_col": _COLUMN,
        "timestamp_col": [*_COLUMN, None],
        "random_state": ["random_state"],
        "min_train": [Interval(Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def train_test_split_per_user(
    X,
    y=None,
    *,
    test_size=0.2,
    user_col=0,
    timestamp_col=None,
    random_state=None,
    min_train=1,
):
    """Split the interactions of each user into train and test subsets.

    Of each user's interactions, a `test_size` share goes to the test set:
    the latest ones when `timestamp_col` is given, random ones otherwise. So
    every user keeps about the same share of their history in each set, which
    a global :func:`~sklearn.model_selection.train_test_split` does not
    promise.

    Parameters
    ----------
    X : {array-like, DataFrame} of shape (n_samples, n_features)
        The interactions, one a row.

    y : array-like of shape (n_samples,), default=None
        The targets, for example the ratings. If given, they are split the
        same way as X.

    test_size : float, default=0.2
        The share of each user's interactions to put in the test set, between
        0 and 1 (exclusive). A user with ``k`` interactions gets
        ``floor(test_size * k)`` of them in the test set, so users with few
        interactions may get none.

    user_col : int or str, default=0
        The column of X that holds the user IDs: a position, or a name when X
        is a DataFrame.

    timestamp_col : int or str, default=None
        The column of X that orders the interactions in time: a position, or
        a name when X is a DataFrame. If given, each user's latest
        interactions are test, and rows with equal timestamps count as later
        the later they stand in X. If None, the test interactions are drawn at
        random.

    random_state : int, RandomState instance or None, default=None
        Controls the random draws when `timestamp_col` is None. Pass an int for
        reproducible output across multiple function calls.

    min_train : int, default=1
        The fewest interactions of each user kept in the training set; a user
        with fewer than ``min_train + 1`` interactions has none in the test
        set.

    Returns
    -------
    splitting : list, length=2 or 4
        ``[X_train, X_test]``, or ``[X_train, X_test, y_train, y_test]`` when
        `y` is given, in the order of
        :func:`~sklearn.model_selection.train_test_split`. The rows keep their
        order in X; DataFrames and Series keep their type and dtypes (pandas
        ones their index too), other inputs come back as ndarrays.

    See Also
    --------
    LeavePerUserOut : The same random holdout of a fixed number per user.
    LeaveLastOut : The same temporal holdout of a fixed number per user.
    sklearn.model_selection.train_test_split : Split rows, ignoring users.

    Examples
    --------
    >>> import pandas as pd
    >>> from skrec.model_selection import train_test_split_per_user
    >>> X = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2, 2, 2, 2],
    ...                   "item_id": [10, 11, 12, 13, 10, 11, 12, 13, 14],
    ...                   "timestamp": [4, 3, 2, 1, 5, 6, 7, 8, 9]})
    >>> y = pd.Series([5.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 5.0, 1.0])
    >>> X_train, X_test, y_train, y_test = train_test_split_per_user(
    ...     X, y, test_size=0.5, timestamp_col="timestamp")
    >>> X_test
       user_id  item_id  timestamp
    0        1       10          4
    1        1       11          3
    7        2       13          8
    8        2       14          9
    >>> y_train.tolist()
    [4.0, 1.0, 2.0, 3.0, 4.0]
    """
    if y is not None:
        check_consistent_length(X, y)
    splitter = _UserShareSplit(
        test_size, user_col, timestamp_col, random_state, min_train
    )
    train, test = next(splitter.split(X))
    arrays = [X] if y is None else [X, y]
    return [_take(a, indices) for a in arrays for indices in (train, test)]


class _UserShareSplit(_InteractionSplitter):
    """The split of train_test_split_per_user, as ShuffleSplit is train_test_split's."""

    def __init__(self, test_size, user_col, timestamp_col, random_state, min_train):
        self.test_size = test_size
        self.user_col = user_col
        self.timestamp_col = timestamp_col
        self.random_state = random_state
        self.min_train = min_train

    def _iter_test_masks(self, X, y=None, groups=None):
        users = interaction_column(self, X, "user_col")
        if self.timestamp_col is None:
            rng = check_random_state(self.random_state)
            order = (rng.permutation(len(users)),)
        else:
            order = (_ranks(interaction_column(self, X, "timestamp_col")),)
        yield _last_per_user(users, self._n_test, order)

    def _n_test(self, counts):
        wanted = np.floor(_times(self.test_size, counts)).astype(np.intp)
        return np.clip(np.minimum(wanted, counts - self.min_train), 0, None)


def _ranks(values):
    """Return integer codes that order `values` as the values themselves."""
    return pd.factorize(values, sort=True)[0]


def _times(fraction, counts):
    # Round off float noise such as 0.7 * 10 = 7.000000000000001, which would
    # move the floor or ceiling of a product that should be a whole number.
    return np.round(fraction * np.asarray(counts, dtype=np.float64), 9)


def _at_most(n):
    """Hold out `n` of each user's rows, or none from users with `n` or fewer."""

    def n_test(counts):
        return np.where(counts > n, n, 0)

    return n_test


def _last_per_user(users, n_test, order):
    """Return the mask of each user's last rows, in one vectorised pass.

    `n_test` maps each user's number of rows to the number of rows to mask.
    `order` is a tuple of integer keys that order the rows of each user, most
    significant first; rows equal on every key keep their order in X.
    """
    codes = pd.factorize(users)[0]
    counts = np.bincount(codes)
    # lexsort is stable and sorts by its last key first.
    rows = np.lexsort((*order[::-1], codes))
    sorted_codes = codes[rows]
    group_starts = np.cumsum(counts) - counts
    rank_from_last = counts[sorted_codes] - (
        np.arange(len(codes)) - group_starts[sorted_codes]
    )
    mask = np.empty(len(codes), dtype=bool)
    mask[rows] = rank_from_last <= n_test(counts)[sorted_codes]
    return mask


def _take(a, indices):
    """Return the rows `indices` of `a`: by position for pandas objects, as the
    same type for the dataframes and series of other libraries (polars)."""
    if hasattr(a, "iloc"):
        return a.iloc[indices]
    if hasattr(a, "__arrow_c_stream__") or hasattr(a, "__dataframe__"):
        return _safe_indexing(a, indices)
    return np.asarray(a)[indices]
