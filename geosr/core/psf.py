"""The sensor model: how the HR scene becomes one LR cell. The cycle loss and ``exact`` both use it.

``area`` (the default, and the MMSR paper's): a cell is the mean of its scale x scale HR
pixels, a detector with a box response and perfect optics. It keeps cell means, which is
what DEM users need.

``gaussian``: a cell is a Gaussian-weighted mean of the HR pixels around its centre, with
a standard deviation of ``sigma`` LR pixels (each HR pixel's weight is the Gaussian's
integral over that pixel). Real imaging sensors blur across neighbouring detectors: with
sigma = 0.5 the model passes 0.29 of the contrast at the LR Nyquist frequency, in the range
of spaceborne multispectral sensors, where ``area`` passes 0.64. A thermal band or a
resampled product is often better described this way.

``point``: a cell is the value at its centre (the central HR pixel, or the mean of the central
2 x 2 when the scale is even): a raster whose values are samples, not means, as GDAL's
``AREA_OR_POINT=Point`` says. A georeferenced source tagged so gets this model (with a
warning) where ``area`` or ``auto`` was asked for.

``auto``: the model is estimated from the pair (:func:`estimate`), before any fit.

Both models renormalise over the HR pixels that exist: at the raster's edge, or next to
nodata, the Gaussian's weights over the missing pixels are dropped. A cell with any
missing pixel of its own is NaN, as with ``area``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InputError
from .sampling import avg_pool

KINDS = ("area", "gaussian", "point")
CHOICES = (*KINDS, "auto")  # what a user may pass: a model, or "auto" to estimate it
DEFAULT_SIGMA = 0.5
MAX_SIGMA = 4.0
# psf="auto": the Gaussians tried (LR pixels; below 0.3 a Gaussian is sharper than the detector's own box,
# std 0.29), and how much worse than the best Gaussian the area model, and then a narrower Gaussian, may explain
# the source and still be chosen (benchmarks/RESULTS.md section 8 says how these were chosen).
SIGMAS = tuple(round(0.3 + 0.05 * k, 2) for k in range(19))  # 0.3 ... 1.2
AREA_TOLERANCE, SIGMA_TOLERANCE = 0.04, 0.01
EDGE, MIN_CELLS = 3, 36  # cells left out along edges and gaps; how many must remain


@dataclass(frozen=True)
class PSF:
    """A point spread function: ``kind`` "area" or "gaussian", ``sigma`` in LR pixels (gaussian only)."""

    kind: str = "area"
    sigma: float | None = None

    @property
    def radius(self) -> int:
        """How many LR cells on each side of its own a cell's kernel reaches (3 sigma)."""
        return max(0, math.ceil(3 * self.sigma - 0.5)) if self.kind == "gaussian" else 0

    def weights(self, scale: int) -> np.ndarray:
        """1-D HR weights over the cell and ``radius`` cells each side (length scale * (2r + 1)), sum 1."""
        return _weights(self.kind, self.sigma, scale)

    def describe(self) -> str:
        if self.kind == "gaussian":
            return f"gaussian (sigma {self.sigma:g} LR px)"
        return {"auto": "auto (estimated from the pair)", "point": "point (the value at each cell's centre)"}.get(
            self.kind, self.kind)


AREA = PSF()
AUTO = PSF("auto")  # to be estimated from the pair; a run replaces it by the estimate before any fit
POINT = PSF("point")


def psf_from(psf="area", sigma=None) -> PSF:
    """A checked :class:`PSF` from the user's ``psf`` ("area", "gaussian" or a PSF) and ``psf_sigma``."""
    if isinstance(psf, PSF):
        return psf
    if psf not in CHOICES:
        raise InputError(f"psf must be one of {CHOICES}, got {psf!r}")
    if psf != "gaussian":
        if sigma is not None:
            raise InputError(f"psf_sigma (--psf-sigma) applies to psf='gaussian'; psf={psf!r} " + {
                "area": "is the cell mean", "auto": "estimates sigma from the pair",
                "point": "is the value at the cell's centre"}[psf])
        return {"area": AREA, "auto": AUTO, "point": POINT}[psf]
    sigma = DEFAULT_SIGMA if sigma is None else sigma
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)) \
            or not 0 < float(sigma) <= MAX_SIGMA:
        raise InputError(f"psf_sigma must be a number of LR pixels in (0, {MAX_SIGMA:g}], got {sigma!r}; "
                         f"{DEFAULT_SIGMA} is typical of spaceborne imagers")
    return PSF("gaussian", float(sigma))


