"""Sharpen a DEM with its orthophoto, check it, and draw hillshades: notebooks/02_dem_workflow.ipynb, headless.

The workflow is written once, in the notebook; this script gives it its parameters and runs it
(pip install 'geosr[notebooks]'), saving the executed notebook, with its pictures, beside the result.
By default the DEM is first averaged by --scale, so the original is a truth to score the result
against (Wald's protocol); --as-is sharpens the DEM as it is. The two rasters may differ in CRS,
resolution and extent.

    python examples/dem_workflow.py DEM ORTHO [--scale 4] [--as-is] [--epochs N] [--tile-size N]
        [--guide-crs EPSG:3857] [--out DIR] [--overwrite]
"""
import argparse
from pathlib import Path

from _notebook import run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dem")
    ap.add_argument("ortho")
    ap.add_argument("--scale", type=int, default=None, help="default: the notebook's, 4")
    ap.add_argument("--as-is", action="store_true", help="sharpen the DEM as it is: no truth, no scores")
    ap.add_argument("--epochs", type=int, default=None, help="default: the method's")
    ap.add_argument("--tile-size", type=int, default=None, help="source pixels per tile (default: the notebook's)")
    ap.add_argument("--guide-crs", default=None, help="re-project the orthophoto to this CRS first, as web tools "
                                                      "deliver it")
    ap.add_argument("--out", default="dem_outputs", help="output folder")
    ap.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    a = ap.parse_args(argv)
    return run("02_dem_workflow.ipynb", a.out, a.overwrite, DEM=str(Path(a.dem).resolve()),
               ORTHO=str(Path(a.ortho).resolve()), SCALE=a.scale, DEGRADE_FIRST=not a.as_is, EPOCHS=a.epochs,
               TILE_SIZE=a.tile_size, GUIDE_CRS=a.guide_crs)


if __name__ == "__main__":
    main()
