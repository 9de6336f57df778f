"""Checking and preparing one (LR source, HR guide) pair for any method.

Everything a user can get wrong about the arrays is caught here, with a message that
says what to do, before any optimisation starts.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .psf import AREA, PSF
from .sampling import fill_nearest, repeat_cells
from .warp import upsample

# The default feather is at least this many HR pixels: about the reach of MMSR's guide
# path (six 3x3 convolutions), so pixels whose features see the invalid guide are ramped.
MIN_FEATHER = 8
# Sides of a pair (top, bottom, left, right) that are the raster's edge: all of them for a whole raster.
FRAME = (True, True, True, True)


def feather_px(scale: int, feather: float | None = None) -> float:
    """The fallback ramp's width in HR pixels: ``feather``, or by default twice the scale, at least MIN_FEATHER."""
    return max(2 * scale, MIN_FEATHER) if feather is None else float(feather)


@dataclass
class Pair:
    """A validated pair, ready for a method.

    source:        (h, w) float64 in source units, NaN where invalid.
    source_valid:  (h, w) bool.
    guide:         (c, H, W) float32, each band standardised over its valid pixels;
                   invalid pixels hold 0 (the band mean).
    guide_weight:  (H, W) float32 in [0, 1]: 1 where the guide is trusted, 0 where it is
                   invalid, a ramp in between so the fallback to bicubic has no seam.
    scale:         integer factor between the grids.
    guide_mean, guide_std: (c,) the statistics ``guide`` was standardised with, so a
                   model trained on a whole scene can re-standardise with the scene's.
    psf:           the sensor model (:mod:`geosr.core.psf`) the methods fit and ``exact`` keeps.
    frame:         which sides (top, bottom, left, right) are the raster's edge; False marks a
                   tile's inner side, which has a real halo.
    margin:        LR cells mirrored onto each side by :meth:`mirrored` (0 for a pair as given).
    """

    source: np.ndarray
    source_valid: np.ndarray
    guide: np.ndarray
    guide_weight: np.ndarray
    scale: int
    guide_mean: np.ndarray = None
    guide_std: np.ndarray = None
    psf: PSF = AREA
    frame: tuple = FRAME
    margin: tuple = (0, 0, 0, 0)

    def mirrored(self, cells: int) -> "Pair":
        """This pair mirrored outwards by ``cells`` LR cells on its frame sides, for a network to see.

        A network's zero padding spoils the pixels within its reach of the image's edge. A tile's
        inner sides have halos whose outer half the blend discards; the raster's frame has none,
        so there the network gets a mirrored margin, which :meth:`crop` removes from its output.
        The mirror is about the frame line, so source and guide stay co-registered.
        """
        t, b, l, r = (cells if side else 0 for side in self.frame)
        if not any((t, b, l, r)):
            return self
        s = self.scale

        def pad(a, k=1):
            return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(t * k, b * k), (l * k, r * k)], mode="symmetric")

        wider = Pair(source=pad(self.source), source_valid=pad(self.source_valid), guide=pad(self.guide, s),
                     guide_weight=pad(self.guide_weight, s), scale=s, guide_mean=self.guide_mean,
                     guide_std=self.guide_std, psf=self.psf, frame=self.frame, margin=(t, b, l, r))
        wider.source_statistics = self.source_statistics  # the copies must not shift the standardisation
        return wider

    def crop(self, hr: np.ndarray) -> np.ndarray:
        """``hr`` (..., H, W) on this pair's HR grid without the mirrored margin."""
        t, b, l, r = (m * self.scale for m in self.margin)
        return hr[..., t:hr.shape[-2] - b, l:hr.shape[-1] - r]

    @property
    def loss_valid(self) -> np.ndarray:
        """Valid source cells outside the mirrored margin: the cells a fit is scored on."""
        t, b, l, r = self.margin
        inner = np.zeros(self.source_valid.shape, bool)
        inner[t:inner.shape[0] - b, l:inner.shape[1] - r] = True
        return self.source_valid & inner

    def guide_standardised(self, mean, std) -> np.ndarray:
        """The guide standardised with other per-band statistics (a scene's); invalid pixels 0."""
        c = self.guide.shape[0]
        m0, s0 = self.guide_mean.reshape(c, 1, 1), self.guide_std.reshape(c, 1, 1)
        m1, s1 = np.asarray(mean, np.float64).reshape(c, 1, 1), np.asarray(std, np.float64).reshape(c, 1, 1)
        raw = self.guide.astype(np.float64) * s0 + m0
        return np.where(self.guide_weight > 0, (raw - m1) / s1, 0.0).astype(np.float32)

    def guide_with_gaps(self) -> np.ndarray:
        """The standardised guide (c, H, W) float64 with NaN where it is invalid."""
        return np.where(self.guide_weight > 0, self.guide, np.nan)

    @cached_property
    def source_statistics(self) -> tuple[float, float]:
        """Mean and std (1 where flat) of the valid source: the learned methods fit standardised values."""
        values = self.source[self.source_valid]
        return float(values.mean()), float(values.std()) or 1.0

    @property
    def hr_shape(self) -> tuple[int, int]:
        return self.guide.shape[-2:]

    @cached_property
    def guide_complete(self) -> bool:
        """True when the guide is trusted everywhere, so no bicubic fallback needs blending in."""
        return bool(self.guide_weight.min() == 1.0)

    @cached_property
    def hr_valid(self) -> np.ndarray:
        """HR pixels that get a value: those inside valid source cells."""
        return repeat_cells(self.source_valid, self.scale)

    @cached_property
    def bicubic(self) -> np.ndarray:
        """NaN-aware bicubic upsampling of the source: the fallback where the guide is invalid."""
        b = self.bicubic_filled.copy()
        b[~self.hr_valid] = np.nan
        return b

    @cached_property
    def bicubic_filled(self) -> np.ndarray:
        """Bicubic of the nearest-filled source: finite everywhere, for filters that cannot take NaN.

        Filling first keeps invalid cells from pulling the interpolation near them.
        """
        return upsample(self.source_filled, self.scale, "cubic")

    @cached_property
    def source_filled(self) -> np.ndarray:
        """The source with invalid cells set to their nearest valid value (finite everywhere)."""
        return fill_nearest(np.where(self.source_valid, self.source, 0.0), self.source_valid)


