"""Reference methods behind the same interface as MMSR, so comparisons are like for like."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..core.pair import Pair, principal_bands


def bicubic(pair: Pair) -> tuple[np.ndarray, dict]:
    """NaN-aware, pixel-area aligned bicubic upsampling of the source (the guide is unused)."""
    return pair.bicubic.copy(), {}


def guided_filter(pair: Pair, radius: int | None = None, eps: float = 0.01) -> tuple[np.ndarray, dict]:
    """He et al.'s guided filter (OpenCV ximgproc) applied to the bicubic source.

    Guide (at most 3 principal components of the standardised bands) and source are both
    in standard-deviation units, so ``eps`` means the same for any data; smaller follows
    the guide more closely. ``radius`` defaults to ``scale`` HR pixels. Both defaults were
    the best single choice on the pixtransform depth pairs at x4 and x8.
    """
    try:
        from cv2 import ximgproc
    except ImportError as e:  # opencv without the contrib modules, or none at all
        raise ImportError("method='guided' needs OpenCV's contrib modules: pip install 'geosr[guided]' "
                          "(opencv-contrib-python-headless)") from e
    radius = pair.scale if radius is None else int(radius)
    if radius < 1 or eps <= 0:
        raise InputError(f"radius must be >= 1 HR pixel and eps > 0, got radius={radius}, eps={eps}")
    guide = np.ascontiguousarray(np.moveaxis(principal_bands(pair.guide, 3), 0, -1), np.float32)
    src = pair.bicubic_filled  # holes filled, so the box filter does not pull towards 0
    mean, std = float(src.mean()), float(src.std()) or 1.0
    out = ximgproc.guidedFilter(guide, ((src - mean) / std).astype(np.float32), radius, eps)
    return out.astype(np.float64) * std + mean, {"radius": radius, "eps": eps}
