"""The MovieLens-100K ratings of the GroupLens Research Project.

The data come from https://grouplens.org/datasets/movielens/100k/. Their licence
forbids redistribution, so the loader reads them from a local data directory
and downloads the official archive only when they are missing.
"""

import hashlib
import os
import shutil
import tempfile
import zipfile
from numbers import Integral
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pandas as pd
from sklearn.utils import Bunch

from .._sklearn_compat import Interval, StrOptions, validate_params

ARCHIVE_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# SHA256 of the 4,924,029-byte ml-100k.zip, as recorded by tensorflow_datasets
# (tensorflow_datasets/url_checksums/movielens.txt). GroupLens publishes only an
# MD5 next to the archive (ml-100k.zip.md5: 0e33842e24a9c977be4e0107933c0723).
ARCHIVE_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
# Seconds without a response before the download gives up, so that a machine
# behind a firewall fails within a minute instead of hanging.
_DOWNLOAD_TIMEOUT = 30

_FOLDER = "ml-100k"
_COLUMN_DTYPES = {
    "user_id": "int64",
    "item_id": "int64",
    "rating": "float64",
    "timestamp": "int64",
}
_FEATURE_NAMES = ["user_id", "item_id"]
_TARGET_NAME = "rating"
_USER_FEATURES = ["age", "gender", "occupation", "zip_prefix"]
# The 19 genres of u.genre, in the order of u.item's flag columns.
_GENRES = [
    "unknown",
    "action",
    "adventure",
    "animation",
    "childrens",
    "comedy",
    "crime",
    "documentary",
    "drama",
    "fantasy",
    "film_noir",
    "horror",
    "musical",
    "mystery",
    "romance",
    "sci_fi",
    "thriller",
    "war",
    "western",
]
_ITEM_FEATURES = ["release_year", *(f"genre_{genre}" for genre in _GENRES)]

_DESCR = """\
MovieLens-100K
--------------

100,000 ratings (integers 1 to 5) that 943 users gave 1,682 movies on the
MovieLens web site from September 1997 to April 1998; every user rated at least
20 movies. ``data`` holds the raw GroupLens ``user_id`` and ``item_id``,
``target`` the rating, and ``frame`` the whole table with the Unix
``timestamp``. The official folds ``u1`` to ``u5`` split the ratings into
80,000 for training and 20,000 for testing, with disjoint test sets.

Licence: the data may be used for research only, may not be redistributed, and
publications using them must cite F. Maxwell Harper and Joseph A. Konstan,
"The MovieLens Datasets: History and Context", ACM Transactions on Interactive
Intelligent Systems 5(4), 2015. See the README of the data set and
https://grouplens.org/datasets/movielens/100k/.
"""


@validate_params(
    {"data_home": [str, os.PathLike, None]}, prefer_skip_nested_validation=True
)
def get_data_home(data_home=None):
    """Return the path of the skrec data directory, creating it if needed.

    Loaders keep the data sets they read or download in this directory.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The data directory. If None, the ``SKREC_DATA`` environment variable
        when it is set, else ``~/skrec_data``. A leading ``~`` is expanded to
        the user's home directory.

    Returns
    -------
    data_home : str
        The path of the data directory.

    See Also
    --------
    load_movielens : Load the MovieLens-100K ratings from this directory.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from skrec.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data_home = get_data_home(os.path.join(tmp, "skrec_data"))
    ...     os.path.isdir(data_home)
    True
    """
    if data_home is None:
        data_home = os.environ.get("SKREC_DATA") or os.path.join("~", "skrec_data")
    data_home = os.path.expanduser(data_home)
    os.makedirs(data_home, exist_ok=True)
    return data_home


