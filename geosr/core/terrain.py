"""Terrain derivatives of a height grid: one gradient (Horn's, as ``gdaldem``) for slope and hillshade.

The flat mask's slope threshold (:mod:`geosr.pipeline.flatmask`), the slope RMSE of the benchmarks
(:func:`geosr.core.metrics.slope_rmse`) and the hillshades of the notebooks all use it.
"""
from __future__ import annotations

import numpy as np


def gradient(z: np.ndarray, xres: float, yres: float) -> tuple[np.ndarray, np.ndarray]:
    """(dz/dx, dz/dy) by Horn's 3 x 3 method (``gdaldem -compute_edges``), y running down the rows
    (south on a north-up grid): a neighbour that is invalid (NaN) or off the raster takes the centre's
    value. NaN where the centre is invalid."""
    z = np.asarray(z, np.float64)
    valid = np.isfinite(z)
    padded = np.pad(np.where(valid, z, 0.0), 1)
    ok = np.pad(valid, 1)
    h, w = z.shape

    def at(dy, dx):
        rows, cols = slice(1 + dy, 1 + dy + h), slice(1 + dx, 1 + dx + w)
        return np.where(ok[rows, cols], padded[rows, cols], z)

    a, b, c = at(-1, -1), at(-1, 0), at(-1, 1)
    d, f = at(0, -1), at(0, 1)
    g, hh, i = at(1, -1), at(1, 0), at(1, 1)
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * xres)
    dzdy = ((g + 2 * hh + i) - (a + 2 * b + c)) / (8 * yres)
    return dzdx, dzdy


def slope(z: np.ndarray, xres: float = 1.0, yres: float = 1.0) -> np.ndarray:
    """Slope in degrees (``gdaldem slope``); NaN where the height is invalid."""
    dzdx, dzdy = gradient(z, xres, yres)
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))


def hillshade(height: np.ndarray, pixel_size: float = 1.0, azimuth: float = 315.0, altitude: float = 45.0):
    """Hillshade in [0, 1] (GDAL's convention: light from the north-west, 45 deg up; rows run south)."""
    gx, gy = gradient(height, pixel_size, pixel_size)
    steep = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(gy, -gx)  # ESRI/GDAL: dz/dy runs north to south, as rows do
    az, alt = np.radians(360.0 - azimuth + 90.0), np.radians(altitude)
    shade = np.sin(alt) * np.cos(steep) + np.cos(alt) * np.sin(steep) * np.cos(az - aspect)
    return np.clip(shade, 0.0, 1.0)
