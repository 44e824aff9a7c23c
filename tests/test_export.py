"""ONNX export: the graphs give what predict and recommend_next give, and serve
in a process that imports neither torch nor skrec."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from torch import nn

import skrec._export
from skrec import (
    MatrixFactorization,
    NeuralRecommender,
    PopularityRecommender,
    SequentialRecommender,
)
from skrec.datasets import make_ratings, make_sequences
from skrec.export import to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ATOL = 1e-4
SMALL = dict(embedding_dim=8, max_iter=3, random_state=0, n_jobs=1)
SEQUENCES = dict(
    embedding_dim=8,
    n_layers=1,
    max_len=6,
    max_iter=2,
    time_col="timestamp",
    user_col="user_id",
    item_col="item_id",
    random_state=0,
    n_jobs=1,
)
UNKNOWN = 10**6


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=60, n_items=40, n_ratings=900, random_state=0)


@pytest.fixture(scope="module")
def sequences():
    return make_sequences(n_users=80, n_items=25, random_state=0)


@pytest.fixture(scope="module")
def featured(ratings):
    """String IDs, a declared user feature, a declared item feature and a
    per-row feature, in an order of columns other than the network's."""
    X, y = ratings
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "hour": rng.integers(0, 24, len(X)).astype(float),
            "user": [f"user {u}" for u in X[:, 0]],
            "genre": rng.integers(0, 2, 40)[X[:, 1]].astype(float),
            "item": [f"item {i}" for i in X[:, 1]],
            "age": rng.integers(18, 70, 60)[X[:, 0]].astype(float),
        }
    ), y


def run(model, **inputs):
    session = ort.InferenceSession(model.SerializeToString())
    return session.run(None, inputs)


def with_unknown(rows):
    """``rows`` followed by an unknown user, an unknown item and both."""
    known_user, known_item = rows[0]
    unknown = [[UNKNOWN, known_item], [known_user, UNKNOWN], [-1, -1]]
    return np.concatenate([rows, np.asarray(unknown, dtype=rows.dtype)])


PAIR_MODELS = {
    "neumf": lambda: NeuralRecommender(hidden_layer_sizes=(8,), **SMALL),
    "mlp": lambda: NeuralRecommender(architecture="mlp", **SMALL),
    "gmf": lambda: NeuralRecommender(architecture="gmf", **SMALL),
    "mf": lambda: NeuralRecommender(architecture="mf", **SMALL),
    "svdpp": lambda: NeuralRecommender(architecture="svdpp", **SMALL),
    "svdpp_user": lambda: NeuralRecommender(architecture="svdpp_user", **SMALL),
    "MatrixFactorization": lambda: MatrixFactorization(**SMALL),
    "implicit bpr": lambda: MatrixFactorization(loss="bpr", **SMALL),
}


@pytest.mark.parametrize("name", PAIR_MODELS)
def test_predictions_match_predict(ratings, name):
    X, y = ratings
    est = PAIR_MODELS[name]().fit(X, y)
    rows = with_unknown(X[:200])
    model = to_onnx(est)
    assert [put.name for put in model.graph.input] == ["users", "items"]
    (predictions,) = run(model, users=rows[:, 0], items=rows[:, 1])
    assert predictions.dtype == np.float64
    assert_allclose(predictions, est.predict(rows), rtol=0, atol=ATOL)


@pytest.mark.parametrize("estimator", [NeuralRecommender, MatrixFactorization])
def test_string_ids_and_side_features(featured, estimator):
    X, y = featured
    est = estimator(
        user_col="user",
        item_col="item",
        user_features=["age"],
        item_features=["genre"],
        **SMALL,
    ).fit(X, y)
    new = pd.DataFrame(
        {
            "hour": [3.0, 4.0, 5.0],
            "user": ["a new user", "user 1", "another"],
            "genre": [1.0, 0.0, 1.0],
            "item": ["item 1", "a new item", "item 2"],
            "age": [33.0, 44.0, 25.0],
        }
    )
    rows = pd.concat([X[:100], new], ignore_index=True)
    model = to_onnx(est)
    features = model.graph.input[2]
    assert "hour, genre, age" in features.doc_string
    (predictions,) = run(
        model,
        users=rows["user"].to_numpy(),
        items=rows["item"].to_numpy(),
        features=rows[["hour", "genre", "age"]].to_numpy(np.float32),
    )
    assert_allclose(predictions, est.predict(rows), rtol=0, atol=ATOL)


