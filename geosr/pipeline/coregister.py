"""Stage 1 of a run: the source band and the guide(s) on one output grid, lazily.

The output grid is the source grid refined by the scale (:func:`geosr.pipeline.grid.output_grid`).
Each guide is warped onto it once (:mod:`geosr.core.warp`), with the displacement measured
against the source removed in that same warp; with ``psf="auto"`` the sensor model is estimated
on the aligned guide (:func:`geosr.core.psf.estimate`), a source tagged ``AREA_OR_POINT=Point``
gets the point model, and the flat mask
(:mod:`geosr.pipeline.flatmask`) blanks the guide where the ground is flat. Nothing here reads
more than a window of the inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from odc.geo.geobox import GeoBox

from ..core.align import MAX_SIDE, Alignment, estimate_or_skip, window_of
from ..core.psf import Estimate, estimate_or_area, for_point_samples
from ..errors import InputError
from . import grid, inputs
from .flatmask import on_output_grid


@dataclass(frozen=True)
class Coregistered:
    """A run's inputs on the output grid. ``lr`` (h, w) float64 and ``hr_guide`` (bands, H, W) are dask
    arrays, NaN = invalid; ``src`` is the source band as a DataArray (its attributes and nodata);
    ``valid`` where the source has data (:func:`geosr.pipeline.inputs.valid_map`); ``sensor`` the
    sensor model settled here: the estimate of ``psf="auto"``, or the point model of a source tagged
    ``AREA_OR_POINT=Point`` (None where the spec's model stands)."""

    src: object
    src_box: GeoBox
    hr_box: GeoBox
    guides: list
    lr: object
    hr_guide: object
    alignment: Alignment | None
    valid: tuple
    sensor: Estimate | None = None

    def settled(self, spec):
        """``spec`` with the sensor model settled here (``psf="auto"`` estimated, or point samples)."""
        return spec if self.sensor is None else spec.replace(psf=self.sensor.psf)


def coregister(source, guide, spec) -> Coregistered:
    """The source band ``spec.band`` and the guide(s) on the output grid, aligned and flat-masked."""
    import dask.array as dsa

    src_box = grid.geobox_of(inputs.as_bands(source, "source"), "source")
    hr_box = grid.output_grid(src_box, spec.scale)
    guides = [guide] if not isinstance(guide, (list, tuple)) else list(guide)
    if not guides:
        raise InputError("give at least one guide raster")
    if spec.guide_bands is not None and len(guides) > 1:
        raise InputError("guide_bands (--guide-bands) selects bands of a single guide; with several guides, "
                         "each one's bands are all used (select them before passing, e.g. guide.sel(band=[1, 2]))")
    roles = guide_roles(len(guides))
    boxes = [grid.geobox_of(g, role) for g, role in zip(guides, roles)]
    for g_box, role in zip(boxes, roles):  # where and how fine, before anything about bands: swapped inputs
        grid.check_overlap(src_box, g_box, role)
        grid.check_finer(g_box, src_box, role)
    src = inputs.source_band(source, spec.band, spec.src_nodata)
    bands = spec.guide_bands if len(guides) == 1 else None
    prepared = [(inputs.guide_stack(g, None if bands is None else list(bands), spec.guide_nodata), g_box)
                for g, g_box in zip(guides, boxes)]
    stacked = [grid.onto_grid(g, g_box, hr_box, spec.resampling) for g, g_box in prepared]
    valid = inputs.valid_map(source, spec.band, spec.src_nodata)  # a coarse map of a large source: no whole read
    if not valid[0].any():
        raise InputError("the source has no valid pixel: every value is nodata, NaN or masked. Check the band "
                         "(band=, --band) and, if the file's nodata value is wrong, override it "
                         "(src_nodata=, --src-nodata).")

    alignment = spec.align if isinstance(spec.align, Alignment) else None
    if alignment is None and spec.align != "none":
        alignment = _estimate_alignment(source, spec, valid, stacked)
    if alignment is not None:
        stacked = [grid.onto_grid(g, g_box, hr_box, spec.resampling, displacement=alignment.matrix)
                   for g, g_box in prepared]
    sensor = None
    if str(src.attrs.get("AREA_OR_POINT", "")).lower() == "point":
        sensor = for_point_samples(spec.psf)
    elif spec.psf.kind == "auto":  # on the aligned guide, before the flat mask, as the alignment
        window, guide_window, _ = _window(source, spec, valid, stacked)
        sensor = estimate_or_area(window, guide_window, spec.scale)

    lr = src.data if isinstance(src.data, dsa.Array) else dsa.from_array(src.data)
    hr_guide = dsa.concatenate([g.data if isinstance(g.data, dsa.Array) else dsa.from_array(g.data)
                                for g in stacked], axis=0)
    if spec.flat_mask is not None:  # masked after the alignment, which is measured on the whole guide
        is_flat = on_output_grid(spec.flat_mask, src, src_box, hr_box, spec.scale, hr_guide.chunks[1:])
        hr_guide = dsa.where(is_flat[None], np.nan, hr_guide).astype(hr_guide.dtype)
    return Coregistered(src, src_box, hr_box, guides, lr, hr_guide, alignment, valid, sensor)


def guide_roles(n: int) -> list[str]:
    """How messages name the guides: "guide", or "guide 1", "guide 2", ..."""
    return ["guide"] if n == 1 else [f"guide {i + 1}" for i in range(n)]


def _estimate_alignment(source, spec, valid, stacked):
    """The guide's displacement, estimated on :func:`_window`."""
    lr, guides, (y0, x0) = _window(source, spec, valid, stacked)
    found = estimate_or_skip(lr, guides, spec.scale, spec.align)
    return None if found is None else found.moved(x0 * spec.scale, y0 * spec.scale)


def _window(source, spec, valid, stacked):
    """(source band (h, w), guide bands (c, h * scale, w * scale), (y0, x0)) of the window at the centre of
    the source's valid area (``valid``: :func:`geosr.pipeline.inputs.valid_map`) where the alignment and the
    sensor model are estimated; only that window of source and guide is read."""
    import dask

    scale = spec.scale
    y0, x0, h, w = window_of(valid[0], MAX_SIDE // scale, valid[1], valid[2])
    da = inputs.as_bands(source, "source")
    window = inputs.source_band(da.isel({da.dims[1]: slice(y0, y0 + h), da.dims[2]: slice(x0, x0 + w)}), spec.band,
                                spec.src_nodata)
    rows, cols = slice(y0 * scale, (y0 + h) * scale), slice(x0 * scale, (x0 + w) * scale)
    lr, *guides = dask.compute(window.data, *[g.data[:, rows, cols] for g in stacked])
    return np.asarray(lr, np.float64), np.concatenate([np.asarray(g) for g in guides]), (y0, x0)
