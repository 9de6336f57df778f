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
