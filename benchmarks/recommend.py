"""Time of recommend() for every user over every item, per architecture.

Each NeuralRecommender architecture is fitted for one epoch on all of
MovieLens-100K ``u.data`` (implicit feedback, ``loss="bce"``; synthetic
interactions of the same size when the data are absent), then
``recommend(all users, n=10)`` is timed: one warm-up call, then the median of
several. The time does not depend on how well the model is trained. Writes a
markdown table to ``benchmarks/results/recommend.md``.

    python benchmarks/recommend.py [--data-home DIR] [--repeats 7] [--threads N]
"""

import argparse
import datetime
import os
import platform
import warnings

import numpy as np
import torch
from _common import RESULTS_DIR, default_data_home, median_seconds
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import NeuralRecommender
from skrec.datasets import load_movielens, make_ratings

ARCHITECTURES = ("neumf", "mlp", "gmf", "mf")
K = 10


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=default_data_home())
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


def load_interactions(data_home):
    """(user, item) rows of u.data, or synthetic ones of the same size."""
    try:
        X = load_movielens(data_home=data_home, download_if_missing=False).data
        return X, "MovieLens-100K u.data"
    except OSError:
        X, _ = make_ratings(
            n_users=943, n_items=1682, n_ratings=100_000, as_frame=True, random_state=0
        )
        return X, "synthetic (make_ratings, 943 users, 1,682 items; u.data absent)"


def main():
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    X, source = load_interactions(args.data_home)
    users = np.unique(X.iloc[:, 0])
    rows = []
    for architecture in ARCHITECTURES:
        model = NeuralRecommender(
            loss="bce",
            architecture=architecture,
            max_iter=1,
            early_stopping=False,
            device="cpu",
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        seconds = median_seconds(
            lambda model=model: model.recommend(users, n=K), args.repeats
        )
        rows.append((architecture, seconds))
        print(f"{architecture}: {1000 * seconds:.0f} ms")
    n_items = X.iloc[:, 1].nunique()
    report = f"""# recommend() for all users over all items

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {os.cpu_count()} CPUs; \
torch.get_num_threads(): {torch.get_num_threads()}; device: cpu
- Versions: torch {torch.__version__}, numpy {np.__version__}, \
skrec {skrec.__version__}, Python {platform.python_version()}
- Data: {source}: {len(users):,} users x {n_items:,} items
- Protocol: `NeuralRecommender(loss="bce", architecture=..., max_iter=1)` with the \
default embedding_dim=64 and hidden_layer_sizes=(64, 32), fitted on every row; \
`recommend(all users, n={K}, exclude_seen=True)`, median of {args.repeats} calls \
after one warm-up call.
- Command: `python benchmarks/recommend.py`

| architecture | recommend ms |
|---|---:|
""" + "".join(f"| {name} | {1000 * seconds:.0f} |\n" for name, seconds in rows)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "recommend.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
