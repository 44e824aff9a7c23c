"""Fitted skrec estimators as ONNX graphs, which serve without torch or skrec.

torch's ONNX exporter (``torch.onnx.export`` with ``dynamo=True``) writes the
network; nodes of the standard ONNX operator sets before and after it map raw
IDs to codes, scale the side features and the ratings, and rank the items,
so that the graph takes and returns what the estimator's methods do.
"""

import copy
import logging
import os
import uuid
import warnings
from contextlib import contextmanager
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._encoding import UNKNOWN_CODE
from ._engine._modules import EmbeddingMLP
from ._engine._sequence_modules import (
    FIRST_ITEM_CODE,
    PAD_CODE,
    START_CODE,
    RecurrentEncoder,
    output_table,
)
from ._neural import NeuralRecommender
from ._recommend import check_n
from ._sequential import SequentialRecommender
from ._validation import column_name, column_position
from ._version import __version__

# The lowest opset torch's exporter writes (ONNX 1.13, onnxruntime 1.14 and
# later run it), and the default: the widest choice of runtimes.
DEFAULT_OPSET = 18
# The ai.onnx.ml release of ONNX 1.13, whose LabelEncoder maps the IDs.
ML_OPSET = 3
# torch.onnx.export(dynamo=True) with torch.export.Dim.DYNAMIC.
MIN_TORCH = (2, 6)
INSTALL_HINT = 'pip install "skrec[onnx]"'
# Rows of the example inputs the network is traced on: torch.export fixes
# dimensions of size 0 and 1.
EXAMPLE_ROWS = 3
# onnx.TensorProto element types, named without importing onnx.
_FLOAT, _INT64, _STRING, _DOUBLE = 1, 7, 8, 11


