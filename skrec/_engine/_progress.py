"""Signs of life within long epochs."""

import time

# Seconds between two progress lines within an epoch; an epoch shorter than
# this prints none.
PROGRESS_EVERY_SECONDS = 10.0


class EpochProgress:
    """A step hook that prints how far the epoch has come, every ``every``
    seconds: rows done, rows per second and the estimated time left.

    Call ``start(epoch)`` before each epoch; the trainer calls the instance
    as ``progress(rows_done, n_rows)`` after each step.
    """

    def __init__(self, every=None, clock=time.monotonic):
        self.every = PROGRESS_EVERY_SECONDS if every is None else every
        self.clock = clock
        self.epoch = 0
        self.started = self.last = clock()

    def start(self, epoch):
        self.epoch = epoch
        self.started = self.last = self.clock()

    def __call__(self, rows_done, n_rows):
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        rate = rows_done / max(now - self.started, 1e-9)
        left = (n_rows - rows_done) / rate
        print(
            f"Epoch {self.epoch}: {rows_done:,}/{n_rows:,} rows "
            f"({rows_done / n_rows:.0%}), {rate:,.0f} rows/s, about "
            f"{_duration(left)} left",
            flush=True,
        )


def _duration(seconds):
    """``seconds`` as ``"42 s"``, ``"3 min 05 s"`` or ``"2 h 07 min"``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
