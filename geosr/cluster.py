"""Running on dask.distributed: finding the client, GPU worker resources, and starting local clusters.

geosr has no scheduler of its own. Its graphs run on dask's threads by default, and on
any dask.distributed cluster a user already has (``Client(address)``), or on a local one
the CLI starts (``--scheduler processes``). GPU clusters follow dask-cuda: one worker
process and one thread per GPU. Where workers advertise the resource ``GPU``, the fit
tasks ask for ``GPU=1``, so on a mixed cluster only GPU workers fit and CPU workers read,
warp and write.
"""
from __future__ import annotations

SCHEDULERS = ("threads", "processes", "distributed")


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


def start(scheduler: str = "threads", workers: int | None = None, address: str | None = None, device=None):
    """A Client for the CLI's ``--scheduler``, or None for local threads.

    processes: a LocalCluster of ``workers`` single-threaded processes on this machine
    (one per core by default); with CUDA present, device not "cpu" and dask-cuda
    installed, a LocalCUDACluster with one worker per GPU and the resource GPU=1.
    distributed: connect to the scheduler at ``address``.
    """
    from .errors import InputError

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
    return Client(LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None))


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