def to_onnx(estimator, path=None, *, target_opset=None, n=10):
    """Convert a fitted estimator into an ONNX model, which runs without torch.

    The model takes the raw user and item IDs, as the estimator's methods
    do, and maps them to the network's codes in the graph, with the
    ``ai.onnx.ml`` ``LabelEncoder`` operator: any ONNX runtime serves it,
    without torch, skrec or scikit-learn. See :ref:`serving` for the inputs
    and outputs of each graph and how to run them with onnxruntime.

    - :class:`~skrec.NeuralRecommender` and
      :class:`~skrec.MatrixFactorization` (every built-in architecture): the
      graph is ``predict``. Inputs ``users`` and ``items``, 1-D int64 or
      string tensors of the same length (the type of the IDs of fit), and,
      for a model with side features, ``features``, a float32 matrix of the
      columns of ``X`` other than the two ID columns, in their order in
      ``X``. Output ``predictions``, a 1-D float64 tensor: the ratings
      ``predict`` returns, clipped to ``rating_range_`` (relevance scores
      for an implicit ``loss``). An unknown ID is scored as
      ``handle_unknown="fallback"`` scores it, whatever ``handle_unknown``
      is: a graph cannot raise.
    - :class:`~skrec.SequentialRecommender`: the graph is
      ``recommend_next([history], n)`` for one session. Input ``history``, a
      1-D int64 or string tensor of the session's item IDs, the most recent
      last, possibly empty. Outputs ``items``, the ``min(n, n_items)``
      recommended item IDs, best first, and ``scores``, their float32
      scores. Unknown IDs are skipped, consecutive repeats read once, the
      session's own items left out, and a session without a known item gets
      the most popular items.

    Parameters
    ----------
    estimator : NeuralRecommender, MatrixFactorization or SequentialRecommender
        A fitted estimator. A custom ``module`` is exported if torch's
        exporter can trace its ``forward``.

    path : str or path-like, default=None
        Where to also write the model. It is written once built and checked,
        through a temporary file in the same directory, so a failure leaves
        no file at ``path``.

    target_opset : int, default=None
        The version of the default (``ai.onnx``) operator set, from 18 to the
        latest that the installed onnx package knows. None means 18, the
        lowest that torch's exporter writes, which onnxruntime 1.14 and later
        run. The ``ai.onnx.ml`` operator set is version 3.

    n : int, default=10
        Items recommended per session by a
        :class:`~skrec.SequentialRecommender` graph; ignored for the others.

    Returns
    -------
    model : onnx.ModelProto
        The model, checked by ``onnx.checker.check_model``.

    Raises
    ------
    ImportError
        If onnx or onnxscript is not installed, or torch is older than 2.6.

    TypeError
        If ``estimator`` is not one of the estimators above.

    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.

    ValueError
        If torch's exporter cannot trace the network (a custom ``module``
        whose ``forward`` depends on the values of its inputs), or the IDs
        of fit are neither integers nor strings.

    See Also
    --------
    skrec.NeuralRecommender.predict : What the rating graphs compute.
    skrec.SequentialRecommender.recommend_next : What the session graphs
        compute.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from skrec import MatrixFactorization
    >>> from skrec.datasets import make_ratings
    >>> from skrec.export import to_onnx
    >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=800, random_state=0)
    >>> est = MatrixFactorization(
    ...     embedding_dim=8, learning_rate_init=0.05, random_state=0
    ... ).fit(X, y)
    >>> model = to_onnx(est)
    >>> [put.name for put in model.graph.input], model.graph.output[0].name
    (['users', 'items'], 'predictions')
    >>> session = ort.InferenceSession(model.SerializeToString())
    >>> users = np.array([0, 1, 10**6])  # user 10**6 is unknown
    >>> items = np.array([3, 3, 3])
    >>> (predictions,) = session.run(None, {"users": users, "items": items})
    >>> bool(np.allclose(predictions, est.predict(np.c_[users, items]), atol=1e-5))
    True
    """
    if not isinstance(estimator, NeuralRecommender | SequentialRecommender):
        raise TypeError(
            "to_onnx converts a NeuralRecommender, MatrixFactorization or "
            f"SequentialRecommender, got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    if isinstance(estimator, SequentialRecommender):
        check_n(n)
    onnx = _import_onnx()
    opset = _checked_opset(target_opset, onnx)
    if isinstance(estimator, SequentialRecommender):
        model = _session_model(estimator, opset, n, onnx)
    else:
        model = _pair_model(estimator, opset, onnx)
    onnx.checker.check_model(model)
    if path is not None:
        _save(model, path)
    return model


def _import_onnx():
    """The onnx package, after checking that torch's exporter can run."""
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) < MIN_TORCH:
        raise ImportError(
            f"to_onnx needs torch 2.6 or later for its ONNX exporter; this is "
            f"torch {torch.__version__}."
        )
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise ImportError(
            f"to_onnx needs the onnx and onnxscript packages; install them with "
            f"{INSTALL_HINT}."
        ) from exc
    return onnx


def _checked_opset(target_opset, onnx):
    latest = onnx.defs.onnx_opset_version()
    if target_opset is None:
        return DEFAULT_OPSET
    if (
        isinstance(target_opset, bool)
        or not isinstance(target_opset, Integral)
        or not DEFAULT_OPSET <= target_opset <= latest
    ):
        raise ValueError(
            f"target_opset must be an int from {DEFAULT_OPSET} (the lowest that "
            f"torch's ONNX exporter writes) to {latest} (the latest that onnx "
            f"{onnx.__version__} knows), got target_opset={target_opset!r}."
        )
    return int(target_opset)


# -- NeuralRecommender and MatrixFactorization: predict -------------------------


class _PairScores(nn.Module):
    """The network's score of (user, item) codes, in the form torch's exporter
    traces.

    A built-in network is scored without the shortcuts that its forward takes
    by batch size, and with the SVD++ sums of ``"svdpp"`` and
    ``"svdpp_user"`` (fixed once fitted) added to its table rows beforehand:
    the sparse product that computes them has no ONNX operator.
    """

    def __init__(self, module):
        super().__init__()
        self.module = copy.deepcopy(module).cpu().eval()
        if isinstance(self.module, EmbeddingMLP):
            _fold_history(self.module)

    def forward(self, users, items, features=None):
        if not isinstance(self.module, EmbeddingMLP):
            return self.module(users, items, features)
        features = self.module.side_features(users, items, features)
        return self.module.score(*self.module.embed(users, items), features)


