"""Resampling between the LR source grid and the HR output grid (gaps are filled by the caller).

Convention everywhere in geosr: pixel-area alignment. HR pixel j covers LR pixel
j // scale, and its centre sits at LR coordinate (j + 0.5) / scale - 0.5
(``align_corners=False``, GDAL's convention). avg-pool and bicubic are consistent with it.
"""
from __future__ import annotations

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
