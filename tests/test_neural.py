import copy
import io
import math
import pickle
import re
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skrec import MatrixFactorization, NeuralRecommender, _base, _neural
from skrec._engine import _training
from skrec.datasets import make_ratings

SMALL = dict(
    embedding_dim=8,
    hidden_layer_sizes=(16,),
    alpha=5.0,
    batch_size=256,
    max_iter=30,
    random_state=0,
)


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(
        n_users=120,
        n_items=80,
        n_ratings=3000,
        noise=0.3,
        as_frame=True,
        random_state=0,
    )
    return X, y


@pytest.fixture(scope="module")
def fitted(ratings):
    X, y = ratings
    return NeuralRecommender(**SMALL).fit(X, y)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# -- learning -------------------------------------------------------------------


def test_fit_learns_more_than_the_global_mean(ratings):
    X, y = ratings
    X_train, X_test = X.iloc[:2500], X.iloc[2500:]
    y_train, y_test = y.iloc[:2500], y.iloc[2500:]
    est = NeuralRecommender(**SMALL).fit(X_train, y_train)
    assert rmse(est.predict(X_test), y_test) < 0.9 * rmse(y_train.mean(), y_test)


def test_fitted_attributes(fitted, ratings):
    X, _ = ratings
    assert np.array_equal(fitted.users_, np.sort(X.user_id.unique()))
    assert np.array_equal(fitted.items_, np.sort(X.item_id.unique()))
    assert fitted.n_features_in_ == 2
    assert list(fitted.feature_names_in_) == ["user_id", "item_id"]
    assert fitted.device_ == torch.device("cpu")
    assert fitted.n_iter_ == len(fitted.loss_curve_) == len(fitted.validation_scores_)
    assert fitted.best_validation_score_ == max(fitted.validation_scores_)
    assert fitted.best_loss_ is None
    assert fitted.rating_range_ == (1.0, 5.0)


def test_predictions_are_clipped_to_the_rating_range(fitted, ratings):
    X, _ = ratings
    predictions = fitted.predict(X)
    assert predictions.min() >= 1.0 and predictions.max() <= 5.0


def test_training_loss_falls(ratings):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "early_stopping": False, "max_iter": 5})
    with pytest.warns(ConvergenceWarning, match="max_iter=5"):
        est.fit(X, y)
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert est.validation_scores_ is None
    assert est.best_loss_ == min(est.loss_curve_)


def test_early_stopping_keeps_the_best_epoch(ratings):
    X, y = ratings
    # Without averaging, whose smoothed scores keep creeping up by less than
    # tol, the best epoch is the last one that improved by tol.
    params = {"n_iter_no_change": 2, "max_iter": 200, "weight_averaging": None}
    est = NeuralRecommender(**{**SMALL, **params}).fit(X, y)
    assert est.n_iter_ < 200
    best_epoch = int(np.argmax(est.validation_scores_))
    # Training ran n_iter_no_change + 1 epochs past the best one, then rolled back.
    assert est.n_iter_ - 1 - best_epoch == 3


def test_adaptive_learning_rate_lowers_the_rate_instead_of_stopping(ratings):
    X, y = ratings
    params = {**SMALL, "n_iter_no_change": 2, "max_iter": 200, "verbose": True}
    constant = NeuralRecommender(**params).fit(X, y)
    output = io.StringIO()
    with redirect_stdout(output):
        adaptive = NeuralRecommender(**{**params, "learning_rate": "adaptive"})
        adaptive.fit(X, y)
    lowered = re.findall(r"Learning rate lowered to (\S+)", output.getvalue())
    # 1e-3 / 5**k stays above 1e-6 for k <= 4.
    assert 1 <= len(lowered) <= 4
    assert [float(rate) for rate in lowered] == pytest.approx(
        [1e-3 / 5**k for k in range(1, len(lowered) + 1)]
    )
    assert adaptive.n_iter_ > constant.n_iter_
    # Both runs share the epochs before the first stall.
    stall = constant.n_iter_
    assert adaptive.validation_scores_[:stall] == constant.validation_scores_
    assert adaptive.best_validation_score_ >= constant.best_validation_score_


@pytest.mark.parametrize("solver", ["adamw", "sgd", "adagrad"])
def test_solvers_fit(ratings, solver):
    X, y = ratings
    rate = {"adamw": 1e-3, "sgd": 0.05, "adagrad": 0.05}[solver]
    est = NeuralRecommender(
        **{**SMALL, "solver": solver, "learning_rate_init": rate, "max_iter": 15}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert rmse(est.predict(X), y) < 0.9 * rmse(np.full(len(y), y.mean()), y)


def test_alpha_per_table(ratings):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "alpha": {"user": 500.0, "item": 0.0}})
    est.fit(X, y)
    user_norm = est.module_.user_table.weight[1:].norm(dim=1).mean()
    item_norm = est.module_.item_table.weight[1:].norm(dim=1).mean()
    assert user_norm < 0.5 * item_norm


@pytest.mark.parametrize(
    "alpha", [{"user": 1.0}, {"user": 1.0, "item": -1.0}, {"user": 1, "items": 2}]
)
def test_bad_alpha_dict_is_rejected(ratings, alpha):
    X, y = ratings
    with pytest.raises(ValueError, match='alpha as a dict must map "user" and "item"'):
        NeuralRecommender(alpha=alpha).fit(X, y)


