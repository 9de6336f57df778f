"""GDAL warps from many threads: the values of serial calls, and the user's warnings untouched.

Bicubic upsampling (geosr.core.warp.upsample) on 8 threads and the guide's odc-geo warp on 16
dask threads run at the same time, as in a threaded tile run. Why every warp takes
geosr.core.warp.WARP_LOCK is explained there: without it the values are still right, but
rasterio's thread-unsafe warnings.catch_warnings() leaks "no geotransform" warnings and can
leave an "ignore everything" filter behind in the process.
"""
from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.errors import NotGeoreferencedWarning

from geosr.core import warp
from geosr.pipeline import grid


@pytest.fixture(scope="module")
def guide(fieldimager):
    """A 192 x 192 crop of the orthophoto (3 bands, NaN = nodata), its grid, and a shifted grid to warp it onto."""
    import rioxarray

    g = rioxarray.open_rasterio(fieldimager[1]).isel(x=slice(150, 342), y=slice(150, 342)).load()
    g = g.where(g > -1e30)
    box = grid.geobox_of(g, "guide")
    # A third of a pixel off and 5% finer (not enough for the "coarser guide" warning): every pixel interpolated.
    target = GeoBox((200, 200), box.affine @ Affine.translation(0.33, 0.21) @ Affine.scale(0.95), box.crs)
    return g, box, target


def _warp(guide):
    g, box, target = guide
    return grid.onto_grid(g.chunk({"band": 1, "y": 32, "x": 32}), box, target, "bilinear")


def _arrays(n):
    rng = np.random.default_rng(18)
    return [(rng.standard_normal((int(rng.integers(4, 40)), int(rng.integers(4, 40)))), int(rng.integers(2, 5)),
             ("cubic", "bilinear")[i % 2]) for i in range(n)]


def test_threaded_warps_equal_serial_ones_and_leave_warnings_alone(guide):
    calls = _arrays(200)
    serial_up = [warp.upsample(*c) for c in calls]
    with dask.config.set(scheduler="synchronous"):
        serial_guide = _warp(guide).values
    assert np.isfinite(serial_guide).mean() > 0.9

    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", category=NotGeoreferencedWarning)
        filters = list(warnings.filters)
        for _ in range(2):
            with ThreadPoolExecutor(8) as pool:
                upsampled = pool.map(lambda c: warp.upsample(*c), calls)
                with dask.config.set(scheduler="threads", num_workers=16):
                    warped = _warp(guide).values
                upsampled = list(upsampled)
            assert all(np.array_equal(a, b) for a, b in zip(upsampled, serial_up))
            np.testing.assert_array_equal(warped, serial_guide)
            # No "ignore" filter left behind by a catch_warnings() that overlapped another.
            assert warnings.filters == filters
        warnings.warn("still heard", UserWarning)
    assert [str(w.message) for w in caught] == ["still heard"]


def test_the_guide_warp_of_every_chunk_takes_the_warp_lock(guide, monkeypatch):
    held = []

    class Spy:
        def __enter__(self):
            held.append(threading.get_ident())

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(warp, "WARP_LOCK", Spy())
    warped = _warp(guide)
    with dask.config.set(scheduler="synchronous"):
        warped.compute()
    # 3 bands x 7 x 7 output chunks of 32 pixels, each one warp
    assert len(held) == 3 * 7 * 7
    warp.upsample(np.ones((3, 3)), 2)
    assert len(held) == 3 * 7 * 7 + 1


@pytest.mark.parametrize("shape, scale", [((144, 144), 4), ((37, 53), 2), ((5, 7), 3), ((2, 9), 8), ((1, 9), 4)])
def test_bilinear_upsampling_is_gdals(shape, scale):
    """Back-projection's bilinear upsampling, computed without GDAL, gives GDAL's values (a single row
    or column still goes through GDAL, which treats it otherwise)."""
    a = np.random.default_rng(sum(shape)).normal(size=shape)
    ours = warp.upsample(a, scale, "bilinear")
    assert ours.shape == (shape[0] * scale, shape[1] * scale)
    np.testing.assert_allclose(ours, warp._gdal_upsample(a, scale, "bilinear"), rtol=0, atol=1e-13)
