"""What every benchmark script shares: where results go and where the data are."""

import os
import statistics
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The data's licence forbids shipping them: they sit in shared/ beside the repository.
SHARED_DATA_HOME = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_data_home():
    """shared/data beside the repository if present, else the SKREC_DATA variable."""
    if SHARED_DATA_HOME.is_dir():
        return str(SHARED_DATA_HOME)
    return os.environ.get("SKREC_DATA")


def median_seconds(call, repeats):
    """Median wall time of ``repeats`` calls of ``call()`` after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
