"""Memory and speed of predict on many rows.

Fits ``NeuralRecommender(max_iter=2)`` on 200k synthetic ratings of 10k users
and 2k items, then predicts 50M random (user, item) rows, some of them unseen,
given as a DataFrame of two int64 columns. Reports the resident memory before
and at its peak during ``predict`` (sampled every 10 ms), against the sizes of
the input and of the output, and writes ``benchmarks/results/predict_memory.md``.

    python benchmarks/predict_memory.py [--rows 50000000]
"""

import argparse
import datetime
import platform
import time
import warnings

import numpy as np
import pandas as pd
import torch
from _common import RESULTS_DIR
from scale import PeakMemory, rss_gb
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import NeuralRecommender
from skrec.datasets import make_ratings


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    return parser.parse_args()


def main():
    args = parse_args()
    X, y = make_ratings(
        n_users=10_000, n_items=2_000, n_ratings=200_000, as_frame=True, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = NeuralRecommender(max_iter=2, random_state=0).fit(X, y)
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {
            "user_id": rng.integers(0, 10_500, args.rows),
            "item_id": rng.integers(0, 2_100, args.rows),
        }
    )
    before = rss_gb()
    with PeakMemory() as peak:
        start = time.perf_counter()
        predictions = est.predict(rows)
        seconds = time.perf_counter() - start
    input_gb = rows.memory_usage().sum() / 1e9
    report = f"""# predict on {args.rows:,} rows

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}; torch {torch.__version__}, \
{torch.get_num_threads()} threads; skrec {skrec.__version__}
- Command: `python benchmarks/predict_memory.py --rows {args.rows}`

`NeuralRecommender(max_iter=2, random_state=0)` fitted on \
`make_ratings(n_users=10_000, n_items=2_000, n_ratings=200_000)`; the rows \
are random IDs in [0, 10,500) x [0, 2,100), so about 5% of users and items are unseen.

| rows | input DataFrame (GB) | output (GB) | RSS before (GB) \
| peak RSS in predict (GB) | peak increase per row (bytes) | seconds | rows/s \
| all finite |
|---:|---:|---:|---:|---:|---:|---:|---:|---|
| {args.rows:,} | {input_gb:.2f} | {predictions.nbytes / 1e9:.2f} | {before:.2f} \
| {peak.peak:.2f} | {1e9 * (peak.peak - before) / args.rows:.0f} | {seconds:.1f} \
| {args.rows / seconds:,.0f} | {bool(np.isfinite(predictions).all())} |
"""
    print(report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "predict_memory.md").write_text(report)


if __name__ == "__main__":
    main()
