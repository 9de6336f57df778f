"""MMSR's modes on rasters of several tiles with a truth: tile, scene and hybrid side by side.

Every row is one run of ``geosr.superresolve`` then ``compute`` in this process (tiling,
blending and exactness included; the alignment at its default; the self-check off, since it is
not what is measured), timed from the call to the finished array. RMSE is against the truth and
as a ratio to bicubic through the same pipeline; "seam" is the 99th percentile of neighbour
jumps across tile borders over the same inside tiles (hillshade for heights, the values
otherwise; about 1 without a seam).

Cases:
  fieldimager  the drone DSM averaged x4 (1.08 m), with the 0.2 m orthophoto, in tiles of 52
               source pixels: 2 x 2 tiles; truth the DSM at 0.27 m.
  s2-wald      Sentinel-2 B11 averaged 20 -> 40 m, the RGB 10 -> 20 m, x2 in 2 x 2 tiles (the
               default tile size); truth the real 20 m B11.
  vhm0, depth0 pixtransform pairs (vegetation height with a 4-band guide; depth with RGB),
               the target averaged x4, in tiles of 32 source pixels: 2 x 2 tiles. Placed on
               a made-up 1 m UTM grid, since they are not georeferenced.
The sources of every case are averages of a truth (the method's own protocol).

A mode is written ``tile``, ``scene``, ``hybrid`` (their defaults), ``tile:EPOCHS``, ``scene:STEPS``
or ``hybrid:STEPS/EPOCHS`` (the scene network's training steps, then fine-tuning epochs per tile),
optionally followed by ``:PRESET`` and then ``:START`` (``tile:200::learned``: 200 epochs a tile
from the learned start of geosr.methods.start).

    python benchmarks/modes.py                          # every case, tile scene hybrid
    python benchmarks/modes.py --cases fieldimager --modes tile hybrid:100/100 hybrid:50/200:fast
    python benchmarks/modes.py --cases depth0 --modes tile tile:200::learned tile:650::learned
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CASES = ("fieldimager", "s2-wald", "vhm0", "depth0")


def load(name: str, folder: Path):
    """(source, guide or [guides], scale, tile_size, truth, is_height) of a case."""
    import geosr

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline import _degrade, wald_files

    if name == "fieldimager":
        truth = _degrade(SHARED / "fieldimager" / "dsm.tif", folder / "dsm_x4.tif", 4)[0]
        return (geosr.open_raster(str(folder / "dsm_x4.tif")),
                geosr.open_raster(str(SHARED / "fieldimager" / "odm_orthophoto.tif")), 4, 52, truth, True)
    if name == "s2-wald":
        truth, source, guides = wald_files(folder)
        return geosr.open_raster(str(source)), [geosr.open_raster(str(g)) for g in guides], 2, None, truth, False
    kind, image = name[:-1], int(name[-1])
    npz = np.load(SHARED / "pixtransform" / f"{kind}_sample_images.npz")
    truth, guide = npz["target_imgs"][image].astype(np.float64), npz["guide_imgs"][image].astype(np.float64)
    h, w = truth.shape[0] // 4, truth.shape[1] // 4
    source = truth[: h * 4, : w * 4].reshape(h, 4, w, 4).mean(axis=(1, 3))
    return _on_grid(source, 4.0), _on_grid(guide, 1.0), 4, 32, truth, kind == "vhm"


def _on_grid(values, pixel: float):
    """A made-up georeferencing (UTM 32N, ``pixel`` metres) for an array that has none."""
    import rioxarray  # noqa: F401  (the .rio accessor)
    import xarray as xr
    from affine import Affine

    values = values if values.ndim == 3 else values[None]
    b, h, w = values.shape
    da = xr.DataArray(values, dims=("band", "y", "x"),
                      coords={"band": np.arange(1, b + 1), "y": 5_000_000 - (np.arange(h) + 0.5) * pixel,
                              "x": 500_000 + (np.arange(w) + 0.5) * pixel})
    da = da.rio.write_crs("EPSG:32632").rio.write_transform(Affine(pixel, 0, 500_000, 0, -pixel, 5_000_000))
    return da if b > 1 else da.isel(band=0, drop=True)


def parse_mode(text: str) -> dict:
    """A mode as written in ``--modes`` (see above) as superresolve's keyword arguments."""
    mode, *rest = text.split(":")
    settings = {"mode": mode}
    if rest and rest[0]:
        counts = [int(n) for n in rest[0].split("/")]
        names = {"tile": ["epochs"], "scene": ["train_steps"], "hybrid": ["train_steps", "epochs"]}[mode]
        settings.update(zip(names, counts))
    if len(rest) > 1 and rest[1]:
        settings["preset"] = rest[1]
    if len(rest) > 2:
        settings["start"] = rest[2]
    return settings


def seam(values, chunks, pixel: float, is_height: bool) -> float:
    from geosr.core.metrics import border_jump_ratio, hillshade

    image = hillshade(values, pixel) if is_height else values
    return border_jump_ratio(image, np.cumsum(chunks[0])[:-1], np.cumsum(chunks[1])[:-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("--modes", nargs="+", default=["tile", "scene", "hybrid"])
    p.add_argument("--tile-size", type=int, default=None, help="tile side in source pixels (default: the case's)")
    a = p.parse_args()

    import torch

    import geosr
    from geosr.core.metrics import rmse

    print(f"geosr {geosr.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| case | mode | settings | tiles | time s | RMSE | x bicubic | seam |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.cases:
        with tempfile.TemporaryDirectory(prefix="geosr-modes-") as tmp:
            source, guide, scale, tile_size, truth, is_height = load(name, Path(tmp))
            common = {"tile_size": a.tile_size or tile_size, "selfcheck": False}
            bicubic = geosr.superresolve(source, guide, scale, "bicubic", **common).compute().values
            truth = truth[: bicubic.shape[0], : bicubic.shape[1]]
            reference = rmse(bicubic, truth)
            for text in a.modes:
                settings = parse_mode(text)
                t0 = time.perf_counter()
                lazy = geosr.superresolve(source, guide, scale, **common, **settings, progress=False)
                out = lazy.compute()
                seconds = time.perf_counter() - t0
                e = rmse(out.values, truth)
                chosen = {k: v for k, v in settings.items() if k != "mode"} or "defaults"
                tiles = len(lazy.chunks[0]) * len(lazy.chunks[1])
                print(f"| {name} | {out.attrs['geosr_mode']} | {chosen} | {tiles} | {seconds:.0f} | {e:.4g} | "
                      f"{e / reference:.3f} | {seam(out.values, lazy.chunks, abs(out.rio.transform().a), is_height):.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
