"""Quality and time of geosr's methods on the real pixtransform pairs (../shared/data).

The LR source is made from the HR target in one of two ways:
  avgpool   the published protocol: the mean of each scale x scale block;
  gaussian  a sensor-like PSF: Gaussian blur (sigma = 0.5 * scale HR pixels) sampled at
            each LR cell centre, plus white noise of 1% of the target's std. A method tuned
            only to avg-pool would be committing the "inverse crime" here.
RMSE is over all pixels, in the target's units. Beside it, the DEM-aware checks of
geosr.core.metrics (unit pixel spacing), since texture copied from the guide shows in slopes and
shaded relief before it shows in heights:
  slope RMSE     degrees;
  hillshade      mean |hillshade(output) - hillshade(truth)|, in [0, 1];
  texture copy   output RMSE / bicubic RMSE over LR cells whose 3 x 3 neighbourhood is flat
                 in the truth (within 1 unit on 8-bit depth, 0.5 m on vegetation height):
                 above 1, the method added relief where there is none.

Rows: "mmsr" is geosr's default (preset fast, exact=True); "mmsr raw" is the same fit
with exact=False; "bicubic" and "guided" are the plain baselines (exact=False), and
"bicubic exact" shows how much back-projection alone brings.

    python benchmarks/quality.py                       # default settings, full grid
    python benchmarks/quality.py --datasets depth --scales 4 --images 0
    python benchmarks/quality.py --paper               # + the paper's 1000-epoch settings on one pair
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

import geosr
from geosr.core.backprojection import back_project
from geosr.core.metrics import hillshade_difference, rmse, slope_rmse, texture_copy_index
from geosr.core.pair import prepare_pair
from geosr.core.sampling import avg_pool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pixtransform"
FLAT_TOLERANCE = {"depth": 1.0, "vhm": 0.5}  # target units: 1 grey level; 0.5 m of vegetation height


def degrade(target: np.ndarray, scale: int, how: str, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """The LR source: ``how`` "avgpool" or "gaussian" (+ white noise of ``noise`` x the target's std)."""
    if how == "avgpool":
        return avg_pool(target, scale)
    blurred = ndimage.gaussian_filter(target, sigma=0.5 * scale, mode="reflect")
    # The LR cell centre is at HR (i + 0.5) * scale - 0.5: between two pixels when scale is even.
    c = scale // 2
    rows = [c - 1, c] if scale % 2 == 0 else [c]
    h, w = target.shape[0] // scale, target.shape[1] // scale
    cells = blurred[: h * scale, : w * scale].reshape(h, scale, w, scale)
    lr = cells[:, rows][:, :, :, rows].mean(axis=(1, 3))
    return lr + np.random.default_rng(seed).normal(0.0, noise * target.std(), lr.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["depth", "vhm"])
    ap.add_argument("--scales", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--degradations", nargs="+", default=["avgpool", "gaussian"])
    ap.add_argument("--images", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["bicubic", "guided", "regression", "mmsr"])
    ap.add_argument("--epochs", type=int, default=None, help="override mmsr epochs")
    ap.add_argument("--preset", default=None, help="mmsr preset (default: geosr's default)")
    ap.add_argument("--paper", action="store_true", help="also run the paper's settings (1000 epochs) on one pair")
    a = ap.parse_args()

    import platform

    import torch

    print(f"geosr {geosr.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}\n")
    print("| data | scale | degradation | image | method | RMSE | x bicubic | slope RMSE (deg) | hillshade | "
          "texture copy | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for ds in a.datasets:
        npz = np.load(DATA / f"{ds}_sample_images.npz")
        targets, guides = npz["target_imgs"].astype(np.float64), npz["guide_imgs"]
        for scale in a.scales:
            for how in a.degradations:
                for i in a.images:
                    t, g = targets[i], guides[i]
                    src = degrade(t, scale, how, seed=i)
                    p = prepare_pair(src, g, scale)
                    bic = bic_out = None
                    for m in sorted(a.methods, key=lambda m: m != "bicubic"):  # bicubic first: the reference
                        opts = {"exact": False, "selfcheck": False}
                        if m in ("mmsr", "cmsr"):
                            opts["progress"] = False
                        if m == "mmsr":
                            opts.update(epochs=a.epochs, preset=a.preset)
                        t0 = time.perf_counter()
                        out = geosr.superresolve_array(src, g, scale, method=m, **opts)
                        sec = time.perf_counter() - t0
                        rows = [(m, out, sec)]
                        if m in ("mmsr", "bicubic"):
                            # exact=True is back-projection of this same output (same seed, same fit).
                            t0 = time.perf_counter()
                            exact = back_project(out, p.source, p.source_valid, scale)
                            sec_exact = sec + time.perf_counter() - t0
                            rows = ([("mmsr", exact, sec_exact), ("mmsr raw", out, sec)] if m == "mmsr"
                                    else [("bicubic", out, sec), ("bicubic exact", exact, sec_exact)])
                        for name, o, seconds in rows:
                            e = rmse(o, t)
                            if name == "bicubic":
                                bic, bic_out = e, o
                            copy = texture_copy_index(o, t, bic_out, scale, FLAT_TOLERANCE.get(ds, 1.0))
                            summary.setdefault((ds, scale, how, name), []).append((e, seconds, copy))
                            print(f"| {ds} | x{scale} | {how} | {i} | {name} | {e:.3f} | {e / bic:.2f} | "
                                  f"{slope_rmse(o, t):.2f} | {hillshade_difference(o, t):.3f} | {copy:.2f} | "
                                  f"{seconds:.1f} |", flush=True)
    print("\nMeans over images:\n")
    print("| data | scale | degradation | method | mean RMSE | mean of x bicubic | worst x bicubic | "
          "worst texture copy | mean seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (ds, scale, how, m), rows in summary.items():
        ref = summary.get((ds, scale, how, "bicubic"), rows)
        ratios = [r[0] / b[0] for r, b in zip(rows, ref)]
        print(f"| {ds} | x{scale} | {how} | {m} | {np.mean([r[0] for r in rows]):.3f} | {np.mean(ratios):.2f} | "
              f"{max(ratios):.2f} | {max(r[2] for r in rows):.2f} | {np.mean([r[1] for r in rows]):.1f} |")

    if a.paper:
        print("\nThe paper's settings (1000 epochs, 64 channels, whole-pair steps):\n")
        print("| data | scale | image | preset | RMSE | x bicubic | seconds | s/epoch |")
        print("|---|---|---|---|---|---|---|---|")
        for ds, preset in (("depth", "depth"),):
            npz = np.load(DATA / f"{ds}_sample_images.npz")
            t, g = npz["target_imgs"][0].astype(np.float64), npz["guide_imgs"][0]
            src = avg_pool(t, 4)
            bic = rmse(geosr.superresolve_array(src, g, 4, method="bicubic", exact=False), t)
            t0 = time.perf_counter()
            out = geosr.superresolve_array(src, g, 4, preset=preset, epochs=1000, exact=False, progress=False)
            sec = time.perf_counter() - t0
            for name, o in ((f"{preset} raw", out), (f"{preset} exact", back_project(out, src, np.isfinite(src), 4))):
                e = rmse(o, t)
                print(f"| {ds} | x4 | 0 | {name} | {e:.3f} | {e / bic:.2f} | {sec:.0f} | {sec / 1000:.2f} |", flush=True)


if __name__ == "__main__":
    main()
