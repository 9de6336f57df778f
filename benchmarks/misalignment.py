"""Guides that are only roughly aligned: RMSE of each method, and the accuracy of the alignment estimate.

On real pairs, the guide is displaced by known amounts and each method is scored against
the true HR raster (x4, LR source = the truth averaged over 4 x 4 cells):
  depth, vhm     pixtransform pair 0 (256 x 256), array API; the guide is resampled.
  fieldimager    a 256 x 256 window of the drone DSM (0.27 m, EPSG:32616) with the 0.2 m
                 orthophoto as guide, through the georeferenced pipeline; the displacement is
                 applied to the orthophoto's geotransform only (its pixels are untouched).
Displacements: none, shifts (dx, dy) = (1.5, -0.5), (2.5, 3.5), (-4, 4) output pixels
(geosr.core.align's convention: guide content moved right/down), and a 1 degree rotation about
the window centre.
Methods: bicubic; mmsr with align none / shift (and affine on the rotation and aligned
rows); cmsr (its own learned warp, align none).
RMSE is given over the whole frame and over the interior (an 8-pixel margin left out): a
guide array displaced by up to 4 px has no content in a strip along its edges, where every
method falls back to bicubic; a georeferenced guide that extends past the source does not.
The ratios (x bicubic, x own aligned) are over the interior.

    python benchmarks/misalignment.py                 # all cases
    python benchmarks/misalignment.py --cases depth --epochs 100 --steps 200
    python benchmarks/misalignment.py --cases depth --seeds 0,1,2   # mean over three fits
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHIFTS = [(1.5, -0.5), (2.5, 3.5), (-4.0, 4.0)]
ROTATION = 1.0
SCALE = 4
MARGIN = 8  # HR pixels left out of the interior RMSE: the largest shift and the resampling kernel


def displacements():
    """(label, pixel-space displacement D about the centre as (kind, value))."""
    yield "aligned", ("shift", (0.0, 0.0))
    for d in SHIFTS:
        yield f"shift ({d[0]:+g}, {d[1]:+g})", ("shift", d)
    yield f"rotation {ROTATION:g} deg", ("rotation", ROTATION)


def pixel_matrix(kind, value, shape):
    """Affine in output-pixel (column, row) coordinates: guide content at p moves to D p."""
    from affine import Affine

    if kind == "shift":
        return Affine.translation(*value)
    h, w = shape
    # On a north-up grid rows grow southward: a counter-clockwise map rotation is clockwise here.
    return Affine.rotation(-value, pivot=(w / 2, h / 2))


def array_case(name, epochs, steps, methods, seeds):
    import geosr
    from geosr.core import align, warp
    from geosr.core.sampling import avg_pool

    z = np.load(DATA / "pixtransform" / f"{name}_sample_images.npz")
    truth, guide = z["target_imgs"][0].astype(np.float64), z["guide_imgs"][0].astype(np.float64)
    src = avg_pool(truth, SCALE)
    for label, (kind, value) in displacements():
        d = pixel_matrix(kind, value, truth.shape)
        moved = warp.displace(guide, align.Alignment("shift", ~d, (0, 0)))

        def run(method, align_kind, **opts):
            t = time.perf_counter()
            out, info = geosr.superresolve_array(src, moved, SCALE, method, align=align_kind, return_info=True,
                                                 progress=False, selfcheck=False, **opts)
            return _rmse(out, truth), time.perf_counter() - t, info.details.get("alignment"), info.details

        yield from _rows(name, label, kind, value, d, truth.shape, run, epochs, steps, methods, seeds)


def geo_case(name, epochs, steps, methods, seeds):
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    import geosr

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import degrade

    tmp = Path(tempfile.mkdtemp())
    src_path, truth = degrade(DATA / "fieldimager" / "dsm.tif", tmp / "src.tif", SCALE, Window(76, 69, 256, 256))
    with rasterio.open(src_path) as s:
        hr = s.transform @ Affine.scale(1 / SCALE)
    with rasterio.open(DATA / "fieldimager" / "odm_orthophoto.tif") as g:
        profile, pixels = g.profile, g.read()
    for label, (kind, value) in displacements():
        d = pixel_matrix(kind, value, truth.shape)
        moved = tmp / f"guide_{len(label)}_{abs(hash(label))}.tif"
        with rasterio.open(moved, "w", **{**profile, "transform": hr @ d @ ~hr @ profile["transform"]}) as dst:
            dst.write(pixels)

        def run(method, align_kind, **opts):
            t = time.perf_counter()
            out = geosr.superresolve(geosr.open_raster(str(src_path)), geosr.open_raster(str(moved)), SCALE, method,
                                     align=align_kind, progress=False, selfcheck=False, **opts)
            values = out.values.astype(np.float64)
            attrs = {k: v for k, v in out.attrs.items() if k.startswith("geosr_align")}
            return _rmse(values, truth), time.perf_counter() - t, attrs if align_kind != "none" else None, {}

        yield from _rows(name, label, kind, value, d, truth.shape, run, epochs, steps, methods, seeds)


def _rows(case, label, kind, value, d, shape, run, epochs, steps, methods, seeds=(0,)):
    from geosr.core.align import Alignment

    expected = Alignment("affine", d, (shape[1] / 2, shape[0] / 2))
    plans = [("bicubic", "bicubic", "none", {})]
    if "mmsr" in methods:
        plans += [("mmsr", "mmsr", "none", {"epochs": epochs}), ("mmsr", "mmsr", "shift", {"epochs": epochs})]
        if kind == "rotation" or value == (0.0, 0.0):
            plans.append(("mmsr", "mmsr", "affine", {"epochs": epochs}))
    if "cmsr" in methods:
        plans.append(("cmsr", "cmsr", "none", {"steps": steps}))
    if "regression" in methods:
        plans += [("regression", "regression", "none", {}), ("regression", "regression", "shift", {})]
    for shown, method, align_kind, opts in plans:
        runs = [run(method, align_kind, **opts, **({"seed": s} if opts else {})) for s in (seeds if opts else (0,))]
        rmse, interior = (float(np.mean([r[0][i] for r in runs])) for i in (0, 1))
        seconds, alignment, details = float(np.mean([r[1] for r in runs])), runs[0][2], runs[0][3]
        est = ""
        if alignment:
            est = f"({alignment['geosr_align_shift_px'].replace(' ', ', ')})"
            if "geosr_align_rotation_deg" in alignment:
                est += f" rot {float(alignment['geosr_align_rotation_deg']):+.2f}"
        if method == "cmsr" and "warp" in details:
            dx, dy = details["warp"]["mean_shift_px"]
            est = f"warp ({dx:.2f}, {dy:.2f})"
        truth = f"({expected.shift[0]:.2f}, {expected.shift[1]:.2f})"
        if kind == "rotation":
            truth += f" rot {expected.rotation_degrees:+.2f}"
        yield dict(case=case, guide=label, method=shown, align=align_kind, full=rmse, rmse=interior, seconds=seconds,
                   estimate=est, truth=truth)


def _rmse(out, truth):
    """RMSE over the whole frame and over the interior (MARGIN pixels left out on every side)."""
    def one(a, b):
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))

    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    return one(out, truth), one(out[inner], truth[inner])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="depth,vhm,fieldimager")
    ap.add_argument("--methods", default="mmsr,cmsr,regression")
    ap.add_argument("--epochs", type=int, default=200, help="MMSR epochs (fast preset)")
    ap.add_argument("--steps", type=int, default=300, help="CMSR steps")
    ap.add_argument("--seeds", default="0", help="seeds of the learned methods; RMSE is their mean")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    methods = a.methods.split(",")
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}, "
          f"x{SCALE}, mmsr fast preset {a.epochs} epochs, cmsr {a.steps} steps, seeds {a.seeds}, CPU")
    print("| case | guide displacement | method | align | RMSE frame | RMSE interior | x bicubic | x own aligned "
          "| estimate (dx, dy) px | applied | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        rows = array_case(case, a.epochs, a.steps, methods, seeds) if case != "fieldimager" else \
            geo_case(case, a.epochs, a.steps, methods, seeds)
        bicubic, aligned = None, {}
        for r in rows:
            if r["method"] == "bicubic":
                bicubic = r["rmse"]
            key = (r["method"], r["align"])
            if r["guide"] == "aligned":
                aligned[key] = r["rmse"]
            own = r["rmse"] / aligned[key] if key in aligned else float("nan")
            print(f"| {r['case']} | {r['guide']} | {r['method']} | {r['align']} | {r['full']:.4g} | {r['rmse']:.4g} | "
                  f"{r['rmse'] / bicubic:.3f} | {own:.3f} | {r['estimate']} | {r['truth']} | {r['seconds']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
