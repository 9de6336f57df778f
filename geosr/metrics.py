"""Scores over valid pixels: against a truth, and against the source itself (cycle residual)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sampling import avg_pool


@dataclass(frozen=True)
class CycleResidual:
    """avg-pool(output) - source over fully valid LR cells, in source units."""

    rmse: float
    max: float
    cells: int


def cycle_residual(output: np.ndarray, source: np.ndarray, scale: int, source_valid=None) -> CycleResidual:
    """How far the output's cell means are from the source: 0 means each coarse cell is preserved.

    A cell counts when the source is valid there and all of its output pixels are finite.
    """
    pooled = avg_pool(np.asarray(output, np.float64), scale)
    src = np.asarray(source, np.float64)
    ok = np.isfinite(pooled) & np.isfinite(src)
    if source_valid is not None:
        ok &= source_valid
    if not ok.any():
        return CycleResidual(float("nan"), float("nan"), 0)
    d = pooled[ok] - src[ok]
    return CycleResidual(float(np.sqrt(np.mean(d * d))), float(np.abs(d).max()), int(ok.sum()))


def rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Root-mean-square error over pixels finite in both."""
    p, t = np.asarray(prediction, np.float64), np.asarray(truth, np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    return float(np.sqrt(np.mean((p[ok] - t[ok]) ** 2)))


def slope_degrees(height: np.ndarray, pixel_size: float = 1.0) -> np.ndarray:
    """Terrain slope in degrees (central differences): copied guide texture shows here first."""
    gy, gx = np.gradient(np.asarray(height, np.float64), pixel_size)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def slope_rmse(prediction: np.ndarray, truth: np.ndarray, pixel_size: float = 1.0) -> float:
    """RMSE of slope, in degrees, between a predicted and a true height grid."""
    return rmse(slope_degrees(prediction, pixel_size), slope_degrees(truth, pixel_size))


def hillshade(height: np.ndarray, pixel_size: float = 1.0, azimuth: float = 315.0, altitude: float = 45.0):
    """Hillshade in [0, 1] (GDAL's convention: light from the north-west, 45 deg up; rows run south)."""
    gy, gx = np.gradient(np.asarray(height, np.float64), pixel_size)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(gy, -gx)  # ESRI/GDAL: dz/dy runs north to south, as rows do
    az, alt = np.radians(360.0 - azimuth + 90.0), np.radians(altitude)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(shade, 0.0, 1.0)


def border_jump_ratio(image: np.ndarray, rows=(), cols=(), percentile: float = 99.0) -> float:
    """How much larger neighbour-to-neighbour jumps are across the given borders than elsewhere.

    ``rows``/``cols`` are indices r where a border runs between row r - 1 and row r (or
    columns). Returns the ``percentile`` of |difference| over pixel pairs straddling a
    border divided by the same percentile over all other pairs: about 1 without a seam.
    """
    a = np.asarray(image, np.float64)
    dy, dx = np.abs(np.diff(a, axis=0)), np.abs(np.diff(a, axis=1))
    on_y, on_x = np.zeros(dy.shape, bool), np.zeros(dx.shape, bool)
    on_y[[r - 1 for r in rows if 0 < r < a.shape[0]]] = True
    on_x[:, [c - 1 for c in cols if 0 < c < a.shape[1]]] = True
    across = np.concatenate([dy[on_y], dx[on_x]])
    inside = np.concatenate([dy[~on_y], dx[~on_x]])
    across, inside = across[np.isfinite(across)], inside[np.isfinite(inside)]
    return float(np.percentile(across, percentile) / np.percentile(inside, percentile))