@pytest.mark.parametrize(
    "architecture", ["neumf", "mlp", "gmf", "mf", "svdpp", "svdpp_user"]
)
def test_every_architecture_learns_and_recommends(ratings, architecture):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "architecture": architecture}).fit(X, y)
    assert rmse(est.predict(X), y) < 0.9 * rmse(np.full(len(y), y.mean()), y)
    assert est.recommend(X["user_id"].iloc[:3], n=5).shape == (3, 5)


def test_convergence_warning_names_the_estimator(ratings):
    X, y = ratings
    with pytest.warns(ConvergenceWarning, match="^MatrixFactorization stopped at max"):
        MatrixFactorization(max_iter=1, early_stopping=False).fit(X, y)


def test_matrix_factorization_is_neural_recommender_with_mf(ratings):
    X, y = ratings
    params = {key: SMALL[key] for key in ("embedding_dim", "alpha", "batch_size")}
    mf = MatrixFactorization(**params, max_iter=10, random_state=0).fit(X, y)
    neural = NeuralRecommender(
        **params,
        architecture="mf",
        learning_rate_init=5e-3,
        weight_averaging=None,
        max_iter=10,
        random_state=0,
    ).fit(X, y)
    np.testing.assert_array_equal(mf.predict(X), neural.predict(X))
    assert "hidden_layer_sizes" not in mf.get_params()
    assert mf.module_.mlp is None
    assert rmse(mf.predict(X), y) < 0.9 * rmse(np.full(len(y), y.mean()), y)


@pytest.mark.parametrize("architecture", ["svdpp", "svdpp_user"])
def test_svdpp_grows_its_history_tables_in_partial_fit(ratings, architecture):
    X, y = ratings
    first = X["user_id"] < X["user_id"].median()
    est = NeuralRecommender(**{**SMALL, "architecture": architecture})
    with warnings.catch_warnings():
        # torch's beta warning on sparse CSR tensors is not the user's concern.
        warnings.simplefilter("error")
        est.partial_fit(X[first], y[first]).partial_fit(X[~first], y[~first])
    tables = est.module_.history_tables
    # The item table is summed over each user's items, the user table over
    # each item's users, which "svdpp_user" has not.
    assert len(tables["item"]) == len(est.items_) + 1
    if architecture == "svdpp":
        assert len(tables["user"]) == len(est.users_) + 1
    else:
        assert set(tables) == {"item"}
    # Every pair of both calls is in the histories.
    assert len(est.module_.user_history) == est.user_items_.nnz
    assert rmse(est.predict(X), y) < rmse(np.full(len(y), y.mean()), y)


def test_weight_averaging_auto_skips_large_networks(monkeypatch):
    est = NeuralRecommender(**SMALL)
    monkeypatch.setattr(_neural, "AUTO_AVERAGING_MAX_WEIGHTS", 10)
    assert est._weight_averaging(torch.nn.Linear(4, 4)) is None
    monkeypatch.setattr(_neural, "AUTO_AVERAGING_MAX_WEIGHTS", 20)
    assert est._weight_averaging(torch.nn.Linear(4, 4)) == 0.99


def test_weight_averaging_predicts_with_the_moving_average(ratings):
    X, y = ratings
    params = {**SMALL, "max_iter": 3, "early_stopping": False}
    plain = NeuralRecommender(**params, weight_averaging=None).fit(X, y)
    # Small networks average by default.
    auto = NeuralRecommender(**params).fit(X, y)
    averaged = NeuralRecommender(**params, weight_averaging=0.99).fit(X, y)
    np.testing.assert_array_equal(auto.predict(X), averaged.predict(X))
    # A decay of 0 averages nothing: the last weights.
    last = NeuralRecommender(**params, weight_averaging=0.0).fit(X, y)
    np.testing.assert_allclose(last.predict(X), plain.predict(X), rtol=1e-6)
    assert not np.array_equal(averaged.predict(X), plain.predict(X))


def test_same_random_state_gives_identical_predictions(ratings):
    X, y = ratings
    first = NeuralRecommender(**{**SMALL, "dropout": 0.2}).fit(X, y).predict(X)
    second = NeuralRecommender(**{**SMALL, "dropout": 0.2}).fit(X, y).predict(X)
    other = NeuralRecommender(**{**SMALL, "random_state": 1}).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_fit_does_not_change_torch_global_random_state(ratings):
    X, y = ratings
    before = torch.get_rng_state()
    NeuralRecommender(**{**SMALL, "max_iter": 2}).fit(X, y)
    assert torch.equal(before, torch.get_rng_state())


def test_verbose_prints_one_line_per_epoch(ratings):
    X, y = ratings
    out = io.StringIO()
    with redirect_stdout(out):
        est = NeuralRecommender(**{**SMALL, "verbose": True}).fit(X, y)
    lines = out.getvalue().splitlines()
    assert len(lines) == est.n_iter_
    pattern = (
        r"Epoch 1: loss=[\d.]+, validation score=-?[\d.]+, [\d.]+s, [\d,]+ samples/s"
    )
    assert re.fullmatch(pattern, lines[0])


# -- IDs and columns ------------------------------------------------------------


