"""How many CPU threads an estimator's torch work runs on: its ``n_jobs``."""

import os

import joblib
import torch

from ._engine._threads import CpuThreads

# Calls this small run on one thread with n_jobs=None (see ``cpu_threads``):
# users or sessions to recommend for, and rows to predict.
FEW_USERS = 16
FEW_ROWS = 256


def cpu_threads(n_jobs, follow_load=False, little_work=False):
    """The ``CpuThreads`` context of an estimator call with ``n_jobs``.

    None: the threads torch would use (``OMP_NUM_THREADS``,
    ``torch.set_num_threads``, a ``threadpoolctl`` limit in force), at most
    the CPUs joblib finds this process may use (affinity and container
    quotas), following the load of the cores if ``follow_load``. An int: that
    many threads whatever the load, a negative one counting back from the
    usable CPUs as joblib does (-1: all of them).

    Under a launcher that starts several processes per machine (torchrun
    sets ``LOCAL_WORLD_SIZE``), None shares the CPUs between them.

    ``little_work``: the call is too small to share between threads (a few
    sessions to recommend for), so None means one thread. Threads that spin
    while they wait for each other then cost more than they save, and far
    more on a busy machine (one 50-item session: about 1.5 ms on one
    thread, over 100 ms on two beside other processes).
    """
    if n_jobs is None and little_work:
        return CpuThreads(1)
    if n_jobs is None:
        n_threads = min(torch.get_num_threads(), cores_per_local_process())
        return CpuThreads(n_threads, follow_load=follow_load)
    if n_jobs < 0:
        n_jobs = max(joblib.cpu_count() + 1 + n_jobs, 1)
    return CpuThreads(n_jobs)


def cores_per_local_process():
    """The usable CPUs (joblib's count), divided between the processes a
    launcher such as torchrun started on this machine (``LOCAL_WORLD_SIZE``):
    their threads would otherwise spin on each other's cores."""
    try:
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    except ValueError:
        local_processes = 1
    return max(1, joblib.cpu_count() // local_processes)
