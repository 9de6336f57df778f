"""Building the graph of a very large source: time and peak memory of the client, before any tile runs.

The inputs are sparse GeoTIFFs (unwritten blocks take no disk): a SIDE x SIDE float32 source
(nodata outside a 512 x 512 block of terrain placed under one of geosr's validity probes) and its
guide at SCALE times the resolution, 3 bands, on the output grid. Each row is one fresh process
that calls ``geosr.superresolve`` and returns (the lazy graph; nothing is fitted), with GDAL's
block cache at the CLI's 256 MB. Peak memory is the process's maximum resident set.

    python benchmarks/graph_build.py                  # 40000 x 40000 at x4, tile mode, align shift and none
    python benchmarks/graph_build.py --side 20000 --scale 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BUILD = """
import json, resource, sys, time
import geosr
t = time.perf_counter()
out = geosr.superresolve(geosr.open_raster(sys.argv[1]), geosr.open_raster(sys.argv[2]), int(sys.argv[3]),
                         mode="tile", align=sys.argv[4], progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "tiles": len(out.chunks[0]) * len(out.chunks[1]),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def make_inputs(folder: Path, side: int, scale: int):
    import rasterio
    from affine import Affine

    src, guide = folder / f"src{side}.tif", folder / f"guide{side}x{scale}.tif"
    at = side // 2 + side // 32 - 4  # under the centre probe of geosr.pipeline.inputs.valid_map
    common = dict(driver="GTiff", crs="EPSG:32616", tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                  SPARSE_OK=True, BIGTIFF="YES")
    y, x = np.mgrid[0:512, 0:512] / 512.0
    dem = (200 + 30 * np.sin(6 * x) * np.cos(4 * y) + 5 * np.sin(40 * x + 9 * y)).astype(np.float32)
    with rasterio.open(src, "w", width=side, height=side, count=1, dtype="float32", nodata=-9999.0,
                       transform=Affine(2.0, 0, 500000, 0, -2.0, 4600000), **common) as dst:
        dst.write(np.full((512, 512), -9999.0, np.float32), 1, window=((0, 512), (0, 512)))
        dst.write(dem, 1, window=((at, at + 512), (at, at + 512)))
    with rasterio.open(guide, "w", width=side * scale, height=side * scale, count=3, dtype="uint8",
                       transform=Affine(2.0 / scale, 0, 500000, 0, -2.0 / scale, 4600000), **common) as dst:
        shade = np.clip(128 + 40 * np.gradient(np.kron(dem, np.ones((scale, scale))))[1], 0, 255).astype(np.uint8)
        dst.write(np.stack([shade] * 3), window=((at * scale, (at + 512) * scale), (at * scale, (at + 512) * scale)))
    return src, guide


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=40000)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--aligns", nargs="+", default=["shift", "none"])
    a = ap.parse_args()
    import geosr

    print(f"geosr {geosr.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    print("| source | scale | align | tiles | build (s) | peak memory (GB) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        src, guide = make_inputs(Path(d), a.side, a.scale)
        for align in a.aligns:
            res = subprocess.run([sys.executable, "-c", BUILD, str(src), str(guide), str(a.scale), align],
                                 capture_output=True, text=True, env={**os.environ, "GDAL_CACHEMAX": "256"})
            if res.returncode:
                print(res.stderr[-2000:], file=sys.stderr)
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"| {a.side} x {a.side} | {a.scale} | {align} | {r['tiles']} | {r['seconds']:.1f} | "
                  f"{r['peak_gb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
