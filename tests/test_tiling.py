"""Two-resolution tiling: chunk layout, blend weights that sum to 1, each tile fitted once."""
import threading

import dask.array as da
import numpy as np
import pytest

from geosr.pipeline import plan, tiling
from geosr.api import superresolve_array


def test_split_is_near_equal_and_never_leaves_a_sliver():
    assert plan.split(100, 200, 16) == (100,)  # smaller than one tile: one tile
    assert plan.split(101, 52, 16) == (51, 50)
    assert plan.split(130, 64, 16) == (44, 43, 43)
    sizes = plan.split(1000, 64, 16)
    assert sum(sizes) == 1000 and max(sizes) - min(sizes) <= 1 and min(sizes) >= 16
    assert plan.split(40, 16, 16) == (20, 20)  # a third chunk would be below min_chunk


def test_windows_of_neighbours_sum_to_one():
    halo = 12
    a = plan.window(100, 0, halo)   # first tile: ramps down over its last 2 * halo pixels
    b = plan.window(100, halo, 0)   # next tile: ramps up over its first 2 * halo pixels
    np.testing.assert_allclose(a[-2 * halo:] + b[: 2 * halo], 1.0, rtol=0, atol=1e-15)
    assert a[0] == 1.0 and np.all(np.diff(a) <= 0)
    assert (a[-halo // 2:] == 0).all() and (b[: halo // 2] == 0).all()  # a tile's outermost pixels never count


class _Where:
    """A picklable stand-in 'method' that answers each pixel's own global index, read from the guide it
    was given (band 0: row, band 1: column), and counts its calls: a tile cut, placed or weighted
    wrongly shows in the mosaic."""

    def __init__(self, width):
        self.width, self.calls, self.lock = width, 0, threading.Lock()

    def __call__(self, lr, guide, frame):
        with self.lock:
            self.calls += 1
        return guide[0] * self.width + guide[1]


@pytest.mark.parametrize("shape, tile, overlap", [((37, 53), 12, 3), ((20, 20), 64, 4), ((64, 33), 16, 8),
                                                  ((20, 300), 12, 3)])  # the last in 7 bands of 2 x 4 tiles
def test_blended_mosaic_puts_every_tile_in_its_place_and_each_tile_runs_once(shape, tile, overlap):
    scale = 3
    rows, cols = np.indices((shape[0] * scale, shape[1] * scale), dtype=np.float64)
    lr = da.from_array(np.zeros(shape), chunks=7)  # input chunks unrelated to the tiles
    guide = da.from_array(np.stack([rows, cols]).astype(np.float32), chunks=(1, 20, 20))
    fit = _Where(shape[1] * scale)
    mosaic = tiling.tiled(lr, guide, scale, tile, overlap, fit, exact=False, token=f"where-{shape}-{tile}")
    out = mosaic.compute()
    n_tiles = len(mosaic.chunks[0]) * len(mosaic.chunks[1])
    assert out.shape == (shape[0] * scale, shape[1] * scale)
    np.testing.assert_allclose(out, rows * shape[1] * scale + cols, rtol=1e-6, atol=0)
    assert fit.calls == n_tiles


def test_a_longer_raster_holds_no_more_tiles_and_chunks_at_once():
    """Tiles are fed to dask in bands (each band's reads wait until the band two before is blended),
    so a raster twice as long keeps no more input chunks waiting in dask's cache (measured without the
    bands: 144 and 288). Fitted tiles held are held to the bands' bound, not compared between the two:
    their count differs by thread timing (14 to 17 with the bands, 14 and 19 without)."""
    from dask.callbacks import Callback

    def held(width):
        scale, shape = 2, (24, width)
        rows, cols = np.indices((shape[0] * scale, shape[1] * scale), dtype=np.float32)
        lr = da.zeros(shape, chunks=8)
        guide = da.from_array(np.stack([rows, cols]), chunks=(1, 16, 16))
        peak = {"fits": 0, "chunks": 0}

        def count(key, result, dsk, state, worker_id):
            names = [str(k[0] if isinstance(k, tuple) else k) for k in state["cache"]]
            peak["fits"] = max(peak["fits"], sum(n.startswith(tiling.FIT_LAYER) for n in names))
            peak["chunks"] = max(peak["chunks"], sum(n.startswith(guide.name) for n in names))

        mosaic = tiling.tiled(lr, guide, scale, 12, 2, _Where(shape[1] * scale), exact=False, token=f"long-{width}")
        with Callback(posttask=count):
            out = mosaic.compute(scheduler="threads", num_workers=2)
        np.testing.assert_allclose(out, rows * shape[1] * scale + cols, rtol=1e-6, atol=0)
        return peak

    short, long = held(192), held(384)  # 2 x 16 and 2 x 32 tiles, in bands of 2 x 4
    print(f"held at once: {short} at 2 x 16 tiles, {long} at 2 x 32")
    assert long["chunks"] <= short["chunks"] + 2
    assert long["fits"] <= (tiling.LAG + 2) * tiling.BAND_TILES


def test_tiled_bicubic_equals_untiled_bicubic(dsm_crop):
    """Bicubic reaches 2 source pixels; a tile's outer 2 (half its halo of 4) get weight 0, so the
    mosaic only blends values that equal the untiled ones."""
    src = dsm_crop.astype(np.float64)
    guide = np.zeros((1, 128, 128), np.float32)

    def bicubic(lr, g, frame=None):
        return superresolve_array(lr, g, 2, method="bicubic", exact=False)

    whole = bicubic(src, guide)
    tiled = tiling.tiled(da.from_array(src), da.from_array(guide), 2, 20, 4, bicubic, exact=False,
                         token="bicubic").compute()
    inner = (slice(4, -4),) * 2  # the outer 2 source pixels replicate edges differently per tile
    np.testing.assert_allclose(tiled[inner], whole[inner], rtol=0, atol=1e-9)


def test_progress_bar_counts_tiles(capsys):
    lr = da.from_array(np.zeros((30, 30)))
    guide = da.from_array(np.zeros((2, 60, 60), np.float32))
    mosaic = tiling.tiled(lr, guide, 2, 10, 2, _Where(60), exact=False, token="progress")
    with tiling.TileProgress(disable=False):
        mosaic.compute()
    assert "9/9" in capsys.readouterr().err
