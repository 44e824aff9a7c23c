"""Signs of life within long epochs: verbose progress lines."""

import io
import re
from contextlib import redirect_stdout

import pytest

from skrec import NeuralRecommender
from skrec._engine import _progress
from skrec._engine._progress import EpochProgress
from skrec.datasets import make_ratings

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
PROGRESS_LINE = re.compile(
    r"Epoch (\d+): ([\d,]+)/([\d,]+) rows \(\d+%\), [\d,]+ rows/s, about .+ left"
)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_prints_rows_rate_and_time_left_every_interval():
    clock = FakeClock()
    progress = EpochProgress(every=10.0, clock=clock)
    progress.start(3)
    out = io.StringIO()
    with redirect_stdout(out):
        clock.now = 5.0
        progress(50_000, 400_000)  # too soon: nothing
        clock.now = 10.0
        progress(100_000, 400_000)
        clock.now = 15.0
        progress(150_000, 400_000)  # 5 s after the last line: nothing
        clock.now = 200.0
        progress(200_000, 400_000)
    assert out.getvalue().splitlines() == [
        "Epoch 3: 100,000/400,000 rows (25%), 10,000 rows/s, about 30 s left",
        "Epoch 3: 200,000/400,000 rows (50%), 1,000 rows/s, about 3 min 20 s left",
    ]


@pytest.mark.parametrize(
    "seconds, text", [(4.4, "4 s"), (65, "1 min 05 s"), (7_380, "2 h 03 min")]
)
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert _progress._duration(seconds) == text


@pytest.mark.parametrize("verbose", [True, False])
def test_verbose_fits_print_progress_within_epochs_and_quiet_ones_do_not(
    monkeypatch, verbose
):
    # Every step counts as a long wait: each prints a progress line.
    monkeypatch.setattr(_progress, "PROGRESS_EVERY_SECONDS", 0.0)
    X, y = make_ratings(n_users=40, n_items=30, n_ratings=1000, random_state=0)
    est = NeuralRecommender(
        embedding_dim=4, batch_size=100, max_iter=2, verbose=verbose, random_state=0
    )
    out = io.StringIO()
    with redirect_stdout(out):
        est.fit(X, y)
        est.partial_fit(X, y)
    lines = [PROGRESS_LINE.fullmatch(line) for line in out.getvalue().splitlines()]
    progress = [match.groups() for match in lines if match]
    if not verbose:
        assert out.getvalue() == ""
        return
    # 950 training rows in batches of 100, in two epochs, then 1,000 rows.
    epochs = [epoch for epoch, _, _ in progress]
    assert epochs == ["1"] * 10 + ["2"] * 10 + ["3"] * 10
    assert progress[9][1:] == ("950", "950") and progress[-1][1:] == ("1,000",) * 2
