"""The public entry points. Orchestration only: checking, dispatch, fallback, exactness."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .backprojection import back_project
from .methods import get_method
from .metrics import CycleResidual, cycle_residual
from .pair import blend, prepare_pair


@dataclass(frozen=True)
class SRInfo:
    """What a run did and how well the output honours the source.

    residual: avg-pool(output) - source over fully valid LR cells, in source units
    (``rmse``, ``max``); near 0 with ``exact=True``.
    """

    method: str
    scale: int
    exact: bool
    residual: CycleResidual
    seconds: float
    details: dict = field(default_factory=dict, repr=False)


def superresolve_array(source, guide, scale=4, method: str = "mmsr", *, mask=None, exact: bool = True,
                       feather: float | None = None, return_info: bool = False, **options):
    """Super-resolve a 2-D ``source`` by ``scale`` using a co-registered HR ``guide``.

    Parameters
    ----------
    source : array (h, w), any real dtype. NaN, +-Inf and masked-array entries are invalid.
    guide : array (bands, H, W) or (H, W) with H = h * scale, W = w * scale, any real dtype.
        Pixels that are not finite in every band, or masked, are invalid: there the output
        falls back to the bicubic source, blended over ``feather`` HR pixels (default
        ``max(2 * scale, 8)``).
    scale : integer >= 2.
    method : "mmsr" (default), "bicubic" or "guided" (OpenCV guided filter).
    mask : optional bool array (h, w), True where the source is invalid (``numpy.ma`` style;
        for a rasterio dataset mask, 255 = valid, pass ``mask == 0``).
    exact : True (default) corrects the output so avg-pool(output) equals the source on
        every fully valid LR cell (back-projection): DEM and thermal cell means are kept to
        within 1e-4 of the source's range, or float32 spacing / (2 * scale^2) where that is
        larger (a float32 output cannot hold cell means more finely). It also lowered the
        RMSE on every benchmark pair (benchmarks/RESULTS.md). False gives the method's raw
        output.
    return_info : if True, return ``(output, SRInfo)``; the info carries the achieved cycle
        residual (RMSE and maximum) whether or not ``exact`` is on.
    **options : method options. For mmsr: ``preset`` ("fast" default, "depth" = the paper's
        11/5 windows, "remote-sensing" = 5/3), ``epochs``, ``device`` (None = CUDA if
        available, else CPU), ``seed`` (default 0; same seed and device give the same
        output), ``source_neighbourhood``, ``guide_neighbourhood``, ``channels``, ``lr``,
        ``progress``. See :class:`geosr.methods.mmsr.MMSRConfig`.

    Returns
    -------
    float32 array (H, W) in the source's units, NaN where the source is invalid.
    """
    run = get_method(method)
    pair = prepare_pair(source, guide, scale, mask=mask, feather=feather)
    t0 = time.perf_counter()
    prediction, details = run(pair, **options)
    out = _blend_fallback(prediction, pair)
    out = back_project(out, pair.source, pair.source_valid, pair.scale) if exact else out.astype(np.float32)
    if not return_info:
        return out
    info = SRInfo(method=method, scale=pair.scale, exact=exact,
                  residual=cycle_residual(out, pair.source, pair.scale, pair.source_valid),
                  seconds=time.perf_counter() - t0, details=details)
    return out, info


def _blend_fallback(prediction: np.ndarray, pair) -> np.ndarray:
    """Guided prediction where the guide is valid, bicubic where it is not, NaN where the source is not."""
    out = prediction if pair.guide_complete else blend(prediction, pair.guide_weight, pair.bicubic_filled)
    return np.where(pair.hr_valid, out, np.nan)
