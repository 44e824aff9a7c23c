"""How many CPU threads torch runs on while skrec trains, and when to run fewer.

torch's OpenMP threads wait for each other at the end of every parallel
operation by spinning. That is the fastest wait on cores the process has to
itself, and a disaster on cores that other processes also need: a spinning
thread burns the time slice that the thread it waits for needs, and a step can
take ten times longer. A single thread never waits for another. So, between
training steps, ``CpuThreads`` looks at how busy other processes keep this
process's cores and runs on the cores they leave free, one thread at least.
This holds whether or not torch was imported before skrec, since it changes
the thread count, not OpenMP's wait policy (which OpenMP reads once, when
torch loads).
"""

import os
import time

import torch

# Seconds between two looks at the load of the cores.
CHECK_EVERY_SECONDS = 0.25
# Below this many seconds of measurement the jiffy counts are too coarse.
MIN_WINDOW_SECONDS = 0.05
_PROC_STAT = "/proc/stat"
# /proc/stat columns: user nice system idle iowait irq softirq steal; idle and
# iowait are free time, steal is time a hypervisor gave to other machines.
_IDLE_COLUMNS = (3, 4)
try:
    _TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    _TICKS_PER_SECOND = 100


def usable_cores():
    """The number of CPUs this process may run on (its affinity mask)."""
    cpus = _affinity()
    return len(cpus) if cpus is not None else os.cpu_count() or 1


class CpuThreads:
    """Run torch on ``n_threads`` CPU threads within a ``with`` block.

    Parameters
    ----------
    n_threads : int
        Threads to run on, at most.
    follow_load : bool, default=False
        If true, ``follow_load_now()`` (called between training steps) lowers
        the count while other processes keep this process's cores busy, and
        raises it again, up to ``n_threads``, once they leave them free. It
        reads the kernel's per-CPU counters, so it does nothing where there
        is no ``/proc/stat``.

    The thread count torch had before the block is restored after it.
    """

    def __init__(self, n_threads, follow_load=False):
        self.n_threads = max(1, int(n_threads))
        self.current = self.n_threads
        self.cpus = _affinity()
        self.follows_load = follow_load and self.cpus is not None
        self._previous = None
        self._sample = None
        self._next_check = 0.0

    def __enter__(self):
        self._previous = torch.get_num_threads()
        self._use(self.n_threads)
        if self.follows_load:
            self._sample = _load_sample(self.cpus)
            self._next_check = self._sample[0] + MIN_WINDOW_SECONDS
        return self

    def __exit__(self, *exc_info):
        torch.set_num_threads(self._previous)
        return False

    def follow_load_now(self, *_):
        """Lower or raise the thread count if the cores' load calls for it.

        Cheap enough to call after every step: it reads the counters only
        every ``CHECK_EVERY_SECONDS``.
        """
        if not self.follows_load or time.monotonic() < self._next_check:
            return
        sample = _load_sample(self.cpus)
        if sample is None:
            self.follows_load = False
            return
        others = _cores_used_by_others(self._sample, sample)
        self._sample = sample
        self._next_check = sample[0] + CHECK_EVERY_SECONDS
        self._use(threads_for_free_cores(len(self.cpus) - others, self.n_threads))

    def _use(self, n_threads):
        if n_threads != torch.get_num_threads():
            torch.set_num_threads(n_threads)
        self.current = n_threads


def threads_for_free_cores(free_cores, n_threads):
    """Threads to run on ``free_cores`` (a fraction), between 1 and ``n_threads``.

    A core counts as free when others use less than half of it.
    """
    return max(1, min(n_threads, int(free_cores + 0.5)))


def _affinity():
    """The CPUs this process may run on, or None where that is unknown."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None


def _load_sample(cpus):
    """(wall seconds, busy seconds of ``cpus``, this process's CPU seconds),
    or None where the kernel's counters cannot be read."""
    try:
        with open(_PROC_STAT, "rb") as stat:
            lines = stat.read().split(b"\n")
    except OSError:
        return None
    wanted = {f"cpu{cpu}".encode() for cpu in cpus}
    busy_ticks = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            ticks = [int(value) for value in fields[1:9]]
            busy_ticks += sum(ticks) - sum(ticks[i] for i in _IDLE_COLUMNS)
    own = os.times()
    return time.monotonic(), busy_ticks / _TICKS_PER_SECOND, own.user + own.system


def _cores_used_by_others(before, after):
    """How many of this process's cores other processes kept busy, on average,
    between two samples."""
    wall = after[0] - before[0]
    if wall <= 0:
        return 0.0
    busy = after[1] - before[1]
    own = after[2] - before[2]
    return max(0.0, busy - own) / wall
