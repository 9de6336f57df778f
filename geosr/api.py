"""The public entry points. Orchestration only: checking, dispatch, fallback, exactness, tiling."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import xarray as xr

from .core.align import DEFAULT_ALIGN, Alignment, check_align, correct, estimate_or_skip
from .core.backprojection import back_project
from .errors import InputError
from .pipeline.flatmask import array_mask
from .methods import check_options, get_method
from .core.metrics import CycleResidual, cycle_residual
from .core.pair import FRAME, MIN_FEATHER, blend, check_scale, prepare_pair
from .core.psf import psf_from


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


def superresolve_array(source, guide, scale=4, method: str = "mmsr", *, mask=None, exact: bool = True,
                       feather: float | None = None, align: str = DEFAULT_ALIGN, flat_mask=None, psf: str = "area",
                       psf_sigma: float | None = None, return_info: bool = False, frame=FRAME, **options):
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
        every fully valid LR cell (back-projection): DEM and thermal cell means are kept to
        within 1e-4 of the source's range, or float32 spacing / (2 * scale^2) where that is
        larger (a float32 output cannot hold cell means more finely). It also lowered the
        RMSE on every benchmark pair (benchmarks/RESULTS.md). False gives the method's raw
        output. With ``psf="gaussian"`` it makes the Gaussian model of the output equal the
        source instead (to float32 rounding for ``psf_sigma`` up to about 0.6;
        :mod:`geosr.core.backprojection` says why wider ones are only approached).
    psf, psf_sigma : the sensor model that turns the output into the source, used by the
        cycle loss and by ``exact`` (:mod:`geosr.core.psf`): "area" (default, the paper's
        avg-pool: cell means) or "gaussian" with ``psf_sigma`` LR pixels (default 0.5), for
        sensors whose optics blur across neighbouring cells.
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
    **options : method options. For mmsr: ``preset`` ("fast" default, "depth" = the paper's
        11/5 windows, "remote-sensing" = 5/3), ``epochs``, ``device`` (None = CUDA if
        available, else CPU), ``seed`` (default 0; same seed and device give the same
        output), ``source_neighbourhood``, ``guide_neighbourhood``, ``channels``, ``lr``,
        ``progress``. See :class:`geosr.methods.mmsr.MMSRConfig`. For cmsr: ``steps``,
        ``channels``, ``crop``, ``self_ensemble``, ... (:class:`geosr.methods.cmsr.CMSRConfig`).

    Returns
    -------
    float32 array (H, W) in the source's units, NaN where the source is invalid.
    """
    run = get_method(method)
    check_align(align)
    psf = psf_from(psf, psf_sigma)
    t0 = time.perf_counter()
    pair = prepare_pair(source, guide, scale, mask=mask, feather=feather, psf=psf)
    flat = array_mask(flat_mask, pair.source.shape, pair.scale)
    alignment = align if isinstance(align, Alignment) else None
    if alignment is not None or align != "none":
        guide_with_gaps = pair.guide_with_gaps()
    if alignment is None and align != "none":
        alignment = estimate_or_skip(pair.source, guide_with_gaps, pair.scale, align, source_valid=pair.source_valid)
    if alignment is not None:
        guide = correct(guide_with_gaps, alignment)
        pair = prepare_pair(source, guide, scale, mask=mask, feather=feather, psf=psf)
    if flat is not None and flat.any():  # after the alignment, which needs the whole guide
        pair = prepare_pair(source, _without(guide, flat), scale, mask=mask, feather=feather, psf=psf)
    pair.frame = tuple(frame)
    prediction, details = run(pair, **options)
    if alignment is not None:
        details = {**details, "alignment": alignment.attrs()}
    out = _blend_fallback(prediction, pair)
    out = back_project(out, pair.source, pair.source_valid, pair.scale, psf=psf) if exact else out.astype(np.float32)
    if not return_info:
        return out
    info = SRInfo(method=method, scale=pair.scale, exact=exact,
                  residual=cycle_residual(out, pair.source, pair.scale, pair.source_valid, psf),
                  seconds=time.perf_counter() - t0, details=details)
    return out, info