@lru_cache(maxsize=64)
def _weights(kind, sigma, scale):
    if kind == "area":
        return np.full(scale, 1.0 / scale)
    if kind == "point":
        w = np.zeros(scale)
        w[(scale - 1) // 2: scale // 2 + 1] = 1.0  # the central pixel, or the central two
        return w / w.sum()
    from scipy.special import ndtr

    r = PSF(kind, sigma).radius
    edges = (np.arange(scale * (2 * r + 1) + 1) / scale - r - 0.5) / sigma  # HR pixel edges, in sigmas
    w = np.diff(ndtr(edges))
    return w / w.sum()


def cell_weights(psf: PSF, scale: int) -> np.ndarray:
    """1-D weight of each whole LR cell in a cell's kernel (length 2r + 1): the model on the LR grid."""
    return psf.weights(scale).reshape(2 * psf.radius + 1, scale).sum(axis=1)


def degrade(hr: np.ndarray, scale: int, psf: PSF = AREA) -> np.ndarray:
    """The LR image (h, w) a sensor with ``psf`` records from ``hr`` (h * scale, w * scale), float64.

    NaN marks missing HR pixels: a cell with one of its own missing is NaN; missing
    neighbours are left out of the Gaussian and the rest reweighted.
    """
    hr = np.asarray(hr, np.float64)
    own = avg_pool(hr, scale)  # NaN where a cell's own pixels are incomplete
    if psf.kind == "area":
        return own
    valid = np.isfinite(hr)
    num = _separable(np.where(valid, hr, 0.0), psf, scale)
    return np.where(np.isfinite(own), num / coverage(valid, scale, psf), np.nan)


def coverage(valid: np.ndarray, scale: int, psf: PSF) -> np.ndarray:
    """Per cell, the kernel weight that falls on existing HR pixels (1 away from edges and gaps;
    never 0, so it can divide)."""
    den = _separable(np.asarray(valid, np.float64), psf, scale)
    return np.where(den > 0, den, 1.0)


def _separable(a: np.ndarray, psf: PSF, scale: int) -> np.ndarray:
    w = psf.weights(scale)
    pad = psf.radius * scale
    for axis in (-2, -1):
        n = a.shape[axis] // scale
        widths = [(0, 0)] * a.ndim
        widths[axis] = (pad, pad)
        padded = np.pad(a, widths)
        out = 0.0
        for k, wk in enumerate(w):
            out = out + wk * np.take(padded, k + scale * np.arange(n), axis=axis)
        a = out
    return a


def degrade_torch(hr, scale: int, psf: PSF = AREA):
    """:func:`degrade` for a finite torch tensor (N, C, H, W), differentiable: the cycle loss's sensor."""
    import torch
    import torch.nn.functional as F

    if psf.kind == "area":
        return F.avg_pool2d(hr, scale)
    c = hr.shape[1]
    w1 = torch.as_tensor(psf.weights(scale), dtype=hr.dtype, device=hr.device)
    kernel = (w1[:, None] * w1[None, :]).expand(c, 1, -1, -1)
    pad = psf.radius * scale
    num = F.conv2d(hr, kernel, stride=scale, padding=pad, groups=c)
    ones = torch.ones((1, c, *hr.shape[-2:]), dtype=hr.dtype, device=hr.device)
    den = F.conv2d(ones, kernel, stride=scale, padding=pad, groups=c)
    return num / den


@dataclass(frozen=True)
class Estimate:
    """What :func:`estimate` chose, and each candidate's fit residual relative to the best one's."""

    psf: PSF
    residuals: tuple  # ((PSF, residual / best residual), ...) in the order tried
    reason: str | None = None  # why no estimate was made: then ``psf`` is what is used instead

    def attrs(self) -> dict:
        """The output's tags: the estimate beside ``geosr_psf``/``geosr_psf_sigma``, which hold the model used."""
        if self.reason is not None:
            return {"geosr_psf_estimate": f"{self.psf.kind}: {self.reason}"}
        tried = " ".join(f"{'area' if c.kind == 'area' else c.sigma}:{r:.4f}" for c, r in self.residuals)
        return {"geosr_psf_estimate": f"auto: {self.psf.describe()}",
                "geosr_psf_estimate_residuals": f"local linear fit residual / the best Gaussian's, per model (area, "
                                                f"or Gaussian sigma in LR px): {tried}; chosen: area within "
                                                f"{1 + AREA_TOLERANCE:g}x, else the narrowest Gaussian within "
                                                f"{1 + SIGMA_TOLERANCE:g}x"}


def estimate(source, guide, scale: int, source_valid=None) -> Estimate:
    """The sensor model that best explains ``source`` (h, w) from ``guide`` (c, h*scale, w*scale), aligned.

    Each candidate (``area``, or a Gaussian of each of :data:`SIGMAS`) degrades the guide to the
    source grid, and the source is fitted as a local linear function of it, the model
    :mod:`geosr.core.align` uses for the shift. ``area`` is chosen unless the best Gaussian explains
    the source better by more than :data:`AREA_TOLERANCE`; otherwise the narrowest Gaussian within
    :data:`SIGMA_TOLERANCE` of the best. Both lean towards less blur: a sigma too large costs far
    more than one too small (benchmarks/RESULTS.md section 8), and a source smoother than its guide
    at the output's resolution (vegetation height beside a multispectral image) looks blurred by
    the sensor to this fit, which cannot tell the two apart. NaN or ``~source_valid`` marks invalid source pixels, NaN invalid guide pixels; at
    most the central :data:`geosr.core.align.MAX_SIDE` output pixels a side are used.
    """
    from scipy import ndimage

    from .align import CannotEstimate, central_window, fit_inputs, fit_residual

    src, valid, g, g_valid, _ = central_window(source, guide, scale, source_valid)
    candidates = [AREA, *(PSF("gaussian", s) for s in SIGMAS)]
    cells = valid & (avg_pool(g_valid.astype(np.float64), scale) == 1.0)
    # Cells whose fit, or the core of whose kernel, reaches past the window's edge or into a gap are not scored.
    cells = ndimage.binary_erosion(cells, iterations=EDGE, border_value=0)
    if cells.sum() < MIN_CELLS:
        raise CannotEstimate(f"too few valid source cells with a complete guide around them to estimate the sensor "
                             f"model (at least {MIN_CELLS}, {EDGE} cells away from the edges and gaps)")
    p, bands = fit_inputs(src, valid, g, g_valid)
    residuals = np.array([fit_residual(p, np.stack([degrade(b, scale, c) for b in bands]), cells)
                          for c in candidates])
    best = residuals[1:].min()
    if residuals[0] <= (1 + AREA_TOLERANCE) * best:
        chosen = AREA
    else:
        chosen = next(c for c, r in zip(candidates[1:], residuals[1:]) if r <= (1 + SIGMA_TOLERANCE) * best)
    return Estimate(chosen, tuple(zip(candidates, (residuals / best).tolist())))


def estimate_or_area(source, guide, scale: int, source_valid=None) -> Estimate:
    """:func:`estimate`, or ``area`` with a warning where the pair is too small to estimate it."""
    import warnings

    from .align import CannotEstimate

    try:
        return estimate(source, guide, scale, source_valid)
    except CannotEstimate as e:
        warnings.warn(f"psf='auto' skipped: {e}. The area model (cell means) is used.", UserWarning, stacklevel=3)
        return Estimate(AREA, (), reason=f"psf='auto' skipped: {e}")


def for_point_samples(asked: PSF) -> Estimate | None:
    """The model for a source tagged ``AREA_OR_POINT=Point`` where ``asked`` is area or auto, with a warning;
    None where a Gaussian was asked for (its kernel is centred on the cell centre, as the samples are)."""
    import warnings

    if asked.kind not in ("area", "auto"):
        return None
    why = ("the source is tagged AREA_OR_POINT=Point: its values are samples at the cell centres, not cell means, "
           "so exact keeps each cell's centre value")
    warnings.warn(f"psf={asked.kind!r} replaced by psf='point': {why}. If the values are cell means, tag the file "
                  "as Area (gdal_edit.py -mo AREA_OR_POINT=Area FILE).", UserWarning, stacklevel=3)
    return Estimate(POINT, (), reason=why)
