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

KINDS = ("area", "gaussian")
DEFAULT_SIGMA = 0.5
MAX_SIGMA = 4.0


@dataclass(frozen=True)
class PSF:
    """A point spread function: ``kind`` "area" or "gaussian", ``sigma`` in LR pixels (gaussian only)."""

    kind: str = "area"
    sigma: float | None = None

    @property
    def radius(self) -> int:
        """How many LR cells on each side of its own a cell's kernel reaches (3 sigma)."""
        return 0 if self.kind == "area" else max(0, math.ceil(3 * self.sigma - 0.5))

    def weights(self, scale: int) -> np.ndarray:
        """1-D HR weights over the cell and ``radius`` cells each side (length scale * (2r + 1)), sum 1."""
        return _weights(self.kind, self.sigma, scale)

    def describe(self) -> str:
        return "area" if self.kind == "area" else f"gaussian (sigma {self.sigma:g} LR px)"


AREA = PSF()


def psf_from(psf="area", sigma=None) -> PSF:
    """A checked :class:`PSF` from the user's ``psf`` ("area", "gaussian" or a PSF) and ``psf_sigma``."""
    if isinstance(psf, PSF):
        return psf
    if psf not in KINDS:
        raise InputError(f"psf must be one of {KINDS}, got {psf!r}")
    if psf == "area":
        if sigma is not None:
            raise InputError("psf_sigma (--psf-sigma) applies to psf='gaussian'; psf='area' is the cell mean")
        return AREA
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
