"""Running on dask.distributed: finding the client, GPU worker resources, and starting local clusters.

geosr has no scheduler of its own. Its graphs run on dask's threads by default, and on
any dask.distributed cluster a user already has (``Client(address)``), or on a local one
the CLI starts (``--scheduler processes``). GPU clusters follow dask-cuda: one worker
process and one thread per GPU. Where workers advertise the resource ``GPU``, the fit
tasks ask for ``GPU=1``, so on a mixed cluster only GPU workers fit and CPU workers read,
warp and write.
"""
from __future__ import annotations

import threading

from ..errors import InputError

SCHEDULERS = ("threads", "processes", "distributed")
_slots: dict[int, threading.Semaphore] = {}
_slots_lock = threading.Lock()


def current_client(client=None):
    """``client``, else the process's current dask.distributed client, else None (local threads)."""
    if client is not None:
        return client
    import sys

    if "distributed" not in sys.modules:  # no cluster can be running if distributed was never imported
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def gpu_resources(client) -> dict | None:
    """``{"GPU": 1}`` when the client's workers advertise a GPU resource, else None."""
    if client is None:
        return None
    try:
        info = client.scheduler_info(n_workers=-1)  # all workers (newer distributed lists only a few by default)
    except TypeError:
        info = client.scheduler_info()
    workers = info.get("workers", {})
    if any(w.get("resources", {}).get("GPU") for w in workers.values()):
        return {"GPU": 1}
    return None


def start(scheduler: str = "threads", workers: int | None = None, address: str | None = None, device=None,
          memory_limit: int | None = None):
    """A Client for the CLI's ``--scheduler``, or None for local threads.

    processes: a LocalCluster of ``workers`` single-threaded processes on this machine
    (one per core by default); with CUDA present, device not "cpu" and dask-cuda
    installed, a LocalCUDACluster with one worker per GPU and the resource GPU=1.
    distributed: connect to the scheduler at ``address``. ``memory_limit``: bytes a local cluster's
    workers and this process share (dask's per-worker ``memory_limit``: they spill and pause before it).
    """
    if scheduler not in SCHEDULERS:
        raise InputError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if scheduler == "threads":
        if workers is not None or address is not None:
            raise InputError("--workers and --address need --scheduler processes or distributed")
        return None
    from distributed import Client

    if scheduler == "distributed":
        if address is None:
            raise InputError("--scheduler distributed needs --address, e.g. tcp://scheduler-host:8786 "
                             "(or use --scheduler processes for a cluster on this machine)")
        return Client(address)
    if address is not None:
        raise InputError("--address is for --scheduler distributed; --scheduler processes starts its own cluster")
    if _cuda_cluster_wanted(device):
        from dask_cuda import LocalCUDACluster

        kwargs = {"n_workers": workers} if workers else {}
        return Client(LocalCUDACluster(threads_per_worker=1, resources={"GPU": 1}, **kwargs))
    import os

    from distributed import LocalCluster

    n = workers or os.cpu_count() or 1
    limit = {} if memory_limit is None else {"memory_limit": memory_limit // (n + 1)}  # a share for this process too
    return Client(LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, **limit))


def _cuda_cluster_wanted(device) -> bool:
    if device is not None and str(device).startswith("cpu"):
        return False
    try:
        import torch

        if not torch.cuda.is_available():
            return False
        import dask_cuda  # noqa: F401
    except ImportError:
        return False
    return True


def in_worker() -> bool:
    """Whether this code runs in a dask.distributed worker."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def task_threads() -> int:
    """How many tasks this process runs at once: its dask worker's threads, else dask's thread pool."""
    try:
        from distributed import get_worker

        worker = get_worker()
        return int(getattr(getattr(worker, "state", None), "nthreads", None) or worker.nthreads)
    except (ImportError, ValueError):
        import dask
        from dask.system import CPU_COUNT

        return int(dask.config.get("num_workers", None) or CPU_COUNT)


def fit_slot() -> threading.Semaphore:
    """Hold one while fitting: at most (task threads // torch threads) fits run at once in a process.

    A fit already spreads over torch's threads, so more fits than that would oversubscribe the
    cores. On dask's threaded scheduler torch uses every core: one fit at a time, with reading
    and writing going on beside it. In a dask worker torch runs on one thread (the nanny sets
    OMP_NUM_THREADS=1), so a worker with four threads fits four tiles at once.
    """
    n = fit_slots()
    with _slots_lock:
        return _slots.setdefault(n, threading.Semaphore(n))


def fit_slots() -> int:
    """How many fits may run at once in this process (see :func:`fit_slot`)."""
    import torch

    return max(1, task_threads() // max(1, torch.get_num_threads()))