def test_string_ids_give_the_same_model_as_int_ids(ratings):
    X, y = ratings
    # Zero-padding keeps the sort order of the IDs, hence the embedding rows.
    X_str = X.assign(
        user_id="u" + X.user_id.astype(str).str.zfill(4),
        item_id="i" + X.item_id.astype(str).str.zfill(4),
    )
    np.testing.assert_allclose(
        NeuralRecommender(**SMALL).fit(X_str, y).predict(X_str),
        NeuralRecommender(**SMALL).fit(X, y).predict(X),
    )


def test_ids_need_not_be_contiguous(ratings):
    X, y = ratings
    X_sparse_ids = X.assign(user_id=X.user_id * 1000 + 7, item_id=X.item_id - 500)
    np.testing.assert_allclose(
        NeuralRecommender(**SMALL).fit(X_sparse_ids, y).predict(X_sparse_ids),
        NeuralRecommender(**SMALL).fit(X, y).predict(X),
    )


def test_columns_chosen_by_name_in_any_order(ratings):
    X, y = ratings
    swapped = X[["item_id", "user_id"]]
    est = NeuralRecommender(**SMALL, user_col="user_id", item_col="item_id")
    np.testing.assert_allclose(
        est.fit(swapped, y).predict(swapped),
        NeuralRecommender(**SMALL).fit(X, y).predict(X),
    )


def test_numpy_and_list_input_match_dataframe(ratings, fitted):
    X, _ = ratings
    expected = fitted.predict(X)
    with warnings.catch_warnings():
        # Fitted with names, predicting without: scikit-learn warns, rightly.
        warnings.simplefilter("ignore", UserWarning)
        np.testing.assert_allclose(fitted.predict(X.to_numpy()), expected)
        np.testing.assert_allclose(fitted.predict(X.to_numpy().tolist()), expected)


def test_side_features_are_used(ratings):
    X, y = ratings
    rng = np.random.RandomState(0)
    # A feature that explains part of the rating the IDs cannot.
    signal = rng.normal(size=len(X))
    y_with_signal = y + signal
    X_with_feature = X.assign(signal=signal)
    train, test = slice(0, 2500), slice(2500, None)
    without = NeuralRecommender(**SMALL).fit(X.iloc[train], y_with_signal.iloc[train])
    with_ = NeuralRecommender(**SMALL).fit(
        X_with_feature.iloc[train], y_with_signal.iloc[train]
    )
    assert with_.n_features_in_ == 3
    assert rmse(with_.predict(X_with_feature.iloc[test]), y_with_signal.iloc[test]) < (
        0.8 * rmse(without.predict(X.iloc[test]), y_with_signal.iloc[test])
    )


