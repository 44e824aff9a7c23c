"""predict and recommend over the partitions of a Dask DataFrame or Series."""

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted


def predict_partitions(model, X):
    """Predict with a fitted estimator over the partitions of a Dask DataFrame.

    Each partition of `X` is a pandas DataFrame, passed to ``model.predict``
    by a task of its own, so the rows are scored where they are, in parallel,
    and never gathered in one process. When a distributed ``Client`` is in
    use, the model is sent once to every worker (``client.scatter(model,
    broadcast=True)``) instead of with every task.

    Parameters
    ----------
    model : fitted estimator
        Any fitted skrec estimator; its ``predict`` gets each partition.

    X : dask.dataframe.DataFrame
        The rows to predict, with the columns ``model`` was fitted on.

    Returns
    -------
    y_pred : dask.dataframe.Series
        The predictions, named ``"prediction"``, with the index and the
        partitions of `X`: ``X.assign(prediction=y_pred)`` keeps them beside
        their rows. Nothing is computed until you ask for it
        (``.compute()``, ``.to_parquet(...)``).

    Raises
    ------
    ImportError
        If dask's dataframe module is not installed.

    TypeError
        If `X` is not a Dask DataFrame.

    See Also
    --------
    recommend_partitions : Top-n items for the users of a Dask Series.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import pandas as pd
    >>> from skrec import PopularityRecommender
    >>> from skrec.dask import predict_partitions
    >>> X = pd.DataFrame({"user": ["ann", "bob", "bob", "cat"],
    ...                   "item": ["up", "up", "jaws", "alien"]})
    >>> est = PopularityRecommender().fit(X)
    >>> predict_partitions(est, dd.from_pandas(X, npartitions=2)).compute()
    0    2.0
    1    2.0
    2    1.0
    3    1.0
    Name: prediction, dtype: float64
    """
    check_is_fitted(model)
    dd = _import_dask_dataframe()
    _check_collection(X, dd.DataFrame, "X", "a Dask DataFrame")
    meta = pd.Series(np.empty(0), index=dd.utils.make_meta(X).index, name="prediction")
    return X.map_partitions(_predict, _for_workers(model), meta=meta)


def recommend_partitions(model, users, n=10, *, exclude_seen=True, items=None):
    """Recommend with a fitted estimator for the users of a Dask Series.

    Each partition of `users` goes to ``model.recommend`` in a task of its
    own, and comes back as one row per recommended item: a long table that
    can be written out as it is computed (``.to_parquet(...)``), however
    many users there are. When a distributed ``Client`` is in use, the model
    is sent once to every worker (``client.scatter(model, broadcast=True)``)
    instead of with every task.

    Parameters
    ----------
    model : fitted estimator
        Any fitted skrec estimator that has ``recommend``.

    users : dask.dataframe.Series
        User IDs, as in the user column of the data ``model`` was fitted on.
        Each occurrence of a user gets its own rows; users not seen in fit
        get the most popular items.

    n : int, default=10
        Items per user. At most the number of candidate items.

    exclude_seen : bool, default=True
        Leave out the items each user interacted with in fit (see
        ``recommend``).

    items : array-like of shape (n_candidates,), default=None
        Candidate item IDs to choose from; all items seen in fit if None.

    Returns
    -------
    recommendations : dask.dataframe.DataFrame
        Columns ``user``, ``rank`` (1 for the best item), ``item`` and
        ``score``: ``min(n, n_candidates)`` rows per user, best first, with
        the user's index in `users`, so the partitions (and divisions) are
        those of `users`. Nothing is computed until you ask for it.

    Raises
    ------
    ImportError
        If dask's dataframe module is not installed.

    TypeError
        If `users` is not a Dask Series.

    See Also
    --------
    predict_partitions : Predict over the partitions of a Dask DataFrame.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import pandas as pd
    >>> from skrec import PopularityRecommender
    >>> from skrec.dask import recommend_partitions
    >>> X = pd.DataFrame({"user": ["ann", "bob", "bob", "cat"],
    ...                   "item": ["up", "up", "jaws", "alien"]})
    >>> est = PopularityRecommender().fit(X)
    >>> users = dd.from_pandas(pd.Series(["ann", "eve"], name="user"), npartitions=2)
    >>> recommend_partitions(est, users, n=2).compute()
      user  rank   item  score
    0  ann     1  alien    1.0
    0  ann     2   jaws    1.0
    1  eve     1     up    2.0
    1  eve     2  alien    1.0
    """
    check_is_fitted(model)
    dd = _import_dask_dataframe()
    _check_collection(users, dd.Series, "users", "a Dask Series")
    options = dict(n=n, exclude_seen=exclude_seen, items=items)
    # An empty partition through the same code: the exact columns and dtypes,
    # and a bad ``n`` or ``items`` fails here rather than in every task.
    meta = _recommend(dd.utils.make_meta(users), model, **options)
    return users.map_partitions(_recommend, _for_workers(model), **options, meta=meta)


def _predict(X, model):
    return pd.Series(model.predict(X), index=X.index, name="prediction")


def _recommend(users, model, n, exclude_seen, items):
    """The top ``n`` of each user of the pandas Series ``users``, one row each."""
    item_ids, scores = model.recommend(
        users, n, exclude_seen=exclude_seen, items=items, return_scores=True
    )
    per_user = item_ids.shape[1]
    recommendations = users.repeat(per_user).rename("user").to_frame()
    recommendations["rank"] = np.tile(np.arange(1, per_user + 1), len(users))
    recommendations["item"] = item_ids.ravel()
    recommendations["score"] = scores.ravel()
    return recommendations


def _for_workers(model):
    """``model`` as the tasks get it: scattered to every worker of the
    distributed client in use, or itself, in the task graph, without one."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed, or no client
        return model
    return client.scatter(model, broadcast=True, hash=False)


def _check_collection(collection, kind, name, description):
    if not isinstance(collection, kind):
        raise TypeError(
            f"{name} must be {description}, got {type(collection).__name__}; "
            "convert a pandas object with dask.dataframe.from_pandas."
        )


def _import_dask_dataframe():
    try:
        import dask.dataframe
        import dask.dataframe.utils
    except ImportError as exc:
        raise ImportError(
            "Predicting over Dask partitions needs dask's dataframe module; "
            'install it with pip install "skrec[dask]".'
        ) from exc
    return dask.dataframe
