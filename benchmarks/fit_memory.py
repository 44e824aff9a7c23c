"""Memory of fit: how many copies of X it holds, stage by stage.

Draws ``--rows`` ratings of random IDs among 1M users and 200k items (a
DataFrame of two int64 columns and a float64 target), then fits
``NeuralRecommender(embedding_dim=32, hidden_layer_sizes=(64, 32),
batch_size=16384, max_iter=1, random_state=0)`` with early stopping on (the
default), so that fit also holds out validation rows. Reports the peak
resident memory above the level before each stage of fit (the stages are
NeuralRecommender's private methods, wrapped for the measurement), against
the size of X and y, and writes ``benchmarks/results/fit_memory.md``.

    python benchmarks/fit_memory.py [--rows 10000000]
"""

import argparse
import datetime
import platform
import warnings

import numpy as np
import pandas as pd
import torch
from _common import RESULTS_DIR
from scale import PeakMemory, rss_gb
from sklearn.exceptions import ConvergenceWarning

import skrec
from skrec import NeuralRecommender

STAGES = {
    "_encoded_data": "validate and encode X and y; build the seen-pairs matrix",
    "_split_validation": "hold out the validation rows",
    "_initial_module": "build the network",
    "_run_epochs": "train one epoch, then score the validation rows",
}


HEADER = """\
| stage | what it does | peak increase (GB) | increase kept (GB) \
| peak / size of X and y |
|---|---|---:|---:|---:|"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    return parser.parse_args()


def measure_stages(peaks):
    """Wrap each stage of NeuralRecommender's fit to record its peak memory."""
    for name in STAGES:
        method = getattr(NeuralRecommender, name)

        def measured(self, *args, _method=method, _name=name, **kwargs):
            before = rss_gb()
            with PeakMemory() as peak:
                result = _method(self, *args, **kwargs)
            peaks[_name] = (peak.peak - before, rss_gb() - before)
            return result

        setattr(NeuralRecommender, name, measured)


def main():
    args = parse_args()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "user_id": rng.integers(0, 1_000_000, args.rows),
            "item_id": rng.integers(0, 200_000, args.rows),
        }
    )
    y = rng.normal(3.5, 1.0, args.rows)
    data_gb = (X.memory_usage().sum() + y.nbytes) / 1e9
    peaks = {}
    measure_stages(peaks)
    est = NeuralRecommender(
        embedding_dim=32,
        hidden_layer_sizes=(64, 32),
        batch_size=16384,
        max_iter=1,
        random_state=0,
    )
    before = rss_gb()
    with warnings.catch_warnings(), PeakMemory() as peak:
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    rows = [
        f"| {name} | {what} | {peaks[name][0]:.2f} | {peaks[name][1]:.2f} "
        f"| {peaks[name][0] / data_gb:.2f} |"
        for name, what in STAGES.items()
    ]
    report = f"""# Memory of fit on {args.rows:,} rows

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}; torch {torch.__version__}, \
{torch.get_num_threads()} threads; skrec {skrec.__version__}
- Command: `python benchmarks/fit_memory.py --rows {args.rows}`

X is {args.rows:,} rows of random IDs in [0, 1,000,000) x [0, 200,000) (two \
int64 columns) and y a float64 array: {data_gb:.2f} GB together. Memory is the \
resident set, sampled every 10 ms; each stage's figures are above the level \
just before it. The encoded rows take 20 bytes per row (int64 user and item \
codes, a float32 target): {20 * args.rows / 1e9:.2f} GB.

{HEADER}
{chr(10).join(rows)}
| whole fit | | {peak.peak - before:.2f} | {rss_gb() - before:.2f} \
| {(peak.peak - before) / data_gb:.2f} |
"""
    print(report)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "fit_memory.md").write_text(report)


if __name__ == "__main__":
    main()