def test_pipeline_with_column_transformer(ratings):
    X, y = ratings
    rng = np.random.RandomState(0)
    X = X.assign(age=rng.randint(18, 70, len(X)), job=rng.choice(["a", "b"], len(X)))
    features = ColumnTransformer(
        [
            ("age", StandardScaler(), ["age"]),
            ("job", OneHotEncoder(sparse_output=False), ["job"]),
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(
        features, NeuralRecommender(**SMALL, user_col="user_id", item_col="item_id")
    )
    pipe.fit(X, y)
    est = pipe[-1]
    assert set(est.feature_names_in_) == {"age", "job_a", "job_b", "user_id", "item_id"}
    assert np.isfinite(pipe.predict(X)).all()


# -- unknown users and items ----------------------------------------------------


def test_unknown_ids_fall_back_to_finite_predictions(fitted):
    X_new = pd.DataFrame({"user_id": [0, 10**6, 10**6], "item_id": [10**6, 0, 10**7]})
    predictions = fitted.predict(X_new)
    assert np.isfinite(predictions).all()
    # A fully unknown pair is scored about the mean rating.
    assert abs(predictions[2] - fitted._y_mean) < 0.5


def test_fallback_keeps_the_known_users_offset(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL).fit(X, y)
    user_means = y.groupby(X.user_id).mean()
    generous, harsh = user_means.idxmax(), user_means.idxmin()
    unseen_item = pd.DataFrame({"user_id": [generous, harsh], "item_id": [-1, -1]})
    high, low = est.predict(unseen_item)
    assert high > low + 0.5


def test_handle_unknown_error_counts_users_and_items(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL, handle_unknown="error").fit(X, y)
    X_new = pd.DataFrame({"user_id": [0, -1, -2, -2], "item_id": [-5, 0, 1, 2]})
    message = (
        r"2 users and 1 items not seen in fit "
        r"\(for example users \[-1, -2\], items \[-5\]\)"
    )
    with pytest.raises(ValueError, match=message):
        est.predict(X_new)
    assert np.isfinite(est.predict(X.iloc[:5])).all()


@pytest.mark.parametrize("handle_unknown", ["fallback", "error"])
def test_cross_validation_with_unseen_ids_never_crashes(handle_unknown):
    # Sparse data: many users and items of the test folds never occur in training.
    X, y = make_ratings(n_users=300, n_items=300, n_ratings=600, random_state=0)
    est = NeuralRecommender(**SMALL, handle_unknown=handle_unknown)
    cv = KFold(3, shuffle=True, random_state=0)
    if handle_unknown == "fallback":
        scores = cross_val_score(
            est, X, y, cv=cv, scoring="neg_root_mean_squared_error"
        )
        assert np.isfinite(scores).all()
    else:
        with pytest.raises(ValueError, match="not seen in fit"):
            cross_val_score(est, X, y, cv=cv, error_score="raise")


# -- scikit-learn protocol ------------------------------------------------------


def test_grid_search_over_embedding_dim_and_alpha(ratings):
    X, y = ratings
    search = GridSearchCV(
        NeuralRecommender(hidden_layer_sizes=(16,), max_iter=10, random_state=0),
        {"embedding_dim": [4, 16], "alpha": [1.0, 50.0]},
        cv=KFold(3, shuffle=True, random_state=0),
        scoring="neg_root_mean_squared_error",
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["embedding_dim"] in (4, 16)
    assert search.best_estimator_.embedding_dim == search.best_params_["embedding_dim"]


def test_cross_val_score_with_shuffled_kfold(ratings):
    X, y = ratings
    scores = cross_val_score(
        NeuralRecommender(**SMALL), X, y, cv=KFold(5, shuffle=True, random_state=0)
    )
    assert scores.shape == (5,)
    assert (scores > 0.2).all()  # R^2 clearly above the mean predictor


def test_clone_copies_parameters_not_fitted_state(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.predict([[1, 1]])


def test_set_params_then_fit(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL).set_params(embedding_dim=3)
    est.fit(X, y)
    assert est.module_.user_table.embedding_dim == 3 + 1  # and the bias


@pytest.mark.parametrize("dump, load", [(pickle.dumps, pickle.loads), ("joblib", None)])
def test_pickle_round_trip_gives_identical_predictions(
    fitted, ratings, dump, load, tmp_path
):
    X, _ = ratings
    if dump == "joblib":
        joblib.dump(fitted, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    else:
        restored = load(dump(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    assert restored.get_params() == fitted.get_params()


def test_model_saved_on_an_unavailable_device_loads_on_cpu(fitted, ratings):
    X, _ = ratings
    est = pickle.loads(pickle.dumps(fitted))
    est.device_ = torch.device("cuda", 7)  # as if fitted on a GPU box
    with pytest.warns(
        UserWarning, match="not available here; it was loaded on the CPU"
    ):
        restored = pickle.loads(pickle.dumps(est))
    assert restored.device_ == torch.device("cpu")
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))


# -- warm start and failed fits -------------------------------------------------


def test_warm_start_continues_and_grows_tables(ratings):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "warm_start": True})
    est.fit(X.iloc[:2000], y.iloc[:2000])
    weights_before = est.module_.user_table.weight.detach().clone()
    users_before = est.users_.copy()
    X_more = pd.concat([X, pd.DataFrame({"user_id": [10**6], "item_id": [0]})])
    y_more = pd.concat([y, pd.Series([5.0])])
    est.fit(X_more, y_more)
    assert np.array_equal(est.users_[: len(users_before)], users_before)
    assert est.users_[-1] == 10**6
    assert est.module_.user_table.num_embeddings == len(est.users_) + 1
    assert not torch.equal(
        est.module_.user_table.weight[: len(weights_before)], weights_before
    )


def test_warm_start_rejects_a_different_number_of_columns(fitted, ratings):
    X, y = ratings
    est = clone(fitted).set_params(warm_start=True).fit(X, y)
    expected = est.predict(X)
    with pytest.raises(ValueError, match="X has 3 features, but NeuralRecommender"):
        est.fit(X.assign(extra=1.0).to_numpy(), y)
    np.testing.assert_array_equal(est.predict(X), expected)


@pytest.mark.parametrize("warm_start", [False, True])
def test_failed_fit_keeps_the_fitted_model(ratings, warm_start):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "warm_start": warm_start}).fit(X, y)
    expected = est.predict(X)
    attributes = set(vars(est))
    with pytest.raises(ValueError, match="Input y contains NaN"):
        est.fit(X, y.where(y > 1.5, np.nan))
    np.testing.assert_array_equal(est.predict(X), expected)
    assert set(vars(est)) == attributes


def test_diverging_training_raises_and_keeps_the_model(ratings, monkeypatch):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "warm_start": True}).fit(X, y)
    expected = est.predict(X)
    monkeypatch.setattr(_training.Trainer, "train_epoch", lambda self: float("nan"))
    with pytest.raises(
        FloatingPointError, match="diverged in epoch 1.*learning_rate_init"
    ):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict(X), expected)


def test_keyboard_interrupt_keeps_a_usable_model(ratings, monkeypatch):
    X, y = ratings
    train_epoch = _training.Trainer.train_epoch
    calls = []

    def interrupted_on_third_epoch(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train_epoch(self)

    monkeypatch.setattr(_training.Trainer, "train_epoch", interrupted_on_third_epoch)
    with pytest.warns(UserWarning, match="interrupted by the user in epoch 3"):
        est = NeuralRecommender(**SMALL).fit(X, y)
    assert est.n_iter_ == 2
    assert np.isfinite(est.predict(X)).all()


def test_keyboard_interrupt_in_the_first_epoch_keeps_the_previous_model(
    fitted, ratings, monkeypatch
):
    X, y = ratings
    est = pickle.loads(pickle.dumps(fitted))
    expected = est.predict(X)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(_training.Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict(X), expected)
    with pytest.raises(KeyboardInterrupt):
        unfitted = clone(fitted)
        unfitted.fit(X, y)
    with pytest.raises(NotFittedError):
        unfitted.predict(X)


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_y, message",
    [
        ([np.nan] + [3.0] * 9, "Input y contains NaN"),
        ([np.inf] + [3.0] * 9, "Input y contains infinity"),
        ([3.0] * 9, "inconsistent numbers of samples"),
        (None, "requires y to be passed"),
    ],
)
def test_bad_targets_are_rejected(bad_y, message):
    X = np.column_stack([np.arange(10), np.arange(10) % 3])
    with pytest.raises(ValueError, match=message):
        NeuralRecommender(**SMALL).fit(X, bad_y)


