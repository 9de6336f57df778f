"""What a raster says about itself: which band to use, which pixels are valid, which units.

Validity comes from every place GDAL users put it: the nodata value (compared in the
raster's own dtype, because a float32 sentinel such as -3.4e38 is not equal to its
float64 widening), NaN and +-Inf, an alpha band, and a GDAL per-dataset mask (.msk or
internal mask). The source comes out as float64 in physical units, the guide as float32;
both hold NaN where invalid, and both stay lazy.

Scale/offset policy: a source with scale/offset tags (e.g. Landsat Collection 2 surface
temperature, DN * 0.00341802 + 149) is converted to physical units before anything else,
and the output is written in those units with no scale/offset tags, so no reader can apply
the scaling twice.
"""
from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..errors import InputError


def as_bands(da: xr.DataArray, role: str) -> xr.DataArray:
    """The DataArray as (band, y, x), whatever the caller passed."""
    if not isinstance(da, xr.DataArray):
        raise InputError(f"the {role} must be an xarray.DataArray (e.g. from rioxarray.open_rasterio), "
                         f"got {type(da).__name__}. For plain arrays use geosr.superresolve_array.")
    if da.ndim == 2:
        da = da.expand_dims(band=[1])
    if da.ndim != 3 or "band" not in da.dims:
        raise InputError(f"the {role} must have dims (band, y, x) or (y, x), got {da.dims}. A stack "
                         "(time, y, x) is run slice by slice when it is the source; a guide stack needs the "
                         "source's extra dimensions with the same coordinates, or select one slice, e.g. da.isel(time=0).")
    return da.transpose("band", ...)


def _band_numbers(da: xr.DataArray) -> list[int]:
    """1-based band numbers as GDAL counts them."""
    values = da["band"].values if "band" in da.coords else np.arange(1, da.sizes["band"] + 1)
    return [int(v) for v in values]


def select_bands(da: xr.DataArray, bands, role: str) -> xr.DataArray:
    numbers = _band_numbers(da)
    missing = [b for b in bands if b not in numbers]
    if missing:
        raise InputError(f"the {role} has bands {numbers}; band(s) {missing} do not exist")
    return da.isel(band=[numbers.index(b) for b in bands])


def data_bands(source: xr.DataArray, bands) -> list[int]:
    """``bands`` ("all", or a list of 1-based numbers) as the list of the source's data bands to process."""
    da = as_bands(source, "source")
    file = _file_info(da)
    numbers = [b for b in _band_numbers(da) if b not in file.alpha]
    if isinstance(bands, str):
        if bands != "all":
            raise InputError(f"band must be a number, a list of numbers or 'all', got {bands!r}")
        return numbers
    chosen = [int(b) for b in bands]
    wrong = [b for b in chosen if b not in numbers]
    if wrong or not chosen or len(set(chosen)) != len(chosen):
        raise InputError(f"source band(s) {wrong or chosen} cannot be processed: give distinct data bands "
                         f"from {numbers}")
    return chosen


def source_band(source: xr.DataArray, band: int | None = None, nodata=None) -> xr.DataArray:
    """One band of the source as lazy float64 (y, x) in physical units, NaN where invalid.

    ``encoding["nodata"]`` holds the nodata value that was applied (the user's, or the band's own).
    """
    da = as_bands(source, "source")
    file = _file_info(da)
    numbers = [b for b in _band_numbers(da) if b not in file.alpha]
    if band is None:
        if len(numbers) != 1:
            raise InputError(f"the source has {len(numbers)} bands {numbers}; choose the one to super-resolve "
                             "with band=N (--band N on the command line).")
        band = numbers[0]
    if int(band) in file.alpha:
        raise InputError(f"source band {band} is an alpha (transparency) band; choose a data band from {numbers}")
    one = select_bands(da, [int(band)], "source")
    user_nodata = nodata is not None
    if nodata is None:  # this band's, as stored in the file, whether or not it was opened masked
        stored = da.rio.encoded_nodata if da.rio.encoded_nodata is not None else da.rio.nodata
        nodata = file.nodata.get(int(band), stored)
    valid = _valid(one, file, nodata, strict=user_nodata)
    scale, offset = 1.0, 0.0
    if "scale_factor" in da.attrs or "add_offset" in da.attrs:  # raw values (not opened with mask_and_scale)
        scale = file.scales.get(int(band), float(da.attrs.get("scale_factor", 1.0)))
        offset = file.offsets.get(int(band), float(da.attrs.get("add_offset", 0.0)))
    values = one.astype(np.float64)
    if (scale, offset) != (1.0, 0.0):
        values = values * scale + offset
    out = values.where(valid)[0]
    index = _band_numbers(da).index(int(band))
    out.attrs = {k: (v[index] if isinstance(v, (tuple, list)) and len(v) == da.sizes["band"] else v)
                 for k, v in da.attrs.items() if k not in _DROPPED_ATTRS}  # per-band attrs: this band's
    out.encoding = {"nodata": nodata}  # the sentinel that marked invalid pixels, for the output's nodata
    return out


