"""How often a verbose fit of 5 million ratings shows a sign of life.

Fits ``NeuralRecommender(verbose=True, max_iter=2, random_state=0)`` on
``make_ratings(n_ratings=5_000_000)``, stamps every line it prints with the
seconds since ``fit`` was called, and reports the longest silence (from the
call to the first line, between two lines, and from the last line to the
end). Writes ``benchmarks/results/progress.md``.

    python benchmarks/progress.py [--n-ratings 5000000] [--max-iter 2]
"""

import argparse
import contextlib
import datetime
import io
import os
import platform
import time

import numpy as np
import torch
from _common import RESULTS_DIR, display_path

import skrec
from skrec import NeuralRecommender
from skrec.datasets import make_ratings


class StampedLines(io.TextIOBase):
    """A text stream that keeps each line it is written with its time."""

    def __init__(self, start):
        self.start = start
        self.lines = []
        self._partial = ""

    def write(self, text):
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        now = time.perf_counter() - self.start
        self.lines += [(now, line) for line in complete]
        return len(text)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-ratings", type=int, default=5_000_000)
    parser.add_argument("--max-iter", type=int, default=2)
    return parser.parse_args()


def main():
    args = parse_args()
    load_before = os.getloadavg()[0]
    n_users, n_items = args.n_ratings // 50, args.n_ratings // 250
    X, y = make_ratings(
        n_users=n_users, n_items=n_items, n_ratings=args.n_ratings, random_state=0
    )
    est = NeuralRecommender(verbose=True, max_iter=args.max_iter, random_state=0)
    start = time.perf_counter()
    out = StampedLines(start)
    with contextlib.redirect_stdout(out):
        est.fit(X, y)
    seconds = time.perf_counter() - start
    stamps = [0.0] + [stamp for stamp, _ in out.lines] + [seconds]
    longest = max(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    lines = "\n".join(f"    {stamp:7.1f} s  {line}" for stamp, line in out.lines)
    text = f"""# Signs of life in a verbose fit

- Date: {datetime.datetime.now().isoformat(timespec="seconds")}
- Machine: {platform.platform()}, {os.cpu_count()} CPUs; torch {torch.__version__} \
({torch.get_num_threads()} threads), numpy {np.__version__}, skrec {skrec.__version__}
- 1-minute load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}
- Data: `make_ratings(n_users={n_users:,}, n_items={n_items:,}, \
n_ratings={args.n_ratings:,}, random_state=0)`
- Command: `python benchmarks/progress.py --n-ratings {args.n_ratings} \
--max-iter {args.max_iter}`

`NeuralRecommender(verbose=True, max_iter={args.max_iter}, random_state=0)` \
fitted in {seconds:.0f} s; every line it printed, with the seconds since `fit` was \
called:

{lines}

| rows | fit s | lines printed | longest silence s |
|---:|---:|---:|---:|
| {args.n_ratings:,} | {seconds:.1f} | {len(out.lines)} | {longest:.1f} |
"""
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "progress.md").write_text(text)
    print(f"Wrote {display_path(RESULTS_DIR / 'progress.md')}")


if __name__ == "__main__":
    main()
