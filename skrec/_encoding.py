"""Raw user and item IDs <-> contiguous codes, and the unknown-ID policy.

Known IDs get codes 1..n in the order of the vocabulary; code 0 stands for any
ID that was not seen in fit, so every encoded value indexes a real embedding row.
"""

import numpy as np
import pandas as pd

UNKNOWN_CODE = 0


def build_vocabulary(ids, column_name):
    """The distinct IDs of a column, sorted when the IDs are mutually orderable.

    Parameters
    ----------
    ids : pandas.Series
        One ID column, already checked for missing values.
    column_name : str
        How the column is named in error messages.
    """
    unique = pd.unique(ids)
    try:
        return np.sort(unique)
    except TypeError as exc:
        kinds = sorted({type(value).__name__ for value in unique})
        raise ValueError(
            f"Column {column_name} mixes ID types ({', '.join(kinds)}); IDs of one "
            "column must be all numbers or all strings."
        ) from exc


def extend_vocabulary(vocabulary, ids, column_name):
    """``vocabulary`` followed by the sorted IDs of ``ids`` it does not hold yet.

    Existing IDs keep their codes, so a warm-started model can grow its
    embedding tables without disturbing the rows it already learned.
    """
    new = build_vocabulary(ids, column_name)
    new = new[pd.Index(vocabulary).get_indexer(new) < 0]
    if len(new) == 0:
        return vocabulary
    return pd.Index(vocabulary).append(pd.Index(new)).to_numpy()


def encode_ids(ids, vocabulary):
    """int64 codes of ``ids`` in ``vocabulary``: 1..n for known, 0 for unknown."""
    codes = pd.Index(vocabulary).get_indexer(ids).astype(np.int64, copy=False)
    codes += 1
    return codes


def unknown_ids(ids, codes):
    """The distinct IDs of ``ids`` whose code is the unknown code."""
    return pd.unique(np.asarray(ids)[codes == UNKNOWN_CODE])


def raise_for_unknown(users, user_codes, items, item_codes):
    new_users = unknown_ids(users, user_codes)
    new_items = unknown_ids(items, item_codes)
    if len(new_users) or len(new_items):
        raise ValueError(
            f"X holds {len(new_users)} users and {len(new_items)} items not seen in "
            f"fit (for example users {new_users[:3].tolist()}, items "
            f"{new_items[:3].tolist()}). Use handle_unknown='fallback' to score them."
        )