def guide_stack(guide: xr.DataArray, bands=None, nodata=None) -> xr.DataArray:
    """The guide as lazy float32 (band, y, x), NaN where invalid; an alpha band is a mask, never a band."""
    da = as_bands(guide, "guide")
    file = _file_info(da)
    numbers = _band_numbers(da)
    if bands is None:
        bands = [b for b in numbers if b not in file.alpha]
    elif any(b in file.alpha for b in bands):
        raise InputError(f"guide band(s) {[b for b in bands if b in file.alpha]} are alpha (transparency) bands; "
                         "they mark valid pixels and are used as the mask automatically. Choose image bands.")
    if not bands:
        raise InputError("the guide has no image band (only alpha)")
    chosen = select_bands(da, [int(b) for b in bands], "guide")
    valid = _valid(chosen, file, da.rio.nodata if nodata is None else nodata, strict=nodata is not None)
    alpha = [b for b in numbers if b in file.alpha]
    if alpha:
        valid = valid & (select_bands(da, alpha, "guide") > 0).all("band")
    return chosen.astype(np.float32).where(valid)


# Attributes that describe the encoding of the input, not the output.
_DROPPED_ATTRS = {"scale_factor", "add_offset", "_FillValue", "missing_value", "nodata",
                  "STATISTICS_MAXIMUM", "STATISTICS_MEAN", "STATISTICS_MINIMUM", "STATISTICS_STDDEV",
                  "STATISTICS_VALID_PERCENT"}


def _valid(da: xr.DataArray, file: "_FileInfo", nodata, strict: bool = False) -> xr.DataArray:
    """Lazy bool (y, x): every band finite, not every band at nodata, inside the GDAL mask.

    nodata is compared in the raster's own dtype. A pixel is nodata only when all bands hold
    the value (gdalwarp's rule for multi-band images): an RGB pixel with one channel at 0 is
    dark, not missing. ``strict``: the value was given by the user, so one the dtype cannot
    hold is an error rather than "nothing matches".
    """
    valid = np.isfinite(da).all("band") if da.dtype.kind == "f" else xr.ones_like(da[0], dtype=bool)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        typed = _in_dtype(nodata, da.dtype)
        if typed is not None:
            valid = valid & ~(da == typed).all("band")
        elif strict:
            raise InputError(f"nodata {nodata} cannot occur in a {da.dtype} raster, so it would mark nothing; "
                             "give a value the raster's data type can hold.")
    if file.mask is not None:
        valid = valid & file.mask
    return valid


