"""The public entry points, thin over the spec (:mod:`geosr.spec`), the engine and the pipeline.

:func:`superresolve_array` runs one pair of arrays through :mod:`geosr.methods.engine`;
:func:`superresolve` runs a georeferenced raster through the stages of :mod:`geosr.pipeline.run`;
:func:`quality_layers` describes a result (:mod:`geosr.pipeline.quality`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .core.metrics import CycleResidual, cycle_residual
from .core.pair import FRAME
from .errors import InputError
from .methods import selfcheck
from .methods.engine import prepare, run_pair
from .methods.mmsr import check_start
from .spec import TRAINED, RunSpec


@dataclass(frozen=True)
class SRInfo:
    """What a run did and how well the output honours the source.

    residual: degrade(output) - source over fully valid LR cells, in source units
    (``rmse``, ``max``), with the run's sensor model (avg-pool by default); near 0 with
    ``exact=True``.
    """

    method: str
    scale: int
    exact: bool
    residual: CycleResidual
    seconds: float
    details: dict = field(default_factory=dict, repr=False)
    selfcheck: selfcheck.SelfCheck | None = None  # the method one scale down, against the source


def superresolve_array(source, guide, scale=RunSpec.scale, method: str = RunSpec.method, *, mask=None, flat_mask=None,
                       return_info: bool = False, frame=FRAME, **settings):
    """Super-resolve a 2-D ``source`` by ``scale`` using a co-registered HR ``guide``.

    Parameters
    ----------
    source : array (h, w), any real dtype. NaN, +-Inf and masked-array entries are invalid.
    guide : array (bands, H, W) or (H, W) with H = h * scale, W = w * scale, any real dtype.
        Pixels that are not finite in every band, or masked, are invalid: there the output
        falls back to the bicubic source, blended over ``feather`` HR pixels (default
        ``max(2 * scale, 8)``).
    scale : integer >= 2.
    method : "mmsr" (default), "cmsr" (:mod:`geosr.methods.cmsr`: ZSSR-style training one scale
        down, with a learned warp of the guide), "bicubic" or "guided" (OpenCV guided filter).
    mask : optional bool array (h, w), True where the source is invalid (``numpy.ma`` style;
        for a rasterio dataset mask, 255 = valid, pass ``mask == 0``).
    exact : True (default) corrects the output so avg-pool(output) equals the source on
        every fully valid LR cell (back-projection): cell means are kept to within 1e-4 of
        the source's range of values (2 cm on a DEM spanning 200 m), or float32 spacing /
        (2 * scale^2) where that is larger (a float32 output cannot hold them more finely);
        cells without a valid source value are left out. That is right for a source that
        holds cell means; for one whose values are samples at the cell centres use
        ``psf="point"``, for a sensor that blurs across cells ``"gaussian"`` or ``"auto"``. It also lowered the
        RMSE on every benchmark pair (benchmarks/RESULTS.md). False gives the method's raw
        output. With ``psf="gaussian"`` it makes the Gaussian model of the output equal the
        source instead (to float32 rounding for ``psf_sigma`` up to about 0.6;
        :mod:`geosr.core.backprojection` says why wider ones are only approached).
    psf, psf_sigma : the sensor model that turns the output into the source, used by the
        cycle loss and by ``exact`` (:mod:`geosr.core.psf`): "area" (default, the paper's
        avg-pool: cell means), "gaussian" with ``psf_sigma`` LR pixels (default 0.5), for
        sensors whose optics blur across neighbouring cells, "point" for values sampled at
        the cell centres (what geosr.superresolve uses for a source tagged
        AREA_OR_POINT=Point), or "auto": estimated from the
        pair after the alignment (:func:`geosr.core.psf.estimate`; the choice is in the
        info's ``details["psf"]``).
    align : "shift" (default), "affine" or "none". Before the fit, estimate how far the
        guide is displaced from the source and resample the guide to remove it
        (:mod:`geosr.core.align`; sign convention there). The estimate is in the info's
        ``details["alignment"]``. The default was chosen by measurement
        (benchmarks/RESULTS.md section 7).
    flat_mask : optional bool array, the source's shape (h, w) or the output's (H, W), True where
        the ground is flat (water, flat fields): there the guide is ignored and the output is
        bicubic (with the feathered edge), so the guide's texture cannot become false relief.
        The guide is aligned before it is masked. A slope threshold needs the pixel size:
        :func:`superresolve` takes one, this function only a boolean mask.
    return_info : if True, return ``(output, SRInfo)``; the info carries the achieved cycle
        residual (RMSE and maximum) whether or not ``exact`` is on.
    frame : which sides (top, bottom, left, right) of the arrays are the raster's edge (default
        all). MMSR's network sees a mirrored margin beyond them, so its zero padding does not
        show along the frame (benchmarks/RESULTS.md section 13). False marks a tile's inner
        side, which has a real halo (:mod:`geosr.pipeline.tiling` passes it).
    exact, feather, align, psf, psf_sigma, selfcheck and the method's options are the run's settings,
    checked together as a :class:`geosr.spec.RunSpec` before any work. ``selfcheck`` (default True)
    first runs the method one scale down on the pair and scores it against the source
    (:mod:`geosr.methods.selfcheck`; ``info.selfcheck``), with a warning where the guide did not help.
    **options : method options. For mmsr: ``preset`` ("fast" default, "depth" = the paper's
        11/5 windows, "remote-sensing" = 5/3), ``epochs``, ``device`` (None = CUDA if
        available, else CPU), ``seed`` (default 0; same seed and device give the same
        output), ``source_neighbourhood``, ``guide_neighbourhood``, ``channels``, ``lr``,
        ``progress``, ``start`` ("random", the paper's and the default, or "learned": the
        weights :mod:`geosr.methods.start` learned on CC0 Landsat-8 pairs, shipped for preset
        "fast" with 3 guide bands, for short budgets: ahead of random weights at 100 epochs on 5
        of 6 real pairs, behind at the default 650 on 5 of 6, benchmarks/RESULTS.md section 21). See :class:`geosr.methods.mmsr.MMSRConfig`. For cmsr: ``steps``,
        ``channels``, ``crop``, ``self_ensemble``, ... (:class:`geosr.methods.cmsr.CMSRConfig`).

    Returns
    -------
    float32 array (H, W) in the source's units, NaN where the source is invalid.
    """
    spec = RunSpec.build(scale=scale, method=method, **settings)
    if spec.scene_model is not None or spec.train_steps is not None or spec.mode in TRAINED:
        raise InputError("superresolve_array fits one pair, with no scene network to train or reuse: mode 'scene' "
                         "or 'hybrid', train_steps and model= apply to geosr.superresolve on a raster of tiles")
    t0 = time.perf_counter()
    pair, alignment, sensor = prepare(source, guide, spec.scale, mask=mask, feather=spec.feather, psf=spec.psf,
                                      align=spec.align, flat_mask=flat_mask, frame=frame)
    if spec.learned_start:
        check_start(spec.options, pair.guide.shape[0])
    check = selfcheck.of_pair(pair, spec.method, spec.options, spec.exact) if spec.selfcheck else None
    out, details = run_pair(pair, spec.method, spec.options, spec.exact)
    if not return_info:
        return out
    if alignment is not None:
        details = {**details, "alignment": alignment.attrs()}
    if sensor is not None:
        details = {**details, "psf": {"geosr_psf": pair.psf.kind, "geosr_psf_sigma": pair.psf.sigma, **sensor.attrs()}}
    info = SRInfo(method=spec.method, scale=pair.scale, exact=spec.exact,
                  residual=cycle_residual(out, pair.source, pair.scale, pair.source_valid, pair.psf),
                  seconds=time.perf_counter() - t0, details=details, selfcheck=check)
    return out, info


def superresolve(source, guide, scale=RunSpec.scale, method: str = RunSpec.method, *, checkpoint=None,
                 resume: bool = False, overwrite: bool = False, client=None, share_model: bool = False, **settings):
    """Super-resolve a georeferenced raster with a georeferenced guide; lazy, any size.

    Parameters
    ----------
    source : xarray.DataArray (band, y, x) or (y, x) with CRS and transform, e.g. from
        ``rioxarray.open_rasterio`` or :func:`geosr.open_raster`. Pass ``chunks=`` when
        opening large rasters so they stay on disk until needed. A stack with more
        dimensions, (time, y, x) or (time, band, y, x), is run slice by slice
        (:mod:`geosr.pipeline.slices`) and the results stacked again along them.
    guide : DataArray, or a list of them (stacked as bands), in any CRS, resolution and
        extent. For a stack, one guide for every slice, or a guide stack with the source's
        coordinates (the same ``time`` values): each slice then takes the guide at its own. It is warped lazily onto the output grid with ``resampling`` ("auto":
        GDAL ``average`` when the guide is more than 1.5x finer than the output, else
        ``bilinear``); a guide already on the output grid is used as is. Alpha bands and
        GDAL masks mark invalid pixels and are never used as guide bands.
    scale : integer >= 2. The output grid is the source grid refined by ``scale``: same CRS
        and origin, transform = source transform * Affine.scale(1 / scale).
    band : the source band (1-based) for a multi-band source; a list of bands, or "all", gives
        a (band, y, x) result, each band exactly as its own run with the guide aligned once.
    guide_bands : guide bands to use (1-based; default all but alpha).
    src_nodata, guide_nodata : override the files' nodata values.
    dst_nodata : the output's nodata (default: the source's if float32 holds it, else NaN).
    tile_size, overlap : tile side and halo in source pixels (defaults ``512 // scale`` and
        ``ceil(32 / scale)``: 512-pixel output tiles; neighbours blend over overlap * scale output
        pixels, and the outer half of each halo is discarded). A source
        smaller than one tile is one tile.
    mode : how MMSR spends its time over a raster of several tiles. "tile" fits a network per tile
        from scratch, as the paper does per pair (``epochs`` each). "scene" trains one network
        on random windows of the whole raster (``train_steps`` steps over batches of
        ``batch_size`` windows; ``epochs`` counts them too, as before) and runs it on every
        tile. "hybrid" trains that network briefly (``train_steps``, default
        :data:`geosr.methods.scene.HYBRID_STEPS`, preset "fast"), then fine-tunes a copy on each
        tile pair for ``epochs`` (default :data:`geosr.methods.scene.TUNE_EPOCHS`): every tile
        pair still gets its own optimisation, from a good start. "auto" (default) is "tile" for
        one tile and "scene" for more (hybrid at its defaults lost to scene mode on the
        Sentinel-2 Wald check, benchmarks/RESULTS.md section 17), and says what it chose in
        ``attrs["geosr_mode_reason"]`` and the ``geosr`` log. The scene network is trained when
        the output is computed or written (with a dask.distributed client: submitted at once).
    model : a scene network trained by another run (its file from :func:`save_model` or
        ``--model-out``, or the :class:`geosr.methods.scene.SceneModel`), used instead of
        training one, in mode scene (run on every tile) or hybrid (fine-tuned on each): a
        time series of one place, or neighbouring tiles of one survey, share one training.
    align : "shift" (default), "affine" or "none": estimate the guide's displacement from
        the source once, on a window of at most 512 output pixels at the centre of the
        source's valid area, and remove it while the guide is warped onto the output grid
        (no extra resampling). The estimate goes into ``attrs`` (``geosr_align_shift_px``:
        dx dy in output pixels, ``geosr_align_shift_map``: in map units; sign convention in
        :mod:`geosr.core.align`).
    flat_mask : where the ground is flat (water, flat fields), the guide is ignored and the
        output is bicubic, with the feathered edge, so the guide's texture (waves, road paint,
        crop rows) cannot become false relief (:mod:`geosr.pipeline.flatmask`). A number is a slope
        threshold in degrees: source cells with a lower slope (Horn's 3x3 method, as gdaldem
        slope, in the CRS's linear unit, heights taken in the same unit; for a geographic CRS
        degrees are converted to metres at the raster's central latitude, 111120 m per degree
        as gdaldem's ``-s 111120``) in areas of at least 3 x 3 such cells. A path to a raster
        (nonzero valid pixels = flat, any CRS and resolution, nearest onto the output grid)
        or to a GeoJSON file (polygons, lon/lat WGS84). Also a DataArray raster, a shapely
        geometry (in the source's CRS) or an odc.geo Geometry (its own CRS). Recorded in
        ``attrs["geosr_flat_mask"]``; the quality layers' ``fallback`` band shows it.
    checkpoint : a folder where finished tiles (and the scene model) are saved as they
        complete (:mod:`geosr.runtime.checkpoint`). It is opened when the result computes, not here. A
        run interrupted in this process continues from it when computed again; one left by
        another process continues only with ``resume=True``, and gives the same output bit
        for bit; ``overwrite=True`` discards it. A folder that holds other files is refused,
        never emptied. :func:`geosr.write` removes geosr's files from it after success.
    client : the dask.distributed Client the graph is meant for (default: the current one,
        if any). Fit and training tasks ask for the worker resource ``GPU=1`` when its
        workers offer it. Compute or :func:`geosr.write` on that client.
    share_model : for a stack in mode "scene" or "hybrid": train the scene network on the
        first slice (when the second is set up) and use it for every other one, instead of
        one training per slice.
    quality : also return the run's quality layers, ``(out, layers)``; see
        :func:`quality_layers`. Compute both together (``dask.compute(out, layers)``) or
        write the output first, so the fits run once.
    ensemble : with ``quality``, add the ``ensemble_spread`` band over this many seeds
        (:func:`quality_layers`).
    method, exact, feather, psf, psf_sigma, **options : as for :func:`superresolve_array`.
    Every setting above but ``checkpoint``, ``resume``, ``overwrite`` and ``client`` (which change how the
    run executes, not its output) goes into one :class:`geosr.spec.RunSpec`, checked before any work.

    Returns
    -------
    A lazy float32 DataArray (y, x) on the output grid, NaN where the source is invalid,
    with CRS, transform, nodata and the run's parameters in ``attrs``. Compute it, or
    stream it to disk with :func:`geosr.write`.
    """
    from .pipeline import quality, slices
    from .pipeline.run import run

    if slices.extra_dims(source):
        return slices.over_slices(superresolve, source, guide, share_model, scale=scale, method=method,
                                  checkpoint=checkpoint, resume=resume, overwrite=overwrite, client=client, **settings)
    spec = RunSpec.build(scale=scale, method=method, **settings)
    out = run(source, guide, spec, checkpoint, resume=resume, overwrite=overwrite, client=client)
    if spec.quality:
        return out, quality.of_result(out, source, guide, spec)
    return out


def save_model(result, path, overwrite: bool = False) -> Path:
    """Save the scene network a run trained (``result`` of :func:`superresolve` in mode scene or
    hybrid, or a :class:`geosr.methods.scene.SceneModel`) to ``path``, for ``model=`` of other runs.

    The file is numpy ``.npz``: the weights, the statistics the inputs were standardised with and
    the training's settings as JSON; loading it runs no code. An existing file is kept unless
    ``overwrite``."""
    from .methods import scene

    from .pipeline.train import resolved

    model = result if isinstance(result, scene.SceneModel) else getattr(result, "encoding", {}).get("geosr_model")
    if model is None:
        raise InputError("this result has no scene model: only mode 'scene' or 'hybrid' trains one (a run of one "
                         "source band; with several bands, run each band on its own to save its model)")
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    scene.save(resolved(model), path)  # trained now if the result has not been computed
    return path


def quality_layers(output, source, guide, **settings):
    """Lazy quality layers of a result (:mod:`geosr.pipeline.quality`): bands fallback, cycle_residual and
    guide_influence on the output grid, float32, NaN = nodata.

    ``output`` is what :func:`superresolve` returned, or that result written and opened again
    (:func:`geosr.open_raster`): the run's settings (scale, exact, alignment, tiles, feather,
    resampling, bands) are read from its ``geosr_*`` attributes, so the layers describe that
    run. ``settings`` override them, and give what the attributes do not hold (``src_nodata``,
    ``guide_nodata``, and a ``flat_mask`` that was an object in memory rather than a slope
    threshold or a file). Only bicubic is computed again, never a fit: compute the layers after
    the output is written, or together with it (``dask.compute(out, q)``).

    ``ensemble=N`` (N >= 2, learned methods only) adds a fourth band, ``ensemble_spread``: the
    standard deviation, pixel by pixel, over the output and N - 1 runs with the next seeds and
    otherwise the same settings. Those runs are real fits: N - 1 times the run's cost.
    """
    from .pipeline import quality
    from .pipeline.inputs import source_band

    spec = RunSpec.from_tags(output.attrs, quality=True, **settings)
    # A result in memory carries its self-check in encoding; a written output opened again does not, and holds
    # raw values with nodata as stored, its bands numbered from 1.
    reopened = "band" in output.dims and "geosr_selfcheck" not in output.encoding
    if reopened and spec.several_bands:
        import xarray as xr

        numbers = [int(b) for b in str(output.attrs["geosr_band"]).split(",")]
        output = xr.concat([source_band(output, i + 1) for i in range(len(numbers))], dim="band",
                           combine_attrs="override").assign_coords(band=numbers).assign_attrs(output.attrs)
    elif "band" in output.dims and not spec.several_bands:
        output = source_band(output)
    return quality.of_result(output, source, guide, spec)