@pytest.mark.parametrize(
    "X, message",
    [
        (
            pd.DataFrame({"u": [1, None, 3], "i": [1, 2, 3]}),
            r"user_col=0 contains 1 missing IDs",
        ),
        (
            pd.DataFrame({"u": [1, 2, 3], "i": [1.0, np.nan, np.nan]}),
            r"item_col=1 contains 2 missing IDs",
        ),
        (np.array([[1, np.inf], [2, 3], [3, 3]]), r"item_col=1 contains infinite IDs"),
        (
            pd.DataFrame({"u": [1, "a", 3], "i": [1, 2, 3]}),
            r"user_col=0 mixes ID types \(int, str\)",
        ),
        (
            pd.DataFrame({"u": [1, 2, 3], "i": [1, 2, 3], "f": ["x", "y", "z"]}),
            r"Side-feature f is not numeric",
        ),
        (
            pd.DataFrame({"u": [1, 2, 3], "i": [1, 2, 3], "f": [1.0, np.nan, 2]}),
            r"Side-feature f contains NaN",
        ),
        (
            np.arange(3).reshape(3, 1),
            r"1 feature\(s\) \(shape=\(3, 1\)\) while a minimum of 2",
        ),
        (np.empty((0, 2)), r"0 sample\(s\)"),
        (pd.DataFrame({"u": [], "i": []}), r"0 sample\(s\)"),
        (np.arange(3), "Expected 2D array, got 1D array"),
    ],
)
def test_bad_tables_are_rejected(X, message):
    with pytest.raises(ValueError, match=message):
        NeuralRecommender(**SMALL).fit(X, [3.0] * len(X))


def test_unhashable_id_is_a_type_error():
    X = np.array([[{"a": 1}, 1], [2, 2]], dtype=object)
    with pytest.raises(TypeError, match="user_col=0 holds {'a': 1} of type dict"):
        NeuralRecommender(**SMALL).fit(X, [3.0, 4.0])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"embedding_dim": 0}, "'embedding_dim' parameter"),
        ({"alpha": -1.0}, "'alpha' parameter"),
        ({"batch_size": "big"}, "'batch_size' parameter"),
        ({"loss": "hinge"}, "'loss' parameter"),
        ({"negative_sampling": "hardest"}, "'negative_sampling' parameter"),
        ({"solver": "lbfgs"}, "'solver' parameter"),
        ({"architecture": "deepfm"}, "'architecture' parameter"),
        ({"learning_rate": "invscaling"}, "'learning_rate' parameter"),
        ({"handle_unknown": "ignore"}, "'handle_unknown' parameter"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
        (
            {"hidden_layer_sizes": (8, 0)},
            r"hidden_layer_sizes must be a sequence of positive ints, got \(8, 0\)",
        ),
        (
            {"user_col": "user"},
            "user_col='user' is a column name, but X has no column names",
        ),
        ({"item_col": 5}, "item_col=5 is out of range for X with 2 columns"),
        ({"item_col": 0}, "name the same column"),
        ({"device": "cuda:7"}, r"device='cuda:7' was requested but is not available"),
        ({"device": "gpu please"}, r"device='gpu please' is not a valid torch device"),
    ],
)
def test_bad_parameters_are_rejected(params, message):
    if "cuda" in str(params.get("device")) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    X = np.column_stack([np.arange(10), np.arange(10) % 3])
    with pytest.raises(ValueError, match=message):
        NeuralRecommender(**{**SMALL, **params}).fit(X, np.arange(10.0))


def test_predict_rejects_a_different_number_of_columns(fitted, ratings):
    X, _ = ratings
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- extra"):
        fitted.predict(X.assign(extra=1.0))
    with pytest.raises(
        ValueError, match="X has 3 features, but NeuralRecommender is expecting 2"
    ):
        fitted.predict(X.assign(extra=1.0).to_numpy())


def test_early_stopping_is_skipped_with_a_warning_when_no_row_can_be_held_out():
    with pytest.warns(UserWarning, match="n_samples=1.*without early stopping"):
        est = NeuralRecommender(**SMALL).fit([[1, 1]], [3.0])
    assert est.validation_scores_ is None
    assert est.predict([[1, 1]]) == pytest.approx([3.0])
    est = NeuralRecommender(**{**SMALL, "early_stopping": False, "max_iter": 2})
    with pytest.warns(ConvergenceWarning):
        assert np.isfinite(est.fit([[1, 1]], [3.0]).predict([[1, 1]])).all()


