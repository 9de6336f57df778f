"""Bounded memory at any size: a 4096 x 4096 source to a 16384 x 16384 output (x4), or any shape, through `geosr upsample`.

The inputs are made here (a synthetic terrain and a 3-band 8-bit guide derived from its
hillshade, written strip by strip, so making them needs little memory either), in
EPSG:32616 at 1 m and 0.25 m. The run uses the default method and mode at ``--epochs 1``,
so the real code path (read, warp, train, infer every tile, blend, write) runs at a
fraction of the time. Memory is the peak of the resident set summed over the command
and every process it starts (dask workers included), sampled every 0.2 s with psutil.

    python benchmarks/memory.py                         # threads
    python benchmarks/memory.py --source 512x16384      # a 2048 x 65536 output
    python benchmarks/memory.py --method bicubic
    python benchmarks/memory.py --scheduler processes --workers 2
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LR = 4096
SCALE = 4


def make_inputs(folder: Path, height: int = LR, width: int = LR, scale: int = SCALE):
    import rasterio
    from affine import Affine

    src, guide = folder / f"dem_1m_{height}x{width}.tif", folder / f"ortho_25cm_{height}x{width}.tif"
    if src.exists() and guide.exists():
        return src, guide
    crs, x0, y0 = "EPSG:32616", 500000.0, 4500000.0
    side = max(height, width)  # the same terrain, cut to the shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / side
    dem = (200 + 40 * np.sin(6 * x) * np.cos(4 * y) + 15 * np.sin(25 * x + 9 * y) + 3 * np.sin(90 * y)).astype(np.float32)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs=crs, nodata=-9999.0,
                   transform=Affine(1.0, 0, x0, 0, -1.0, y0), tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate")
    with rasterio.open(src, "w", **profile) as dst:
        dst.write(dem, 1)
    profile.update(width=width * scale, height=height * scale, count=3, dtype="uint8", nodata=None,
                   transform=Affine(1.0 / scale, 0, x0, 0, -1.0 / scale, y0), bigtiff="yes")
    rng = np.random.default_rng(0)
    strip = 1024
    with rasterio.open(guide, "w", **profile) as dst:
        for r0 in range(0, height * scale, strip):
            rows = np.arange(r0, min(r0 + strip, height * scale)) // scale
            d = dem[rows].repeat(scale, axis=1)
            gy, gx = np.gradient(d)
            shade = np.clip(128 + 600 * (gx - gy) + rng.normal(0, 12, d.shape), 0, 255)
            rgb = np.stack([shade, 0.8 * shade + 30, 0.6 * shade + 50]).astype(np.uint8)
            dst.write(rgb, window=rasterio.windows.Window(0, r0, width * scale, len(rows)))
    return src, guide


def peak_rss_of(cmd, report_every: float = 60.0, tiles_in=None) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS in MB summed over the process tree).

    Every ``report_every`` seconds the current and peak sums (and the tiles finished so far,
    counted in the checkpoint folder ``tiles_in``) go to stderr, so a long run shows
    whether memory is flat or growing.
    """
    import psutil

    t0 = time.perf_counter()
    next_report = report_every
    proc = subprocess.Popen(cmd)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        if time.perf_counter() - t0 >= next_report:
            done = len(list(tiles_in.glob("tile-*.npy"))) if tiles_in is not None and tiles_in.is_dir() else "?"
            print(f"{time.perf_counter() - t0:7.0f} s  {done:>5} tiles  now {total / 2**20:6.0f} MB  "
                  f"peak {peak / 2**20:6.0f} MB", file=sys.stderr, flush=True)
            next_report += report_every
        time.sleep(0.2)
    return proc.returncode, time.perf_counter() - t0, peak / 2**20


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, default=None, help="where to make the inputs (default: a temporary one)")
    p.add_argument("--scheduler", default="threads")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--source", default=f"{LR}x{LR}", help="source height x width in pixels (the output is 4x)")
    p.add_argument("--method", default=None, help="default: the CLI's (mmsr, at --epochs 1)")
    args = p.parse_args()
    height, width = (int(v) for v in args.source.lower().split("x"))
    folder = args.folder or Path(tempfile.mkdtemp(prefix="geosr-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    src, guide = make_inputs(folder, height, width)
    made = time.perf_counter() - t
    out = folder / "out.tif"
    cmd = [sys.executable, "-m", "geosr.cli", "upsample", str(src), str(guide), "--scale", str(SCALE), "-o", str(out),
           "--overwrite", "-q", "--scheduler", args.scheduler]
    cmd += ["--method", args.method] if args.method else []
    cmd += ["--epochs", "1"] if args.method in (None, "mmsr") else []
    cmd += ["--workers", str(args.workers)] if args.workers else []
    code, seconds, peak = peak_rss_of(cmd, tiles_in=out.with_name(out.name + ".geosr-resume"))
    if code:
        raise SystemExit(f"geosr upsample failed with exit code {code}")
    import rasterio

    with rasterio.open(out) as r:
        shape, crs, res = (r.height, r.width), r.crs, r.res
    print(f"# {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}; inputs made in {made:.0f} s")
    print(f"{'method':8s} {'scheduler':14s} {'source':>11s} {'output':>13s} {'time s':>8s} "
          f"{'peak RSS MB (all processes)':>28s}")
    sched = args.scheduler + (f" x{args.workers}" if args.workers else "")
    print(f"{args.method or 'default':8s} {sched:14s} {height:>5d}x{width:<5d} {shape[0]:>6d}x{shape[1]:<6d} "
          f"{seconds:8.0f} {peak:28.0f}")
    assert shape == (height * SCALE, width * SCALE) and crs.to_epsg() == 32616 and res == (1 / SCALE, 1 / SCALE), \
        (shape, crs, res)


if __name__ == "__main__":
    main()
