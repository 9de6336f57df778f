"""CMSR (and the regression baseline) against bicubic on every real pair with a truth (../shared/data),
at CMSR's defaults.

The LR source is the truth averaged over scale x scale cells (the published protocol):
  depth, vhm    pixtransform pairs 0-2 (256 x 256), array API;
  fieldimager   the 256 x 256 window of the drone DSM used in misalignment.py, through the
                georeferenced pipeline (tests/conftest.py ``degrade``; the orthophoto is warped
                onto the output grid);
  plots         the four fieldimager plot crops (DSM/*_dsm.tif with MOSAIC/*_RGB.tif on the
                same grid, about 267 x 71), array API, trimmed to a multiple of the scale.
Every method runs with align="none" (CMSR learns its own warp) and exact=True, geosr's
default. RMSE is over all valid pixels, in the truth's units; "x bicubic" divides by
bicubic's RMSE on the same case. Cases too small for a scale are skipped.

    python benchmarks/cmsr.py                                    # x4, every case
    python benchmarks/cmsr.py --cases depth --scales 4 8 --images 0
    python benchmarks/cmsr.py --cases fieldimager --set crop=96 --set steps=1200
    python benchmarks/cmsr.py --scales 4 8 --methods regression   # the baseline alone, seconds
"""
from __future__ import annotations

import argparse
import ast
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WINDOW = (76, 69, 256, 256)  # fieldimager DSM window (col, row, width, height), as in misalignment.py
PLOTS = ("1_30", "2_40", "3_70", "4_100")


def cases(names, scales, images):
    """Yield (case, scale, image, run) where run(method, **options) -> (output, truth)."""
    import geosr
    from geosr.core.sampling import avg_pool

    for name in names:
        for s in scales:
            if name in ("depth", "vhm"):
                z = np.load(DATA / "pixtransform" / f"{name}_sample_images.npz")
                for i in (i for i in images if i < len(z["target_imgs"])):
                    t, g = z["target_imgs"][i].astype(np.float64), z["guide_imgs"][i]
                    yield name, s, i, _array_run(geosr, avg_pool(t, s), g, s, t)
            elif name == "plots":
                import rasterio

                for i in (i for i in images if i < len(PLOTS)):
                    with rasterio.open(DATA / "fieldimager" / "DSM" / f"{PLOTS[i]}_dsm.tif") as r:
                        t = r.read(1).astype(np.float64)
                    with rasterio.open(DATA / "fieldimager" / "MOSAIC" / f"{PLOTS[i]}_RGB.tif") as r:
                        g = r.read().astype(np.float64)
                    h, w = (t.shape[0] // s) * s, (t.shape[1] // s) * s
                    if min(h, w) < 2 * s * s:  # CMSR needs a source of 2 x scale pixels
                        continue
                    yield name, s, PLOTS[i], _array_run(geosr, avg_pool(t[:h, :w], s), g[:, :h, :w], s, t[:h, :w])
            elif name == "fieldimager":
                yield name, s, "window", _geo_run(geosr, s)
            else:
                raise SystemExit(f"unknown case {name!r}")


def _array_run(geosr, src, guide, s, truth):
    def run(method, **options):
        return geosr.superresolve_array(src, guide, s, method, align="none", progress=False, selfcheck=False,
                                         **options), truth
    return run


def _geo_run(geosr, s):
    from rasterio.windows import Window

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import degrade

    src_path, truth = degrade(DATA / "fieldimager" / "dsm.tif", Path(tempfile.mkdtemp()) / "src.tif", s,
                              Window(*WINDOW))
    ortho = str(DATA / "fieldimager" / "odm_orthophoto.tif")

    def run(method, **options):
        out = geosr.superresolve(geosr.open_raster(str(src_path)), geosr.open_raster(ortho), s, method,
                                 align="none", progress=False, selfcheck=False, **options)
        return out.values.astype(np.float64), truth
    return run


def _rmse(out, truth):
    ok = np.isfinite(out) & np.isfinite(truth)
    return float(np.sqrt(np.mean((out[ok] - truth[ok]) ** 2)))


def _value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["depth", "vhm", "fieldimager", "plots"])
    ap.add_argument("--scales", nargs="+", type=int, default=[4])
    ap.add_argument("--images", nargs="+", type=int, default=[0, 1, 2, 3], help="pixtransform has 0-2, plots 0-3")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="CMSR's RMSE is the mean over these seeds")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a CMSR option (repeatable)")
    ap.add_argument("--methods", nargs="+", default=["cmsr", "regression"],
                    help="methods beside bicubic: cmsr, and baselines such as regression")
    a = ap.parse_args()
    options = {k: _value(v) for k, v in (kv.split("=", 1) for kv in a.set)}

    import torch

    import geosr

    print(f"# geosr {geosr.__version__} from {Path(geosr.__file__).parent}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}; cmsr options {options or 'default'}, seeds {a.seeds}\n")
    print("| case | scale | image | bicubic | bicubic exact | " + " | ".join(
        f"{m} | x bicubic | x bicubic exact | {m} s" for m in a.methods) + " |")
    print("|---|---|---|---|---|" + "---|---|---|---|" * len(a.methods))
    ratios = {}
    for name, s, image, run in cases(a.cases, a.scales, a.images):
        bic = _rmse(*run("bicubic", exact=False))
        bic_exact = _rmse(*run("bicubic"))
        cells = [name, f"x{s}", str(image), f"{bic:.4g}", f"{bic_exact:.4g}"]
        for m in a.methods:
            t0 = time.perf_counter()
            seeds = a.seeds if m == "cmsr" else [None]
            try:
                err = float(np.mean([_rmse(*run(m, **({"seed": seed, **options} if m == "cmsr" else {})))
                                     for seed in seeds]))
            except Exception as e:  # noqa: BLE001 - a failing fit is a result of this benchmark
                cells += [f"fails: {type(e).__name__}", "", "", ""]
                continue
            sec = (time.perf_counter() - t0) / len(seeds)
            ratios.setdefault((name, s, m), []).append(err / bic)
            cells += [f"{err:.4g}", f"{err / bic:.3f}", f"{err / bic_exact:.3f}", f"{sec:.0f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
    print("\n| case | scale | method | mean x bicubic | worst x bicubic |\n|---|---|---|---|---|")
    for (name, s, m), r in ratios.items():
        print(f"| {name} | x{s} | {m} | {np.mean(r):.3f} | {max(r):.3f} |")


if __name__ == "__main__":
    main()