def blend(prediction, weight, fallback):
    """weight * prediction + (1 - weight) * fallback, for numpy arrays and torch tensors alike."""
    return weight * prediction + (1 - weight) * fallback


def check_scale(scale) -> int:
    """An integer >= 2; integral floats such as 4.0 are accepted."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise InputError(f"scale must be an integer >= 2, got {scale!r}")
    if not float(scale).is_integer():
        raise InputError(
            f"scale must be an integer >= 2, got {scale}: geosr refines each LR pixel into scale x scale "
            "HR pixels. Resample the guide so its pixel size divides the source's, and pass that ratio.")
    if int(scale) < 2:
        raise InputError(f"scale must be an integer >= 2, got {scale}: at scale 1 there is nothing to super-resolve.")
    return int(scale)


def prepare_pair(source, guide, scale, mask=None, feather: float | None = None, psf: PSF = AREA) -> Pair:
    """Validate ``source`` (h, w), ``guide`` (c, H, W) or (H, W), and build a :class:`Pair`.

    ``mask`` (h, w), True where the source is invalid (as in ``numpy.ma``), is merged with
    NaN, +-Inf and the mask of a masked array. ``feather`` is the width in HR pixels of the
    ramp between guided output and bicubic fallback (default ``max(2 * scale, 8)``).
    """
    scale = check_scale(scale)
    src, src_valid = _source_array(source, mask)
    h, w = src.shape
    g = _guide_array(guide, (h * scale, w * scale), scale, (h, w))
    g_valid = np.isfinite(g).all(axis=0)
    feather = feather_px(scale, feather)
    mean, std = guide_statistics(g, g_valid)
    return Pair(
        source=np.where(src_valid, src, np.nan),
        source_valid=src_valid,
        guide=np.where(g_valid, (g - mean[:, None, None]) / std[:, None, None], 0.0).astype(np.float32),
        guide_weight=feathered_weight(g_valid, feather),
        scale=scale,
        guide_mean=mean,
        guide_std=std,
        psf=psf,
    )


def _source_array(source, mask):
    invalid = np.ma.getmaskarray(source) if np.ma.isMaskedArray(source) else None
    a = np.asarray(np.ma.getdata(source))
    if a.dtype.kind not in "biuf":
        raise InputError(f"source must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
        invalid = None if invalid is None else invalid[0]
    if a.ndim != 2:
        raise InputError(
            f"source must be a 2-D array (h, w), got shape {a.shape}. "
            "Pass one band at a time, e.g. source[0] for a (1, h, w) raster.")
    if a.size == 0:
        raise InputError(f"source is empty (shape {a.shape}): it needs at least one pixel.")
    a = a.astype(np.float64)
    valid = np.isfinite(a)
    if invalid is not None:
        valid &= ~invalid
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != a.shape:
            raise InputError(f"mask has shape {m.shape} but source has {a.shape}; give one flag per source pixel.")
        if m.dtype != bool:
            raise InputError(
                f"mask must be boolean, True where the source is invalid (got dtype {m.dtype}). For a GDAL/rasterio "
                "dataset mask (255 = valid, 0 = nodata) pass mask == 0.")
        valid &= ~m
    if not valid.any():
        raise InputError(
            "source has no valid pixel: every value is NaN, infinite or masked. "
            "Check its nodata value, or the mask (True marks invalid pixels).")
    return a, valid


def _guide_array(guide, hr_shape, scale, lr_shape):
    g = np.asarray(np.ma.getdata(guide))
    if g.dtype.kind not in "biuf":
        raise InputError(f"guide must hold real numbers, got dtype {g.dtype}")
    g = g.astype(np.float64)  # a copy: masked pixels become NaN below, the caller's array is untouched
    if np.ma.isMaskedArray(guide):
        g[np.ma.getmaskarray(guide)] = np.nan
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3:
        raise InputError(f"guide must be (bands, H, W) or (H, W), got shape {g.shape}")
    if g.shape[0] == 0:
        raise InputError(f"guide has 0 bands (shape {g.shape}); it needs at least one.")
    if g.shape[1:] != tuple(hr_shape):
        hint = ""
        if g.shape[:2] == tuple(hr_shape):
            hint = " It looks band-last (H, W, bands): pass np.moveaxis(guide, -1, 0)."
        raise InputError(
            f"guide is {g.shape[-2]} x {g.shape[-1]} pixels but a {lr_shape[0]} x {lr_shape[1]} source at "
            f"scale {scale} needs a {hr_shape[0]} x {hr_shape[1]} guide (source shape x scale).{hint} "
            "Crop or resample the guide onto the HR grid, or pass the scale that relates the two.")
    return g


def guide_statistics(g: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (1 where flat) over pixels valid in every band; 0 and 1 when none is."""
    if not valid.any():
        return np.zeros(g.shape[0]), np.ones(g.shape[0])
    v = g[:, valid]
    std = v.std(axis=1)
    return v.mean(axis=1), np.where(std > 0, std, 1.0)


def feathered_weight(valid: np.ndarray, feather: float) -> np.ndarray:
    """1 where the guide is valid and farther than ``feather`` HR pixels from an invalid one, 0 where
    it is invalid, a linear ramp in between (the raster's edge is not a gap)."""
    if valid.all():
        return np.ones(valid.shape, np.float32)
    if not valid.any() or feather <= 0:
        return valid.astype(np.float32)
    dist = ndimage.distance_transform_edt(valid)  # distance to the nearest invalid pixel
    return np.clip((dist - 0.5) / feather, 0.0, 1.0).astype(np.float32)


def principal_bands(g: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` bands: the principal components of ``g`` (c, H, W) when it has more."""
    c = g.shape[0]
    if c <= n:
        return g
    flat = g.reshape(c, -1).astype(np.float64)
    _, vecs = np.linalg.eigh(np.cov(flat))
    return (vecs[:, ::-1][:, :n].T @ flat).reshape(n, *g.shape[1:]).astype(np.float32)
