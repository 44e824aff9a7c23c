"""Parquet files read chunk by chunk, for ``partial_fit`` on data larger than memory."""

import os
from numbers import Integral

from .._sklearn_compat import Interval, validate_params


@validate_params(
    {
        "paths": [str, os.PathLike, "array-like"],
        "columns": [list, tuple, None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def iter_parquet_chunks(paths, columns=None, *, batch_size=1_000_000):
    """Read Parquet files as pandas DataFrames of at most `batch_size` rows.

    The files are read one after another, in the order given, each in chunks
    of at most `batch_size` rows: memory holds one chunk (and one row group of
    the file being read), whatever the size of the files. Pass each chunk to
    ``partial_fit`` and call this function once per epoch.

    Every file is checked before the first chunk is read: it must exist, be a
    Parquet file and hold `columns` (or, with ``columns=None``, the columns of
    the first file, in the same order), with the same kind of values (numbers
    or strings) in each of them as the first file. A file that fails stops the
    call with an error that names it, rather than an epoch part of the way
    through the data.

    Parameters
    ----------
    paths : str, path-like, or array-like of them
        The local Parquet files, read in this order. To read them in a new
        order at each epoch, pass a permutation, such as
        ``numpy.random.default_rng(seed).permutation(paths)``.

    columns : list or tuple of str, default=None
        The columns to read, in the order of the DataFrames' columns. None
        reads every column of the first file.

    batch_size : int, default=1_000_000
        The largest number of rows of a chunk. A chunk never spans two files,
        so the last chunk of each file may be smaller.

    Returns
    -------
    chunks : iterator of DataFrame
        The chunks, in file order and, within a file, in row order.

    Raises
    ------
    ImportError
        If pyarrow is not installed.

    FileNotFoundError
        If a path does not exist.

    ValueError
        If `paths` is empty, or a file is not a Parquet file, lacks one of the
        columns, or holds another kind of values in one of them.

    See Also
    --------
    make_ratings : Generate explicit ratings from a latent-factor model.

    Notes
    -----
    Rows are yielded in the order they are stored. ``partial_fit`` shuffles
    the rows of each chunk, not the rows across chunks: write the files with
    their rows in random order (not sorted by user or time), so that every
    chunk is a sample of the whole data.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skrec import MatrixFactorization
    >>> from skrec.datasets import iter_parquet_chunks, make_ratings
    >>> X, y = make_ratings(
    ...     n_users=50, n_items=40, n_ratings=800, as_frame=True, random_state=0
    ... )
    >>> ratings = X.assign(rating=y)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> paths = [Path(tmp.name) / f"part-{k}.parquet" for k in range(2)]
    >>> ratings.iloc[:400].to_parquet(paths[0])
    >>> ratings.iloc[400:].to_parquet(paths[1])
    >>> est = MatrixFactorization(embedding_dim=8, random_state=0)
    >>> for epoch in range(2):
    ...     for chunk in iter_parquet_chunks(paths, batch_size=300):
    ...         est = est.partial_fit(chunk[["user_id", "item_id"]], chunk["rating"])
    >>> est.n_iter_  # one per chunk: 2 epochs of 2 files of 300 + 100 rows
    8
    >>> tmp.cleanup()
    """
    parquet = _import_parquet()
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not paths:
        raise ValueError("paths is empty: pass at least one Parquet file.")
    columns = _check_files(parquet, paths, columns)
    return _chunks(parquet, paths, columns, batch_size)


def _import_parquet():
    try:
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "Reading Parquet files needs pyarrow; install it with "
            'pip install "skrec[parquet]".'
        ) from exc
    return pyarrow.parquet


def _check_files(parquet, paths, columns):
    """The columns to read: `columns`, or those of the first file; raise
    if a file is missing, unreadable, or lacks them or their kind of values."""
    first = _read_schema(parquet, paths[0])
    same_columns = columns is None
    columns = first.names if same_columns else list(columns)
    kinds = _kinds(first, columns, paths[0])
    for path in paths[1:]:
        schema = _read_schema(parquet, path)
        if same_columns and schema.names != columns:
            raise ValueError(
                f"Parquet file {os.fspath(path)!r} has the columns "
                f"{schema.names}, where {os.fspath(paths[0])!r} has "
                f"{columns}; pass columns= to read the ones they share."
            )
        for name, kind in _kinds(schema, columns, path).items():
            if kind != kinds[name]:
                raise ValueError(
                    f"Column {name!r} holds {kind} values in {os.fspath(path)!r} "
                    f"and {kinds[name]} values in {os.fspath(paths[0])!r}; IDs of "
                    "different kinds never match (42 is not '42'): write every "
                    "file with the same types."
                )
    return columns


def _kinds(schema, columns, path):
    """The kind of values of each of `columns` in the file of `schema`."""
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise ValueError(
            f"Parquet file {os.fspath(path)!r} has no column {missing[0]!r}; "
            f"its columns are {schema.names}."
        )
    return {name: _kind(schema.field(name).type) for name in columns}


def _read_schema(parquet, path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"Parquet file {os.fspath(path)!r} does not exist.")
    if os.path.isdir(path):
        raise ValueError(
            f"{os.fspath(path)!r} is a directory; pass the paths of its files, "
            'for example sorted(pathlib.Path(directory).glob("*.parquet")).'
        )
    try:
        return parquet.read_schema(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(
            f"{os.fspath(path)!r} is not a readable Parquet file: {exc}"
        ) from exc


def _kind(arrow_type):
    """``"numeric"`` or ``"string"``, else the type's name: the distinctions
    that change which IDs are equal (42 and 42.0 are, 42 and "42" are not)."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        return _kind(arrow_type.value_type)
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if str(arrow_type) in {"string", "large_string", "string_view"}:
        return "string"
    return str(arrow_type)


def _chunks(parquet, paths, columns, batch_size):
    for path in paths:
        with parquet.ParquetFile(path) as file:
            for batch in file.iter_batches(batch_size=batch_size, columns=columns):
                yield batch.to_pandas()
