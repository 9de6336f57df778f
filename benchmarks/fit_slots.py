"""How many tile fits run at once: geosr's rule (a worker's threads / torch's threads per fit) against one
fit at a time per process (the process-wide lock geosr had before), side by side on the same cluster.

The pair is the fieldimager drone DSM (../shared/data), averaged x4 over a 384 x 384 crop, with its
orthophoto; ``--mode tile`` with 48-cell tiles gives 2 x 2 tiles. Each row times the whole
computation of the lazy result (fits, blending) on:
  threads       dask's threaded scheduler (torch spreads one fit over every core)
  1 x N         a LocalCluster of one worker process with N threads (a default ``Client()`` on
                a larger machine has several threads per worker)
  N x 1         N single-threaded worker processes (the CLI's ``--scheduler processes``)

    python benchmarks/fit_slots.py --epochs 200
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fieldimager"


def make_pair(folder: Path):
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    with rasterio.open(DATA / "dsm.tif") as s:
        win = Window(10, 10, 384, 384)
        lr = s.read(1, window=win, out_shape=(96, 96), resampling=Resampling.average)
        profile = dict(driver="GTiff", width=96, height=96, count=1, dtype="float32", crs=s.crs, nodata=s.nodata,
                       transform=s.window_transform(win) @ Affine.scale(4))
    with rasterio.open(folder / "src.tif", "w", **profile) as dst:
        dst.write(lr.astype(np.float32), 1)
    return folder / "src.tif", DATA / "odm_orthophoto.tif"


def one_at_a_time():
    """The old rule, put in place in a process: a single slot."""
    from geosr.runtime import cluster

    lock = threading.Semaphore(1)
    cluster.fit_slot = lambda: lock
    return True


def run(src, guide, epochs, client=None, old=False):
    import geosr

    if old and client is not None:
        client.run(one_at_a_time)
    out = geosr.superresolve(geosr.open_raster(str(src)), geosr.open_raster(str(guide)), 4, mode="tile",
                             tile_size=48, epochs=epochs, align="none", progress=False, client=client)
    t = time.perf_counter()
    if client is None:
        out.values
    else:
        client.compute(out.data, optimize_graph=False).result()
    return time.perf_counter() - t


def _fit_slots():
    from geosr.runtime.cluster import fit_slots

    return fit_slots()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    from distributed import Client, LocalCluster

    import geosr

    n = a.threads
    print(f"geosr {geosr.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{a.epochs} epochs per tile, 4 tiles\n")
    print("| scheduler | fits at once | seconds |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        src, guide = make_pair(Path(d))
        print(f"| threads | 1 (torch on {__import__('torch').get_num_threads()} threads) | "
              f"{run(src, guide, a.epochs):.1f} |", flush=True)
        for workers, threads in ((1, n), (n, 1)):
            for old in ((False, True) if threads > 1 else (False,)):
                with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                  dashboard_address=None) as c, Client(c) as client:
                    # Asked from a task, as a fit asks: client.run runs outside the worker's threads.
                    slots = {w: client.submit(_fit_slots, workers=[w], pure=False).result()
                             for w in client.scheduler_info()["workers"]}
                    seconds = run(src, guide, a.epochs, client, old)
                label = "1 (one at a time, the old lock)" if old else f"{sum(slots.values())} (geosr's rule)"
                print(f"| {workers} x {threads} | {label} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
