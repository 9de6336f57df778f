"""Strips along the raster's frame: MMSR's error next to the frame and inside, relative to bicubic.

For each case: RMSE against the truth of MMSR and of plain bicubic (exact=False) over the band
of pixels fewer than k = 2, 4, 8 from the frame, and inside (8 or more), and MMSR / bicubic in
each ("x bic"). The sources are the truth averaged by 4. The last column is the band's ratio
over the inside's: 1 when the frame is as good as the rest.

Part 1: the pixtransform depth and vhm pairs (../shared/data), 128 x 128 centre crops, through
superresolve_array, over seeds. "context" fits the 192 x 192 crop around it and scores the same
128 x 128 pixels, so the band has its real neighbours: where the band is harder by content.
Part 2: a 256 x 256 window of the fieldimager DSM inside its footprint, with the orthophoto,
through superresolve on files: one tile, 3 x 3 tiles (tile_size 24), scene mode on those tiles
(16 channels, as tests/test_scene.py, to keep it cheap); "context" fits 288 x 288 and scores
the same 256 x 256 pixels.
Part 3: notebook 01 (Landsat-8 B10 radiance averaged to 90 m, x3 with the 30 m RGB; no truth):
mean |MMSR - bicubic| by distance to the frame, top and bottom rows apart from left and right
columns, over its mean inside. Then the same for a run on the source 4 cells (12 px) smaller on
each side, and for the notebook's run on those pixels, which have 12 px of real context.

--before switches the mirrored margin off (Pair.mirrored returns the pair as it is), which gives
the code before it bit for bit.

    python benchmarks/edges.py                     # all parts, about 25 min on 2 CPU cores
    python benchmarks/edges.py --parts 1 --before
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import geosr
from geosr.core.metrics import rmse
from geosr.core.sampling import avg_pool

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BANDS = (2, 4, 8)


def frame_distance(shape):
    h, w = shape
    return np.minimum(np.minimum(np.arange(h), np.arange(h)[::-1])[:, None],
                      np.minimum(np.arange(w), np.arange(w)[::-1])[None, :])


def scores(out, bicubic, truth):
    """MMSR / bicubic inside, then in each band."""
    d = frame_distance(truth.shape)

    def ratio(where):
        return rmse(np.where(where, out, np.nan), truth) / rmse(np.where(where, bicubic, np.nan), truth)

    return [ratio(d >= 8)] + [ratio(d < k) for k in BANDS]


def line(name, r, seconds):
    cells = [f"{name:34s}", f"{r[0]:6.3f}"] + [f"{v:6.3f}" for v in r[1:]] + [f"{r[1] / r[0]:6.3f}", f"{seconds:5.0f}"]
    print(" | ".join(cells), flush=True)


def header(first):
    print(f"{first:34s} | inside | " + " | ".join(f"  k={k} " for k in BANDS) + " | k=2/in |     s")


def part1(args):
    header("pixtransform x4, 128 px, x bic")
    for name in ("depth", "vhm"):
        d = np.load(DATA / "pixtransform" / f"{name}_sample_images.npz")
        for i in range(3):
            target, guide = d["target_imgs"][i].astype(np.float64), d["guide_imgs"][i].astype(np.float32)
            runs = [(s, 64, 64) for s in args.seeds] + ([("context", 32, 64)] if args.context else [])
            for seed, start, inner in runs:
                crop = (slice(start, 256 - start),) * 2
                truth, g = target[crop], guide[(slice(None), *crop)]
                src = avg_pool(truth, 4)
                t = time.perf_counter()
                out = geosr.superresolve_array(src, g, 4, epochs=args.epochs, align="none", progress=False,
                                               seed=0 if seed == "context" else seed)
                seconds = time.perf_counter() - t
                bicubic = geosr.superresolve_array(src, g, 4, method="bicubic", exact=False)
                keep = (slice(inner - start, inner - start + 128),) * 2
                label = f"{name} {i} " + ("context" if seed == "context" else f"seed {seed}")
                line(label, scores(out[keep], bicubic[keep], truth[keep]), seconds)


def part2(args):
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    folder = Path(tempfile.mkdtemp())
    guide = geosr.open_raster(str(DATA / "fieldimager" / "odm_orthophoto.tif"))

    def window(side):
        """The DSM averaged x4 over a side x side window at the footprint's centre (valid up to its frame)."""
        with rasterio.open(DATA / "fieldimager" / "dsm.tif") as f:
            win = Window(202 - side // 2, 206 - side // 2, side, side)
            truth = f.read(1, window=win).astype(np.float64)
            lr = f.read(1, window=win, out_shape=(side // 4, side // 4), resampling=Resampling.average)
            profile = dict(driver="GTiff", width=side // 4, height=side // 4, count=1, dtype="float32", crs=f.crs,
                           transform=f.window_transform(win) @ Affine.scale(4))
            with rasterio.open(folder / f"dsm_{side}.tif", "w", **profile) as dst:
                dst.write(lr[None])
        return geosr.open_raster(str(folder / f"dsm_{side}.tif")), truth

    header("fieldimager DSM x4, 256 px, x bic")
    cases = {"one tile": (256, dict(mode="tile")), "3 x 3 tiles": (256, dict(mode="tile", tile_size=24)),
             "scene, 3 x 3 tiles": (256, dict(mode="scene", tile_size=24, channels=16)),
             "context (one tile of 288 px)": (288, dict(mode="tile"))}
    for label in args.field:
        side, kw = cases[label]
        src, truth = window(side)
        keep = (slice((side - 256) // 2, (side + 256) // 2),) * 2  # the 256 x 256 pixels, with real neighbours
        bicubic = geosr.superresolve(src, guide, 4, "bicubic", exact=False).values
        t = time.perf_counter()
        out = geosr.superresolve(src, guide, 4, epochs=args.epochs, progress=False, **kw).values
        line(label, scores(out[keep], bicubic[keep], truth[keep]), time.perf_counter() - t)


def part3(args):
    import rioxarray
    import xarray as xr
    from rasterio.enums import Resampling

    from geosr.demo import LANDSAT_SCENE, b10_radiance, scene_dir

    scene = scene_dir(LANDSAT_SCENE)
    window = dict(y=slice(441, 603), x=slice(36, 522))  # notebook 01's WINDOW
    b10 = rioxarray.open_rasterio(scene / "l8_B10.tif").isel(window).squeeze("band", drop=True)
    rgb = xr.concat([rioxarray.open_rasterio(scene / f"l8_{b}.tif").isel(window) for b in ("B4", "B3", "B2")], "band")
    radiance = b10_radiance(b10)
    source = radiance.rio.reproject(radiance.rio.crs, resolution=90, resampling=Resampling.average)

    def difference(src):
        bicubic = src.geosr.superresolve(rgb, scale=3, method="bicubic").values
        t = time.perf_counter()
        out = src.geosr.superresolve(rgb, scale=3, epochs=args.epochs, progress=False).values
        return np.abs(out - bicubic), time.perf_counter() - t

    outer, seconds = difference(source)
    print(f"notebook 01, mean |MMSR - bicubic| by distance to the frame, x the mean 8 px or more inside ({seconds:.0f} s)")
    print(f"{'':48s} | " + " | ".join(f"{k:6d}" for k in range(6)))
    inner, _ = difference(source.isel(y=slice(4, -4), x=slice(4, -4)))  # 12 output px in from the frame
    for label, diff in (("notebook's frame", outer), ("12 px in: frame of a run there", inner),
                        ("12 px in: same pixels, notebook run", outer[12:-12, 12:-12])):
        h, w = diff.shape
        inside = float(np.mean(diff[8:-8, 8:-8]))
        for sides, rows in (("top, bottom", [np.r_[diff[k], diff[h - 1 - k]] for k in range(6)]),
                            ("left, right", [np.r_[diff[:, k], diff[:, w - 1 - k]] for k in range(6)])):
            print(f"{label + ', ' + sides:48s} | " + " | ".join(f"{np.mean(r) / inside:6.2f}" for r in rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, default=None, help="default: 100 (part 1), 150 (part 2), 200 (part 3)")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--no-context", dest="context", action="store_false", help="part 1 without the context rows")
    ap.add_argument("--field", nargs="*", default=["one tile", "3 x 3 tiles", "scene, 3 x 3 tiles",
                                                   "context (one tile of 288 px)"], help="part 2's cases")
    ap.add_argument("--before", action="store_true", help="without the mirrored margin at the frame")
    args = ap.parse_args()
    if args.before:
        from geosr.core.pair import Pair

        Pair.mirrored = lambda self, cells: self
    for part, epochs in ((1, 100), (2, 150), (3, 200)):
        if part in args.parts:
            run = argparse.Namespace(**{**vars(args), "epochs": args.epochs or epochs})
            {1: part1, 2: part2, 3: part3}[part](run)
            print()


if __name__ == "__main__":
    main()
