"""Every GDAL and odc-geo warp geosr does, under one locking policy, and the guide's displacement.

- :func:`upsample`: an array onto a grid ``scale`` times finer (the bicubic fallback, back-projection);
- :func:`reproject`: a georeferenced DataArray onto a GeoBox, lazily for a dask one (the guide, a
  mask raster), where a displaced GeoBox removes a measured misregistration in the same warp;
- :func:`rasterize`: polygons onto a block of pixels (a flat mask);
- :func:`displace`: an in-memory guide moved by a measured displacement (:func:`geosr.superresolve_array`),
  by the same GDAL warp as a georeferenced guide.

Locking: every call into GDAL on arrays runs under :data:`WARP_LOCK`, the reason below.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np
from affine import Affine

# Every GDAL warp that geosr does on arrays, from any thread, runs under this one lock: upsample,
# rasterize and the odc-geo warps of reproject (each chunk's task is wrapped). Not for the
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


def upsample(lr: np.ndarray, scale: int, resampling: str = "cubic") -> np.ndarray:
    """Upsample a finite 2-D array by ``scale`` as ``gdalwarp -r <resampling>`` does (float64).

    GDAL's warper on pixel-area grids: ``cubic`` is Keys' kernel with a = -0.5, which
    reproduces linear ramps exactly (the a = -0.75 kernel of OpenCV and PyTorch puts a
    ripple of about 3% of the pixel step on planar slopes, which shows in DEM slope maps).
    ``bilinear`` (back-projection's, ten calls a tile) is GDAL's kernel computed here: equal to
    GDAL's to 1e-15, several times faster, and free of the lock (tests/test_warp_threads.py).
    """
    if resampling == "bilinear" and min(lr.shape) >= 2:  # GDAL treats a single row or column otherwise
        return _bilinear(np.asarray(lr, np.float64), scale)
    return _gdal_upsample(lr, scale, resampling)


def _gdal_upsample(lr: np.ndarray, scale: int, resampling: str) -> np.ndarray:
    from rasterio.warp import Resampling
    from rasterio.warp import reproject as gdal_reproject

    out = np.empty((lr.shape[0] * scale, lr.shape[1] * scale), np.float64)
    if out.size == 0:  # dask probes functions with empty blocks; GDAL cannot make an empty dataset
        return out
    # Same CRS on both sides: GDAL applies only the two affine grids, no reprojection. The
    # grids are shifted off the origin because GDAL reads an identity transform as "none".
    with WARP_LOCK:
        gdal_reproject(np.ascontiguousarray(lr, np.float64), out, src_transform=Affine.translation(1, 1),
                  dst_transform=Affine.translation(1, 1) @ Affine.scale(1 / scale), src_crs=_GRID_CRS,
                  dst_crs=_GRID_CRS, resampling=Resampling[resampling])
    return out


def _bilinear(lr: np.ndarray, scale: int) -> np.ndarray:
    """GDAL's bilinear upsampling by ``scale`` on pixel-area grids: each output pixel centre at
    ((i + 0.5) / scale - 0.5) source pixels, weighted between its two neighbours, edges held."""

    def taps(n):
        at = (np.arange(n * scale) + 0.5) / scale - 0.5
        below = np.floor(at).astype(np.intp)
        weight = at - below
        return np.clip(below, 0, n - 1), np.clip(below + 1, 0, n - 1), weight

    lo, hi, w = taps(lr.shape[0])
    rows = lr[lo] * (1 - w)[:, None] + lr[hi] * w[:, None]
    lo, hi, w = taps(lr.shape[1])
    return rows[:, lo] * (1 - w) + rows[:, hi] * w


def reproject(da, onto, resampling: str):
    """``da`` (band, y, x; float, NaN = nodata) on the GeoBox ``onto``: NaN pixels are left out of the
    kernel, and pixels with no valid source pixel become NaN. A dask-backed array stays lazy; each of its
    chunk warps runs under the lock (the task of the layer odc-geo adds), an in-memory one is warped here."""
    import odc.geo.xr  # noqa: F401  (registers .odc)

    g = da.copy()
    g.attrs = {"nodata": np.nan}
    g.encoding = {}
    with WARP_LOCK if g.chunks is None else contextlib.nullcontext():
        out = g.odc.reproject(onto, resampling=resampling, dst_nodata=np.nan)
    if out.chunks is not None:
        out = out.copy(data=_warps_locked(out.data))
    return out


def rasterize(shapes, out_shape, transform) -> np.ndarray:
    """bool (out_shape): pixels whose centre lies inside ``shapes`` (rasterio.features.rasterize)."""
    from rasterio.features import rasterize as burn

    with WARP_LOCK:  # rasterio's in-memory datasets swap the process's warning filters (see WARP_LOCK)
        return burn(shapes, out_shape=out_shape, transform=transform, fill=0, dtype="uint8").astype(bool)


def _warps_locked(arr):
    """``arr``, odc-geo's lazy warp, with each task of its top layer (one chunk's warp) run under the lock."""
    from dask.array import Array
    from dask.highlevelgraph import HighLevelGraph

    graph = arr.__dask_graph__()
    top = graph.layers.get(arr.name)
    if top is None or not all(isinstance(t, tuple) and t and callable(t[0]) for t in top.values()):
        return arr  # not the graph this was written for: the same values, only unlocked
    name = f"geosr-locked-{arr.name}"
    layers = {k: v for k, v in graph.layers.items() if k != arr.name}
    deps = {k: v for k, v in graph.dependencies.items() if k != arr.name}
    layers[name] = {(name, *key[1:]): (_under_warp_lock, *task) for key, task in top.items()}
    deps[name] = set(graph.dependencies[arr.name])
    return Array(HighLevelGraph(layers, deps), name, arr.chunks, dtype=arr.dtype)


def _under_warp_lock(func, *args):
    with WARP_LOCK:
        return func(*args)


def displace(guide: np.ndarray, alignment) -> np.ndarray:
    """The in-memory guide (c, H, W), NaN = invalid, resampled so its content sits where the source's does:
    output pixel p gets the guide at ``alignment.matrix * p``, as :func:`reproject` does for a georeferenced
    guide onto a displaced grid, and by the same GDAL warp (cubic). Invalid pixels are left out of the
    kernel; pixels with no valid guide pixel under it, or from outside the guide, become NaN."""
    from rasterio.warp import Resampling
    from rasterio.warp import reproject as gdal_reproject

    g = np.asarray(guide, np.float64)
    g = g[None] if g.ndim == 2 else g
    if alignment.matrix == Affine.identity():
        return g
    base = Affine.translation(1, 1)  # off the origin: GDAL reads an identity transform as "none"
    out = np.full(g.shape, np.nan)
    with WARP_LOCK:
        for band, moved in zip(g, out):
            gdal_reproject(np.ascontiguousarray(band), moved, src_transform=base, dst_transform=base @ alignment.matrix,
                           src_crs=_GRID_CRS, dst_crs=_GRID_CRS, resampling=Resampling.cubic, src_nodata=np.nan,
                           dst_nodata=np.nan)
    return out
