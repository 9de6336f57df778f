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


def regression(pair: Pair, model: str = "local", radius: int = 1, eps: float = 0.1, trees: int = 30,
               min_leaf: int = 5, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The thermal sharpeners' approach (TsHARP; the data-mining sharpener of pyDMS): the source as a
    function of the guide bands, learned at the source's resolution and applied at the guide's, then a
    residual correction so each cell's value is what the source says.

    The features are the standardised guide bands degraded to source cells with the pair's sensor model.
    ``model``: "local" (default) fits a linear function in every (2 ``radius`` + 1)^2 window of cells
    (``eps`` a ridge in standard-deviation units; the local regressions of DMS, fitted as He et al.'s
    guided filter does) and interpolates the coefficients bicubically onto the guide's pixels; "trees"
    one random forest of ``trees`` trees over all cells (leaves of at least ``min_leaf`` cells,
    scikit-learn; DMS's global regression); "linear" one least-squares plane (TsHARP's kind). The
    residual (source minus the degraded prediction) is added back, bicubic-interpolated. As in those
    methods, the relation between guide and source is assumed the same at both resolutions.
    """
    from ..core.align import local_linear_coefficients
    from ..core.psf import degrade
    from ..core.sampling import fill_nearest
    from ..core.warp import upsample

    if model not in ("local", "trees", "linear"):
        raise InputError(f"model must be 'local', 'trees' or 'linear', got {model!r}")
    s, c = pair.scale, pair.guide.shape[0]
    guide = np.where(pair.guide_weight > 0, pair.guide, np.nan).astype(np.float64)
    features = np.stack([degrade(b, s, pair.psf) for b in guide])  # NaN where a cell's guide is incomplete
    ok = pair.source_valid & np.isfinite(features).all(axis=0)
    if ok.sum() < max(10, c + 2):
        raise InputError(f"method='regression' needs at least {max(10, c + 2)} source cells with a complete "
                         f"guide to learn from; this pair has {int(ok.sum())}")
    filled = np.where(np.isfinite(guide), guide, 0.0)  # invalid guide pixels are the bicubic fallback's
    mean, std = pair.source_statistics
    if model == "local":
        cells = np.where(ok, (pair.source - mean) / std, 0.0)
        bands = np.stack([fill_nearest(f, ok) for f in features])
        a, b = local_linear_coefficients(fill_nearest(cells, ok), bands, int(radius), eps)
        prediction = ((np.stack([upsample(x, s, "cubic") for x in a]) * filled).sum(0)
                      + upsample(b, s, "cubic")) * std + mean
    else:
        fit = _global_regression(model, trees, min_leaf, seed)
        fit.fit(features[:, ok].T, pair.source[ok])
        prediction = fit.predict(filled.reshape(c, -1).T).reshape(pair.hr_shape)
    residual = pair.source - degrade(prediction, s, pair.psf)
    valid = np.isfinite(residual)
    if valid.any():
        prediction = prediction + upsample(fill_nearest(np.where(valid, residual, 0.0), valid), s, "cubic")
    return prediction, {"model": model, "cells": int(ok.sum())}


def _global_regression(model, trees, min_leaf, seed):
    try:
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.linear_model import LinearRegression
    except ImportError as e:
        raise InputError(f"model={model!r} of method='regression' needs scikit-learn: pip install scikit-learn") from e
    if model == "trees":
        return RandomForestRegressor(n_estimators=int(trees), min_samples_leaf=int(min_leaf), random_state=seed,
                                     n_jobs=1)
    return LinearRegression()
