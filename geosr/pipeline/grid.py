"""The output grid, and the guide brought onto it.

odc-geo's immutable ``GeoBox`` (CRS, affine transform, shape) is the single source of
truth for every grid here. The output grid is derived from the source's transform, never
from its coordinates: pixel-centre coordinates carry float noise (rioxarray#298).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from ..core import warp
from ..errors import InputError

# Guide pixels up to this much larger than output pixels still count as "as fine as the output".
_COARSER_TOLERANCE = 1.1
# A guide at least this much finer than the output grid is averaged onto it, not interpolated.
_AVERAGE_BELOW = 1 / 1.5


def geobox_of(da: xr.DataArray, role: str) -> GeoBox:
    """The grid of a georeferenced DataArray, or an InputError that says how to georeference it."""
    import rioxarray  # noqa: F401  (registers .rio)

    spatial_ref = da.coords.get(da.rio.grid_mapping)
    has_gcps = spatial_ref is not None and "gcps" in spatial_ref.attrs
    transform = da.rio.transform(recalc=False)
    if has_gcps and transform == Affine.identity():
        raise not_gridded(role, "ground control points (GCPs)")
    if da.rio.crs is None:
        raise InputError(
            f"the {role} has no CRS, so it cannot be placed on a map. Assign the right one first, "
            f"e.g. `rio edit-info --crs EPSG:32633 FILE` or `gdal_edit.py -a_srs EPSG:32633 FILE`.")
    if transform == Affine.identity():
        raise InputError(f"the {role} has a CRS but no geotransform (its pixels are not placed on the map). "
                         "Give it one, e.g. `gdal_edit.py -a_ullr ULX ULY LRX LRY FILE`, or warp it with gdalwarp.")
    if transform.determinant == 0:
        raise InputError(f"the {role}'s geotransform {tuple(transform)[:6]} is degenerate (zero pixel area).")
    return GeoBox(da.rio.shape, _current_transform(da, transform), da.rio.crs)


def _current_transform(da: xr.DataArray, stored: Affine) -> Affine:
    """The stored transform, unless the coordinates show the array was strided or flipped since.

    rioxarray keeps the file's GeoTransform in attrs and takes only the origin from the
    coordinates, so after ``isel(x=slice(None, None, 2))`` or ``sortby("y")`` the stored
    pixel size is stale. Coordinates carry float noise, so they win only when they
    disagree by more than 1e-3 pixel; a rotated grid has no meaningful coordinates.
    """
    if stored.b != 0 or stored.d != 0 or min(da.rio.shape) < 2:
        return stored
    try:
        from_coords = da.rio.transform(recalc=True)
    except Exception:  # coordinates rioxarray cannot read a grid from: keep the stored one
        return stored
    diff = max(abs(from_coords.a - stored.a) / abs(stored.a), abs(from_coords.e - stored.e) / abs(stored.e))
    return from_coords if diff > 1e-3 else stored


def not_gridded(role: str, what: str) -> InputError:
    return InputError(
        f"the {role} is georeferenced only by {what}, not by a geotransform. geosr needs a regular grid: "
        f"warp it first, e.g. `gdalwarp -r bilinear {'-rpc ' if 'RPC' in what else ''}IN.tif OUT.tif`, "
        "and pass the warped file.")


def output_grid(source: GeoBox, scale: int) -> GeoBox:
    """The source grid refined by ``scale``: same CRS and origin, transform * Affine.scale(1/scale)."""
    h, w = source.shape
    return GeoBox((h * scale, w * scale), source.affine @ Affine.scale(1 / scale), source.crs)


def pixel_size(gbox: GeoBox, crs=None) -> float:
    """Side of a square with the mean pixel area, in the units of ``crs`` (default: the grid's own)."""
    if crs is None or gbox.crs == crs:
        return math.sqrt(abs(gbox.affine.determinant))
    area = gbox.extent.to_crs(crs).area
    return math.sqrt(area / (gbox.shape[0] * gbox.shape[1]))


# A measured ratio of pixel sizes counts as the integer scale it rounds to within this fraction of it.
SCALE_TOLERANCE = 0.1


def scale_from(source: GeoBox, guides) -> tuple[int, float]:
    """The scale the files imply: the source's pixel size over the finest guide's, on the source's CRS
    (the output's), rounded to an integer. Refuses a ratio below 2 or far from an integer, with the
    measured ratio, because the user then has to choose the output's pixel size. Returns (scale, ratio)."""
    s = pixel_size(source)
    ratio = s / min(pixel_size(g, source.crs) for g in guides)
    n = round(ratio)
    fix = ("give --scale N (the guide is resampled onto the output grid of source pixel / N), or resample the guide "
           "so that its pixel size divides the source's")
    if n < 2:
        raise InputError(f"the source's pixels ({s:.4g} {_units(source)}) are only {ratio:.3g} times the guide's, so the "
                         f"files imply no scale of 2 or more: {fix}")
    if abs(ratio / n - 1) > SCALE_TOLERANCE:
        raise InputError(f"the source's pixels ({s:.4g} {_units(source)}) are {ratio:.3g} times the guide's, far from an "
                         f"integer scale: {fix}")
    return n, ratio


def check_overlap(source: GeoBox, other: GeoBox, role: str) -> None:
    footprint = other.extent.to_crs(source.crs)
    if not footprint.intersects(source.extent):
        raise InputError(
            f"the {role} does not overlap the source: the source covers {_bounds(source.extent)} and the "
            f"{role} {_bounds(footprint)} (both in the source's CRS {source.crs.epsg or source.crs}). "
            "Check that both rasters show the same place and that their CRS are set correctly.")


def check_finer(guide: GeoBox, source: GeoBox, role: str = "guide") -> None:
    """Refuse a guide whose pixels are not finer than the source's: it has no detail to add, and most
    often the two arguments were given the wrong way round."""
    g, s = pixel_size(guide, source.crs), pixel_size(source)
    if g * _COARSER_TOLERANCE > s:
        raise InputError(
            f"the {role}'s pixels (about {g:.4g} {_units(source)}) are not finer than the source's ({s:.4g}): a guide "
            "must be sharper than the raster it sharpens. Were SOURCE and GUIDE swapped? The source comes first: "
            "geosr upsample SOURCE GUIDE (geosr.superresolve(source, guide)).")


def _bounds(geom) -> str:
    x0, y0, x1, y1 = geom.boundingbox
    return f"x {x0:.6g}..{x1:.6g}, y {y0:.6g}..{y1:.6g}"


def crop_to_bounds(da: xr.DataArray, bounds) -> xr.DataArray:
    """The pixels of a north-up raster that the box (left, bottom, right, top) covers, in its CRS.

    Box edges that fall on pixel edges (to within 1e-6 pixel) select exactly the pixels
    between them, as ``rio clip --bounds`` does; otherwise partly covered pixels are kept.
    """
    left, bottom, right, top = bounds
    if not (left < right and bottom < top):
        raise InputError(f"bounds must be LEFT BOTTOM RIGHT TOP with left < right and bottom < top, got {bounds}")
    t = geobox_of(da, "raster").affine
    if t.b != 0 or t.d != 0:
        raise InputError("bounds need a north-up raster; this one has a rotated geotransform. Warp it first.")
    cols = sorted(((left - t.c) / t.a, (right - t.c) / t.a))
    rows = sorted(((top - t.f) / t.e, (bottom - t.f) / t.e))
    h, w = da.rio.shape
    r0, r1 = max(0, math.floor(rows[0] + 1e-6)), min(h, math.ceil(rows[1] - 1e-6))
    c0, c1 = max(0, math.floor(cols[0] + 1e-6)), min(w, math.ceil(cols[1] - 1e-6))
    if r0 >= r1 or c0 >= c1:
        raise InputError(f"bounds {tuple(bounds)} select no pixel of the raster, which covers "
                         f"{tuple(round(v, 6) for v in da.rio.bounds())} in its CRS")
    return da.isel({da.rio.y_dim: slice(r0, r1), da.rio.x_dim: slice(c0, c1)})


def same_grid(a: GeoBox, b: GeoBox) -> bool:
    """Same CRS and shape, and transforms equal to within 1e-6 pixel."""
    if a.shape != b.shape or a.crs != b.crs:
        return False
    pa, pb = np.array(tuple(a.affine)[:6]), np.array(tuple(b.affine)[:6])
    return bool(np.allclose(pa, pb, rtol=0, atol=1e-6 * pixel_size(a)))


def choose_resampling(guide: GeoBox, target: GeoBox) -> str:
    """``average`` for a guide finer than the output grid (it anti-aliases), else ``bilinear``."""
    ratio = pixel_size(guide, target.crs) / pixel_size(target)
    return "average" if ratio < _AVERAGE_BELOW else "bilinear"


def onto_grid(guide: xr.DataArray, guide_box: GeoBox, target: GeoBox, resampling: str = "auto",
              displacement: Affine | None = None, warn_coarser: bool = True) -> xr.DataArray:
    """A raster (band, y, x, float with NaN = invalid: a guide, a mask) on ``target``, lazily.

    A raster already on the target grid passes through untouched (bit-identical). Otherwise
    it is warped by GDAL with ``resampling`` ("auto": ``average`` when the guide is more
    than 1.5x finer than the target, ``bilinear`` otherwise); NaN pixels are excluded from
    the resampling kernel, and target pixels with no valid guide pixel become NaN.

    ``displacement`` (target pixel coordinates): output pixel p gets the guide at
    ``displacement * p``, which removes a measured misregistration within this one warp.
    ``warn_coarser``: warn when a guide is coarser than the target (it has no detail to give).
    """
    ratio = pixel_size(guide_box, target.crs) / pixel_size(target)
    if warn_coarser and ratio > _COARSER_TOLERANCE:
        warnings.warn(
            f"the guide's pixels (about {pixel_size(guide_box, target.crs):.4g} {_units(target)}) are {ratio:.2g}x "
            f"coarser than the output's ({pixel_size(target):.4g}): the guide has no detail at the output "
            "resolution, so the result cannot be sharper than it. Use a finer guide or a smaller scale.",
            UserWarning, stacklevel=3)
    moved = displacement is not None and not displacement.almost_equals(Affine.identity(), precision=1e-9)
    if same_grid(guide_box, target) and not moved:
        return guide
    if resampling == "auto":
        resampling = choose_resampling(guide_box, target)
    onto = GeoBox(target.shape, target.affine @ displacement, target.crs) if moved else target
    out = warp.reproject(guide, onto, resampling)
    ydim, xdim = out.odc.spatial_dims  # "latitude"/"longitude" on a geographic grid
    out = out.transpose("band", ydim, xdim).rename({ydim: "y", xdim: "x"})
    if moved:  # the displaced grid's pixels are the target's pixels
        from odc.geo.xr import xr_coords

        coords = xr_coords(target, dims=("y", "x"))
        out = out.drop_vars([c for c in out.coords if c != "band"]).assign_coords(
            {k: v for k, v in coords.items() if k in ("y", "x")})
    return out


def _units(gbox: GeoBox) -> str:
    return "degrees" if gbox.crs.geographic else (gbox.crs.units[0] if gbox.crs.units else "units")