def test_float_ids_of_an_array_are_int64_inputs(ratings):
    X, y = ratings
    hour = np.arange(len(X), dtype=float) % 24
    est = MatrixFactorization(**SMALL).fit(np.c_[X.astype(float), hour], y)
    assert est.users_.dtype == np.float64
    rows = with_unknown(X[:50])
    (predictions,) = run(
        to_onnx(est),
        users=rows[:, 0],
        items=rows[:, 1],
        features=np.ones((len(rows), 1), dtype=np.float32),
    )
    expected = est.predict(np.c_[rows.astype(float), np.ones(len(rows))])
    assert_allclose(predictions, expected, rtol=0, atol=ATOL)


def test_fractional_ids_are_refused(ratings):
    X, y = ratings
    est = MatrixFactorization(max_iter=1, random_state=0).fit(X / 2, y)
    with pytest.raises(ValueError, match=r"integers or strings.*user_col=0"):
        to_onnx(est)


def test_handle_unknown_error_scores_unknown_ids_as_fallback(ratings):
    X, y = ratings
    est = MatrixFactorization(handle_unknown="error", **SMALL).fit(X, y)
    rows = with_unknown(X[:5])
    with pytest.raises(ValueError, match="not seen in fit"):
        est.predict(rows)
    (predictions,) = run(to_onnx(est), users=rows[:, 0], items=rows[:, 1])
    fallback = est.set_params(handle_unknown="fallback").predict(rows)
    assert_allclose(predictions, fallback, rtol=0, atol=ATOL)


def test_target_opset(ratings):
    X, y = ratings
    est = MatrixFactorization(**SMALL).fit(X, y)
    model = to_onnx(est, target_opset=20)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] == 20 and opsets["ai.onnx.ml"] == 3
    (predictions,) = run(model, users=X[:20, 0], items=X[:20, 1])
    assert_allclose(predictions, est.predict(X[:20]), rtol=0, atol=ATOL)


def histories(items):
    """Sessions of item IDs ``items``: short, empty, unknown IDs only,
    repeats around an unknown ID, longer than max_len, every item."""
    return [
        [items[3], items[7]],
        [],
        [UNKNOWN],
        [items[1], items[1], UNKNOWN, items[1], items[2], items[1]],
        [items[j % 10] for j in range(15)],
        list(items),
    ]


def assert_same_recommendations(model, est, history, n):
    ids = np.asarray(history, dtype=est.items_.dtype)
    items, scores = run(model, history=ids)
    expected_items, expected_scores = est.recommend_next(
        [history], n, return_scores=True
    )
    # recommend_next orders equal scores as torch.topk does, the graph by
    # position in items_.
    position = np.searchsorted(est.items_, expected_items[0])
    order = np.lexsort((position, -expected_scores[0]))
    assert_array_equal(items, expected_items[0][order])
    assert_allclose(scores, expected_scores[0][order], rtol=0, atol=ATOL)


@pytest.mark.parametrize("architecture", ["sasrec", "gru", "cnn"])
def test_recommendations_match_recommend_next(sequences, architecture):
    est = SequentialRecommender(architecture=architecture, **SEQUENCES)
    est.fit(sequences)
    n_items = len(est.items_)
    model = to_onnx(est, n=n_items + 5)
    assert [put.name for put in model.graph.output] == ["items", "scores"]
    for history in histories(est.items_):
        assert_same_recommendations(model, est, history, n_items + 5)


def test_string_item_ids_and_top_n(sequences):
    X = sequences.assign(item_id=[f"item {i}" for i in sequences["item_id"]])
    est = SequentialRecommender(**SEQUENCES).fit(X)
    model = to_onnx(est, n=3)
    items, scores = run(model, history=np.array(["item 3", "unknown", "item 4"]))
    assert items.shape == scores.shape == (3,)
    assert scores.dtype == np.float32
    assert_same_recommendations(model, est, ["item 3", "unknown", "item 4"], 3)


class DotProduct(nn.Module):
    """A custom network that torch's exporter traces."""

    def __init__(self, n_users, n_items, n_features):
        super().__init__()
        self.users = nn.Embedding(n_users, 4)
        self.items = nn.Embedding(n_items, 4)

    def forward(self, users, items, features=None):
        return (self.users(users) * self.items(items)).sum(dim=1)


class ValueDependent(DotProduct):
    """A custom network whose operations depend on the values of its input."""

    def forward(self, users, items, features=None):
        scores = super().forward(users, items)
        return scores if users.max() > 10 else -scores


def test_custom_module_is_exported(ratings):
    X, y = ratings
    est = NeuralRecommender(module=DotProduct, **SMALL).fit(X, y)
    rows = with_unknown(X[:30])
    (predictions,) = run(to_onnx(est), users=rows[:, 0], items=rows[:, 1])
    assert_allclose(predictions, est.predict(rows), rtol=0, atol=ATOL)