def _fold_history(module):
    """Add to the user and item table rows of ``module`` their SVD++ sums."""
    if module.history_tables is None:
        return
    tables = module.embedding_tables()
    with torch.no_grad():
        codes = [torch.arange(tables[kind].num_embeddings) for kind in tables]
        rows = module.with_history(tables["user"].weight, tables["item"].weight, *codes)
        for table, folded in zip(tables.values(), rows, strict=True):
            table.weight.copy_(folded)
    module.history_tables = None
    module.history_kinds = ()


def _pair_model(est, opset, onnx):
    """The graph of ``est.predict``: IDs and side features in, the network,
    the rescaled scores out."""
    graph = _GraphBuilder(onnx)
    inputs = [
        graph.id_input(
            "users", "network/user_codes", est.users_, "user_col", est, "n_rows"
        ),
        graph.id_input(
            "items", "network/item_codes", est.items_, "item_col", est, "n_rows"
        ),
    ]
    if est._n_features():
        inputs.append(_features_input(graph, est, "network/features"))
    graph.place_network()
    outputs = [_predictions(graph, est, "network/scores")]
    return graph.model(_pair_network(est, opset), inputs, outputs, opset, est)


def _pair_network(est, opset):
    """The ONNX model of ``est``'s network, on codes and scaled features."""
    n_features = est._n_features()
    # Two tensors: the exporter would read one passed twice as one input.
    example = tuple(torch.ones(EXAMPLE_ROWS, dtype=torch.int64) for _ in range(2))
    if n_features:
        example += (torch.zeros(EXAMPLE_ROWS, n_features),)
    return _exported_network(
        _PairScores(est.module_),
        example,
        ["user_codes", "item_codes", "features"][: len(example)],
        "scores",
        ({0: torch.export.Dim.DYNAMIC},) * len(example),
        opset,
        f"the network of {_described(est)}",
    )


def _features_input(graph, est, target):
    """The ``features`` input, scaled as ``predict`` scales the side features
    and put in the order the network reads them."""
    order, names = _feature_order(est)
    values = graph.node("Cast", ["features"], "features_float64", to=_DOUBLE)
    if order != sorted(order):
        order = graph.constant("feature_order", np.asarray(order, dtype=np.int64))
        values = graph.node("Gather", [values, order], "features_ordered", axis=1)
    mean = graph.constant("feature_mean", est._feature_mean.astype(np.float64))
    scale = graph.constant("feature_scale", est._feature_scale.astype(np.float64))
    values = graph.node("Sub", [values, mean], "features_centred")
    values = graph.node("Div", [values, scale], "features_scaled")
    graph.node("Cast", [values], target, to=_FLOAT)
    return graph.onnx.helper.make_tensor_value_info(
        "features",
        _FLOAT,
        ["n_rows", len(names)],
        doc_string=f"Side features, columns {', '.join(names)}.",
    )


def _feature_order(est):
    """For each side feature the network reads, its column among the side
    features of ``X`` in ``X``'s order; and the names of those columns."""
    model_order = list(est._feature_names)
    if hasattr(est, "feature_names_in_"):
        candidates = [list(est.feature_names_in_)]
    else:
        # An array's columns are named by position; a DataFrame's whose names
        # are not all strings by their names, often its positions too.
        candidates = [None, [str(j) for j in range(est.n_features_in_)]]
    for names in candidates:
        x_order = _side_feature_names(est, names)
        if x_order is not None and sorted(x_order) == sorted(model_order):
            return [x_order.index(name) for name in model_order], x_order
    raise ValueError(
        f"to_onnx cannot tell the order of the side-feature columns "
        f"{model_order} in the X of fit; fit the model on a DataFrame with "
        "string column names, or on an array."
    )


