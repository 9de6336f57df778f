"""Opening rasters by GDAL dataset name, and writing results as GeoTIFF or COG, atomically.

Nothing is ever half-written: the output goes to a hidden temporary file beside the
target, which is renamed into place only when complete; on any error or interrupt the
temporary file is removed. An existing output is replaced only with ``overwrite=True``,
and never when it is one of the inputs.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from ..runtime.files import durable_replace, made_by_dead_process, same_file, unique_suffix

# GeoTIFF defaults: float32, 512 x 512 tiles, DEFLATE with the floating-point predictor.
GTIFF_OPTIONS = {"TILED": "YES", "BLOCKXSIZE": "512", "BLOCKYSIZE": "512", "COMPRESS": "DEFLATE",
                 "PREDICTOR": "3", "BIGTIFF": "IF_SAFER"}
# COG defaults (the COG driver's own option names); overviews average, as a DEM or thermal band needs.
COG_OPTIONS = {"BLOCKSIZE": "512", "COMPRESS": "DEFLATE", "PREDICTOR": "YES", "BIGTIFF": "IF_SAFER",
               "OVERVIEW_RESAMPLING": "AVERAGE"}
# Output data types (GDAL's names, as gdal_translate -ot takes them) and their numpy dtypes.
OUTPUT_TYPES = {"Byte": "uint8", "UInt16": "uint16", "Int16": "int16", "UInt32": "uint32", "Int32": "int32",
                "Float32": "float32", "Float64": "float64"}
# Chunk of the lazy read; the tiler rechunks to its tiles.
READ_CHUNKS = 1024


def open_raster(name: str, role: str = "raster", chunks: int | None = READ_CHUNKS) -> xr.DataArray:
    """Open a GDAL dataset name (a path, a VRT, ``/vsizip/...``, a URL) lazily as (band, y, x).

    Existence is checked by opening the dataset, so every name GDAL understands works.
    Rasters georeferenced only by GCPs or RPCs are refused with the gdalwarp command to fix them.
    """
    import rasterio
    import rioxarray

    from .grid import not_gridded

    try:
        with rasterio.open(name) as src:
            gcps, rpcs, transform, subdatasets = src.gcps[0], src.rpcs, src.transform, src.subdatasets
            count = src.count
    except rasterio.errors.RasterioIOError as e:
        raise InputError(f"cannot open the {role} {name!r} as a raster: {e}. Give a file GDAL can read "
                         "(GeoTIFF, JPEG2000, VRT, ...); paths inside archives need /vsizip/ and the like.") from None
    if count == 0 and subdatasets:
        raise InputError(f"the {role} {name!r} is a container of {len(subdatasets)} subdatasets; "
                         f"pass one of them, e.g. {subdatasets[0]!r}")
    if transform.is_identity and (gcps or rpcs):
        raise not_gridded(role, "ground control points (GCPs)" if gcps else "rational polynomial coefficients (RPCs)")
    da = rioxarray.open_rasterio(name, chunks=None if chunks is None else {"y": chunks, "x": chunks},
                                 mask_and_scale=False, lock=False)
    if isinstance(da, list):  # several subdatasets of different shapes
        raise InputError(f"the {role} {name!r} holds several rasters; pass one subdataset")
    return da


def output_nodata(source_nodata, dst_nodata=None) -> float:
    """The output's nodata: ``dst_nodata`` if given, else the source's if float32 holds it exactly, else NaN."""
    if dst_nodata is not None:
        value = float(dst_nodata)
        if not np.isnan(value) and not _float32_holds(value):
            raise InputError(f"dst_nodata {dst_nodata} cannot be stored in a float32 output; pick another value or nan")
        return value
    if source_nodata is None:
        return float("nan")
    value = float(source_nodata)
    return value if np.isnan(value) or _float32_holds(value) else float("nan")


def _float32_holds(value: float) -> bool:
    return abs(value) <= float(np.finfo(np.float32).max) and float(np.float32(value)) == value


def check_output(path, inputs=(), overwrite: bool = False, nbytes: int = 0) -> Path:
    """Refuse, before any work, an output that would replace an input, clobber a file, or cannot fit."""
    path = Path(path)
    for name in inputs:
        if name and same_file(path, name):
            raise InputError(f"the output {path} is the input {name}; geosr never writes over its inputs "
                             "(not even with --overwrite). Choose another output name with -o.")
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass --overwrite (overwrite=True) to replace it, or choose another -o")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name for the output")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"the output folder {folder} does not exist; create it first or choose another -o")
    probe = folder / f".geosr-write-test-{unique_suffix()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write to the output folder {folder} ({e.strerror}); choose another -o") from None
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise InputError(
            f"the output needs up to {_size(nbytes)} (uncompressed float32) but {folder} has {_size(free)} free. "
            "Free space, write elsewhere with -o, or process a smaller area (--bounds) or scale.")
    return path


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024


def output_bytes(shape, cog: bool) -> int:
    """Uncompressed float32 size; a COG is written via a temporary GeoTIFF and carries overviews."""
    n = int(np.prod(shape, dtype=np.float64)) * 4
    return int(n * (1 + 1 + 1 / 3)) if cog else n


def write(da: xr.DataArray, path, cog: bool = False, overwrite: bool = False, progress: bool | None = None,
          client=None, overviews: bool = False, output_type: str = "Float32", scale_factor: float | None = None,
          offset: float | None = None, **creation_options) -> Path:
    """Write a (lazy) result as float32 GeoTIFF, or COG with ``cog=True``, streaming tile by tile.

    Defaults: 512 x 512 tiles, DEFLATE with the floating-point predictor, BIGTIFF=IF_SAFER;
    a COG gets AVERAGE overviews, and so does a plain GeoTIFF with ``overviews=True``
    (:func:`overview_factors`, inside the file, averaged over valid pixels). ``creation_options``
    (GDAL names, any case) override them. ``output_type`` (:data:`OUTPUT_TYPES`), ``scale_factor`` and
    ``offset``: see :func:`stored`.
    The CRS, transform, nodata, band description, units, AREA_OR_POINT and the ``geosr_*``
    provenance attributes are written. Dask computes each block once and writes it under a
    lock, so the whole raster is never held in memory.

    ``client``: a dask.distributed Client (default: the current one, else local threads). Workers then write their blocks under a
    distributed lock, so the output's folder must be reachable from every worker.
    The checkpoints the written values came from (``superresolve(checkpoint=...)``) lose
    geosr's files once the output is in place (:func:`geosr.runtime.checkpoint.stores_of`).
    """
    from ..runtime.checkpoint import stores_of
    from ..runtime.cluster import current_client

    if not (da.ndim == 2 or (da.ndim == 3 and da.dims[0] == "band")):
        raise InputError(f"write() takes a (y, x) result or (band, y, x) layers, got dims {da.dims}")
    inputs = da.encoding.get("geosr_inputs", ())
    path = check_output(path, inputs, overwrite, output_bytes(da.shape, cog))
    da, limits = stored(da, output_type, scale_factor, offset)
    options = {k.upper(): str(v) for k, v in creation_options.items()}
    _remove_stale_partials(path)
    suffix = unique_suffix()
    tmp = path.with_name(f".{path.name}.geosr-partial-{suffix}.tif")
    tmp_cog = path.with_name(f".{path.name}.geosr-partial-{suffix}.cog.tif")
    PARTIAL_FILES.update((tmp, tmp_cog))
    try:
        gtiff = {**GTIFF_OPTIONS, **({} if cog else options)}
        if np.issubdtype(da.dtype, np.integer) and "PREDICTOR" not in options:
            gtiff["PREDICTOR"] = "2"  # the floating-point predictor is for floats
        kwargs = dict(driver="GTiff", dtype=da.dtype.name, tags=_tags(da), recalc_transform=False,
                      **{k.lower(): v for k, v in gtiff.items()})
        client = current_client(client)
        if client is None:
            _write_threads(da, tmp, progress, kwargs)
        else:
            _write_distributed(da, tmp, progress, client, kwargs)
        _describe_band(tmp, da)
        if scale_factor is not None or offset is not None:
            _scale_and_offset(tmp, scale_factor, offset)
        if limits is not None:
            _warn_saturated(tmp, *limits, output_type, scale_factor, offset)
        if overviews and not cog:
            _add_overviews(tmp)
        if cog:
            import rasterio.shutil

            rasterio.shutil.copy(tmp, tmp_cog, driver="COG", **{**COG_OPTIONS, **options})
            durable_replace(tmp_cog, path)
        else:
            durable_replace(tmp, path)
    finally:
        remove_partial_files((tmp, tmp_cog))
    for store in stores_of(da):
        store.remove()
    return path


def stored(da: xr.DataArray, output_type: str = "Float32", scale_factor: float | None = None,
           offset: float | None = None):
    """(``da`` as the file stores it, the (low, high) it was clipped to or None).

    The file holds ``(value - offset) / scale_factor`` in ``output_type`` (rounded for integers), with
    the scale and offset in its metadata, so GDAL, QGIS and rioxarray read physical values back: Int16 or
    Int32 with ``scale_factor=0.01`` keeps heights to the centimetre. An integer type's nodata is its
    lowest value when signed and its highest when unsigned, unless the result's own nodata fits the type;
    values beyond the type are clipped to it, and :func:`write` warns how many were."""
    if output_type not in OUTPUT_TYPES:
        raise InputError(f"output type {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
    if scale_factor is not None and (not np.isfinite(scale_factor) or scale_factor == 0):
        raise InputError(f"scale_factor must be a finite non-zero number, got {scale_factor}")
    dtype = np.dtype(OUTPUT_TYPES[output_type])
    sf, off = 1.0 if scale_factor is None else float(scale_factor), 0.0 if offset is None else float(offset)
    if dtype.kind == "f" and sf == 1.0 and off == 0.0:
        return (da if da.dtype == dtype else da.astype(dtype, keep_attrs=True)), None
    nodata = da.rio.encoded_nodata if da.rio.encoded_nodata is not None else da.rio.nodata
    if dtype.kind == "f":
        code, low, high = nodata, None, None
    else:
        info = np.iinfo(dtype)
        own = None if nodata is None or np.isnan(nodata) else float(nodata)
        if own is not None and own.is_integer() and info.min <= own <= info.max:
            code = int(own)
        else:
            code = int(info.min) if info.min < 0 else int(info.max)
        low, high = int(info.min) + (code == info.min), int(info.max) - (code == info.max)

    def encode(block):
        v = (np.asarray(block, np.float64) - off) / sf
        bad = ~np.isfinite(v)
        if low is not None:
            v = np.clip(np.round(np.where(bad, 0, v)), low, high)
        if code is not None:
            v[bad] = code
        return v.astype(dtype)

    out = xr.DataArray(da.data.map_blocks(encode, dtype=dtype), dims=da.dims, coords=da.coords, attrs=da.attrs)
    out.encoding = {k: v for k, v in da.encoding.items() if k not in ("_FillValue", "scale_factor", "add_offset",
                                                                      "dtype")}
    out = out.rio.write_crs(da.rio.crs).rio.write_transform(da.rio.transform())
    out = out.rio.write_nodata(code, encoded=False) if code is not None else out
    return out, (None if low is None else (low, high, code))


def _scale_and_offset(path: Path, scale_factor, offset) -> None:
    import rasterio

    with rasterio.open(path, "r+") as dst:
        dst.scales = (1.0 if scale_factor is None else float(scale_factor),) * dst.count
        dst.offsets = (0.0 if offset is None else float(offset),) * dst.count


def _warn_saturated(path: Path, low, high, code, output_type, scale_factor, offset) -> None:
    """Count, block by block, the pixels at the integer type's limits: values that were clipped to it."""
    import warnings

    import rasterio

    n = 0
    with rasterio.open(path) as src:
        for _, window in src.block_windows(1):
            a = src.read(window=window)
            n += int(np.count_nonzero(((a == low) | (a == high)) & (a != code)))
    if n:
        sf, off = scale_factor or 1.0, offset or 0.0
        warnings.warn(f"{n} pixels reached the limits of {output_type} ({low * sf + off:.6g} to {high * sf + off:.6g} "
                      "in the output's units) and were clipped there: choose a wider --ot, or a larger --scale-factor "
                      "or an --offset", UserWarning, stacklevel=3)


