"""A batch of neighbouring tiles: one scene training per file against one shared by all (--share-model).

Each case is a mosaic source averaged from a truth, cut into 2 x 2 files as a survey delivered in
tiles would be, and run as one batch of ``geosr upsample FOLDER GUIDE... -o OUT`` (a process, as a
user runs it; the self-check off, since it is not what is measured) with:
  bicubic           --method bicubic
  scene             --mode scene: one network trained on each file
  scene, shared     --mode scene --share-model: one network trained on the first file, run on all
RMSE is pooled over the valid pixels of all four outputs against the truth, and as a ratio to
bicubic's; seconds are the whole batch's wall time.

Cases (the sources are averages of their truths: the method's own protocol):
  fieldimager  the drone DSM averaged x4 (1.08 m) in 2 x 2 files of about 50 x 49 pixels, with
               the 0.2 m orthophoto (one file for all); truth the DSM at 0.27 m.
  s2-wald      Sentinel-2 B11 averaged 20 -> 40 m, the top-left 256 x 256 pixels in 2 x 2 files,
               with B04/B03/B02 averaged 10 -> 20 m; x2, truth the real 20 m B11.

    python benchmarks/batch.py [--cases fieldimager s2-wald]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RUNS = {"bicubic": ["--method", "bicubic"], "scene": ["--mode", "scene"],
        "scene, shared": ["--mode", "scene", "--share-model"]}


def mosaic(name: str, folder: Path):
    """(source file, guide files, scale, truth, source pixels to use (rows, cols))."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline import _degrade, wald_files

    if name == "fieldimager":
        truth = _degrade(SHARED / "fieldimager" / "dsm.tif", folder / "dsm_x4.tif", 4)[0]
        return folder / "dsm_x4.tif", [SHARED / "fieldimager" / "odm_orthophoto.tif"], 4, truth, None
    truth, source, guides = wald_files(folder)
    return source, guides, 2, truth, (256, 256)


def split(source: Path, truth, scale: int, extent, folder: Path):
    """The source cut into 2 x 2 files in ``folder``; {file stem: the truth under it}."""
    import rasterio
    from rasterio.windows import Window

    folder.mkdir()
    parts = {}
    with rasterio.open(source) as src:
        h, w = extent or (src.height, src.width)
        rows, cols = [0, h // 2, h], [0, w // 2, w]
        for i in range(2):
            for j in range(2):
                win = Window(cols[j], rows[i], cols[j + 1] - cols[j], rows[i + 1] - rows[i])
                profile = src.profile | dict(width=int(win.width), height=int(win.height),
                                             transform=src.window_transform(win))
                with rasterio.open(folder / f"q{i}{j}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=win))
                parts[f"q{i}{j}"] = truth[rows[i] * scale:rows[i + 1] * scale, cols[j] * scale:cols[j + 1] * scale]
    return parts


def batch(folder: Path, guides, scale: int, out: Path, flags) -> float:
    geosr = Path(sys.executable).parent / "geosr"
    t = time.perf_counter()
    subprocess.run([str(geosr), "upsample", str(folder), *map(str, guides), "--scale", str(scale), "-o", str(out),
                    "-q", *([] if "bicubic" in flags else ["--no-selfcheck"]), *flags], check=True)
    return time.perf_counter() - t


def pooled_rmse(out: Path, parts: dict, scale: int) -> float:
    import rasterio

    errors = []
    for stem, truth in parts.items():
        with rasterio.open(out / f"{stem}_x{scale}.tif") as r:
            values = r.read(1, masked=True).astype(np.float64).filled(np.nan)
        d = (values - truth)[np.isfinite(values) & np.isfinite(truth)]
        errors.append(d)
    d = np.concatenate(errors)
    return float(np.sqrt(np.mean(d ** 2)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["fieldimager", "s2-wald"])
    args = p.parse_args()
    import torch

    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({'cuda' if torch.cuda.is_available() else 'cpu'})")
    print("| case | run | RMSE | x bicubic | seconds |")
    print("|---|---|---|---|---|")
    for name in args.cases:
        with tempfile.TemporaryDirectory(prefix="geosr-batch-") as tmp:
            tmp = Path(tmp)
            source, guides, scale, truth, extent = mosaic(name, tmp)
            parts = split(source, truth, scale, extent, tmp / "tiles")
            base = None
            for run, flags in RUNS.items():
                out = tmp / run.replace(", ", "-")
                seconds = batch(tmp / "tiles", guides, scale, out, flags)
                error = pooled_rmse(out, parts, scale)
                base = base or error
                print(f"| {name} | {run} | {error:.4g} | {error / base:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
