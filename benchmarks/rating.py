"""Rating prediction on MovieLens-100K's five official folds, against peers.

Every model is fitted on u{k}.base and scored on u{k}.test (RMSE, MAE, fit and
predict seconds): skrec's NeuralRecommender, MatrixFactorization and
BaselineRecommender with their defaults; Surprise's SVD, SVD++, KNNBaseline and
BaselineOnly; skorch's NeuralNetRegressor around skrec's own EmbeddingMLP; and
a "tuned" skrec model chosen among candidates on a validation split of
u{k}.base only. Writes a markdown table and a plot to ``benchmarks/results/``.

    python benchmarks/rating.py [--data-home DIR] [--folds 1 2 3 4 5]
        [--models NAME ...] [--candidates JSON] [--features] [--threads N]
        [--device cpu] [--predict-repeats 3] [--quick]
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sklearn
import skorch
import surprise
import torch
from _common import RESULTS_DIR, default_data_home, display_path, median_seconds
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from skorch import NeuralNetRegressor

import skrec
from skrec import BaselineRecommender, MatrixFactorization, NeuralRecommender
from skrec._encoding import build_vocabulary, encode_ids
from skrec._engine._modules import EmbeddingMLP
from skrec.datasets import load_movielens

FOLDS = (1, 2, 3, 4, 5)
ID_COLUMNS = ["user_id", "item_id"]
RATING_SCALE = (1, 5)
SEED = 0
# Share of u{k}.base held out to choose the tuned model, and its seed.
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0
# Untimed warm-up of every model on this many rows of the first fold.
WARM_UP_ROWS = 5_000
QUICK_MAX_ITER = 2
QUICK_SKIPPED = ("SVDpp",)
SKREC_ESTIMATORS = {
    "NeuralRecommender": NeuralRecommender,
    "MatrixFactorization": MatrixFactorization,
}
# Tried for the "tuned" row; each dict is an estimator's parameters, with
# "estimator" naming it (NeuralRecommender when absent) and, with --features,
# "features": false to keep a candidate on the IDs alone.
# Two-sided SVD++ with a moving average of the weights, at the settings a
# validation split of u1.base favoured.
SVDPP = {
    "architecture": "svdpp",
    "embedding_dim": 32,
    "learning_rate_init": 1e-2,
    "batch_size": 2048,
    "weight_averaging": 0.97,
    "n_iter_no_change": 2,
}
CANDIDATES = [
    {**SVDPP, "alpha": 10.0},
    {**SVDPP, "alpha": 20.0},
    {**SVDPP, "alpha": 40.0},
    {"estimator": "MatrixFactorization", "alpha": 10.0},
]
BASELINE_STRATEGIES = ("global_mean", "user_mean", "item_mean", "biases")

# model name -> (library, estimator as constructed)
MODELS = {
    "NeuralRecommender": ("skrec", "NeuralRecommender(random_state=0)"),
    "MatrixFactorization": ("skrec", "MatrixFactorization(random_state=0)"),
    **{
        f"baseline-{strategy}": (
            "skrec",
            f'BaselineRecommender(strategy="{strategy}")',
        )
        for strategy in BASELINE_STRATEGIES
    },
    "SVD": ("Surprise", "SVD(random_state=0)"),
    "SVDpp": ("Surprise", "SVDpp(random_state=0)"),
    "KNNBaseline": ("Surprise", "KNNBaseline(verbose=False)"),
    "BaselineOnly": ("Surprise", "BaselineOnly(verbose=False)"),
    "skorch": ("skorch", "NeuralNetRegressor(EmbeddingMLP, ...), see protocol"),
    "tuned": ("skrec", "best of --candidates on validation, see below"),
}

# Published RMSE on these folds, as quoted in the issue: (name, mean of u1..u5,
# u1); None where it gives none.
REFERENCES = [
    ("Surprise SVD", "SVD", "0.938", "0.951"),
    ("Surprise SVD++", "SVDpp", "0.922", "0.933"),
    ("Surprise KNNBaseline", "KNNBaseline", "0.932", None),
    ("Surprise BaselineOnly", "BaselineOnly", "0.946", None),
    ("GC-MC (Berg et al. 2017)", None, None, "0.905-0.910"),
    ("Sparse FC (Muller et al. 2018)", None, None, "0.895"),
    ("GLocal-K (Han et al. 2021)", None, None, "0.890"),
]
TUNED_MEAN_TARGET = 0.905
TUNED_U1_TARGET = 0.915
NEURAL_U1_TARGET = 0.93
BASELINE_GAP_TARGET = 0.005


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument(
        "--folds", type=int, nargs="+", default=list(FOLDS), choices=FOLDS
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        choices=list(MODELS),
        metavar="NAME",
        help=f"subset of the models, among: {', '.join(MODELS)} (default: all)",
    )
    parser.add_argument(
        "--candidates",
        type=parse_candidates,
        default=CANDIDATES,
        help="JSON list of parameter dicts for the tuned row, each with an "
        '"estimator" key (NeuralRecommender or MatrixFactorization; default '
        'NeuralRecommender), e.g. \'[{"estimator": "MatrixFactorization", '
        '"alpha": 5}, {"embedding_dim": 128}]\'',
    )
    parser.add_argument(
        "--features",
        action="store_true",
        help="give the tuned candidates the user and item features of "
        'load_movielens(features=True) as side features (a candidate with "features"'
        ": false keeps the IDs alone)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--predict-repeats",
        type=int,
        default=3,
        help="timed predict calls per model and fold (median), after one warm-up",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: first fold only, max_iter={QUICK_MAX_ITER} for skrec, "
        f"first two candidates, one predict repeat, without "
        f"{', '.join(QUICK_SKIPPED)} unless --models names it",
    )
    args = parser.parse_args()
    args.folds = sorted(set(args.folds))
    if args.models is None:
        skipped = QUICK_SKIPPED if args.quick else ()
        args.models = [name for name in MODELS if name not in skipped]
    else:
        args.models = [name for name in MODELS if name in args.models]
    if args.quick:
        args.folds = args.folds[:1]
        args.candidates = args.candidates[:2]
        args.predict_repeats = 1
    return args


def parse_candidates(text):
    try:
        candidates = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if (
        not isinstance(candidates, list)
        or not candidates
        or not all(isinstance(c, dict) for c in candidates)
    ):
        raise argparse.ArgumentTypeError("must be a non-empty JSON list of objects")
    for candidate in candidates:
        name = candidate.get("estimator", "NeuralRecommender")
        if name not in SKREC_ESTIMATORS:
            raise argparse.ArgumentTypeError(
                f"estimator={name!r} is not one of {sorted(SKREC_ESTIMATORS)}"
            )
        try:
            SKREC_ESTIMATORS[name]().set_params(**estimator_params(candidate))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return candidates


# -- data -------------------------------------------------------------------


def load_fold(data_home, fold, features):
    """(X_train, X_test, y_train, y_test) of u{fold}; exits if the data are absent."""
    try:
        X_train, X_test, y_train, y_test = load_movielens(
            "100k",
            fold=fold,
            data_home=data_home,
            return_X_y=True,
            download_if_missing=False,
            features=features,
        )
    except OSError as exc:
        sys.exit(
            f"MovieLens-100K fold u{fold} not found in data_home={data_home!r} "
            f"({exc}). This benchmark compares RMSE on the official folds u1..u5 "
            "with published figures, which only makes sense on the real data: "
            "pass --data-home or set SKREC_DATA."
        )
    return X_train, X_test, y_train.to_numpy(float), y_test.to_numpy(float)


# The encoded columns that describe a user and those that describe an item.
USER_FEATURES = "^(?:age|gender_|occupation_|zip_prefix_)"
ITEM_FEATURES = "^(?:release_year|genre_)"


def feature_encoder():
    """IDs first, then the user and item features as numbers.

    Strings are one-hot encoded (an unseen value is all zeros), the one missing
    release year is imputed with the median of the fitting rows, and age and
    the genre flags pass through; the estimator standardises every column.
    """
    return ColumnTransformer(
        [
            ("ids", "passthrough", ID_COLUMNS),
            (
                "strings",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ["gender", "occupation", "zip_prefix"],
            ),
            ("release_year", SimpleImputer(strategy="median"), ["release_year"]),
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


# -- models -----------------------------------------------------------------


def estimator_params(candidate):
    return {k: v for k, v in candidate.items() if k not in ("estimator", "features")}


def skrec_estimator(name, params, args):
    """A skrec estimator seeded with 0 on args.device (--quick: few epochs)."""
    estimator = SKREC_ESTIMATORS[name](random_state=SEED, device=args.device)
    estimator.set_params(**params)
    if args.quick:
        estimator.set_params(max_iter=QUICK_MAX_ITER)
    return estimator


def candidate_label(candidate):
    name = candidate.get("estimator", "NeuralRecommender")
    params = ", ".join(f"{k}={v!r}" for k, v in estimator_params(candidate).items())
    uses_features = candidate.get("features", True)
    return f"{name}({params})" + ("" if uses_features else " [IDs only]")


def candidate_model(candidate, args):
    estimator = skrec_estimator(
        candidate.get("estimator", "NeuralRecommender"),
        estimator_params(candidate),
        args,
    )
    if args.features and candidate.get("features", True):
        estimator.set_params(
            user_features=make_column_selector(USER_FEATURES),
            item_features=make_column_selector(ITEM_FEATURES),
        )
        return Pipeline([("features", feature_encoder()), ("model", estimator)])
    return estimator


def uses_features(model):
    return isinstance(model, Pipeline)


class SurpriseModel:
    """fit/predict on (user_id, item_id) frames around a Surprise algorithm."""

    def __init__(self, make_algorithm):
        self.make_algorithm = make_algorithm

    def fit(self, X, y):
        frame = pd.DataFrame(
            {"user": X["user_id"].to_numpy(), "item": X["item_id"].to_numpy()}
        )
        frame["rating"] = y
        reader = surprise.Reader(rating_scale=RATING_SCALE)
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        self.algorithm_ = self.make_algorithm()
        self.algorithm_.fit(trainset)
        return self

    def predict(self, X):
        # The third member of a triple is the true rating, which test() only
        # copies into its Prediction: a placeholder keeps y_test out of reach.
        triples = [
            (user, item, 0.0)
            for user, item in zip(
                X["user_id"].tolist(), X["item_id"].tolist(), strict=True
            )
        ]
        return np.array([p.est for p in self.algorithm_.test(triples)])


class SkorchEmbeddingMLP:
    """skorch's NeuralNetRegressor around skrec's EmbeddingMLP, skrec's defaults.

    IDs are encoded with skrec's vocabulary (sorted IDs of the fitting rows,
    codes 1..n, 0 for unseen) and the ratings standardised as skrec does;
    predictions are mapped back and clipped to the fitted rating range.
    """

    def __init__(self, max_epochs, device):
        self.max_epochs = max_epochs
        self.device = device

    def fit(self, X, y):
        defaults = NeuralRecommender()
        self.users_ = build_vocabulary(X["user_id"], "user_id")
        self.items_ = build_vocabulary(X["item_id"], "item_id")
        self.y_mean_, self.y_scale_ = float(np.mean(y)), float(np.std(y))
        self.rating_range_ = (float(np.min(y)), float(np.max(y)))
        torch.manual_seed(SEED)  # weight initialisation and batch order
        self.net_ = NeuralNetRegressor(
            EmbeddingMLP,
            module__n_users=len(self.users_) + 1,
            module__n_items=len(self.items_) + 1,
            module__embedding_dim=defaults.embedding_dim,
            module__hidden_layer_sizes=tuple(defaults.hidden_layer_sizes),
            module__activation=defaults.activation,
            module__dropout=defaults.dropout,
            # The defaults' "auto" values, as they resolve for loss="mse".
            module__architecture=defaults._architecture(),
            criterion=torch.nn.MSELoss,
            optimizer=torch.optim.Adam,
            lr=defaults._learning_rate_init(),
            batch_size=1024,
            max_epochs=self.max_epochs,
            train_split=None,
            iterator_train__shuffle=True,
            device=self.device,
            verbose=0,
        )
        targets = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)
        self.net_.fit(self._encode(X), targets)
        return self

    def predict(self, X):
        scores = self.net_.predict(self._encode(X)).astype(np.float64)
        return np.clip(self.y_mean_ + self.y_scale_ * scores, *self.rating_range_)

    def _encode(self, X):
        return {
            "users": encode_ids(X["user_id"], self.users_),
            "items": encode_ids(X["item_id"], self.items_),
        }


def make_model(name, args, neural_epochs=None):
    """A fresh, unfitted model called ``name``; ``neural_epochs`` for skorch."""
    if name in SKREC_ESTIMATORS:
        return skrec_estimator(name, {}, args)
    if name.startswith("baseline-"):
        return BaselineRecommender(strategy=name.removeprefix("baseline-"))
    surprise_algorithms = {
        "SVD": lambda: surprise.SVD(random_state=SEED),
        "SVDpp": lambda: surprise.SVDpp(random_state=SEED),
        "KNNBaseline": lambda: surprise.KNNBaseline(verbose=False),
        "BaselineOnly": lambda: surprise.BaselineOnly(verbose=False),
    }
    if name in surprise_algorithms:
        return SurpriseModel(surprise_algorithms[name])
    if name == "skorch":
        return SkorchEmbeddingMLP(neural_epochs, args.device)
    raise ValueError(f"unknown model {name!r}")


def epochs_run(model):
    final = model[-1] if isinstance(model, Pipeline) else model
    return getattr(final, "n_iter_", None) or getattr(final, "max_epochs", None)


# -- runs -------------------------------------------------------------------


def fit_quietly(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)


def evaluate(model, X_train, y_train, X_test, y_test, repeats):
    """Fit once (timed), predict ``repeats`` times after a warm-up (median)."""
    start = time.perf_counter()
    fit_quietly(model, X_train, y_train)
    fit_seconds = time.perf_counter() - start
    predictions = []
    predict_seconds = median_seconds(
        lambda: predictions.append(model.predict(X_test)), repeats
    )
    y_pred = predictions[-1]
    return {
        "rmse": root_mean_squared_error(y_test, y_pred),
        "mae": mean_absolute_error(y_test, y_pred),
        "fit_s": fit_seconds,
        "predict_s": predict_seconds,
        "epochs": epochs_run(model),
    }


def select_candidate(X_train, y_train, args):
    """Validation RMSE of every candidate on a random split of u{k}.base."""
    fit_rows, validation_rows = train_test_split(
        np.arange(len(X_train)),
        test_size=VALIDATION_FRACTION,
        random_state=VALIDATION_SEED,
    )
    scores = []
    for candidate in args.candidates:
        model = candidate_model(candidate, args)
        X = X_train if uses_features(model) else X_train[ID_COLUMNS]
        fit_quietly(model, X.iloc[fit_rows], y_train[fit_rows])
        y_pred = model.predict(X.iloc[validation_rows])
        scores.append(root_mean_squared_error(y_train[validation_rows], y_pred))
        print(
            f"    candidate {candidate_label(candidate)}: validation RMSE "
            f"{scores[-1]:.4f}, {epochs_run(model)} epochs"
        )
    return scores


def run_tuned(X_train, X_test, y_train, y_test, args):
    start = time.perf_counter()
    scores = select_candidate(X_train, y_train, args)
    selection_seconds = time.perf_counter() - start
    best = int(np.argmin(scores))
    model = candidate_model(args.candidates[best], args)
    if not uses_features(model):
        X_train, X_test = X_train[ID_COLUMNS], X_test[ID_COLUMNS]
    result = evaluate(model, X_train, y_train, X_test, y_test, args.predict_repeats)
    result.update(
        chosen=candidate_label(args.candidates[best]),
        validation_rmse=scores,
        selection_s=selection_seconds,
    )
    return result


def run_fold(fold, args):
    X_train, X_test, y_train, y_test = load_fold(args.data_home, fold, args.features)
    ids_train, ids_test = X_train[ID_COLUMNS], X_test[ID_COLUMNS]
    print(f"u{fold}: {len(X_train):,} training and {len(X_test):,} test ratings")
    results, neural_epochs = {}, None
    for name in args.models:
        if name == "tuned":
            result = run_tuned(X_train, X_test, y_train, y_test, args)
        else:
            if name == "skorch" and neural_epochs is None:
                # skorch runs the epochs skrec's default fit ended with.
                reference = make_model("NeuralRecommender", args)
                fit_quietly(reference, ids_train, y_train)
                neural_epochs = reference.n_iter_
            model = make_model(name, args, neural_epochs)
            result = evaluate(
                model, ids_train, y_train, ids_test, y_test, args.predict_repeats
            )
            if name == "NeuralRecommender":
                neural_epochs = result["epochs"]
        results[name] = result
        print(f"  {name}: {result_line(result)}")
    return results


def result_line(result):
    text = (
        f"RMSE {result['rmse']:.4f}, MAE {result['mae']:.4f}, fit "
        f"{result['fit_s']:.1f} s, predict {result['predict_s']:.3f} s"
    )
    if result["epochs"] is not None:
        text += f", {result['epochs']} epochs"
    if "chosen" in result:
        text += f"; chose {result['chosen']} (selection {result['selection_s']:.0f} s)"
    return text


def warm_up(args):
    """One untimed fit and predict of every model on a slice of the first fold."""
    X_train, X_test, y_train, _ = load_fold(args.data_home, args.folds[0], True)
    X, y = X_train.iloc[:WARM_UP_ROWS], y_train[:WARM_UP_ROWS]
    X_new = X_test.iloc[:1000]
    quick_args = argparse.Namespace(**{**vars(args), "quick": True})
    models = [
        make_model(name, quick_args, neural_epochs=1)
        for name in args.models
        if name != "tuned"
    ]
    if "tuned" in args.models:
        models += [candidate_model(c, quick_args) for c in args.candidates]
    for model in models:
        columns = X.columns if uses_features(model) else ID_COLUMNS
        fit_quietly(model, X[columns], y)
        model.predict(X_new[columns])


# -- report -----------------------------------------------------------------


def collect(results, name, metric):
    """{fold: value} of one model's metric over the folds that ran it."""
    return {fold: runs[name][metric] for fold, runs in results.items()}