def test_training_and_validation_rows_are_slices_of_one_encoded_copy(
    ratings, monkeypatch
):
    X, y = ratings
    seen = {}
    run_epochs = NeuralRecommender._run_epochs

    def spy(self, trainer, validation, *args):
        seen["train"], seen["validation"] = trainer.data, validation
        return run_epochs(self, trainer, validation, *args)

    monkeypatch.setattr(NeuralRecommender, "_run_epochs", spy)
    with pytest.warns(ConvergenceWarning):
        est = NeuralRecommender(**{**SMALL, "max_iter": 1}).fit(X, y)
    train, validation = seen["train"], seen["validation"]
    assert len(validation) == math.ceil(0.05 * len(X))
    for column in ("users", "items", "targets"):
        assert (
            getattr(train, column).untyped_storage().data_ptr()
            == getattr(validation, column).untyped_storage().data_ptr()
        ), column
    # Shuffled together: every row of X is on one side, with its own rating.
    rows = []
    for part in (train, validation):
        users = est.users_[part.users.numpy() - 1]
        items = est.items_[part.items.numpy() - 1]
        ratings = part.targets.numpy() * est._y_scale + est._y_mean
        rows += zip(
            users.tolist(), items.tolist(), np.round(ratings, 3).tolist(), strict=True
        )
    expected = zip(
        X.iloc[:, 0].tolist(), X.iloc[:, 1].tolist(), np.round(y, 3), strict=True
    )
    assert sorted(rows) == sorted(expected)


# -- devices --------------------------------------------------------------------


def test_auto_device_is_cpu_without_accelerators(fitted):
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("an accelerator is present")
    assert fitted.device_ == torch.device("cpu")


def test_device_environment_variable_is_honoured(ratings, monkeypatch):
    X, y = ratings
    monkeypatch.setenv("SKREC_DEVICE", "cpu")
    assert NeuralRecommender(**{**SMALL, "max_iter": 1}).fit(X, y).device_.type == "cpu"
    monkeypatch.setenv("SKREC_DEVICE", "cuda:7")
    if torch.cuda.device_count() <= 7:
        with pytest.raises(ValueError, match="cuda:7"):
            NeuralRecommender(**{**SMALL, "max_iter": 1}).fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fit_predicts_like_cpu_and_pickles_to_cpu(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL, device="cuda").fit(X, y)
    assert est.device_.type == "cuda"
    cpu = NeuralRecommender(**SMALL, device="cpu").fit(X, y)
    assert rmse(est.predict(X), y) < 1.1 * rmse(cpu.predict(X), y)
    state = est.__getstate__()
    assert all(p.device.type == "cpu" for p in state["module_"].parameters())


# -- partial_fit ----------------------------------------------------------------


def test_partial_fit_runs_one_epoch_per_call_and_carries_adam(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL)
    for _ in range(3):
        est.partial_fit(X, y)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    assert est.loss_curve_[2] < est.loss_curve_[0]
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None
    # Adam's step count runs on across calls: 3 epochs of 12 batches each.
    n_batches = -(-len(X) // SMALL["batch_size"])
    assert int(est._optimizer_state["state"][0]["step"]) == 3 * n_batches


def test_sparse_embeddings_fit_as_well_and_resume_their_moments(ratings):
    X, y = ratings
    dense = NeuralRecommender(**{**SMALL, "sparse_embeddings": False}).fit(X, y)
    sparse = NeuralRecommender(**{**SMALL, "sparse_embeddings": True}).fit(X, y)
    assert not np.array_equal(sparse.predict(X), dense.predict(X))
    assert rmse(y, sparse.predict(X)) < 1.1 * rmse(y, dense.predict(X))
    assert "optimizers" in sparse._optimizer_state
    assert "optimizers" not in dense._optimizer_state
    # The lazy moments carry over to partial_fit; Adam's step count goes on.
    tables_state = sparse._optimizer_state["optimizers"][1]["state"][0]
    steps = int(tables_state["step"])
    sparse.partial_fit(X, y)
    tables_state = sparse._optimizer_state["optimizers"][1]["state"][0]
    n_batches = -(-len(X) // SMALL["batch_size"])
    assert int(tables_state["step"]) == steps + n_batches
    # Switching to dense updates starts the moments afresh, without error.
    sparse.set_params(sparse_embeddings=False).partial_fit(X, y)
    assert int(sparse._optimizer_state["state"][0]["step"]) == n_batches
    assert np.isfinite(sparse.predict(X)).all()


def test_partial_fit_epochs_differ_and_are_reproducible(ratings):
    X, y = ratings
    first = NeuralRecommender(**SMALL).partial_fit(X, y).partial_fit(X, y)
    second = NeuralRecommender(**SMALL).partial_fit(X, y).partial_fit(X, y)
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    assert first.loss_curve_ == second.loss_curve_
    # An int random_state must not replay the first epoch's batch order.
    replayed = NeuralRecommender(**SMALL).partial_fit(X, y)
    replayed.n_iter_ = 0
    replayed.partial_fit(X, y)
    assert not np.array_equal(replayed.predict(X), first.predict(X))


def test_partial_fit_continues_a_fit_and_grows_tables(ratings):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "loss": "bce"}).fit(X.iloc[:2000])
    n_iter = est.n_iter_
    new_rows = pd.DataFrame({"user_id": [10**6, 10**6], "item_id": [0, 1]})
    est.partial_fit(pd.concat([X.iloc[2000:], new_rows]))
    assert est.n_iter_ == n_iter + 1
    assert est.users_[-1] == 10**6
    assert est.module_.user_table.num_embeddings == len(est.users_) + 1
    # Pairs of both calls count as seen.
    assert est.user_items_.sum() == len(X.drop_duplicates()) + 2
    recommended = est.recommend([10**6], n=len(est.items_) - 2)
    assert not np.isin(recommended, [0, 1]).any()


