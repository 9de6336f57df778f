"""Scores over valid pixels: against a truth, and against the source itself (cycle residual)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sampling import repeat_cells
from .psf import AREA, degrade
from .terrain import hillshade, slope


@dataclass(frozen=True)
class CycleResidual:
    """avg-pool(output) - source over fully valid LR cells, in source units."""

    rmse: float
    max: float
    cells: int


def cycle_residual(output: np.ndarray, source: np.ndarray, scale: int, source_valid=None, psf=None) -> CycleResidual:
    """How far the output, seen by the sensor, is from the source: 0 means each coarse cell is preserved.

    ``psf``: the sensor model (:mod:`geosr.core.psf`; None = avg-pool, the cell means). A cell
    counts when the source is valid there and all of its output pixels are finite.
    """
    pooled = degrade(output, scale, psf or AREA)
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


def slope_rmse(prediction: np.ndarray, truth: np.ndarray, pixel_size: float = 1.0) -> float:
    """RMSE of slope, in degrees (:func:`geosr.core.terrain.slope`), between a predicted and a true height grid:
    copied guide texture shows here first."""
    return rmse(slope(prediction, pixel_size, pixel_size), slope(truth, pixel_size, pixel_size))


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


def hillshade_difference(prediction: np.ndarray, truth: np.ndarray, pixel_size: float = 1.0) -> float:
    """Mean |hillshade(prediction) - hillshade(truth)| in [0, 1]: what a reader of the shaded relief sees."""
    d = np.abs(hillshade(prediction, pixel_size) - hillshade(truth, pixel_size))
    return float(np.nanmean(d))


def flat_truth_cells(truth: np.ndarray, scale: int, tolerance: float = 1.0) -> np.ndarray:
    """LR cells (h/scale, w/scale) whose 3 x 3 cell neighbourhood varies by at most ``tolerance`` in
    the truth; cells at the edge, or touching an invalid pixel, are not counted."""
    from scipy import ndimage

    t = np.asarray(truth, np.float64)
    h, w = t.shape[0] // scale, t.shape[1] // scale
    cells = t[:h * scale, :w * scale].reshape(h, scale, w, scale)
    hi = np.where(np.isfinite(cells), cells, np.inf).max(axis=(1, 3))
    lo = np.where(np.isfinite(cells), cells, -np.inf).min(axis=(1, 3))
    hi = ndimage.maximum_filter(hi, size=3, mode="constant", cval=np.inf)
    lo = ndimage.minimum_filter(lo, size=3, mode="constant", cval=-np.inf)
    return (hi - lo) <= tolerance


def texture_copy_index(prediction: np.ndarray, truth: np.ndarray, bicubic: np.ndarray, scale: int,
                       tolerance: float = 1.0) -> float:
    """Output RMSE over flat ground divided by bicubic's there: above 1, guide texture was copied.

    Where the truth is flat within ``tolerance`` over a cell's 3 x 3 neighbourhood, bicubic
    upsampling of the cell means is nearly exact, so error beyond it is relief the method
    invented (crop rows, road paint, shadows). NaN when the truth has no flat cell.
    """
    flat = flat_truth_cells(truth, scale, tolerance)
    if not flat.any():
        return float("nan")
    mask = np.zeros(np.shape(truth), bool)
    h, w = flat.shape
    mask[:h * scale, :w * scale] = repeat_cells(flat, scale)
    ours, reference = (rmse(np.where(mask, a, np.nan), truth) for a in (prediction, bicubic))
    if reference == 0.0:  # perfectly flat truth that bicubic reproduces exactly
        return 1.0 if ours == 0.0 else float("inf")
    return ours / reference