def _side_feature_names(est, names):
    """The names of ``X``'s columns other than the ID columns, in ``X``'s
    order, if its columns are ``names``; None if they cannot be."""
    n_columns = est.n_features_in_
    try:
        ids = {
            column_position(est, param, names, n_columns)
            for param in ("user_col", "item_col")
        }
    except ValueError:
        return None
    return [column_name(names, j) for j in range(n_columns) if j not in ids]


def _predictions(graph, est, scores):
    """``predict``'s rescaling of the network's ``scores``, in float64: the
    ``predictions`` output."""
    if est._implicit():
        graph.node("Cast", [scores], "predictions", to=_DOUBLE)
    else:
        values = graph.node("Cast", [scores], "scores_float64", to=_DOUBLE)
        y_scale = graph.constant("y_scale", np.float64(est._y_scale))
        y_mean = graph.constant("y_mean", np.float64(est._y_mean))
        low = graph.constant("rating_min", np.float64(est.rating_range_[0]))
        high = graph.constant("rating_max", np.float64(est.rating_range_[1]))
        values = graph.node("Mul", [values, y_scale], "scores_scaled")
        values = graph.node("Add", [values, y_mean], "ratings")
        graph.node("Clip", [values, low, high], "predictions")
    return graph.onnx.helper.make_tensor_value_info("predictions", _DOUBLE, ["n_rows"])


# -- SequentialRecommender: recommend_next for one session ------------------------


class _SessionScores(nn.Module):
    """Every item's score after a window of table codes, shape ``(1, width)``
    without padding: a session's, as ``recommend_next`` reads it."""

    def __init__(self, module):
        super().__init__()
        self.module = copy.deepcopy(module).cpu().eval()

    def forward(self, window):
        if isinstance(self.module, RecurrentEncoder):
            # Its forward packs the windows to skip their padding, which
            # torch's exporter cannot trace; a session's window has none, so
            # the GRU runs over it whole (dropout is off in evaluation).
            states = self.module.gru(self.module.item_embedding(window))[0]
        else:
            states = self.module(window, window == PAD_CODE)
        return (states[:, -1] @ output_table(self.module).T)[0]


def _session_model(est, opset, n, onnx):
    """The graph of ``est.recommend_next([history], n)``: the history's IDs
    in, its window, the network, the top ``n`` items out."""
    graph = _GraphBuilder(onnx)
    history = graph.id_input("history", "codes", est.items_, "item_col", est, "length")
    session = _session_codes(graph, "codes")
    _window(graph, session, est.max_len, "network/window")
    graph.place_network()
    outputs = _top_items(graph, est, session, "network/scores", n)
    return graph.model(_session_network(est, opset), [history], outputs, opset, est)


def _session_network(est, opset):
    """The ONNX model of ``est``'s encoder and output table, on one window."""
    width = min(est.max_len, EXAMPLE_ROWS)
    example = torch.arange(START_CODE, START_CODE + width)[None, :]
    dynamic = {1: torch.export.Dim.DYNAMIC} if width > 1 else {}
    return _exported_network(
        _SessionScores(est.module_),
        (example,),
        ["window"],
        "scores",
        (dynamic,),
        opset,
        f"the sequence encoder of {_described(est)}",
    )


def _session_codes(graph, codes):
    """The codes of a session's known items (1 to n), consecutive repeats
    read once, as ``recommend_next`` reads a history."""
    zero = graph.constant("zero", np.zeros(1, dtype=np.int64))
    known = graph.node("Greater", [codes, zero], "known")
    codes = graph.node("Compress", [codes, known], "known_codes", axis=0)
    end = graph.constant("minus_one", np.array([-1], dtype=np.int64))
    earlier = graph.node("Slice", [codes, zero, end, zero], "earlier_codes")
    # A known code is never 0, so the first item always counts.
    previous = graph.node("Concat", [zero, earlier], "previous_codes", axis=0)
    repeat = graph.node("Equal", [codes, previous], "repeats")
    new = graph.node("Not", [repeat], "not_repeats")
    return graph.node("Compress", [codes, new], "session_codes", axis=0)