def test_partial_fit_keeps_the_moments_of_old_rows_when_tables_grow(ratings):
    """New users and items get zero moments; the others keep theirs and the
    step count goes on, instead of Adam starting afresh for every weight."""
    X, y = ratings
    est = NeuralRecommender(**SMALL).partial_fit(X, y)
    before = copy.deepcopy(est._optimizer_state)
    new_rows = pd.DataFrame({"user_id": [10**6], "item_id": [10**6]})
    est.partial_fit(new_rows, [4.0])
    table = [
        index
        for index, state in before["state"].items()
        if state["exp_avg"].shape[:1] == (len(est.users_),)
    ][0]
    after = est._optimizer_state["state"][table]
    assert int(after["step"]) == int(before["state"][table]["step"]) + 1
    assert after["exp_avg"].shape[0] == len(est.users_) + 1
    # One step of decay on the old rows: they were carried over, not reset.
    old = before["state"][table]["exp_avg"]
    assert torch.count_nonzero(after["exp_avg"][: len(old)]) > 0.5 * old.numel()


def test_partial_fit_widens_the_rating_range(ratings):
    """Predictions are clipped to the ratings of every call, not the first."""
    X, y = ratings
    low = (y >= 2) & (y <= 4)
    est = NeuralRecommender(**SMALL).partial_fit(X[low], y[low])
    assert est.rating_range_ == (2.0, 4.0)
    est.partial_fit(X, y)
    assert est.rating_range_ == (float(y.min()), float(y.max()))


def test_failed_partial_fit_keeps_the_model(ratings, monkeypatch):
    X, y = ratings
    est = NeuralRecommender(**SMALL).partial_fit(X, y)
    expected = est.predict(X)
    optimizer_state = copy.deepcopy(est._optimizer_state)

    def corrupting_then_diverging(self):
        self.train_step(self.data.rows(slice(0, 64)))  # moves the moments
        with torch.no_grad():
            self.module.user_table.weight.fill_(float("nan"))
        return float("nan")

    monkeypatch.setattr(_training.Trainer, "train_epoch", corrupting_then_diverging)
    with pytest.raises(FloatingPointError, match="diverged"):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict(X), expected)
    assert est.n_iter_ == 1
    moments = est._optimizer_state["state"][0]["exp_avg"]
    assert torch.equal(moments, optimizer_state["state"][0]["exp_avg"])


def test_failed_partial_fit_restores_the_seen_pairs_it_added(ratings, monkeypatch):
    X, y = ratings
    first = (X["user_id"] < X["user_id"].median()).to_numpy()
    est = NeuralRecommender(**SMALL).partial_fit(X[first], y[first])
    seen = est.user_items_.copy()

    def diverging(self):
        return float("nan")

    monkeypatch.setattr(_training.Trainer, "train_epoch", diverging)
    with pytest.raises(FloatingPointError, match="diverged"):
        est.partial_fit(X, y)  # new users, and their pairs
    assert est.user_items_.shape == seen.shape
    assert est.user_items_.dtype == seen.dtype
    assert (est.user_items_ != seen).nnz == 0
    assert not hasattr(est, "_state_before_fit")
    monkeypatch.undo()
    est.partial_fit(X, y)
    assert est.user_items_.shape == (X["user_id"].nunique(), X["item_id"].nunique())
    assert est.user_items_.nnz == len(X[["user_id", "item_id"]].drop_duplicates())


