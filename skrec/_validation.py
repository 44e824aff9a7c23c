"""Input checks shared by the estimators: ID columns, side features, targets.

Errors name the offending column or parameter and its value, in scikit-learn's
wording where scikit-learn has one.
"""

import os
import re
import sys
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import NamedTuple

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    column_or_1d,
    validate_data,
)

from .exceptions import TimestampFeatureWarning


class Table(NamedTuple):
    """The checked columns of an ``X``.

    ``features`` is a float matrix (or None) whose first ``n_user_features``
    columns are the declared user-level features, the next ``n_item_features``
    the declared item-level ones, and the rest per-row features.
    """

    users: pd.Series
    items: pd.Series
    features: np.ndarray | None
    n_user_features: int = 0
    n_item_features: int = 0
    feature_names: tuple = ()


def as_table_input(X):
    """``X`` ready to be read by column: another library's dataframe (polars)
    becomes a pandas DataFrame; a scipy.sparse matrix is a TypeError."""
    if sp.issparse(X):
        raise TypeError(
            f"X is a scipy.sparse {type(X).__name__} of shape {X.shape}, but "
            "skrec reads X as one row per interaction (a user ID column, an item "
            "ID column and optional side-feature columns), not as a user x item "
            "matrix. To fit on a matrix whose rows are users, columns items and "
            "nonzero values interaction weights, convert it: X, y = "
            "skrec.preprocessing.interactions_from_matrix(matrix). A "
            "ColumnTransformer that builds X must output dense columns, e.g. "
            "with OneHotEncoder(sparse_output=False)."
        )
    if isinstance(X, pd.DataFrame) or not _is_dataframe(X):
        return X
    names = X.column_names if hasattr(X, "column_names") else list(X.columns)
    return pd.DataFrame({name: _pandas_column(X[name]) for name in names})


def _is_dataframe(X):
    """Whether ``X`` is a dataframe of a library other than pandas."""
    return (
        hasattr(X, "columns")
        and len(getattr(X, "shape", ())) == 2
        and (hasattr(X, "__dataframe__") or hasattr(X, "__arrow_c_stream__"))
    )


def _pandas_column(column):
    """One column of a polars (or pyarrow) dataframe as pandas values, without
    pyarrow: numbers, booleans and datetimes keep their numpy dtype, strings
    become strings and categoricals pandas categoricals."""
    values = column.to_numpy()
    dtype = column.dtype if hasattr(column, "dtype") else column.type
    if str(dtype).startswith(("Categorical", "Enum", "dictionary")):
        return pd.Categorical(values)
    return values


def validate_table(estimator, X, reset, *, uses_features=True, ignore_features=False):
    """Split ``X`` into user IDs, item IDs and a float feature matrix or None.

    With ``reset`` and ``uses_features`` (a fit whose model reads the side
    features), warn about each per-row feature that looks like a timestamp.
    With ``ignore_features`` the other columns are neither read nor checked,
    and the features are None.
    """
    X = as_table_input(X)
    if isinstance(X, pd.DataFrame):
        validate_data(estimator, X, skip_check_array=True, reset=reset)
        _check_table_shape(X.shape)
        columns = [X.iloc[:, j] for j in range(X.shape[1])]
        names = [str(name) for name in X.columns]
    else:
        X = validate_data(
            estimator,
            X,
            dtype=None,
            ensure_all_finite=False,
            ensure_min_features=2 if reset else 1,
            reset=reset,
        )
        columns = [pd.Series(X[:, j]) for j in range(X.shape[1])]
        names = None
    user_pos = column_position(estimator, "user_col", names, len(columns))
    item_pos = column_position(estimator, "item_col", names, len(columns))
    if user_pos == item_pos:
        raise ValueError(
            f"user_col={estimator.user_col!r} and item_col={estimator.item_col!r} "
            "name the same column."
        )
    users = _check_ids(columns[user_pos], column_label(estimator, "user_col"))
    items = _check_ids(columns[item_pos], column_label(estimator, "item_col"))
    user_features = declared_columns(estimator, "user_features", X, names, len(columns))
    item_features = declared_columns(estimator, "item_features", X, names, len(columns))
    feature_positions = _feature_positions(
        names, len(columns), (user_pos, item_pos), user_features, item_features
    )
    feature_names = tuple(column_name(names, j) for j in feature_positions)
    if ignore_features:
        return Table(users, items, None, feature_names=feature_names)
    features = _check_features([columns[j] for j in feature_positions], feature_names)
    if reset and uses_features:
        n_declared = len(user_features) + len(item_features)
        for k in range(n_declared, len(feature_positions)):
            _warn_if_time(features[:, k], names, feature_positions[k])
    return Table(
        users,
        items,
        features,
        len(user_features),
        len(item_features),
        feature_names,
    )