def _window(graph, session, max_len, target):
    """The latest ``max_len`` table codes of the start code and the session's
    items, as one row: the window ``padded_windows`` makes, without padding."""
    offset = graph.constant(
        "item_code_offset", np.array(FIRST_ITEM_CODE - 1, dtype=np.int64)
    )
    items = graph.node("Add", [session, offset], "table_codes")
    start = graph.constant("start_code", np.array([START_CODE], dtype=np.int64))
    window = graph.node("Concat", [start, items], "full_window", axis=0)
    first = graph.constant("window_start", np.array([-max_len], dtype=np.int64))
    last = graph.constant("window_end", np.array([np.iinfo(np.int64).max]))
    window = graph.node("Slice", [window, first, last], "latest_window")
    axis = graph.constant("batch_axis", np.array([0], dtype=np.int64))
    graph.node("Unsqueeze", [window, axis], target)


def _top_items(graph, est, session, scores, n):
    """The ``n`` best items of the session and their scores, as
    ``recommend_next`` ranks them."""
    scores = _session_scores(graph, est, session, scores)
    k = min(n, len(est.items_))
    top = graph.constant("k", np.array([k], dtype=np.int64))
    graph.node("TopK", [scores, top], ["scores", "top_rows"], axis=0)
    vocabulary = graph.constant("item_ids", _id_values(est.items_, "item_col", est))
    graph.node("Gather", [vocabulary, "top_rows"], "items", axis=0)
    helper = graph.onnx.helper
    return [
        helper.make_tensor_value_info("items", _id_type(est.items_), [k]),
        helper.make_tensor_value_info("scores", _FLOAT, [k]),
    ]


def _session_scores(graph, est, session, scores):
    """The network's ``scores`` of every item, the popularity of the items
    for a session without known items, and -inf for the session's own."""
    popularity = est._popularity(torch.arange(1, len(est.items_) + 1)).numpy()
    popularity = graph.constant("popularity", popularity.astype(np.float32))
    size = graph.node("Size", [session], "session_size")
    none = graph.constant("no_items", np.array(0, dtype=np.int64))
    empty = graph.node("Equal", [size, none], "empty_session")
    scores = graph.node("Where", [empty, popularity, scores], "session_scores")
    one = graph.constant("one", np.array(1, dtype=np.int64))
    rows = graph.node("Sub", [session, one], "session_rows")
    shape = graph.node("Shape", [rows], "session_shape")
    minus_inf = graph.constant("minus_inf", np.array(-np.inf, dtype=np.float32))
    excluded = graph.node("Expand", [minus_inf, shape], "excluded_scores")
    return graph.node(
        "ScatterElements", [scores, rows, excluded], "unseen_scores", axis=0
    )


# -- exporting the network, building and saving the graph -------------------------


def _exported_network(network, example, input_names, output_name, dynamic, opset, what):
    """The ONNX model of ``network`` traced on ``example`` by torch's exporter."""
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                network,
                example,
                dynamo=True,
                opset_version=opset,
                input_names=input_names,
                output_names=[output_name],
                dynamic_shapes=dynamic,
                verbose=False,
            )
    except Exception as exc:
        raise ValueError(
            f"torch's ONNX exporter (torch.onnx.export with dynamo=True) cannot "
            f"export {what}: {_first_cause(exc)}. Its forward must run the same "
            "operations whatever the values of its inputs (no .item(), no "
            ".tolist(), no Python branch on a tensor's values)."
        ) from exc
    return _without_trace_metadata(program.model_proto)


def _first_cause(exc):
    """The type and first line of the error at the root of ``exc``'s chain:
    what went wrong, where the exporter's own error says at which step."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[0].strip().rstrip(':.')}"


@contextmanager
def _quiet_exporter():
    """Silence the warnings and log lines of torch's exporter, which are about
    its own internals (deprecations, torchvision operators it skips), not
    about the model; a failure still raises."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _without_trace_metadata(model):
    """``model`` without the tracing notes the exporter puts on each node
    (Python stack traces, which name the files of this machine)."""
    for entry in [*model.graph.node, *model.graph.value_info]:
        del entry.metadata_props[:]
    return model