def test_partial_fit_with_another_solver_starts_it_afresh(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL).partial_fit(X, y)
    est.set_params(solver="adamw").partial_fit(X, y)
    n_batches = -(-len(X) // SMALL["batch_size"])
    assert int(est._optimizer_state["state"][0]["step"]) == n_batches
    est.set_params(solver="sgd", learning_rate_init=0.01).partial_fit(X, y)
    assert est.n_iter_ == 3 and np.isfinite(est.predict(X)).all()


def test_partial_fit_after_unpickling_starts_adam_afresh(ratings):
    X, y = ratings
    est = pickle.loads(pickle.dumps(NeuralRecommender(**SMALL).partial_fit(X, y)))
    assert not hasattr(est, "_optimizer_state")
    est.partial_fit(X, y)
    assert est.n_iter_ == 2 and np.isfinite(est.predict(X)).all()


def test_predict_and_recommend_from_threads_match_serial_calls(fitted, ratings):
    from concurrent.futures import ThreadPoolExecutor

    X, _ = ratings
    users = X["user_id"].unique()[:50]
    expected_scores = fitted.predict(X)
    expected_items = fitted.recommend(users, n=5)

    def calls(_):
        return [(fitted.predict(X), fitted.recommend(users, n=5)) for _ in range(20)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [pair for batch in pool.map(calls, range(8)) for pair in batch]
    assert len(results) == 160
    for scores, items in results:
        np.testing.assert_array_equal(scores, expected_scores)
        np.testing.assert_array_equal(items, expected_items)


def test_duplicate_rows_weigh_as_repeated_observations():
    X = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "a", "b"]})
    y = np.array([5.0, 1.0, 4.0, 2.0])
    params = dict(SMALL, early_stopping=False, max_iter=200, alpha=0.0)
    params["learning_rate_init"] = 0.01

    def prediction_of_1a(extra_ratings):
        """The prediction for (1, "a") when it is rated again ``extra_ratings``."""
        extra = pd.DataFrame({"user": 1, "item": ["a"] * len(extra_ratings)})
        data = pd.concat([X, extra], ignore_index=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = NeuralRecommender(**params).fit(data, np.append(y, extra_ratings))
        assert est.user_items_.nnz == 4 and est.user_items_.max() == 1
        return est.predict(pd.DataFrame({"user": [1], "item": ["a"]}))[0]

    # Rated 5 then 1: the least-squares fit is their mean, 3; a second 1
    # pulls it to 7 / 3, a second 5 to 11 / 3.
    low, mean, high = (prediction_of_1a(r) for r in ([1.0, 1.0], [1.0], [5.0, 1.0]))
    assert low < mean - 0.3 and high > mean + 0.3
    assert abs(mean - 3.0) < 0.3


@pytest.mark.parametrize(
    "X",
    [
        {"user": [7] * 6, "item": list("abcdef")},
        {"user": list(range(6)), "item": ["z"] * 6},
    ],
)
def test_a_single_user_or_item_fits(X):
    X = pd.DataFrame(X)
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 3.0])
    est = NeuralRecommender(**{**SMALL, "early_stopping": False}).fit(X, y)
    predictions = est.predict(X)
    assert predictions.shape == (6,) and np.isfinite(predictions).all()
    assert est.recommend([X["user"][0]], n=1).shape == (1, 1)


def test_constant_ratings_give_constant_predictions(ratings):
    X, _ = ratings
    est = NeuralRecommender(**SMALL).fit(X, np.full(len(X), 4.0))
    np.testing.assert_allclose(est.predict(X.iloc[:50]), 4.0)
    assert np.isfinite(est.score(X.iloc[:50], np.full(50, 4.0)))


def test_pickles_of_another_format_fail_with_a_clear_version_error(
    fitted, ratings, monkeypatch
):
    X, _ = ratings
    # Another release with the same pickle format loads.
    monkeypatch.setattr(_base, "__version__", "0.0.9")
    same_format = pickle.dumps(fitted)
    monkeypatch.setattr(_base, "PICKLE_FORMAT", 0)
    old_format = pickle.dumps(fitted)
    monkeypatch.undo()
    np.testing.assert_array_equal(
        pickle.loads(same_format).predict(X), fitted.predict(X)
    )
    message = (
        "This NeuralRecommender was saved by skrec 0.0.9 in pickle format 0; "
        r"skrec .* reads format 1 only"
    )
    with pytest.raises(ValueError, match=message):
        pickle.loads(old_format)
    unmarked = fitted.__getstate__()
    del unmarked["_skrec_pickle"]
    with pytest.raises(ValueError, match="saved by skrec unknown in pickle format"):
        NeuralRecommender().__setstate__(unmarked)


def test_pickling_leaves_the_fitted_model_untouched(ratings):
    X, y = ratings
    est = NeuralRecommender(**SMALL).fit(X, y)
    module, state = est.module_, dict(est.__dict__)
    pickle.dumps(est)
    assert est.module_ is module and est.__dict__.keys() == state.keys()


@pytest.mark.parametrize("estimator", [NeuralRecommender, MatrixFactorization])
def test_a_huge_learning_rate_is_a_divergence_even_with_finite_losses(
    ratings, estimator
):
    X, y = ratings
    params = {**SMALL, "warm_start": True}
    if estimator is MatrixFactorization:
        del params["hidden_layer_sizes"]
    est = estimator(**params).fit(X, y)
    expected = est.predict(X)
    # Adam's steps keep the loss finite here, at around 1e12 to 1e29.
    est.set_params(learning_rate_init=1e3, max_iter=5)
    with pytest.raises(FloatingPointError, match="over 1000 times the .* of a"):
        est.fit(X, y)
    np.testing.assert_array_equal(est.predict(X), expected)


@pytest.mark.parametrize("loss, scale", [("mse", 1e154), ("bce", 1e40)])
def test_targets_too_large_for_training_are_an_error_about_y(ratings, loss, scale):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "loss": loss})
    with pytest.raises(
        ValueError, match=r"y holds values of magnitude up to .*rescale y"
    ):
        est.fit(X, y * scale)


def test_huge_but_representable_ratings_fit_on_their_own_scale(ratings):
    X, y = ratings
    est = NeuralRecommender(**{**SMALL, "max_iter": 3})
    with pytest.warns(ConvergenceWarning):
        y_pred = est.fit(X, y * 1e100).predict(X)
    assert np.isfinite(y_pred).all()
    assert y.min() * 1e100 <= y_pred.min() and y_pred.max() <= y.max() * 1e100
