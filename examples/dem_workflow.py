"""Sharpen a DEM with its orthophoto, check it, and draw hillshades: notebooks/02_dem_workflow.ipynb as a script.

By default the DEM is first averaged by --scale, so the original is a truth to score the result
against (Wald's protocol); --as-is sharpens the DEM as it is. The two rasters may differ in CRS,
resolution and extent.

    python examples/dem_workflow.py DEM ORTHO [--scale 4] [--as-is] [--epochs N] [--out DIR]
"""
import argparse
from pathlib import Path

import dask
import rioxarray
from affine import Affine
from rasterio.enums import Resampling

import geosr
from geosr.core import metrics; from geosr import plot

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("dem")
ap.add_argument("ortho")
ap.add_argument("--scale", type=int, default=4)
ap.add_argument("--as-is", action="store_true", help="sharpen the DEM as it is: no truth, no scores")
ap.add_argument("--epochs", type=int, default=None, help="default: the method's")
ap.add_argument("--tile-size", type=int, default=None, help="source pixels per tile (default: 512 output pixels)")
ap.add_argument("--out", default="dem_outputs", help="output folder")
ap.add_argument("--overwrite", action="store_true")
a = ap.parse_args()

dem = rioxarray.open_rasterio(a.dem, masked=True).squeeze("band", drop=True)
ortho = geosr.open_raster(a.ortho, "orthophoto")
s = a.scale
if a.as_is:
    truth, source = None, dem
else:
    h, w = (n - n % s for n in dem.shape)
    truth = dem.isel(y=slice(0, h), x=slice(0, w))
    source = truth.rio.reproject(truth.rio.crs, shape=(h // s, w // s), transform=truth.rio.transform() * Affine.scale(s),
                                 resampling=Resampling.average)

options = {} if a.epochs is None else {"epochs": a.epochs}
sharp = source.geosr.superresolve(ortho, scale=s, tile_size=a.tile_size, **options)
bicubic = source.geosr.superresolve(ortho, scale=s, method="bicubic")
sharp, bicubic = dask.compute(sharp, bicubic)

out = Path(a.out)
out.mkdir(exist_ok=True)
print("wrote", geosr.write(sharp, out / f"{Path(a.dem).stem}_x{s}.tif", overwrite=a.overwrite))
check = geosr.cycle_residual(sharp.values, source.values, s)
print(f"avg-pool(output) - source: max |.| {check.max:.1e} over {check.cells} cells")
shaded = {"bicubic": plot.shade(bicubic), "geosr": plot.shade(sharp)}
if truth is not None:
    shaded["truth"] = plot.shade(truth)
    p = abs(truth.rio.resolution()[0])
    for name, r in (("bicubic", bicubic), ("geosr", sharp)):
        print(f"{name:8s} height RMSE {metrics.rmse(r.values, truth.values):.4f}, "
              f"slope RMSE {metrics.slope_rmse(r.values, truth.values, p):.2f} deg")
fig, _ = plot.panels(shaded, vmin=0, vmax=1)
fig.savefig(out / f"{Path(a.dem).stem}_x{s}_hillshade.png", dpi=90)
print("wrote", out / f"{Path(a.dem).stem}_x{s}_hillshade.png")
