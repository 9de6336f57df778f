"""Flat/water mask: where the guide is ignored and the output is plain bicubic.

Over water and flat ground the guide's texture (waves, road paint, crop rows) would be
copied into a DEM as false relief, while bicubic is nearly exact there. The mask is
applied by making the guide invalid on the output grid (NaN), after its alignment was
measured on the whole guide. Everything downstream of an invalid guide pixel then holds
as it is: the bicubic fallback with its feathered edge, exactness, tiles and the quality
layers' ``fallback`` band.

A mask is one of

- a number: a slope threshold in degrees. Flat are the source cells whose slope (Horn's
  3x3 method, as ``gdaldem slope``) is below it, kept only where they form areas of at
  least 3 x 3 cells (a binary opening: a lone flat cell on a ridge or a peak is no lake);
- a raster (a path, or a DataArray) in any CRS and resolution: nonzero valid pixels are
  flat; it is brought onto the output grid by nearest resampling;
- polygons: a GeoJSON file (lon/lat WGS84 as RFC 7946 says, or its legacy ``crs``
  member), any other vector file GDAL/OGR reads (GeoPackage, Shapefile, FlatGeobuf, KML,
  ... in its own CRS, through pyogrio), a shapely geometry (taken in the source's CRS) or an
  ``odc.geo`` Geometry (its own CRS). Output pixels whose centre lies inside are flat.
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..core import warp
from ..core.sampling import repeat_cells
from ..core.terrain import slope

# Metres in one degree of latitude, gdaldem's ``-s 111120`` for a DEM in degrees.
METRES_PER_DEGREE = 111120.0
# Slope needs 1 cell of neighbours, the 3 x 3 opening 2 more.
HALO = 3
# A geographic source this close to a pole has no usable east-west pixel size in metres.
MAX_LATITUDE = 85.0
GEOJSON_SUFFIXES = (".geojson", ".json")
NONE = "none"
HINT = ("give a slope threshold in degrees (e.g. 2), a raster (nonzero = flat) or a vector file of polygons "
        "(GeoJSON, GeoPackage, Shapefile, ...)")


@dataclass(frozen=True, eq=False)
class FlatMask:
    """A checked flat mask. ``kind``: "slope", "raster" or "geometry"; ``value``: the threshold
    (degrees), the DataArray, or the odc.geo Geometry. ``description`` is the output's
    ``geosr_flat_mask`` attribute; ``checksums`` (:mod:`geosr.runtime.fingerprint`'s form) key a checkpoint by
    the mask's content."""

    kind: str
    value: object
    description: str
    checksums: dict


def resolve(spec) -> FlatMask | None:
    """``spec`` (a number, a path, a DataArray, a shapely or odc.geo geometry, or None) checked
    and opened; files are read here, so a bad mask stops a run before any work."""
    import xarray as xr

    if spec is None or isinstance(spec, FlatMask):
        return spec
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        threshold = float(spec)
        if not 0 < threshold < 90:
            raise InputError(f"the flat mask's slope threshold must be in degrees, above 0 and below 90, got {spec!r}; "
                             "1-3 degrees suits water and flat fields")
        return FlatMask("slope", threshold, f"slope<{_number(threshold)} deg", {})
    if isinstance(spec, (str, Path)):
        return _from_path(str(spec))
    if isinstance(spec, xr.DataArray):
        from dask.base import tokenize

        return FlatMask("raster", spec, "in-memory raster", {"in-memory flat mask": {"dask_token": tokenize(spec.data)}})
    geometry = _geometry_of(spec)
    if geometry is not None:
        from dask.base import tokenize

        return FlatMask("geometry", geometry, "geometry", {"flat mask geometry": {"dask_token": tokenize(
            geometry.geom.wkb, None if geometry.crs is None else geometry.crs.to_wkt())}})
    if isinstance(spec, np.ndarray):
        raise InputError("a flat mask given as an array has no map position: for a georeferenced source give a "
                         f"DataArray with a CRS, or {HINT}. Plain arrays go to geosr.superresolve_array.")
    raise InputError(f"flat_mask cannot be a {type(spec).__name__}: {HINT}")


def from_attribute(text, role: str = "the output"):
    """The mask a ``geosr_flat_mask`` attribute describes, as :func:`resolve` takes it (None for none)."""
    text = "" if text is None else str(text).strip()
    if text in ("", NONE):
        return None
    if text.startswith("slope<") and text.endswith(" deg"):
        return float(text[len("slope<"):-len(" deg")])
    for prefix in ("raster ", "geojson ", "vector "):
        if text.startswith(prefix):
            return text[len(prefix):]
    raise InputError(f"{role} was made with a flat mask held in memory ({text}), which its attributes cannot "
                     "reproduce: pass the same mask as flat_mask=")


def _number(x: float) -> str:
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def _from_path(name: str) -> FlatMask:
    from ..runtime.fingerprint import fingerprints, sha256
    from .io import open_raster

    local = "://" not in name and not name.startswith("/vsi")
    if local and not Path(name).exists():
        raise InputError(f"the flat mask {name} does not exist: {HINT}")
    where = str(Path(name).resolve()) if local else name
    if name.lower().endswith(GEOJSON_SUFFIXES):
        return FlatMask("geometry", read_geojson(name), f"geojson {where}",
                        {where: {"sha256": sha256(name)}} if local else fingerprints([name]))
    if not _is_raster(name):
        return FlatMask("geometry", read_vector(name), f"vector {where}", fingerprints([name]))
    raster = open_raster(name, "flat mask")
    return FlatMask("raster", raster, f"raster {where}", fingerprints([name]))


def _is_raster(name: str) -> bool:
    """Whether GDAL opens ``name`` as a raster with bands (else it is taken as a vector file)."""
    import rasterio

    try:
        with rasterio.open(name) as src:
            return src.count > 0
    except rasterio.errors.RasterioIOError:
        return False


def read_vector(path):
    """The union of the polygons of every feature of a vector file's first layer, in its own CRS, as an
    odc.geo Geometry (any format GDAL/OGR reads, through pyogrio)."""
    from odc.geo.geom import Geometry
    import shapely

    try:
        import pyogrio
    except ImportError:
        raise InputError(f"reading the flat mask {path} as a vector file needs pyogrio: pip install pyogrio "
                         "(or give it as GeoJSON)") from None
    try:
        meta, _, wkb, _ = pyogrio.raw.read(path, read_geometry=True, columns=[])
    except Exception as e:  # pyogrio's DataSourceError and the like: not a file OGR reads
        raise InputError(f"cannot read the flat mask {path} as a raster or a vector file ({e}); {HINT}") from None
    shapes = [g for g in shapely.from_wkb(wkb) if g is not None] if wkb is not None else []
    if not shapes:
        raise InputError(f"the flat mask {path} holds no geometry; it needs polygons of the flat areas")
    if not meta.get("crs"):
        raise InputError(f"the flat mask {path} has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:32633 OUT IN)")
    return Geometry(_polygons(shapes, str(path)), crs=meta["crs"])


def read_geojson(path):
    """The union of the polygons of a GeoJSON file (a FeatureCollection, a Feature or a bare
    geometry) as an odc.geo Geometry. Coordinates are lon/lat WGS84 (RFC 7946) unless the
    file has a legacy ``crs`` member (e.g. ``urn:ogc:def:crs:EPSG::32616``)."""
    from odc.geo.geom import Geometry
    from shapely.geometry import shape

    try:
        doc = json.loads(Path(path).read_text())
        crs = "EPSG:4326"
        if isinstance(doc.get("crs"), dict):
            crs = doc["crs"].get("properties", {}).get("name") or crs
        if doc.get("type") == "FeatureCollection":
            geoms = [f.get("geometry") for f in doc.get("features", [])]
        elif doc.get("type") == "Feature":
            geoms = [doc.get("geometry")]
        else:
            geoms = [doc]
        shapes = [shape(g) for g in geoms if g]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise InputError(f"cannot read the flat mask {path} as GeoJSON ({e}); {HINT}") from None
    if not shapes:
        raise InputError(f"the flat mask {path} holds no geometry; it needs polygons of the flat areas")
    try:
        return Geometry(_polygons(shapes, str(path)), crs=crs)
    except InputError:
        raise
    except Exception as e:  # an unknown CRS name
        raise InputError(f"the flat mask {path} names a CRS that cannot be used ({crs!r}: {e}); "
                         "RFC 7946 GeoJSON is lon/lat WGS84 and needs no crs member") from None


def _polygons(shapes, what: str):
    """The union of polygonal ``shapes``; anything else is refused (a line or a point has no area)."""
    import shapely

    parts = []
    for s in shapes:
        parts += list(s.geoms) if s.geom_type == "GeometryCollection" else [s]
    wrong = sorted({p.geom_type for p in parts if p.geom_type not in ("Polygon", "MultiPolygon")})
    if wrong:
        raise InputError(f"the flat mask ({what}) holds {', '.join(wrong)}: it needs polygons of the flat areas. "
                         "Buffer lines or points into areas first (e.g. geometry.buffer(10)).")
    return shapely.union_all(parts)


def _geometry_of(spec):
    """An odc.geo Geometry (CRS None: the source's) for a shapely or odc.geo geometry, else None."""
    from odc.geo.geom import Geometry
    from shapely.geometry.base import BaseGeometry

    if isinstance(spec, Geometry):
        return Geometry(_polygons([spec.geom], "geometry"), crs=spec.crs)
    if isinstance(spec, BaseGeometry):
        return Geometry(_polygons([spec], "geometry"), crs=None)
    return None


def on_output_grid(mask: FlatMask, src, src_box, hr_box, scale: int, chunks):
    """Lazy bool (H, W) dask array on the output grid ``hr_box``, True = flat, in ``chunks``.

    ``src``: the source band (y, x), float64 with NaN = invalid, on ``src_box``.
    """
    import dask.array as da

    if mask.kind == "slope":
        lr = src.data if isinstance(src.data, da.Array) else da.from_array(src.data)
        xres, yres = cell_size(src_box)
        flat = lr.map_overlap(flat_cells, depth=HALO, boundary="none", dtype=bool, meta=np.array((), bool),
                              xres=xres, yres=yres, threshold=mask.value)
        hr = da.map_blocks(repeat_cells, flat, scale, dtype=bool, meta=np.array((), bool),
                           chunks=tuple(tuple(c * scale for c in cs) for cs in flat.chunks))
    elif mask.kind == "raster":
        hr = _raster_onto(mask.value, src_box, hr_box)
    else:
        hr = _rasterize(mask, src_box, hr_box, chunks)
    return hr.rechunk(chunks)


def cell_size(box) -> tuple[float, float]:
    """East-west and north-south size of the grid's cells, in the CRS's linear unit; in metres for a
    geographic CRS (degrees x 111120, times cos(latitude) east-west, at the raster's central latitude)."""
    a = box.affine
    xres, yres = math.hypot(a.a, a.d), math.hypot(a.b, a.e)
    if box.crs.geographic:
        lat = float(box.extent.centroid.coords[0][1])
        if not (math.isfinite(lat) and abs(lat) <= MAX_LATITUDE):
            raise InputError(f"a slope threshold on a source in geographic coordinates needs its latitude to convert "
                             f"degrees to metres, and the raster's centre is at latitude {lat:.6g}: reproject the "
                             "DEM to a projected CRS (e.g. its UTM zone), or give the flat mask as a raster or "
                             "polygons")
        xres *= METRES_PER_DEGREE * math.cos(math.radians(lat))
        yres *= METRES_PER_DEGREE
    return xres, yres


def flat_cells(z: np.ndarray, xres: float, yres: float, threshold: float) -> np.ndarray:
    """Cells with slope below ``threshold`` degrees that lie in a 3 x 3 block of such cells (an
    opening; cells off the raster are not flat). Invalid cells are never flat."""
    with np.errstate(invalid="ignore"):
        flat = slope(np.asarray(z, np.float64), xres, yres) < threshold
    return ndimage.binary_opening(flat, structure=np.ones((3, 3), bool))


def _raster_onto(raster, src_box, hr_box):
    """Nonzero valid pixels of a mask raster, nearest-resampled onto ``hr_box``; off the raster: not flat."""
    from . import grid, inputs
    from .io import READ_CHUNKS

    m_box = grid.geobox_of(raster, "flat mask")
    grid.check_overlap(src_box, m_box, "flat mask")
    values = inputs.guide_stack(raster)  # float32, NaN where invalid (nodata, alpha, GDAL mask)
    if values.sizes["band"] != 1:
        raise InputError(f"the flat mask raster has {values.sizes['band']} bands; give a single-band raster "
                         "(nonzero = flat)")
    values = values.where(values.isnull(), (values != 0).astype(np.float32))  # 1 flat, 0 not, NaN invalid
    if values.chunks is None:  # warped lazily, not all at once
        values = values.chunk(READ_CHUNKS)
    onto = grid.onto_grid(values, m_box, hr_box, "nearest", warn_coarser=False)
    return onto.data[0] == 1


def _rasterize(mask: FlatMask, src_box, hr_box, chunks):
    """Pixels of ``hr_box`` whose centre lies inside the polygons, lazily per block."""
    import dask.array as da
    from dask.base import tokenize
    from odc.geo.geom import Geometry

    from . import grid

    geom = mask.value
    if geom.crs is None:  # a shapely geometry: in the source's CRS
        geom = Geometry(geom.geom, crs=src_box.crs)
    if geom.crs != hr_box.crs:
        # Straight edges in one CRS are curves in another: densify to the output's pixel size first.
        step = grid.pixel_size(hr_box, geom.crs)
        step = max(step, geom.geom.length / 1e6)
        geom = geom.to_crs(hr_box.crs, resolution=step)
    shape = geom.geom
    if shape.is_empty or not shape.intersects(hr_box.extent.geom):
        x0, y0, x1, y1 = hr_box.extent.boundingbox
        raise InputError(f"the flat mask does not overlap the source: the source covers x {x0:.6g}..{x1:.6g}, "
                         f"y {y0:.6g}..{y1:.6g} in its CRS {hr_box.crs.epsg or hr_box.crs}. Check the polygons' "
                         "coordinates and CRS (GeoJSON is lon/lat; a shapely geometry is taken in the source's CRS).")
    name = f"geosr-flat-mask-{tokenize(shape.wkb, list(hr_box.affine)[:6], hr_box.shape, str(chunks))}"
    return da.map_blocks(_rasterize_block, shape=shape, affine=hr_box.affine, chunks=chunks, dtype=bool,
                         meta=np.array((), bool), name=name)


def _rasterize_block(shape, affine, block_info=None):
    from affine import Affine
    from shapely.geometry import box

    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    out_shape = (y1 - y0, x1 - x0)
    transform = affine @ Affine.translation(x0, y0)
    corners = [transform @ p for p in ((0, 0), (out_shape[1], 0), (out_shape[1], out_shape[0]), (0, out_shape[0]))]
    if 0 in out_shape or not shape.intersects(box(*np.min(corners, 0), *np.max(corners, 0))):
        return np.zeros(out_shape, bool)
    return warp.rasterize([(shape, 1)], out_shape, transform)