def column_position(estimator, param, names, n_columns):
    """Position of the column that ``estimator.<param>`` names or indexes."""
    col = getattr(estimator, param)
    return _position(f"{param}={col!r}", col, names, n_columns)


def _position(label, col, names, n_columns):
    """Position in ``X`` of the column ``col`` names or indexes; errors name
    it by ``label``."""
    if isinstance(col, str):
        if names is None:
            raise ValueError(
                f"{label} is a column name, but X has no column names; pass a "
                "DataFrame or give the column's position."
            )
        if col not in names:
            raise ValueError(f"{label} is not a column of X; its columns are {names}.")
        return names.index(col)
    if not 0 <= col < n_columns:
        raise ValueError(f"{label} is out of range for X with {n_columns} columns.")
    return int(col)


def _feature_positions(names, n_columns, id_positions, user_features, item_features):
    """Positions of the side-feature columns: the declared user-level ones,
    then the declared item-level ones, then the per-row ones, each in the
    order of ``X``."""
    for param, positions in (
        ("user_features", user_features),
        ("item_features", item_features),
    ):
        for position in positions:
            if position in id_positions:
                raise ValueError(
                    f"{param} names an ID column ({column_name(names, position)}); "
                    "list only feature columns."
                )
    for position in set(user_features) & set(item_features):
        raise ValueError(
            f"Column {column_name(names, position)} is declared both in "
            "user_features and in item_features."
        )
    declared = user_features + item_features
    rest = [j for j in range(n_columns) if j not in id_positions and j not in declared]
    return declared + rest


def declared_columns(estimator, param, X, names, n_columns):
    """Positions of the columns ``estimator.<param>`` declares, in ``X``'s order.

    The parameter is None (no column), a list of column names or positions, or
    a callable that returns such a list from ``X``, as
    :func:`~sklearn.compose.make_column_selector` does.
    """
    selector = getattr(estimator, param, None)
    if selector is None:
        return []
    columns = selector(X) if callable(selector) else selector
    if isinstance(columns, str | Integral):
        columns = [columns]
    positions = set()
    for col in columns:
        if not isinstance(col, str | Integral) or isinstance(col, bool):
            raise ValueError(
                f"{param} must list column names or positions, got {col!r}."
            )
        positions.add(_position(f"{param} entry {col!r}", col, names, n_columns))
    return sorted(positions)


def column_name(names, position):
    return str(names[position]) if names else f"column {position}"


def column_label(estimator, param):
    """How errors name the column an estimator parameter points at."""
    return f"{param}={getattr(estimator, param)!r}"


def interaction_column(owner, X, param):
    """The column of X that ``owner.<param>`` names, as a Series checked for
    missing values; ``owner`` is a splitter or any object with that attribute."""
    X = as_table_input(X)
    if isinstance(X, pd.DataFrame):
        names = [str(name) for name in X.columns]
    else:
        X = check_array(X, dtype=None, ensure_all_finite=False)
        names = None
    position = column_position(owner, param, names, X.shape[1])
    if names is None:
        # A column of an object array holds Python objects: infer the
        # numbers' dtype, as a DataFrame column would have.
        values = pd.Series(X[:, position]).infer_objects()
    else:
        values = X.iloc[:, position]
    n_missing = int(values.isna().sum())
    if n_missing:
        raise ValueError(
            f"Column {column_label(owner, param)} contains {n_missing} missing "
            "values (NaN or None); every row needs one."
        )
    return values


def validate_target(y, users, estimator_name):
    if y is None:
        raise ValueError(
            f"{estimator_name} requires y to be passed, but the target y is None."
        )
    y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    y = column_or_1d(y, warn=True)
    check_consistent_length(users, y)
    return y


def validate_weights(y, users, estimator_name):
    """Interaction weights of implicit feedback: ``y`` checked, or ones if None."""
    if y is None:
        return np.ones(len(users))
    y = validate_target(y, users, estimator_name)
    if (y < 0).any():
        raise ValueError(
            f"{estimator_name} reads y as interaction weights, which must be "
            f"non-negative; got a minimum of {y.min()}."
        )
    return y


def _check_table_shape(shape):
    n_rows, n_columns = shape
    if n_rows < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is "
            "required."
        )
    if n_columns < 2:
        raise ValueError(
            f"Found array with {n_columns} feature(s) (shape={shape}) while a "
            "minimum of 2 is required: X needs a user and an item ID column."
        )