@validate_params(
    {
        "variant": [StrOptions({"100k"})],
        "fold": [Interval(Integral, 1, 5, closed="both"), None],
        "data_home": [str, os.PathLike, None],
        "return_X_y": ["boolean"],
        "as_frame": ["boolean"],
        "download_if_missing": ["boolean"],
        "features": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_movielens(
    variant="100k",
    *,
    fold=None,
    data_home=None,
    return_X_y=False,
    as_frame=True,
    download_if_missing=True,
    features=False,
):
    """Load the MovieLens-100K ratings (explicit feedback).

    ==============   ==================
    Ratings                     100,000
    Users                           943
    Items (movies)                1,682
    Features           user_id, item_id
    Target             rating, 1 to 5
    ==============   ==================

    The files are read from ``<data_home>/ml-100k/``. When that directory is
    missing, the official GroupLens archive is downloaded there, unless
    `download_if_missing` is False.

    Parameters
    ----------
    variant : {"100k"}, default="100k"
        The MovieLens release. Only MovieLens-100K is supported.

    fold : int in [1, 5], default=None
        If None, all the ratings (``u.data``). Else the official split
        ``u<fold>.base`` (train) and ``u<fold>.test`` (test). The five test
        sets are disjoint and together hold every rating.

    data_home : str or path-like, default=None
        The directory that holds (or receives) ``ml-100k/``. If None, the
        ``SKREC_DATA`` environment variable when it is set, else
        ``~/skrec_data``; see :func:`get_data_home`.

    return_X_y : bool, default=False
        If True, return ``(X, y)``, or ``(X_train, X_test, y_train, y_test)``
        when `fold` is given, instead of a Bunch.

    as_frame : bool, default=True
        If True, X is a DataFrame and y a Series. Else X is an int64 ndarray
        of shape (n_ratings, 2) and y a float64 ndarray.

    download_if_missing : bool, default=True
        If False, raise an OSError when the data are not found locally instead
        of downloading them.

    features : bool, default=False
        If True, each rating's row of ``data`` also holds the features of its
        user, from ``u.user`` (``age``; ``gender``, "F" or "M";
        ``occupation``, a string; ``zip_prefix``, the first character of the
        ZIP code, a string), and of its item, from ``u.item``
        (``release_year``, NaN for the one movie without a date, and 19
        ``genre_*`` flags, 0 or 1). The string columns need encoding, e.g. by
        a ``ColumnTransformer``, before a model can use them; requires
        `as_frame`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : DataFrame or ndarray of shape (n_ratings, 2)
            The raw GroupLens ``user_id`` and ``item_id`` of each rating, the
            training ratings when `fold` is given; with `features`, followed
            by the 24 feature columns.
        target : Series or ndarray of shape (n_ratings,)
            The ratings, float64.
        frame : DataFrame of shape (n_ratings, 4)
            ``user_id``, ``item_id``, ``rating`` and the Unix ``timestamp``,
            which is kept out of ``data`` because models treat extra numeric
            columns as side features. A DataFrame even when `as_frame` is
            False, as the only holder of the timestamps. With `features`, the
            feature columns follow.
        data_test, target_test, frame_test
            The same for the test ratings; only when `fold` is given.
        feature_names : list of str
            ``["user_id", "item_id"]``, followed by the feature names with
            `features`.
        user_features : DataFrame of shape (943, 4)
            The user features indexed by ``user_id``; only with `features`.
        item_features : DataFrame of shape (1682, 20)
            The item features indexed by ``item_id``; only with `features`.
        target_names : list of str
            ``["rating"]``.
        DESCR : str
            A description of the data set and its licence.

    (X, y) or (X_train, X_test, y_train, y_test) : tuple if `return_X_y` is True
        `data` and `target` (and `data_test` and `target_test`), in the
        order of :func:`~sklearn.model_selection.train_test_split`.

    Raises
    ------
    OSError
        If the data are missing and `download_if_missing` is False, or the
        download fails or yields an archive with the wrong checksum.
    ValueError
        If `features` is True and `as_frame` is False.

    See Also
    --------
    make_ratings : Generate synthetic ratings of any size.
    get_data_home : Return the default data directory.

    Notes
    -----
    The GroupLens licence forbids redistributing the data: keep them out of
    version control and point `data_home` or ``SKREC_DATA`` at a private copy.

    References
    ----------
    .. [1] F. Maxwell Harper and Joseph A. Konstan, "The MovieLens Datasets:
       History and Context", ACM Transactions on Interactive Intelligent
       Systems 5(4), 2015. https://doi.org/10.1145/2827872

    Examples
    --------
    >>> from skrec.datasets import load_movielens
    >>> X_train, X_test, y_train, y_test = load_movielens(
    ...     fold=1, return_X_y=True)  # doctest: +SKIP
    >>> X_train.shape, X_test.shape  # doctest: +SKIP
    ((80000, 2), (20000, 2))
    >>> list(X_train.columns), y_train.name  # doctest: +SKIP
    (['user_id', 'item_id'], 'rating')
    >>> X = load_movielens(features=True, return_X_y=True)[0]  # doctest: +SKIP
    >>> list(X.columns[:7])  # doctest: +SKIP
    ['user_id', 'item_id', 'age', 'gender', 'occupation', 'zip_prefix', 'release_year']
    """
    if features and not as_frame:
        raise ValueError(
            "features=True needs as_frame=True: gender, occupation and zip_prefix "
            "are strings."
        )
    data_dir = _find_or_download(Path(get_data_home(data_home)), download_if_missing)
    if fold is None:
        frame, frame_test = _read_ratings(data_dir / "u.data"), None
    else:
        frame = _read_ratings(data_dir / f"u{fold}.base")
        frame_test = _read_ratings(data_dir / f"u{fold}.test")
    feature_names = list(_FEATURE_NAMES)
    tables = {}
    if features:
        tables = {
            "user_features": _read_users(data_dir / "u.user"),
            "item_features": _read_items(data_dir / "u.item"),
        }
        frame = _join_features(frame, **tables)
        if frame_test is not None:
            frame_test = _join_features(frame_test, **tables)
        feature_names += _USER_FEATURES + _ITEM_FEATURES

    X, y = _split_features_target(frame, as_frame, feature_names)
    bunch = Bunch(
        data=X,
        target=y,
        frame=frame,
        feature_names=feature_names,
        target_names=[_TARGET_NAME],
        DESCR=_describe(data_dir),
        **tables,
    )
    if frame_test is not None:
        X_test, y_test = _split_features_target(frame_test, as_frame, feature_names)
        bunch.update(data_test=X_test, target_test=y_test, frame_test=frame_test)

    if not return_X_y:
        return bunch
    if frame_test is None:
        return X, y
    return X, X_test, y, y_test


def _find_or_download(data_home, download_if_missing):
    """Return ``<data_home>/ml-100k``, downloading it there when it is missing."""
    data_dir = data_home / _FOLDER
    if data_dir.is_dir():
        return data_dir
    fix = (
        "Set the SKREC_DATA environment variable, or pass data_home, to a "
        f"directory that holds {_FOLDER}/ (the unzipped {ARCHIVE_URL})."
    )
    if not download_if_missing:
        raise OSError(
            f"MovieLens-100K data not found at {data_dir} and "
            f"download_if_missing=False. {fix}"
        )
    try:
        _fetch_archive(data_home)
    except (URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(
            f"MovieLens-100K data not found at {data_dir}, and downloading them "
            f"from {ARCHIVE_URL} failed: {reason}. {fix}"
        ) from exc
    return data_dir


def _fetch_archive(data_home):
    """Download the official archive, check it and unpack ``ml-100k/`` only."""
    archive = data_home / f"{_FOLDER}.zip"
    try:
        _download_file(ARCHIVE_URL, archive)
        _check_sha256(archive, ARCHIVE_SHA256)
        _extract_folder(archive, _FOLDER, data_home)
    finally:
        archive.unlink(missing_ok=True)


def _download_file(url, path):
    with urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response, open(path, "wb") as f:
        shutil.copyfileobj(response, f)


def _check_sha256(path, expected):
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha256.update(block)
    if sha256.hexdigest() != expected:
        raise OSError(
            f"The SHA256 checksum of the downloaded {path.name} "
            f"({sha256.hexdigest()}) differs from the expected {expected}; "
            "the file was deleted."
        )


def _extract_folder(archive, folder, destination):
    """Unpack the members under ``folder/`` of `archive` into `destination`.

    The folder is unpacked beside its final place and then renamed, so that an
    interrupted extraction never leaves a partial folder to be read later.
    """
    with zipfile.ZipFile(archive) as zip_file:
        members = [
            name for name in zip_file.namelist() if name.startswith(f"{folder}/")
        ]
        if not members:
            raise OSError(f"{archive} holds no {folder}/ folder.")
        with tempfile.TemporaryDirectory(dir=destination) as tmp:
            zip_file.extractall(tmp, members=members)
            os.replace(Path(tmp) / folder, destination / folder)


def _read_ratings(path):
    """Read a tab-separated ratings file of GroupLens into a DataFrame."""
    return pd.read_csv(
        path, sep="\t", header=None, names=list(_COLUMN_DTYPES), dtype=_COLUMN_DTYPES
    )


def _read_users(path):
    """u.user as a table of user features indexed by user_id."""
    users = pd.read_csv(
        path,
        sep="|",
        header=None,
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"user_id": "int64", "age": "int64", "zip_code": str},
    ).set_index("user_id")
    users["zip_prefix"] = users.pop("zip_code").str[0]
    return users[_USER_FEATURES]


def _read_items(path):
    """u.item as a table of item features indexed by item_id."""
    genres = [f"genre_{genre}" for genre in _GENRES]
    items = pd.read_csv(
        path,
        sep="|",
        header=None,
        names=["item_id", "title", "release_date", "video_release_date", "url"]
        + genres,
        encoding="latin-1",
    ).set_index("item_id")
    release = pd.to_datetime(items["release_date"], format="%d-%b-%Y")
    items["release_year"] = release.dt.year.astype("float64")
    return items[_ITEM_FEATURES].astype({genre: "int64" for genre in genres})


def _join_features(frame, user_features, item_features):
    """The ratings with their user's and their item's features appended."""
    users = user_features.reindex(frame["user_id"]).reset_index(drop=True)
    items = item_features.reindex(frame["item_id"]).reset_index(drop=True)
    return pd.concat([frame.reset_index(drop=True), users, items], axis=1)


def _split_features_target(frame, as_frame, feature_names=_FEATURE_NAMES):
    X, y = frame[feature_names], frame[_TARGET_NAME]
    if as_frame:
        return X, y
    return X.to_numpy(), y.to_numpy()


def _describe(data_dir):
    """Return the description, followed by the summary part of the README."""
    readme = data_dir / "README"
    if not readme.is_file():
        return _DESCR
    # The README opens with the summary and the usage licence; the citation
    # section that follows is already in the description.
    summary = readme.read_text(encoding="latin-1").split("\nCITATION")[0]
    return f"{_DESCR}\nREADME\n------\n\n{summary.rstrip()}\n"
