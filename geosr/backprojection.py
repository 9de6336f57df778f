"""Making avg-pool(output) equal the source: what DEM and thermal users need for cell means.

The residual (source - avg-pool(output)) is spread back onto the HR grid, first
smoothly (bilinear, iterative back-projection) so no block pattern appears, then, for
what little is left, as a per-cell constant, which is exact by construction.
"""
from __future__ import annotations

import numpy as np

from .sampling import avg_pool, repeat_cells


def _bilinear_up(lr: np.ndarray, scale: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(lr, np.float64))[None, None]
    return F.interpolate(t, scale_factor=scale, mode="bilinear", align_corners=False)[0, 0].numpy()


def back_project(output: np.ndarray, source: np.ndarray, source_valid: np.ndarray, scale: int,
                 iterations: int = 10) -> np.ndarray:
    """Return a float64 copy of ``output`` whose cell means equal ``source`` on valid cells.

    Cells that are invalid, or that hold a non-finite output pixel, are left untouched.
    """
    out = np.array(output, np.float64)
    finite = np.isfinite(out)
    cells = source_valid & (avg_pool(finite.astype(np.float64), scale) == 1.0)
    if not cells.any():
        return out
    src = np.where(cells, source, 0.0)
    hr_cells = repeat_cells(cells, scale)
    work = np.where(finite, out, 0.0)

    def residual():
        return np.where(cells, src - avg_pool(work, scale), 0.0)

    for _ in range(iterations):
        work += np.where(hr_cells, _bilinear_up(residual(), scale), 0.0)
    work += repeat_cells(residual(), scale)
    out[hr_cells] = work[hr_cells]
    return out