def _without(guide, flat: np.ndarray) -> np.ndarray:
    """A float64 copy of the guide with NaN where it is masked (``numpy.ma``) or ``flat``."""
    g = np.array(np.ma.getdata(guide), np.float64)
    if np.ma.isMaskedArray(guide):
        g[np.ma.getmaskarray(guide)] = np.nan
    g[..., flat] = np.nan
    return g


def _blend_fallback(prediction: np.ndarray, pair) -> np.ndarray:
    """Guided prediction where the guide is valid, bicubic where it is not, NaN where the source is not."""
    out = prediction if pair.guide_complete else blend(prediction, pair.guide_weight, pair.bicubic_filled)
    return np.where(pair.hr_valid, out, np.nan)


MODES = ("auto", "scene", "tile")
DEFAULT_MODE = "auto"


def superresolve(source, guide, scale=4, method: str = "mmsr", *, band: int | None = None, guide_bands=None,
                 src_nodata=None, guide_nodata=None, dst_nodata=None, resampling: str = "auto",
                 tile_size: int | None = None, overlap: int | None = None, exact: bool = True,
                 feather: float | None = None, mode: str = DEFAULT_MODE, batch_size: int | None = None,
                 align: str = DEFAULT_ALIGN, flat_mask=None, psf: str = "area", psf_sigma: float | None = None,
                 checkpoint=None, resume: bool = False, overwrite: bool = False, client=None, quality: bool = False,
                 ensemble: int | None = None, **options):
    """Super-resolve a georeferenced raster with a georeferenced guide; lazy, any size.

    Parameters
    ----------
    source : xarray.DataArray (band, y, x) or (y, x) with CRS and transform, e.g. from
        ``rioxarray.open_rasterio`` or :func:`geosr.open_raster`. Pass ``chunks=`` when
        opening large rasters so they stay on disk until needed.
    guide : DataArray, or a list of them (stacked as bands), in any CRS, resolution and
        extent. It is warped lazily onto the output grid with ``resampling`` ("auto":
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
    mode : "scene" trains one MMSR network on random windows of the whole raster
        (``epochs`` optimisation steps over batches of ``batch_size`` windows) when this is
        called, then runs it lazily on every tile; "tile" fits a network per tile, as the paper does per pair; "auto"
        (default) is "tile" for a raster of one tile and "scene" for more. Per tile is the
        more accurate, scene the cheaper by about the number of tiles (benchmarks/RESULTS.md).
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
    quality : also return the run's quality layers, ``(out, layers)``; see
        :func:`quality_layers`. Compute both together (``dask.compute(out, layers)``) or
        write the output first, so the fits run once.
    ensemble : with ``quality``, add the ``ensemble_spread`` band over this many seeds
        (:func:`quality_layers`).
    method, exact, feather, psf, psf_sigma, **options : as for :func:`superresolve_array`.

    Returns
    -------
    A lazy float32 DataArray (y, x) on the output grid, NaN where the source is invalid,
    with CRS, transform, nodata and the run's parameters in ``attrs``. Compute it, or
    stream it to disk with :func:`geosr.write`.
    """
    import dask
    import rioxarray  # noqa: F401  (registers .rio)
    from dask.base import tokenize
    from odc.geo.xr import xr_coords

    from .pipeline import flatmask, tiling
    from .runtime import provenance
    from .runtime.cluster import current_client, gpu_resources
    from .pipeline.io import output_nodata

    scale = check_scale(scale)
    check_options(method, options)
    check_align(align)
    sensor = psf_from(psf, psf_sigma)
    if ensemble is not None:
        if isinstance(ensemble, bool):
            raise InputError("ensemble=N is the number of seeds behind the quality layers' ensemble_spread band; "
                             "CMSR's 8 rotations/flips at inference are its option self_ensemble=True/False")
        if not quality:
            raise InputError("ensemble adds a band to the quality layers: pass quality=True as well")
        check_ensemble(method, ensemble)
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "scene" and method != "mmsr":
        raise InputError(f"mode='scene' trains one MMSR network for the whole raster; method={method!r} always runs "
                         "tile by tile: leave mode out")
    if batch_size is not None:
        if mode == "tile" or method != "mmsr":
            raise InputError("batch_size applies to mode='scene' with method='mmsr' only")
        _positive_int(batch_size, "batch_size")
    flat = flatmask.resolve(flat_mask)
    if isinstance(band, (str, list, tuple)):
        return _several_bands(source, guide, scale, method, band, quality, checkpoint, dict(
            guide_bands=guide_bands, src_nodata=src_nodata, guide_nodata=guide_nodata, dst_nodata=dst_nodata,
            resampling=resampling, tile_size=tile_size, overlap=overlap, exact=exact, feather=feather, mode=mode,
            batch_size=batch_size, align=align, flat_mask=flat, psf=psf, psf_sigma=psf_sigma, resume=resume,
            overwrite=overwrite, client=client, **options))
    if method == "bicubic":  # its output does not depend on the guide: nothing to measure
        align = "none"
    src, hr_box, guides, lr, hr_guide, alignment = _coregister(source, guide, scale, band, guide_bands, src_nodata,
                                                               guide_nodata, resampling, align, flat)

    tile_size = max(1, 512 // scale) if tile_size is None else _positive_int(tile_size, "tile_size")
    overlap = _overlap_for_feather(src.shape, scale, tile_size, overlap, feather)
    if method != "mmsr":
        mode = "tile"
    elif mode == "auto":
        one_tile = all(len(tiling.split(n, tile_size, 2 * overlap)) == 1 for n in src.shape)
        mode = "tile" if one_tile else "scene"
    scene = mode == "scene"
    token = tokenize(lr, hr_guide, scale, method, mode, batch_size, exact, feather, tile_size, overlap, sensor,
                     sorted(options.items()), str(getattr(align, "kind", align)),
                     None if alignment is None else tuple(alignment.matrix),
                     None if flat is None else (flat.description, sorted(flat.checksums.items())))
    params = provenance.parameters(method, scale, exact, tile_size, overlap, resampling, band, guide_bands, options, mode,
                                   batch_size, None if flat is None else flat.description)
    params.update(alignment.attrs(hr_box.affine) if alignment is not None else
                  {"geosr_align": "none" if align == "none" else f"none ({align} skipped: too little overlap)"})
    params["geosr_feather"] = max(2 * scale, MIN_FEATHER) if feather is None else float(feather)
    params["geosr_psf"] = sensor.kind
    params["geosr_psf_sigma"] = "" if sensor.sigma is None else sensor.sigma
    roles = ["source"] + (["guide"] if len(guides) == 1 else [f"guide {i + 1}" for i in range(len(guides))])
    checksums, input_tags, input_files = provenance.inputs([source, *guides], roles,
                                                           None if flat is None else flat.checksums)
    store = None
    if checkpoint is not None:
        from .runtime.checkpoint import TileStore

        run = {"parameters": {**params, "feather": feather, "src_nodata": src_nodata, "guide_nodata": guide_nodata,
                              "grid": [hr_box.crs.to_wkt(), list(hr_box.affine)[:6], list(hr_box.shape)]},
               "inputs": checksums}
        store = TileStore(checkpoint, run, resume=resume, overwrite=overwrite)
    # Versions and the machine are recorded, but do not key the checkpoint: a run resumed
    # after a library update is refused by its geosr_version, not by a patch release of numpy.
    params.update(provenance.software())
    params.update(provenance.runtime(options.get("device"), current_client(client), options.get("seed", 0)))
    params.update(input_tags)
    resources = gpu_resources(current_client(client))
    model = None
    if scene:
        from .methods.scene import lazy_train

        train_options = {k: v for k, v in options.items() if k != "gradient_checkpointing"}
        train_options.update({"batch_size": batch_size} if batch_size is not None else {})
        train_options["psf"] = sensor
        # Trained now, before the tiles: were it a node of the tile graph, idle threads would
        # read the whole raster ahead while it trains, and guide chunks read for training
        # windows would stay in memory until their tiles ran.
        model = _compute_now(lazy_train(lr, hr_guide, scale, train_options, token, store, resources), client)
        model = dask.delayed(model, name=f"geosr-model-{token}", traverse=False)
        options = {k: v for k, v in options.items() if k in ("device", "amp")}
    fit = partial(_fit_tile, scale=scale, method=method, exact=exact, feather=feather, psf=sensor, options=options)
    data = tiling.tiled(lr, hr_guide, scale, tile_size, overlap, fit, exact, token, model, store, resources, sensor)

    coords = {k: v for k, v in xr_coords(hr_box, dims=("y", "x")).items() if k in ("y", "x")}
    out = xr.DataArray(data, dims=("y", "x"), coords=coords).rename(source.name)
    out = out.rio.write_crs(source.rio.crs).rio.write_transform(hr_box.affine)
    out = out.rio.write_nodata(output_nodata(src.encoding["nodata"], dst_nodata), encoded=True)
    out.attrs.update(src.attrs)
    out.attrs.update(params)
    out.encoding["geosr_inputs"] = input_files
    out.encoding["geosr_alignment"] = alignment
    if quality:
        return out, quality_layers(out, source, guide, band=band, guide_bands=guide_bands, src_nodata=src_nodata,
                                   guide_nodata=guide_nodata, flat_mask=flat, ensemble=ensemble)
    return out


def _several_bands(source, guide, scale, method, bands, quality, checkpoint, kwargs):
    """Several source bands, each exactly as a run of that band alone, stacked as (band, y, x).

    The guide's alignment is measured once, on the first band, and applied to every band;
    each band keeps its checkpoint in a folder of its own under ``checkpoint``.
    """
    from .runtime.checkpoint import Location
    from .pipeline.inputs import data_bands

    if quality:
        raise InputError("quality layers describe one band: run quality_layers on each band of the result "
                         "(result.sel(band=N)), or process the bands one at a time")
    numbers = data_bands(source, bands)
    outs = []
    for b in numbers:
        folder = None if checkpoint is None else Location.of(checkpoint).child(f"band-{b}")
        out = superresolve(source, guide, scale, method, band=b, checkpoint=folder, **kwargs)
        if not outs and kwargs["align"] != "none":
            kwargs = {**kwargs, "align": out.encoding["geosr_alignment"] or "none"}
        outs.append(out)
    first = outs[0]
    result = xr.concat(outs, dim="band", combine_attrs="override").assign_coords(band=numbers)
    result.attrs = {**first.attrs, "geosr_band": ",".join(map(str, numbers))}
    names = [o.attrs.get("long_name") for o in outs]
    if any(names):
        result.attrs["long_name"] = tuple(str(n or "") for n in names)
    result = result.rio.write_crs(first.rio.crs).rio.write_transform(first.rio.transform())
    result = result.rio.write_nodata(first.rio.encoded_nodata, encoded=True)
    result.encoding["geosr_inputs"] = first.encoding.get("geosr_inputs", ())
    return result


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
    import dask.array as da
    import rioxarray  # noqa: F401
    from dask.base import tokenize

    from .pipeline import flatmask, quality, tiling
    from .runtime import provenance
    from .runtime.fingerprint import sources_of
    from .pipeline.inputs import source_band

    if "band" in output.dims:  # a written output opened again: raw values, nodata as stored
        output = source_band(output)
    attrs = output.attrs

    def get(name, attr, cast, default=None):
        if name in settings:
            return settings[name]
        value = attrs.get(attr, "")
        return default if value in ("", None) else cast(value)

    if "geosr_scale" not in attrs and "scale" not in settings:
        raise InputError("quality_layers needs the output of geosr.superresolve (its geosr_* attributes), or scale=")
    scale = check_scale(get("scale", "geosr_scale", int))
    exact = bool(get("exact", "geosr_exact", int, 1))
    align = get("align", "geosr_align", lambda v: v if v in ("shift", "affine") else "none", DEFAULT_ALIGN)
    band = get("band", "geosr_band", int)
    guide_bands = get("guide_bands", "geosr_guide_bands", lambda v: [int(b) for b in str(v).split(",")])
    resampling = get("resampling", "geosr_guide_resampling", str, "auto")
    feather = get("feather", "geosr_feather", float, None)
    feather = max(2 * scale, MIN_FEATHER) if feather is None else float(feather)
    flat = flatmask.resolve(settings["flat_mask"] if "flat_mask" in settings else
                            flatmask.from_attribute(attrs.get("geosr_flat_mask")))
    sensor = psf_from(get("psf", "geosr_psf", str, "area"), get("psf_sigma", "geosr_psf_sigma", float))
    src, hr_box, _, lr, hr_guide, _ = _coregister(source, guide, scale, band, guide_bands,
                                                  settings.get("src_nodata"), settings.get("guide_nodata"),
                                                  resampling, align, flat)
    if tuple(output.shape[-2:]) != tuple(hr_box.shape) or output.rio.transform() != hr_box.affine:
        raise InputError(f"the output ({output.shape[-2]} x {output.shape[-1]} px, transform "
                         f"{tuple(output.rio.transform())[:6]}) is not on the source grid refined by {scale} "
                         f"({hr_box.shape[0]} x {hr_box.shape[1]} px, {tuple(hr_box.affine)[:6]}): pass the "
                         "source and guide the output was made from, with the same --bounds")
    tile_size = get("tile_size", "geosr_tile_size", int, max(1, 512 // scale))
    overlap = get("overlap", "geosr_overlap", int, math.ceil(32 / scale))
    fit = partial(_fit_tile, scale=scale, method="bicubic", exact=exact, feather=feather, psf=sensor, options={})
    bicubic = tiling.tiled(lr, hr_guide, scale, tile_size, overlap, fit, exact,
                           tokenize("quality-bicubic", lr, hr_guide, scale, exact, feather, tile_size, overlap, sensor,
                                    None if flat is None else (flat.description, sorted(flat.checksums.items()))),
                           psf=sensor)
    data = quality.layers(output.data.astype(np.float32), lr, hr_guide, bicubic, scale, feather, sensor)
    names = quality.BANDS
    if settings.get("ensemble") is not None:
        rerun = dict(band=band, guide_bands=guide_bands, src_nodata=settings.get("src_nodata"),
                     guide_nodata=settings.get("guide_nodata"), resampling=resampling, tile_size=tile_size,
                     overlap=overlap, exact=exact, feather=feather, align=align, psf=sensor, flat_mask=flat)
        members = _ensemble(output, source, guide, scale, settings["ensemble"], attrs, rerun)
        data = da.concatenate([data, quality.spread(members)[None]])
        names = (*names, quality.SPREAD)
    q = xr.DataArray(data, dims=("band", "y", "x"),
                     coords={"band": list(range(1, len(names) + 1)), "y": output.y.values, "x": output.x.values})
    q = q.rio.write_crs(output.rio.crs).rio.write_transform(hr_box.affine).rio.write_nodata(np.nan, encoded=True)
    q.attrs.update({k: v for k, v in attrs.items() if str(k).startswith("geosr_")})
    q.attrs["long_name"] = names
    q.attrs["geosr_quality"] = quality.GUIDE + ("; " + quality.SPREAD_GUIDE if len(names) > 3 else "")
    q.attrs.update(provenance.software())
    # Every file the layers are computed from, the output's own included: writing them may replace none.
    guides = list(guide) if isinstance(guide, (list, tuple)) else [guide]
    q.encoding["geosr_inputs"] = tuple(dict.fromkeys(
        [*output.encoding.get("geosr_inputs", ()), *(n for a in [output, source, *guides] for n in sources_of(a)[0])]))
    return q


def check_ensemble(method, n) -> None:
    """An ensemble spread needs n >= 2 runs of a method whose output depends on the seed."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"ensemble must be an integer >= 2 (the output and n - 1 more seeds), got {n!r}")
    if method not in ("mmsr", "cmsr"):
        raise InputError(f"an ensemble spread needs a learned method (mmsr, cmsr); {method!r} gives the same "
                         "output for every seed")


def _ensemble(output, source, guide, scale, n, attrs, rerun):
    """The output's data and those of n - 1 runs with the next seeds, all else as recorded in ``attrs``."""
    method = attrs.get("geosr_method")
    check_ensemble(method, n)
    options = json.loads(attrs.get("geosr_options") or "{}")
    batch_size = options.pop("batch_size", None)
    seed = int(options.pop("seed", 0))
    mode = attrs.get("geosr_mode") or DEFAULT_MODE
    members = [output.data.astype(np.float32)]
    for k in range(1, int(n)):
        run = superresolve(source, guide, scale, method, mode=mode, batch_size=batch_size, seed=seed + k,
                           progress=False, **rerun, **options)
        members.append(run.data)
    return members


def _coregister(source, guide, scale, band, guide_bands, src_nodata, guide_nodata, resampling, align, flat=None):
    """The source band and the guide(s) warped onto the output grid, with the guide's displacement
    estimated and removed in that one warp, and NaN where the flat mask ``flat`` (a
    :class:`geosr.pipeline.flatmask.FlatMask`) is set. Returns (src, hr_box, guides, lr, hr_guide, alignment):
    lr (h, w) and hr_guide (bands, H, W) are dask arrays."""
    import dask.array as dsa

    from .pipeline import grid, inputs

    src_box = grid.geobox_of(inputs.as_bands(source, "source"), "source")
    hr_box = grid.output_grid(src_box, scale)
    guides = [guide] if not isinstance(guide, (list, tuple)) else list(guide)
    if not guides:
        raise InputError("give at least one guide raster")
    if guide_bands is not None and len(guides) > 1:
        raise InputError("guide_bands (--guide-bands) selects bands of a single guide; with several guides, "
                         "each one's bands are all used (select them before passing, e.g. guide.sel(band=[1, 2]))")
    roles = ["guide"] if len(guides) == 1 else [f"guide {i + 1}" for i in range(len(guides))]
    boxes = [grid.geobox_of(g, role) for g, role in zip(guides, roles)]
    for g_box, role in zip(boxes, roles):  # where and how fine, before anything about bands: swapped inputs
        grid.check_overlap(src_box, g_box, role)
        grid.check_finer(g_box, src_box, role)
    src = inputs.source_band(source, band, src_nodata)
    prepared = [(inputs.guide_stack(g, guide_bands if len(guides) == 1 else None, guide_nodata), g_box)
                for g, g_box in zip(guides, boxes)]
    stacked = [grid.guide_onto(g, g_box, hr_box, resampling) for g, g_box in prepared]
    valid = inputs.valid_map(source, band, src_nodata)  # a coarse map of a large source: no whole read
    if not valid[0].any():
        raise InputError("the source has no valid pixel: every value is nodata, NaN or masked. Check the band "
                         "(band=, --band) and, if the file's nodata value is wrong, override it "
                         "(src_nodata=, --src-nodata).")

    alignment = align if isinstance(align, Alignment) else None
    if alignment is None and align != "none":
        alignment = _estimate_alignment(source, band, src_nodata, valid, stacked, scale, align)
    if alignment is not None:
        stacked = [grid.guide_onto(g, g_box, hr_box, resampling, displacement=alignment.matrix)
                   for g, g_box in prepared]

    lr = src.data if isinstance(src.data, dsa.Array) else dsa.from_array(src.data)
    hr_guide = dsa.concatenate([g.data if isinstance(g.data, dsa.Array) else dsa.from_array(g.data)
                                for g in stacked], axis=0)
    if flat is not None:  # masked after the alignment, which is measured on the whole guide
        from .pipeline.flatmask import on_output_grid

        is_flat = on_output_grid(flat, src, src_box, hr_box, scale, hr_guide.chunks[1:])
        hr_guide = dsa.where(is_flat[None], np.nan, hr_guide).astype(hr_guide.dtype)
    return src, hr_box, guides, lr, hr_guide, alignment


def _estimate_alignment(source, band, src_nodata, valid, stacked, scale, kind):
    """The guide's displacement, estimated on a window at the centre of the source's valid area
    (``valid``: :func:`geosr.pipeline.inputs.valid_map`); only that window of source and guide is read."""
    import dask

    from .core.align import MAX_SIDE, window_of
    from .pipeline.inputs import as_bands, source_band

    y0, x0, h, w = window_of(valid[0], MAX_SIDE // scale, valid[1], valid[2])
    da = as_bands(source, "source")
    window = source_band(da.isel({da.dims[1]: slice(y0, y0 + h), da.dims[2]: slice(x0, x0 + w)}), band, src_nodata)
    rows, cols = slice(y0 * scale, (y0 + h) * scale), slice(x0 * scale, (x0 + w) * scale)
    lr, *guides = dask.compute(window.data, *[g.data[:, rows, cols] for g in stacked])
    found = estimate_or_skip(np.asarray(lr, np.float64), np.concatenate([np.asarray(g) for g in guides]), scale, kind)
    return None if found is None else found.moved(x0 * scale, y0 * scale)


def _compute_now(delayed, client):
    from .runtime.cluster import current_client

    client = current_client(client)
    if client is None:
        return delayed.compute()
    return client.compute(delayed, optimize_graph=False).result()  # optimising can drop resource annotations


def _overlap_for_feather(shape, scale, tile_size, overlap, feather):
    """The tiles' halo in source pixels: ``overlap``, or by default ``ceil(32 / scale)`` widened until every
    pixel a tile contributes sees the guide's gaps within ``feather`` of it, so its fallback ramp is the
    raster's own (a tile's outer half halo has weight 0; :mod:`geosr.pipeline.tiling`)."""
    from .pipeline.tiling import split

    feather = max(2 * scale, MIN_FEATHER) if feather is None else float(feather)
    need = math.ceil(2 * math.ceil(feather) / scale)  # then half the HR halo, overlap * scale // 2, >= feather
    if overlap is None:
        return max(math.ceil(32 / scale), need)
    overlap = _positive_int(overlap, "overlap", low=0)
    several = any(len(split(n, tile_size, 2 * overlap)) > 1 for n in shape)
    if several and overlap < need:
        raise InputError(f"a feather of {feather:g} output pixels needs tiles with a halo of at least {need} source "
                         f"pixels (overlap, --overlap), got {overlap}: a tile would not see every gap in the guide "
                         "its fallback ramp must reach, and its seams would differ from the rest. Raise the overlap or "
                         "lower the feather.")
    return overlap


def _positive_int(v, name, low=1):
    if isinstance(v, bool) or not float(v).is_integer() or int(v) < low:
        raise InputError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _fit_tile(source, guide, model=None, *, scale, method, exact, feather, psf, options, frame=FRAME):
    """One tile pair through the core engine (runs in a dask worker); ``model``: a trained scene model;
    ``frame``: the tile's sides on the raster's edge."""
    if not np.isfinite(source).any():
        return np.full((source.shape[0] * scale, source.shape[1] * scale), np.nan, np.float32)
    if not np.isfinite(guide).all(axis=0).any():  # no guide here: bicubic, nothing to fit
        method, options, model = "bicubic", {}, None
    if model is not None:
        options = {**options, "model": model}
    from .runtime.cluster import fit_slot

    with fit_slot():
        return superresolve_array(source, guide, scale, method, exact=exact, feather=feather, align="none", psf=psf,
                                  frame=frame, **{"progress": False, **options})
