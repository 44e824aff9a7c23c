"""Predict and recommend with a fitted estimator over the partitions of Dask
collections.

These functions need dask (``pip install "skrec[dask]"``); ``import skrec``
does not import dask. To run a search (``GridSearchCV``, ``cross_validate``)
on a Dask cluster, no function is needed: run it under
``joblib.parallel_config(backend="dask")``.
"""

from ._dask import predict_partitions, recommend_partitions

__all__ = ["predict_partitions", "recommend_partitions"]
