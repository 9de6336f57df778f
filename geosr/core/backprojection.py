"""Making the sensor model of the output equal the source: what DEM and thermal users need.

With the default ``area`` PSF that is avg-pool(output) = source: every cell mean kept. The
residual (source - degrade(output)) is spread back onto the HR grid, first smoothly
(bilinear, iterative back-projection) so no block pattern appears, then, for what little
is left, as a per-cell constant, which is exact in float64. The result is finally rounded
to float32 cell by cell so the float32 means stay exact too (see
:func:`to_float32_keeping_means`).

With a ``gaussian`` PSF a cell also sees its neighbours, so the per-cell constants solve a
small linear system on the LR grid (Richardson iteration with the model's cell weights).
That system amplifies whatever noise the source holds by up to 1 / (the model's response
to a checkerboard of cells): 7x at sigma 0.5, 22x at 0.6, 300x at 0.8. It is solved only
while that stays below :data:`MAX_GAIN` (sigma up to about 0.6 LR pixels); for wider PSFs
only the smooth back-projection runs, which brings the residual down without amplifying
noise much, and the achieved residual is what the run reports.
"""
from __future__ import annotations

import numpy as np

from .psf import AREA, PSF, cell_weights, coverage, degrade
from .sampling import avg_pool, repeat_cells
from .warp import upsample

# Richardson steps for the gaussian per-cell solve; each is one small LR correlation.
_CELL_STEPS = 400
# The most the per-cell solve may amplify the source's noise (see the module docstring).
MAX_GAIN = 25.0


def back_project(output: np.ndarray, source: np.ndarray, source_valid: np.ndarray, scale: int,
                 iterations: int = 10, psf: PSF = AREA) -> np.ndarray:
    """Return a float32 copy of ``output`` whose degraded image equals ``source`` on valid cells.

    Cells that are invalid, or that hold a non-finite output pixel, are left untouched.
    """
    out = np.array(output, np.float64)
    cells = _fully_valid_cells(out, source_valid, scale)
    if not cells.any():
        return out.astype(np.float32)
    src = np.where(cells, source, 0.0)
    hr_cells = repeat_cells(cells, scale)
    work = out.copy()  # NaN stays NaN: the model leaves missing pixels out, as the loss does

    def residual():
        return np.where(cells, src - degrade(work, scale, psf), 0.0)

    for _ in range(iterations):
        work += np.where(hr_cells, upsample(residual(), scale, "bilinear"), 0.0)
    if psf.kind == "area":
        work += repeat_cells(residual(), scale)
        out[hr_cells] = work[hr_cells]
        return to_float32_keeping_means(out, src, cells, scale)
    if noise_gain(psf, scale) <= MAX_GAIN:
        work += repeat_cells(_cell_constants(residual(), work, cells, scale, psf), scale)
    out[hr_cells] = work[hr_cells]
    return out.astype(np.float32)


def noise_gain(psf: PSF, scale: int) -> float:
    """1 / the model's response to a checkerboard of cells: how much an exact solve amplifies noise."""
    k = cell_weights(psf, scale)
    r = len(k) // 2
    response = float(np.sum(k * (-1.0) ** np.arange(-r, r + 1))) ** 2
    return 1.0 / max(response, 1e-300)


def _cell_constants(r0: np.ndarray, work: np.ndarray, cells: np.ndarray, scale: int, psf: PSF) -> np.ndarray:
    """Per-cell constants c (zero off ``cells``) with degrade(work + repeat(c)) = degrade(work) + r0 on cells.

    Adding c to whole cells changes the model by a correlation of c with the cell weights,
    divided by the same normaliser the model uses (the weight of the pixels that exist).
    """
    from scipy.ndimage import correlate

    k1 = cell_weights(psf, scale)
    kernel = np.outer(k1, k1)
    den = coverage(np.isfinite(work), scale, psf)
    c = np.zeros_like(r0)
    r = r0
    tol = 1e-13 * max(1.0, float(np.abs(r0).max()))
    for _ in range(_CELL_STEPS):
        if np.abs(r).max() <= tol:
            break
        c = c + np.where(cells, r, 0.0)
        r = np.where(cells, r0 - correlate(c, kernel, mode="constant") / den, 0.0)
    return c




def to_float32_keeping_means(hr: np.ndarray, means: np.ndarray, cells: np.ndarray, scale: int) -> np.ndarray:
    """Round float64 ``hr`` to float32 so that each selected cell's mean stays at ``means``.

    Plain rounding moves a cell mean by up to half a float32 spacing: 2.4e-4 m at 3000 m
    elevation, more than the tolerance on a flat tile. Here, in each cell, as many pixels
    as needed are rounded the other way (those closest to half-way first), each by one
    float32 spacing, which brings the mean within spacing / (2 * scale^2) of the target.
    """
    out = hr.astype(np.float32)
    h, w = cells.shape
    n = scale * scale

    def blocks(a):  # (h*s, w*s) -> (h, w, s*s)
        return a[: h * scale, : w * scale].reshape(h, scale, w, scale).transpose(0, 2, 1, 3).reshape(h, w, n)

    v = blocks(out).copy()
    err = blocks(hr) - v.astype(np.float64)                   # what rounding lost, per pixel
    need = np.where(cells, n * means - v.astype(np.float64).sum(-1), 0.0)  # what each cell sum lacks
    direction = np.sign(need)[..., None]
    need = np.nan_to_num(need)
    spacing = np.spacing(np.abs(np.nan_to_num(v))).astype(np.float64)
    k = np.minimum(np.rint(np.abs(need) / spacing.mean(-1)), n).astype(int)
    order = np.argsort(-np.nan_to_num(err * direction), axis=-1)  # pixels rounded against the need first
    rank = np.argsort(order, axis=-1)
    flip = (rank < k[..., None]) & cells[..., None] & np.isfinite(v)
    towards = np.where(direction > 0, np.inf, -np.inf).astype(np.float32)
    v[flip] = np.nextafter(v, towards)[flip]
    fixed = v.reshape(h, w, scale, scale).transpose(0, 2, 1, 3).reshape(h * scale, w * scale)
    out[: h * scale, : w * scale] = fixed
    return out


def _fully_valid_cells(out: np.ndarray, source_valid: np.ndarray, scale: int) -> np.ndarray:
    return source_valid & (avg_pool(np.isfinite(out).astype(np.float64), scale) == 1.0)
