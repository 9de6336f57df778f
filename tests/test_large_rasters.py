"""A source far larger than memory: building its graph reads only probes, the alignment window and the
self-check's windows.

The rasters are sparse GeoTIFFs (unwritten blocks cost no disk) with the real fieldimager DSM and
orthophoto written where a probe finds them; the graph is built in a fresh process whose address
space is capped, with GDAL's block cache as the CLI sets it.
"""
import json
import resource
import subprocess
import sys

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

from conftest import degrade

N, SCALE, AT = 40000, 4, 21200  # source side, scale, where the DSM sits (under a probe of geosr.pipeline.inputs)

BUILD = """
import json, resource, sys, time
import geosr
t = time.perf_counter()
out = geosr.superresolve(geosr.open_raster(sys.argv[1]), geosr.open_raster(sys.argv[2]), 4, mode="tile",
                         epochs=2, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "shape": out.shape, "tiles": len(out.chunks[0]),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "shift": out.attrs.get("geosr_align_shift_px"), "selfcheck": out.attrs.get("geosr_selfcheck_pixels")}))
"""


def _sparse(path, shape, count, transform, crs, dtype, nodata=None):
    return rasterio.open(path, "w", driver="GTiff", height=shape[0], width=shape[1], count=count, dtype=dtype,
                         crs=crs, transform=transform, nodata=nodata, tiled=True, blockxsize=512, blockysize=512,
                         compress="deflate", SPARSE_OK=True, BIGTIFF="YES")


def test_the_graph_of_a_40000_px_source_builds_without_reading_it(fieldimager, tmp_path):
    dsm, ortho = fieldimager
    lr_path, _ = degrade(dsm, tmp_path / "lr.tif", SCALE)
    with rasterio.open(lr_path) as s:
        lr, t, crs, nodata = s.read(1), s.transform, s.crs, s.nodata
    origin = t @ Affine.translation(-AT, -AT)  # the DSM's own cells land at rows/columns AT..
    with _sparse(tmp_path / "src.tif", (N, N), 1, origin, crs, "float32", nodata) as dst:
        dst.write(np.full((512, 512), nodata, np.float32), 1, window=((0, 512), (0, 512)))  # nodata elsewhere
        dst.write(lr, 1, window=((AT, AT + lr.shape[0]), (AT, AT + lr.shape[1])))
    hr = origin @ Affine.scale(1 / SCALE)
    with rasterio.open(ortho) as o:
        patch = np.zeros((3, lr.shape[0] * SCALE, lr.shape[1] * SCALE), np.float32)
        reproject(o.read(), patch, src_transform=o.transform, src_crs=o.crs, dst_crs=crs, src_nodata=o.nodata,
                  dst_transform=hr @ Affine.translation(AT * SCALE, AT * SCALE), resampling=Resampling.average)
    with _sparse(tmp_path / "guide.tif", (N * SCALE, N * SCALE), 3, hr, crs, "float32") as dst:
        dst.write(patch, window=((AT * SCALE, AT * SCALE + patch.shape[1]), (AT * SCALE, AT * SCALE + patch.shape[2])))

    def cap():  # a whole read of the source as float64 would need 12.8 GB
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    res = subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / "src.tif"), str(tmp_path / "guide.tif")],
                         capture_output=True, text=True, preexec_fn=cap, timeout=600,
                         env={**__import__("os").environ, "GDAL_CACHEMAX": "256", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["shape"] == [N * SCALE, N * SCALE] and got["tiles"] == 313
    assert got["peak_gb"] < 1.5, got
    dx, dy = map(float, got["shift"].split())  # measured on the DSM and its orthophoto, at the probes' find
    assert abs(dx) < 2 and abs(dy) < 2, got
    # The self-check (2 epochs here) fitted one window, where the probes found the DSM, and read no more.
    assert got["selfcheck"].endswith("in 1 window(s)"), got