def _check_ids(ids, label):
    missing = ids.isna()
    if missing.any():
        raise ValueError(
            f"Column {label} contains {int(missing.sum())} missing IDs (NaN or None); "
            "every row needs a user and an item."
        )
    if pd.api.types.is_numeric_dtype(ids.dtype) and not np.isfinite(ids).all():
        raise ValueError(f"Column {label} contains infinite IDs (inf).")
    if ids.dtype == object:
        check_hashable(ids, f"Column {label}")
    return ids


def check_hashable(ids, label):
    """Raise a TypeError naming ``label`` if an ID is not a string or number."""
    try:
        pd.unique(ids)
    except TypeError:
        bad = next(v for v in ids if not isinstance(v, str | Integral | Real))
        raise TypeError(
            f"{label} holds {bad!r} of type {type(bad).__name__}: each ID "
            "argument must be a string or a number."
        ) from None


def _check_features(columns, names):
    if not columns:
        return None
    converted = []
    for column, name in zip(columns, names, strict=True):
        # pandas would turn datetimes into nanoseconds since 1970.
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            raise _datetime_feature_error(name, column.dtype)
        try:
            values = column.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            if pd.api.types.is_datetime64_any_dtype(column.infer_objects().dtype):
                raise _datetime_feature_error(name, column.dtype) from exc
            raise ValueError(
                f"Side-feature {name} is not numeric (dtype {column.dtype}); encode "
                "it first, for example with a OneHotEncoder in a ColumnTransformer."
            ) from exc
        if not np.isfinite(values).all():
            raise ValueError(
                f"Side-feature {name} contains NaN or infinity; impute it first, for "
                "example with SimpleImputer."
            )
        converted.append(values)
    return np.column_stack(converted)


def _datetime_feature_error(name, dtype):
    return ValueError(
        f"Side-feature {name} holds datetimes (dtype {dtype}), which a model "
        f"cannot read as numbers. {_TIME_ADVICE}."
    )


# Names that say a column is a time; see TimestampFeatureWarning.
_TIME_NAME = re.compile(
    r"(?:^|[\s_.-])(?:time|timestamp|datetime|date|ts|epoch|unixtime)"
    r"(?:[\s_.-](?:s|ms|us|ns))?$|[\s_.-]at$",
    re.IGNORECASE,
)
_CAMEL_CASE_TIME_NAME = re.compile(r"[a-z](?:Time|Timestamp|Date|Datetime|Ts|At)$")
# Unix times of 1990-01-01 and 2100-01-01, in seconds.
_EPOCH_RANGE = (631_152_000, 4_102_444_800)
_TIME_ADVICE = (
    "To weight interactions by recency, pass the column to "
    "skrec.preprocessing.recency_weights; to split by time, give it as "
    "timestamp_col to skrec.model_selection.LeaveLastOut or TemporalSplit; then "
    "drop it from the X the model is fitted on"
)


def _warn_if_time(values, names, position):
    """Warn if the per-row feature at ``position`` looks like a timestamp."""
    reason = _time_reason(values, None if names is None else names[position])
    if reason is None:
        return
    if names is None:
        label, drop = f"Column {position}", f"np.delete(X, {position}, axis=1)"
    else:
        label = f"Column {names[position]!r}"
        drop = f"X.drop(columns=[{names[position]!r}])"
    warnings.warn(
        f"{label} of X looks like a timestamp ({reason}) and will be used as a "
        f"numeric side feature. {_TIME_ADVICE}, e.g. with {drop}.",
        TimestampFeatureWarning,
        **_outside_skrec(),
    )


def _time_reason(values, name):
    """Why a numeric column looks like a time, or None if it does not."""
    if name is not None and (
        _TIME_NAME.search(name) or _CAMEL_CASE_TIME_NAME.search(name)
    ):
        return "by its name"
    low, high = values.min(), values.max()
    for unit, scale in (("seconds", 1), ("milliseconds", 1000)):
        in_range = _EPOCH_RANGE[0] * scale <= low and high < _EPOCH_RANGE[1] * scale
        if in_range and (values == np.round(values)).all():
            return f"its values look like Unix times in {unit}"
    return None


def _outside_skrec():
    """Arguments of warnings.warn that attribute a warning to the first frame
    outside skrec, scikit-learn and joblib: the user's call to fit, or to a
    search."""
    packages = tuple(
        str(Path(module.__file__).parent) + os.sep
        for module in (sys.modules[__package__], sklearn, joblib)
    )
    frame, level = sys._getframe(1), 0
    while frame is not None and frame.f_code.co_filename.startswith(packages):
        frame, level = frame.f_back, level + 1
    return {"stacklevel": level + 1}
