"""The internal engine: one prepared pair through a method, the bicubic fallback and ``exact``.

:func:`geosr.superresolve_array` checks a user's arrays and calls it once; the tile kernel of
the lazy pipeline (:func:`geosr.pipeline.tiling.fit_tile`) calls it for every tile, on arrays
the pipeline has already checked, without going through the public API again.
"""
from __future__ import annotations

import contextlib
import numbers
from pathlib import Path

import numpy as np

from ..core.align import Alignment, estimate_or_skip
from ..core.backprojection import back_project
from ..core.pair import FRAME, blend, prepare_pair
from ..core.psf import AREA, estimate_or_area
from ..core.sampling import repeat_cells
from ..core.warp import displace
from ..errors import InputError
from ..runtime.memory import reuse_freed_memory
from . import get_method
from .scene import predict


def run_pair(pair, method: str, options: dict, exact: bool, model=None, tune: bool = False,
             slot=contextlib.nullcontext()) -> tuple[np.ndarray, dict]:
    """(float32 HR output, details): the method's prediction where the guide is valid, bicubic where it
    is not, NaN where the source is not; cell means kept with ``exact``. ``model``: a trained
    :class:`geosr.methods.scene.SceneModel`, which predicts instead of a fit (``options``: device, amp),
    or with ``tune`` is the fit's starting point (mode "hybrid"). ``slot``: held around the method
    alone (:func:`geosr.runtime.cluster.fit_slot`), so that the back-projection of one tile, on one
    core, runs beside the network of the next."""
    reuse_freed_memory()
    with slot:
        if model is not None and tune:
            prediction, details = get_method(method)(pair, init=model, **options)
        elif model is not None:
            prediction, details = predict(model, pair, device=options.get("device"), amp=options.get("amp"))
        else:
            prediction, details = get_method(method)(pair, **options)
    out = prediction if pair.guide_complete else blend(prediction, pair.guide_weight, pair.bicubic_filled)
    out = np.where(pair.hr_valid, out, np.nan)
    out = back_project(out, pair.source, pair.source_valid, pair.scale, psf=pair.psf) if exact else out.astype(
        np.float32)
    return out, details


def prepare(source, guide, scale: int, *, mask=None, feather=None, psf=AREA, align="none", flat_mask=None,
            frame=FRAME):
    """The :class:`geosr.core.pair.Pair` of a user's arrays, with the guide's displacement measured
    (``align``: a kind, or an :class:`Alignment` to apply) and removed, the sensor model estimated
    where ``psf`` is ``auto`` (:func:`geosr.core.psf.estimate`), then the flat mask applied.
    Returns (pair, alignment or None, :class:`geosr.core.psf.Estimate` or None)."""
    pair = prepare_pair(source, guide, scale, mask=mask, feather=feather, psf=psf)
    flat = array_mask(flat_mask, pair.source.shape, pair.scale)
    alignment = align if isinstance(align, Alignment) else None
    if alignment is not None or align != "none":
        guide_with_gaps = pair.guide_with_gaps()
    if alignment is None and align != "none":
        alignment = estimate_or_skip(pair.source, guide_with_gaps, pair.scale, align, source_valid=pair.source_valid)
    if alignment is not None:
        guide = displace(guide_with_gaps, alignment)
        pair = prepare_pair(source, guide, scale, mask=mask, feather=feather, psf=psf)
    sensor = None
    if psf.kind == "auto":  # on the aligned guide, before the flat mask, as the alignment
        sensor = estimate_or_area(pair.source, pair.guide_with_gaps(), pair.scale, pair.source_valid)
        pair.psf = sensor.psf
    if flat is not None and flat.any():  # after the alignment, which needs the whole guide
        pair = prepare_pair(source, _without(guide, flat), scale, mask=mask, feather=feather, psf=pair.psf)
    pair.frame = tuple(frame)
    return pair, alignment, sensor


def _without(guide, flat: np.ndarray) -> np.ndarray:
    """A float64 copy of the guide with NaN where it is masked (``numpy.ma``) or ``flat``."""
    g = np.array(np.ma.getdata(guide), np.float64)
    if np.ma.isMaskedArray(guide):
        g[np.ma.getmaskarray(guide)] = np.nan
    g[..., flat] = np.nan
    return g


def array_mask(flat_mask, lr_shape, scale: int) -> np.ndarray | None:
    """``superresolve_array``'s flat mask as bool (H, W): given (h, w) (repeated onto the output
    pixels) or (H, W), True = flat."""
    if flat_mask is None:
        return None
    if isinstance(flat_mask, (numbers.Real, str, Path)) and not isinstance(flat_mask, bool):
        raise InputError(f"superresolve_array takes flat_mask as a boolean array, got {flat_mask!r}: a slope "
                         "threshold needs the pixel size and a file needs a map position, so use geosr.superresolve "
                         "on a georeferenced source for those, or compute the boolean mask yourself")
    m = np.asarray(flat_mask)
    if m.dtype != bool:
        raise InputError(f"flat_mask must be a boolean array, True where the ground is flat (got dtype {m.dtype})")
    h, w = lr_shape
    if m.shape == (h, w):
        return repeat_cells(m, scale)
    if m.shape == (h * scale, w * scale):
        return m
    raise InputError(f"flat_mask has shape {m.shape}; give the source's shape {(h, w)} or the output's "
                     f"{(h * scale, w * scale)}")
