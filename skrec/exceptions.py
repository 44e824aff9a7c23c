"""Warnings that skrec issues, to filter by class."""

__all__ = ["TimestampFeatureWarning"]


class TimestampFeatureWarning(UserWarning):
    """A per-row side feature of ``X`` looks like a timestamp.

    Fit warns once for each numeric column, other than the ID columns and
    the declared ``user_features`` and ``item_features``, whose name or
    values say it is a time:

    - its name, in any case, is one of ``time``, ``timestamp``, ``datetime``,
      ``date``, ``ts``, ``epoch`` and ``unixtime``, or ends in one of them
      after a separator (space, ``_``, ``-``, ``.``), optionally followed by a
      unit (``_s``, ``_ms``, ``_us``, ``_ns``), or ends in ``_at``, as
      ``event_time``, ``rating_date``, ``ts_ms`` and ``created_at`` do; or it
      is camelCase ending in ``Time``, ``Timestamp``, ``Date``, ``Datetime``,
      ``Ts`` or ``At``, as ``createdAt``;
    - or its values are all whole numbers in the range of Unix times from
      1990-01-01 to 2100-01-01, in seconds or in milliseconds.

    The model would read the timestamp as one more number describing the
    interaction, which rarely helps and disables ``recommend``; the message
    says how to use it instead. Silence it for one fit with
    ``warnings.simplefilter("ignore", TimestampFeatureWarning)`` inside
    ``warnings.catch_warnings()``, or better, drop the column.

    Examples
    --------
    >>> import warnings
    >>> import pandas as pd
    >>> from skrec import PopularityRecommender, NeuralRecommender
    >>> from skrec.exceptions import TimestampFeatureWarning
    >>> X = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1],
    ...                   "timestamp": [881250949, 891717742, 878887116]})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = NeuralRecommender(max_iter=1, early_stopping=False).fit(X, [4, 3, 5])
    >>> [w.category.__name__ for w in caught if w.category is TimestampFeatureWarning]
    ['TimestampFeatureWarning']
    """