def _described(est):
    if est.module is not None:
        return f"{type(est).__name__}(module={est.module!r})"
    return f"{type(est).__name__}(architecture={est.architecture!r})"


def _id_values(vocabulary, param, est):
    """The IDs of a vocabulary as a string or an int64 array."""
    values = vocabulary.tolist()
    if _id_type(vocabulary) == _STRING:
        return np.asarray(values, dtype=object)
    if all(isinstance(value, Integral) for value in values):
        return np.asarray(values, dtype=np.int64)
    # Float IDs, as from an array that also holds the side features.
    floats = np.asarray(values, dtype=np.float64)
    integers = floats.astype(np.int64)
    if (integers != floats).any():
        raise ValueError(
            f"to_onnx maps IDs that are integers or strings; the column "
            f"{param}={getattr(est, param)!r} holds IDs such as "
            f"{floats[integers != floats][:3].tolist()}."
        )
    return integers


def _id_type(vocabulary):
    """The ONNX element type of the raw IDs: string or int64."""
    if all(isinstance(value, str) for value in vocabulary.tolist()):
        return _STRING
    return _INT64


class _GraphBuilder:
    """The nodes and initializers of the graph around the network: those
    added before ``place_network()`` run before it, the others after."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes = []
        self.initializers = []
        self.network_position = None

    def constant(self, name, value):
        self.initializers.append(
            self.onnx.numpy_helper.from_array(np.asarray(value), name)
        )
        return name

    def node(self, op_type, inputs, outputs, **attributes):
        """Add a node; return its output name (a list of them if several)."""
        names = [outputs] if isinstance(outputs, str) else outputs
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, names, **attributes)
        )
        return outputs

    def place_network(self):
        self.network_position = len(self.nodes)

    def id_input(self, name, target, vocabulary, param, est, length):
        """An input of raw IDs of dimension ``length``, mapped to codes
        ``target``: ``1..n`` in the order of ``vocabulary``, ``0`` for an ID
        not in it."""
        values = _id_values(vocabulary, param, est)
        keys = "keys_strings" if _id_type(vocabulary) == _STRING else "keys_int64s"
        self.node(
            "LabelEncoder",
            [name],
            target,
            domain="ai.onnx.ml",
            default_int64=UNKNOWN_CODE,
            values_int64s=list(range(1, len(values) + 1)),
            **{keys: values.tolist()},
        )
        return self.onnx.helper.make_tensor_value_info(
            name, _id_type(vocabulary), [length]
        )

    def model(self, network, inputs, outputs, opset, est):
        """The model of these nodes around ``network``, whose names get the
        prefix ``network/``."""
        helper = self.onnx.helper
        network = self.onnx.compose.add_prefix(network, "network/")
        before = self.nodes[: self.network_position]
        after = self.nodes[self.network_position :]
        graph = helper.make_graph(
            [*before, *network.graph.node, *after],
            f"skrec_{type(est).__name__}",
            inputs,
            outputs,
            initializer=[*network.graph.initializer, *self.initializers],
            value_info=network.graph.value_info,
        )
        opsets = {entry.domain: entry.version for entry in network.opset_import}
        opsets.update({"": opset, "ai.onnx.ml": ML_OPSET})
        return helper.make_model(
            graph,
            opset_imports=[
                helper.make_opsetid(domain, version)
                for domain, version in opsets.items()
            ],
            ir_version=network.ir_version,
            functions=network.functions,
            producer_name="skrec",
            producer_version=__version__,
            doc_string=f"{type(est).__name__} exported by skrec.export.to_onnx.",
        )


def _save(model, path):
    """Write ``model`` to ``path`` through a temporary file beside it, so that
    ``path`` is either the whole model or untouched."""
    path = os.fspath(path)
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "xb") as file:
            file.write(model.SerializeToString())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