def test_untraceable_module_raises_and_writes_nothing(ratings, tmp_path):
    X, y = ratings
    est = NeuralRecommender(module=ValueDependent, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="cannot export the network of"):
        to_onnx(est, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(ratings, tmp_path, monkeypatch):
    X, y = ratings
    est = MatrixFactorization(**SMALL).fit(X, y)

    def disk_full(source, target):
        raise OSError("No space left on device")

    monkeypatch.setattr(skrec._export.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        to_onnx(est, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_writes_the_model_to_path(ratings, tmp_path):
    X, y = ratings
    est = MatrixFactorization(**SMALL).fit(X, y)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"an older model")
    model = to_onnx(est, str(path))
    assert path.read_bytes() == model.SerializeToString()
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    "estimator",
    [NeuralRecommender(), MatrixFactorization(), SequentialRecommender()],
    ids=type,
)
def test_unfitted_estimator(estimator):
    with pytest.raises(NotFittedError):
        to_onnx(estimator)


@pytest.mark.parametrize("estimator", [PopularityRecommender(), LinearRegression()])
def test_unsupported_estimator(estimator):
    with pytest.raises(TypeError, match="converts a NeuralRecommender"):
        to_onnx(estimator)


@pytest.mark.parametrize("target_opset", [17, "18", 10**3, True])
def test_invalid_target_opset(ratings, target_opset):
    X, y = ratings
    est = MatrixFactorization(max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="target_opset must be an int from 18"):
        to_onnx(est, target_opset=target_opset)


def test_invalid_n(sequences):
    est = SequentialRecommender(**{**SEQUENCES, "max_iter": 1}).fit(sequences)
    with pytest.raises(ValueError, match="n must be a positive int"):
        to_onnx(est, n=0)


def test_missing_onnx_names_the_extra(ratings, monkeypatch):
    X, y = ratings
    est = MatrixFactorization(max_iter=1, random_state=0).fit(X, y)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "skrec\[onnx\]"'):
        to_onnx(est)


def test_importing_skrec_does_not_import_onnx():
    code = (
        "import sys, skrec, skrec.export; "
        "print(sorted(m for m in ('onnx', 'onnxscript', 'onnxruntime') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


SERVE = """
    import sys

    import numpy as np
    import onnxruntime as ort

    model, folder = sys.argv[1:]
    session = ort.InferenceSession(model)
    inputs = {put.name: np.load(f"{folder}/{put.name}.npy") for put in
              session.get_inputs()}
    outputs = session.run(None, inputs)
    for put, value in zip(session.get_outputs(), outputs):
        expected = np.load(f"{folder}/expected_{put.name}.npy")
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, expected, rtol=0, atol=1e-4)
        else:
            np.testing.assert_array_equal(value, expected)
    assert "torch" not in sys.modules, "torch was imported"
    assert "skrec" not in sys.modules, "skrec was imported"
    print("served", ", ".join(put.name for put in session.get_outputs()))
"""


def serve_in_subprocess(model, inputs, expected, folder):
    """Run ``model`` with onnxruntime in a fresh Python process, which checks
    its outputs and that it imported neither torch nor skrec."""
    to_onnx_path = folder / "model.onnx"
    to_onnx_path.write_bytes(model.SerializeToString())
    for name, values in {**inputs, **expected}.items():
        np.save(folder / f"{name}.npy", values)
    script = folder / "serve.py"
    script.write_text(textwrap.dedent(SERVE))
    result = subprocess.run(
        [sys.executable, str(script), str(to_onnx_path), str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_rating_graph_serves_without_torch_or_skrec(featured, tmp_path):
    X, y = featured
    est = NeuralRecommender(
        user_col="user", item_col="item", user_features=["age"], **SMALL
    ).fit(X, y)
    rows = X[:100].assign(user=["a new user"] + list(X["user"][1:100]))
    inputs = {
        "users": rows["user"].to_numpy(dtype=str),
        "items": rows["item"].to_numpy(dtype=str),
        "features": rows[["hour", "genre", "age"]].to_numpy(np.float32),
    }
    expected = {"expected_predictions": est.predict(rows)}
    served = serve_in_subprocess(to_onnx(est), inputs, expected, tmp_path)
    assert served == "served predictions"


def test_session_graph_serves_without_torch_or_skrec(sequences, tmp_path):
    est = SequentialRecommender(**SEQUENCES).fit(sequences)
    history = [int(est.items_[2]), UNKNOWN, int(est.items_[5])]
    items, scores = est.recommend_next([history], n=4, return_scores=True)
    inputs = {"history": np.asarray(history, dtype=np.int64)}
    expected = {"expected_items": items[0], "expected_scores": scores[0]}
    served = serve_in_subprocess(to_onnx(est, n=4), inputs, expected, tmp_path)
    assert served == "served items, scores"