def mean_of(results, name, metric):
    return statistics.mean(collect(results, name, metric).values())


def u1_of(results, name, metric):
    return results[1][name][metric] if 1 in results else None


def number(value, digits):
    return "—" if value is None else f"{value:.{digits}f}"


def summary_table(results, models):
    lines = [
        "| model | library | estimator | RMSE mean | RMSE u1 | MAE mean | MAE u1 | "
        "fit s mean | fit s u1 | predict s mean |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in models:
        library, estimator = MODELS[name]
        cells = [
            number(mean_of(results, name, "rmse"), 4),
            number(u1_of(results, name, "rmse"), 4),
            number(mean_of(results, name, "mae"), 4),
            number(u1_of(results, name, "mae"), 4),
            number(mean_of(results, name, "fit_s"), 2),
            number(u1_of(results, name, "fit_s"), 2),
            number(mean_of(results, name, "predict_s"), 3),
        ]
        lines.append(
            f"| {name} | {library} | `{estimator}` | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def per_fold_table(results, models, metric, title, digits):
    folds = list(results)
    lines = [
        f"{title}:",
        "",
        "| model | " + " | ".join(f"u{fold}" for fold in folds) + " | mean |",
        "|---|" + "---:|" * (len(folds) + 1),
    ]
    for name in models:
        values = collect(results, name, metric)
        cells = [number(values[fold], digits) for fold in folds]
        cells.append(number(statistics.mean(values.values()), digits))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def epochs_table(results, models):
    names = [n for n in models if results[next(iter(results))][n]["epochs"]]
    if not names:
        return ""
    folds = list(results)
    lines = [
        "Epochs run (skrec: `n_iter_`, early stopping included; skorch: "
        "`max_epochs`, NeuralRecommender's `n_iter_` on the same fold):",
        "",
        "| model | " + " | ".join(f"u{fold}" for fold in folds) + " |",
        "|---|" + "---:|" * len(folds),
    ]
    for name in names:
        cells = [str(results[fold][name]["epochs"]) for fold in folds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tuned_table(results, args):
    labels = [candidate_label(c) for c in args.candidates]
    lines = [
        "Tuned row, per fold: validation RMSE of each candidate (fitted on "
        f"{1 - VALIDATION_FRACTION:.0%} of u{{k}}.base, scored on the other "
        f"{VALIDATION_FRACTION:.0%}), the chosen one (lowest validation RMSE, "
        "refitted on all of u{k}.base) and its test figures:",
        "",
        "| fold | "
        + " | ".join(f"`{label}`" for label in labels)
        + " | chosen | selection s | refit s | test RMSE |",
        "|---|" + "---:|" * len(labels) + "---|---:|---:|---:|",
    ]
    for fold, runs in results.items():
        run = runs["tuned"]
        best = int(np.argmin(run["validation_rmse"]))
        cells = [
            f"**{score:.4f}**" if i == best else f"{score:.4f}"
            for i, score in enumerate(run["validation_rmse"])
        ]
        lines.append(
            f"| u{fold} | "
            + " | ".join(cells)
            + f" | `{run['chosen']}` | {run['selection_s']:.1f} | "
            f"{run['fit_s']:.1f} | {run['rmse']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def reference_table(results, models):
    def measured(key, which):
        if key is None or key not in models:
            return "—"
        if which == "u1":
            return number(u1_of(results, key, "rmse"), 4)
        return number(mean_of(results, key, "rmse"), 4)

    lines = [
        "Published RMSE on these folds (as quoted in the issue) next to this run:",
        "",
        "| model | published mean | this run mean | published u1 | this run u1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key, mean, u1 in REFERENCES:
        lines.append(
            f"| {label} | {mean or '—'} | {measured(key, 'mean')} | {u1 or '—'} | "
            f"{measured(key, 'u1')} |"
        )
    return "\n".join(lines) + "\n"


def status(ok):
    return "**met**" if ok else "**not met**"


def bound_line(label, bound, measure):
    """``- label <= bound: value, met``, where ``measure()`` gives the value, or
    ``not measured`` when ``measure`` is None."""
    if measure is None:
        return f"- {label} <= {bound}: not measured"
    value = measure()
    return f"- {label} <= {bound}: {value:.4f}, {status(value <= bound)}"


def targets_text(results, models, all_folds):
    lines = ["Targets (from the issue):", ""]
    has = set(models).__contains__
    u1 = 1 in results
    lines.append(
        bound_line(
            "tuned mean RMSE",
            TUNED_MEAN_TARGET,
            (lambda: mean_of(results, "tuned", "rmse"))
            if has("tuned") and all_folds
            else None,
        )
    )
    lines.append(
        bound_line(
            "tuned u1 RMSE",
            TUNED_U1_TARGET,
            (lambda: u1_of(results, "tuned", "rmse")) if has("tuned") and u1 else None,
        )
    )
    if has("tuned") and has("SVDpp"):
        refit = mean_of(results, "tuned", "fit_s")
        selection = mean_of(results, "tuned", "selection_s")
        svdpp = mean_of(results, "SVDpp", "fit_s")
        lines.append(
            f"- tuned fit per fold < SVD++'s ({svdpp:.1f} s): refit of the chosen "
            f"candidate {refit:.1f} s, {status(refit < svdpp)}; with the selection "
            f"fits {refit + selection:.1f} s, {status(refit + selection < svdpp)}"
        )
    else:
        lines.append("- tuned fit per fold < SVD++'s: not measured")
    lines.append(
        bound_line(
            "default NeuralRecommender u1 RMSE",
            NEURAL_U1_TARGET,
            (lambda: u1_of(results, "NeuralRecommender", "rmse"))
            if has("NeuralRecommender") and u1
            else None,
        )
    )
    if has("baseline-biases") and has("BaselineOnly"):
        ours = mean_of(results, "baseline-biases", "rmse")
        theirs = mean_of(results, "BaselineOnly", "rmse")
        gap = ours - theirs
        lines.append(
            f"- BaselineRecommender(biases) mean RMSE within {BASELINE_GAP_TARGET} "
            f"of BaselineOnly's: {ours:.4f} vs {theirs:.4f}, difference "
            f"{gap:+.4f}, {status(abs(gap) <= BASELINE_GAP_TARGET)}"
        )
    else:
        lines.append("- BaselineRecommender(biases) vs BaselineOnly: not measured")
    if not all_folds:
        lines.append("")
        lines.append(
            "Means are over the folds run only, not u1..u5: they do not compare "
            "with the published means."
        )
    return "\n".join(lines) + "\n"


def protocol_text(args):
    features = (
        "\n- `--features`: the tuned candidates (unless a candidate says "
        '`"features": false`) get `load_movielens(features=True)`\'s columns as '
        "side features, declared as user features (age, gender, occupation, zip "
        "prefix: `user_features=make_column_selector(...)`) and item features "
        "(release year, genres), through a `Pipeline` whose first step, fitted on "
        "the candidate's fitting rows, is a `ColumnTransformer`: user_id and "
        "item_id pass first, gender, occupation and zip_prefix are one-hot encoded "
        "(`OneHotEncoder(handle_unknown='ignore')`), the one missing release_year "
        "is imputed with the median (`SimpleImputer`), age and the 19 genre flags "
        "pass through; the estimator standardises every column. The other rows "
        "see the IDs only."
        if args.features
        else ""
    )
    return f"""Protocol:
- Every model is fitted on u{{k}}.base (80,000 ratings) and scored on u{{k}}.test \
(20,000), k in {args.folds}; X is the (user_id, item_id) DataFrame of \
`load_movielens(fold=k, return_X_y=True)` with the raw GroupLens IDs. The test \
folds serve for the final scores only. RMSE and MAE are scikit-learn's \
`root_mean_squared_error` and `mean_absolute_error` on u{{k}}.test; each \
library's own handling of users and items unseen in u{{k}}.base applies.
- skrec: `NeuralRecommender(random_state=0, device="{args.device}")` and \
`MatrixFactorization(random_state=0, device="{args.device}")` with every other \
parameter at its default (early stopping on a random \
{NeuralRecommender().validation_fraction:.0%} of the fitting rows \
inside `fit`, best epoch's weights kept, predictions clipped to the fitted \
rating range); `BaselineRecommender(strategy=s)` with its defaults (reg_user=15, \
reg_item=10, n_iter=10 ALS rounds for "biases"; not clipped).
- Surprise {surprise.__version__}: `Dataset.load_from_df(frame[[user, item, \
rating]], Reader(rating_scale=(1, 5))).build_full_trainset()` then \
`algo.fit(trainset)`, both inside the fit time; predictions are the `est` of \
`algo.test(triples)` (clipped to 1..5 by Surprise's default). `SVD(random_state=0)` \
and `SVDpp(random_state=0)` with default factors, epochs, learning rates and \
regularisation; `KNNBaseline(verbose=False)` with its default sim_options \
(MSD, user-based, k=40, min_k=1) and ALS baselines; `BaselineOnly(verbose=False)` \
with the default ALS bsl_options (reg_i=10, reg_u=15, 10 epochs), i.e. the same \
algorithm as BaselineRecommender("biases").
- skorch {skorch.__version__}: `NeuralNetRegressor(EmbeddingMLP, \
criterion=MSELoss, optimizer=Adam, lr=1e-3, batch_size=1024, \
iterator_train__shuffle=True, train_split=None, max_epochs=E)` around the very \
`skrec._engine._modules.EmbeddingMLP` that NeuralRecommender builds, with its \
default module parameters (embedding_dim=64, hidden_layer_sizes=(64, 32), relu, \
dropout 0, architecture="neumf"); E is the `n_iter_` of NeuralRecommender's fit on \
the same fold; `torch.manual_seed(0)` before the fit. IDs are encoded with skrec's \
vocabulary (sorted IDs of u{{k}}.base, codes 1..n, 0 for unseen IDs), the ratings \
standardised with their mean and std as skrec does, and predictions mapped back and \
clipped to the fitted rating range. What differs from skrec's fit: (1) no L2 \
penalty: skrec adds alpha={NeuralRecommender().alpha:g} times each batch row's \
squared embedding-and-bias \
norm divided by the row's frequency, skorch minimises the plain MSE with no \
weight decay; (2) no early stopping: skrec fits on \
{1 - NeuralRecommender().validation_fraction:.0%} of u{{k}}.base, scores the \
other {NeuralRecommender().validation_fraction:.0%} after every epoch and keeps \
the best epoch's weights, skorch fits all of \
u{{k}}.base for E epochs and keeps the last weights; (3) unseen IDs: skorch's row 0 \
keeps its random initialisation, skrec sets it to the mean of the known rows; \
(4) mechanics: skorch's DataLoader collates sample by sample and uses torch's \
default (foreach) Adam, skrec slices tensors and uses the fused Adam.
- tuned: for each fold, a random {VALIDATION_FRACTION:.0%} of u{{k}}.base \
(`train_test_split(random_state={VALIDATION_SEED})`) is held out; every candidate \
(skrec estimator, `random_state=0`) is fitted on the rest and scored on it; the one \
with the lowest validation RMSE is refitted on all of u{{k}}.base and scored on \
u{{k}}.test. Its fit s is the refit only; the selection fits are reported \
separately. Candidates: {json.dumps(args.candidates)}.{features}
- Timing: fit s is the wall time of one fit per fold, including the data \
conversion the library needs (Surprise's trainset, skorch's ID encoding); \
predict s is the median of {args.predict_repeats} predict calls on u{{k}}.test \
after one warm-up call. Before the folds, every model is fitted and used once, \
untimed, on {WARM_UP_ROWS:,} rows of the first fold. Surprise runs on one thread; \
torch on torch.get_num_threads(). Means are over the folds run.
"""


def report_header(args, seconds, load_before):
    quick = (
        f"\n**QUICK SMOKE RUN (--quick): fold u{args.folds[0]} only, "
        f"max_iter={QUICK_MAX_ITER} for skrec (and so for skorch), the first "
        f"{len(args.candidates)} candidates. Not a benchmark result.**\n"
        if args.quick
        else ""
    )
    command = shlex.join(["python", "benchmarks/rating.py", *sys.argv[1:]])
    skrec_shown = display_path(os.path.dirname(skrec.__file__))
    data_shown = display_path(args.data_home)
    return f"""# Rating prediction on MovieLens-100K, official folds
{quick}
- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {platform.processor() or platform.machine()}, \
{os.cpu_count()} CPUs
- Versions: torch {torch.__version__}, numpy {np.__version__}, pandas \
{pd.__version__}, scikit-learn {sklearn.__version__}, scikit-surprise \
{surprise.__version__}, skorch {skorch.__version__}, skrec {skrec.__version__} \
(imported from {skrec_shown}), Python {platform.python_version()}
- torch.get_num_threads(): {torch.get_num_threads()}; device: {args.device}
- 1-minute load average before / after the run: {load_before:.2f} / \
{os.getloadavg()[0]:.2f} (other jobs on the machine slow the fits)
- Data: MovieLens-100K u{{k}}.base / u{{k}}.test from {data_shown}, folds \
{", ".join(f"u{fold}" for fold in args.folds)}
- Command: `{command}`; run time {seconds:.0f} s
"""


def plot_results(results, models, title, path):
    plt.switch_backend("Agg")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = {"skrec": "tab:blue", "Surprise": "tab:orange", "skorch": "tab:green"}
    points = {
        name: (mean_of(results, name, "fit_s"), mean_of(results, name, "rmse"))
        for name in models
    }
    for name, (x, y) in points.items():
        ax.plot(x, y, "o", color=colors[MODELS[name][0]])
    for library, color in colors.items():
        ax.plot([], [], "o", color=color, label=library)
    ax.axhline(
        TUNED_MEAN_TARGET,
        color="gray",
        linestyle="--",
        linewidth=1,
        label=f"target for tuned: {TUNED_MEAN_TARGET}",
    )
    ax.set_xscale("log")
    ax.set_xlabel("mean fit seconds per fold (log scale)")
    ax.set_ylabel("mean test RMSE")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.15, y=0.08)
    fig.tight_layout()
    # Labels last: their offsets depend on the final axes limits.
    for name, (dx, dy, align) in label_offsets(ax, points).items():
        ax.annotate(
            name,
            points[name],
            textcoords="offset points",
            xytext=(dx, dy),
            ha=align,
            fontsize=8,
        )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def label_offsets(ax, points, line_height=9, char_width=4.6):
    """(dx, dy, horizontal alignment) per label, keeping nearby labels apart.

    Each label goes right of its marker (left of it near the right edge), top
    marker first, and moves down a line at a time while its box overlaps a
    label placed before it.
    """
    points_per_pixel = 72 / ax.figure.dpi
    right_edge = ax.get_window_extent().x1 * points_per_pixel
    placed, offsets = [], {}
    for name, (x, y) in sorted(points.items(), key=lambda item: -item[1][1]):
        px, py = ax.transData.transform((x, y)) * points_per_pixel
        width = char_width * len(name)
        dx, align = (5, "left") if px + 5 + width < right_edge else (-5, "right")
        x0 = px + dx if align == "left" else px + dx - width
        dy = 3
        while True:
            box = (x0, py + dy, x0 + width, py + dy + 8)
            if not any(overlaps(box, other) for other in placed):
                break
            dy -= line_height
        placed.append(box)
        offsets[name] = (dx, dy, align)
    return offsets


def overlaps(a, b):
    """Whether boxes (x0, y0, x1, y1) intersect."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def main():
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"torch.get_num_threads(): {torch.get_num_threads()}; device: {args.device}; "
        f"folds {args.folds}; models {args.models}"
    )
    warm_up(args)
    results = {fold: run_fold(fold, args) for fold in args.folds}
    models = args.models
    all_folds = list(results) == list(FOLDS)
    report = report_header(args, time.perf_counter() - start, load_before)
    report += "\n" + protocol_text(args)
    report += (
        f"\nMean over {', '.join(f'u{f}' for f in results)} and u1 alone:\n\n"
        + summary_table(results, models)
    )
    report += "\n" + reference_table(results, models)
    report += "\n" + targets_text(results, models, all_folds)
    if "tuned" in models:
        report += "\n" + tuned_table(results, args)
    report += "\n" + per_fold_table(results, models, "rmse", "RMSE per fold", 4)
    report += "\n" + per_fold_table(results, models, "mae", "MAE per fold", 4)
    report += "\n" + per_fold_table(results, models, "fit_s", "Fit s per fold", 2)
    report += "\n" + per_fold_table(
        results, models, "predict_s", "Predict s per fold", 3
    )
    report += "\n" + epochs_table(results, models)
    print("\n" + report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "rating.md").write_text(report)
    title = "Rating prediction, MovieLens-100K " + (
        "u1..u5" if all_folds else ", ".join(f"u{f}" for f in results)
    )
    plot_results(
        results,
        models,
        title + (" (--quick)" if args.quick else ""),
        RESULTS_DIR / "rating.png",
    )
    print(f"Wrote rating.md and rating.png in {display_path(RESULTS_DIR)}")


if __name__ == "__main__":
    main()