def overview_factors(shape, block: int = int(GTIFF_OPTIONS["BLOCKXSIZE"])) -> list[int]:
    """2, 4, 8, ... until the coarsest level fits in one block, as the COG driver chooses; at least 2."""
    factors, f = [], 2
    while f == 2 or max(shape) / (f // 2) > block:
        if min(shape) // f < 1:
            break
        factors.append(f)
        f *= 2
    return factors


def _add_overviews(path: Path) -> None:
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.Env(COMPRESS_OVERVIEW="DEFLATE", PREDICTOR_OVERVIEW="3"), rasterio.open(path, "r+") as dst:
        dst.build_overviews(overview_factors(dst.shape), Resampling.average)
        dst.update_tags(ns="rio_overview", resampling="average")


def _write_threads(da, tmp, progress, kwargs):
    from .tiling import TileProgress

    with TileProgress(disable=None if progress is None else not progress):
        da.rio.to_raster(tmp, lock=threading.Lock(), **kwargs)


def _write_distributed(da, tmp, progress, client, kwargs):
    """Blocks are computed and written by the workers, one writer at a time (a distributed lock)."""
    from distributed import Lock, progress as show_progress

    job = da.rio.to_raster(tmp, lock=Lock(f"geosr-write-{tmp.name}"), compute=False, **kwargs)
    future = client.compute(job, optimize_graph=False)  # graph optimisation can drop resource annotations
    try:
        if progress is not False:
            show_progress(future)
        future.result()
    finally:
        future.cancel()


def _remove_stale_partials(path: Path) -> None:
    """Delete temporary outputs for ``path`` left by runs of this host that were killed (their process is gone)."""
    for p in path.parent.glob(f".{path.name}.geosr-partial-*"):
        if made_by_dead_process(p.name[len(f".{path.name}.geosr-partial-"):].split(".")[0]):
            p.unlink(missing_ok=True)


# Temporary outputs being written, so a signal handler can remove them without unwinding.
PARTIAL_FILES: set[Path] = set()


def remove_partial_files(paths=None) -> None:
    """Delete temporary outputs (all pending ones by default)."""
    for p in list(PARTIAL_FILES if paths is None else paths):
        p.unlink(missing_ok=True)
        PARTIAL_FILES.discard(p)


def _tags(da: xr.DataArray) -> dict[str, str]:
    keep = {k: v for k, v in da.attrs.items() if k not in ("long_name", "units", "_FillValue", "nodata")}
    return {k: str(v) for k, v in keep.items()}


def _describe_band(path: Path, da: xr.DataArray) -> None:
    import rasterio

    name, units = da.attrs.get("long_name"), da.attrs.get("units")
    if not (name or units):
        return
    count = da.shape[0] if da.ndim == 3 else 1
    names = [name] * count if isinstance(name, str) or not name else list(name)
    with rasterio.open(path, "r+") as dst:
        for b in range(count):
            if names[b]:
                dst.set_band_description(b + 1, str(names[b]))
            if units:
                dst.set_band_unit(b + 1, str(units))