def _in_dtype(value, dtype):
    """``value`` as the raster's dtype, or None when the dtype cannot hold it (then nothing matches)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        typed = np.array(value).astype(dtype)
    if np.issubdtype(dtype, np.integer) and float(typed) != float(value):
        return None
    return typed[()]


class _FileInfo:
    """What rioxarray does not carry per band: alpha bands, the GDAL per-dataset mask, and
    each band's scale, offset and nodata (rioxarray keeps band 1's only)."""

    def __init__(self, alpha=(), mask=None, scales=None, offsets=None, nodata=None):
        self.alpha, self.mask = set(alpha), mask
        self.scales, self.offsets, self.nodata = scales or {}, offsets or {}, nodata or {}


def _file_info(da: xr.DataArray) -> _FileInfo:
    path = da.encoding.get("source")
    if not path:
        return _FileInfo()
    import rasterio
    from rasterio.enums import ColorInterp, MaskFlags

    try:
        with rasterio.open(path) as src:
            alpha = [i + 1 for i, c in enumerate(src.colorinterp) if c == ColorInterp.alpha]
            per_dataset = any(MaskFlags.per_dataset in f and MaskFlags.alpha not in f for f in src.mask_flag_enums)
            window = _window_in(src, da) if per_dataset else None
            bands = range(1, src.count + 1)
            scales, offsets = dict(zip(bands, src.scales)), dict(zip(bands, src.offsets))
            nodata = {b: v for b, v in zip(bands, src.nodatavals) if v is not None}
    except rasterio.errors.RasterioError as e:
        warnings.warn(f"could not reread {path} for its alpha band, mask and per-band scaling ({e}); "
                      "only its nodata value marks invalid pixels", UserWarning, stacklevel=3)
        return _FileInfo()
    if per_dataset and window is None:
        warnings.warn(f"{path} has a GDAL mask band, but this array is no longer an unresampled crop of the "
                      "file, so the mask cannot be applied; set nodata instead", UserWarning, stacklevel=3)
    mask = _lazy_gdal_mask(path, da, window) if window is not None else None
    return _FileInfo(alpha, mask, scales, offsets, nodata)


def _window_in(src, da):
    """Row/column offset of ``da`` inside the file, if it is an unresampled crop of it."""
    from .grid import geobox_of

    t = geobox_of(da, "raster").affine
    if da.rio.crs != src.crs or tuple(t)[:2] + tuple(t)[3:5] != tuple(src.transform)[:2] + tuple(src.transform)[3:5]:
        return None
    col, row = ~src.transform @ (t.c, t.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    row, col = int(round(row)), int(round(col))
    if row < 0 or col < 0 or row + da.sizes["y"] > src.height or col + da.sizes["x"] > src.width:
        return None
    return row, col


def _lazy_gdal_mask(path, da, offset):
    """The file's GDAL mask band over ``da``'s window, read block by block (dask) or at once."""
    import dask.array as dsa
    import rasterio
    from rasterio.windows import Window

    row0, col0 = offset
    h, w = da.sizes["y"], da.sizes["x"]

    def read(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        with rasterio.open(path) as src:
            return src.read_masks(1, window=Window(col0 + x0, row0 + y0, x1 - x0, y1 - y0)) > 0

    if da.chunks is not None:
        chunks = da.chunks[da.dims.index("y")], da.chunks[da.dims.index("x")]
        data = dsa.map_blocks(read, chunks=chunks, dtype=bool, meta=np.array((), bool))
    else:
        data = read({None: {"array-location": [(0, h), (0, w)]}})
    return xr.DataArray(data, dims=("y", "x"), coords={"y": da["y"], "x": da["x"]})


# Sources up to this many pixels are checked for valid pixels whole; larger ones by probes.
CHECK_WHOLE_BELOW = 2048 * 2048
# Probes: a grid of PROBES x PROBES windows of PROBE x PROBE pixels, one at the centre of each cell.
PROBES = 16
PROBE = 8


def valid_map(source: xr.DataArray, band=None, nodata=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the source has data, without reading all of a large one: (valid, row_edges, col_edges).

    ``valid[i, j]`` says whether the source's rows ``row_edges[i]:row_edges[i + 1]`` and columns
    ``col_edges[j]:col_edges[j + 1]`` hold a valid pixel (of band ``band``, by the rules of
    :func:`source_band`). A source of up to :data:`CHECK_WHOLE_BELOW` pixels is checked pixel by
    pixel. A larger one is probed: a PROBE x PROBE window at the centre of each cell of a
    PROBES x PROBES grid, read on their own (about 2 s for a 40000 x 40000 GeoTIFF), so a
    cell that holds data only away from its centre reads as empty. Where no probe finds data,
    the whole source is reduced chunk by chunk on the dask graph (bounded memory) before it
    is declared empty.
    """
    import dask.array

    da = as_bands(source, "source")
    ydim, xdim = da.dims[1], da.dims[2]
    h, w = da.sizes[ydim], da.sizes[xdim]
    if h * w <= CHECK_WHOLE_BELOW:
        valid = np.isfinite(np.asarray(source_band(source, band, nodata).values))
        return valid, np.arange(h + 1), np.arange(w + 1)

    def probe_rows(n):
        edges = (np.arange(PROBES + 1) * n) // PROBES
        starts = (edges[:-1] + edges[1:]) // 2 - PROBE // 2
        return edges, np.clip(starts[:, None] + np.arange(PROBE), 0, n - 1)

    row_edges, rows = probe_rows(h)
    col_edges, cols = probe_rows(w)
    with warnings.catch_warnings():  # a GDAL mask cannot be read for scattered pixels; the probes go without it
        warnings.filterwarnings("ignore", "has a GDAL mask band", UserWarning)
        picked = source_band(da.isel({ydim: rows.ravel(), xdim: cols.ravel()}), band, nodata)
        found = np.isfinite(np.asarray(picked.values)).reshape(PROBES, PROBE, PROBES, PROBE).any(axis=(1, 3))
    if found.any():
        return found, row_edges, col_edges
    lazy = source_band(source, band, nodata).data
    if not hasattr(lazy, "map_blocks"):
        lazy = dask.array.from_array(np.asarray(lazy))
    blocks = lazy.map_blocks(lambda b: np.isfinite(b).any(keepdims=True).reshape(1, 1), chunks=(1, 1),
                             dtype=bool).compute()
    return blocks, np.concatenate([[0], np.cumsum(lazy.chunks[0])]), np.concatenate([[0], np.cumsum(lazy.chunks[1])])
