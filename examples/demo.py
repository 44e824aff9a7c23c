"""Fit NeuralRecommender on MovieLens-100K fold u1 and compare it with baselines.

Prints test RMSE, MAE and fit seconds of a global-mean baseline, a user+item
bias baseline and NeuralRecommender with default parameters. The data are read
from ``--data-home`` (default: the ``SKREC_DATA`` environment variable, else the
``shared/data`` folder beside this repository, else ``~/skrec_data``); when no
copy can be found or downloaded the demo says so and runs on synthetic ratings
from ``skrec.datasets.make_ratings`` instead.

    python examples/demo.py [--data-home DIR]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.model_selection import train_test_split

import skrec
from skrec import BaselineRecommender, NeuralRecommender
from skrec.datasets import load_movielens, make_ratings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_data_home():
    if os.environ.get("SKREC_DATA"):
        return os.environ["SKREC_DATA"]
    return SHARED_DATA if (SHARED_DATA / "ml-100k").is_dir() else None


def load_data(data_home):
    """MovieLens-100K u1 when available, else synthetic ratings of the same size."""
    try:
        split = load_movielens("100k", fold=1, data_home=data_home, return_X_y=True)
        return "MovieLens-100K, official fold u1", split
    except OSError as exc:
        print(f"MovieLens-100K is not available ({exc}).")
        print(
            "Running on synthetic ratings from skrec.datasets.make_ratings instead.\n"
        )
    X, y = make_ratings(
        n_users=943, n_items=1682, n_ratings=100_000, as_frame=True, random_state=0
    )
    return "make_ratings(943 users, 1682 items, 100,000 ratings)", train_test_split(
        X, y, test_size=0.2, random_state=0
    )


def evaluate(name, estimator, X_train, X_test, y_train, y_test):
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    predicted = estimator.predict(X_test)
    return (
        name,
        root_mean_squared_error(y_test, predicted),
        mean_absolute_error(y_test, predicted),
        seconds,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", default=default_data_home())
    args = parser.parse_args()

    source, (X_train, X_test, y_train, y_test) = load_data(args.data_home)
    print(
        f"skrec {skrec.__version__}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"Data: {source}: {len(X_train):,} training and {len(X_test):,} test ratings\n"
    )
    models = [
        ("global mean", BaselineRecommender(strategy="global_mean")),
        ("user + item biases", BaselineRecommender(strategy="biases")),
        ("NeuralRecommender(random_state=0)", NeuralRecommender(random_state=0)),
    ]
    rows = [
        evaluate(name, est, X_train, X_test, y_train, y_test) for name, est in models
    ]
    print(f"{'model':<36}{'RMSE':>8}{'MAE':>8}{'fit s':>8}")
    for name, rmse, mae, seconds in rows:
        print(f"{name:<36}{rmse:>8.4f}{mae:>8.4f}{seconds:>8.2f}")
    neural = models[-1][1]
    print(
        f"\nNeuralRecommender: {neural.n_iter_} epochs, {len(neural.users_)} users, "
        f"{len(neural.items_)} items, device {neural.device_}; "
        f"all predictions finite: {bool(np.isfinite(neural.predict(X_test)).all())}"
    )


if __name__ == "__main__":
    main()
