"""Resampling between the LR source grid and the HR output grid (gaps are filled by the caller).

Convention everywhere in geosr: pixel-area alignment. HR pixel j covers LR pixel
j // scale, and its centre sits at LR coordinate (j + 0.5) / scale - 0.5
(``align_corners=False``, GDAL's convention). avg-pool and bicubic are consistent with it.
"""
from __future__ import annotations

import threading

import numpy as np
from scipy import ndimage


def avg_pool(hr: np.ndarray, scale: int) -> np.ndarray:
    """Mean of each scale x scale block: the sensor model of the cycle loss. NaN propagates."""
    h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
    blocks = hr[..., : h * scale, : w * scale].reshape(*hr.shape[:-2], h, scale, w, scale)
    return blocks.mean(axis=(-3, -1))


def repeat_cells(lr: np.ndarray, scale: int) -> np.ndarray:
    """Nearest upsampling: each LR cell repeated onto its scale x scale HR pixels."""
    return np.repeat(np.repeat(lr, scale, axis=-2), scale, axis=-1)


def fill_nearest(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of ``a`` with invalid pixels set to the nearest valid value (needs one valid pixel)."""
    if valid.all():
        return a.copy()
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return a[tuple(idx)]


def upsample(lr: np.ndarray, scale: int, resampling: str = "cubic") -> np.ndarray:
    """Upsample a finite 2-D array by ``scale`` as ``gdalwarp -r <resampling>`` does (float64).

    GDAL's warper on pixel-area grids: ``cubic`` is Keys' kernel with a = -0.5, which
    reproduces linear ramps exactly (the a = -0.75 kernel of OpenCV and PyTorch puts a
    ripple of about 3% of the pixel step on planar slopes, which shows in DEM slope maps).
    """
    from affine import Affine
    from rasterio.warp import Resampling, reproject

    out = np.empty((lr.shape[0] * scale, lr.shape[1] * scale), np.float64)
    if out.size == 0:  # dask probes functions with empty blocks; GDAL cannot make an empty dataset
        return out
    # Same CRS on both sides: GDAL applies only the two affine grids, no reprojection. The
    # grids are shifted off the origin because GDAL reads an identity transform as "none".
    with WARP_LOCK:
        reproject(np.ascontiguousarray(lr, np.float64), out, src_transform=Affine.translation(1, 1),
                  dst_transform=Affine.translation(1, 1) @ Affine.scale(1 / scale), src_crs=_GRID_CRS,
                  dst_crs=_GRID_CRS, resampling=Resampling[resampling])
    return out


# Every GDAL warp that geosr does on arrays, from any thread, runs under this one lock: upsample
# here and the guide's odc-geo warps (grid.guide_onto wraps each chunk's task). Not for the
# values: unlocked, they were bit-identical to serial calls in every try (2026-12-01, 2 cores,
# 16 threads: 20000 upsample calls; then 100 rounds of 400 upsample calls on 8 threads while
# the orthophoto warped on 16 dask threads, onto a shifted grid or to lon/lat; no error either).
# For the warnings: rasterio (1.4, MemoryDataset) wraps each array it hands GDAL in catch_warnings() and
# ignores all warnings while its MEM dataset has no geotransform yet. catch_warnings() swaps
# the process-wide filter list, so overlapping calls from two threads let that "Dataset has no
# geotransform" warning out and can restore the other's list, leaving "ignore all warnings"
# installed for good: it did in all 100 rounds, and in 8 of 10 threaded tile runs with only
# upsample locked (every later warning of the session silenced). With both locked: 0 of 10, no
# warning. Serial warps never warn, so nothing is filtered here. tests/test_warp_threads.py.
# Other rasterio calls on arrays from dask threads (features.rasterize) do the same.
WARP_LOCK = threading.RLock()
# Any projected CRS will do for array-only resampling; GDAL only needs one to be set.
_GRID_CRS = "EPSG:3857"
