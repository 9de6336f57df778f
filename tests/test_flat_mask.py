"""The flat/water mask (--flat-mask, flat_mask=) on the real fieldimager DSM and orthophoto: where it
is set the output is bicubic, and the quality layers' fallback band shows exactly where.

The crop is the east edge of the field trial: a strip of bare flat ground beside plots of crops,
so a slope threshold of 3 degrees finds both flat and sloping cells. Each mask is checked against
an independent computation: Horn's slope by hand, point-in-polygon on pixel centres, and a
nearest lookup in the mask raster.
"""
import json

import dask
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner
from pyproj import Transformer
from rasterio.windows import Window
from scipy import ndimage

import geosr
from geosr.pipeline import flatmask
from geosr.cli import main
from geosr.core.sampling import repeat_cells

from conftest import degrade, write_tif

SCALE = 4
THRESHOLD = 3.0
FEATHER = 8  # the default at scale 4: max(2 * scale, 8) output pixels
TILES = dict(tile_size=12, overlap=4)  # 2 x 2 tiles of the 24 x 24 source
RUN = dict(epochs=20, seed=0, preset="fast", **TILES)
CLI_RUN = ["--scale", "4", "--tile-size", "12", "--overlap", "4", "--epochs", "20", "--seed", "0", "-q"]


@pytest.fixture(scope="module")
def files(fieldimager, tmp_path_factory):
    """The DSM averaged x4 over a 96 x 96 window at the field's east edge (24 x 24 source cells, a
    2 x 2 block of them set to nodata inside the flat strip), and the orthophoto under it."""
    dsm, ortho = fieldimager
    d = tmp_path_factory.mktemp("flat")
    path, _ = degrade(dsm, d / "lr.tif", SCALE, Window(296, 120, 96, 96))
    with rasterio.open(path) as r:
        lr, profile, nodata = r.read(1), r.profile, r.nodata
    lr[12:14, 12:14] = nodata
    source = write_tif(d / "src.tif", lr, profile["crs"], profile["transform"], nodata=nodata)
    with rasterio.open(ortho) as g:
        win = rasterio.windows.from_bounds(*rasterio.open(source).bounds, transform=g.transform)
        win = win.round_offsets().round_lengths()
        guide = write_tif(d / "ortho.tif", g.read(window=win), g.crs, g.window_transform(win), nodata=g.nodata)
    values = np.where(lr == nodata, np.nan, lr.astype(np.float64))
    t = profile["transform"]
    return {"source": source, "guide": guide, "dir": d, "lr": values, "transform": t, "crs": profile["crs"],
            "hr_transform": t @ Affine.scale(1 / SCALE), "valid": repeat_cells(np.isfinite(values), SCALE)}


def horn_slope_by_hand(z, xres, yres):
    """Slope in degrees, cell by cell, as gdaldem slope -compute_edges: a neighbour that is nodata or
    off the raster takes the centre cell's value."""
    h, w = z.shape
    out = np.full((h, w), np.nan)
    for r in range(h):
        for c in range(w):
            if not np.isfinite(z[r, c]):
                continue
            win = np.empty((3, 3))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    usable = 0 <= rr < h and 0 <= cc < w and np.isfinite(z[rr, cc])
                    win[dr + 1, dc + 1] = z[rr, cc] if usable else z[r, c]
            (a, b, c3), (d, _, f), (g, hh, i) = win
            dzdx = ((c3 + 2 * f + i) - (a + 2 * d + g)) / (8 * xres)
            dzdy = ((g + 2 * hh + i) - (a + 2 * b + c3)) / (8 * yres)
            out[r, c] = np.degrees(np.arctan(np.sqrt(dzdx ** 2 + dzdy ** 2)))
    return out


def expected_slope_mask(files, threshold=THRESHOLD):
    """Flat source cells: slope below the threshold, then a 3 x 3 opening, onto the output pixels."""
    t = files["transform"]
    slope = horn_slope_by_hand(files["lr"], abs(t.a), abs(t.e))
    with np.errstate(invalid="ignore"):
        flat = ndimage.binary_opening(slope < threshold, structure=np.ones((3, 3), bool))
    return repeat_cells(flat, SCALE)


def pixel_centres(files):
    """Map coordinates (x, y) of every output pixel's centre, each (H, W)."""
    t = files["hr_transform"]
    rows, cols = np.mgrid[0:files["lr"].shape[0] * SCALE, 0:files["lr"].shape[1] * SCALE]
    return t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e


def inputs(files, chunks=1024):
    return geosr.open_raster(files["source"], chunks=chunks), geosr.open_raster(files["guide"])


@pytest.fixture(scope="module")
def bicubic(files):
    src, guide = inputs(files)
    return geosr.superresolve(src, guide, SCALE, "bicubic", exact=False, **TILES).compute().values


@pytest.fixture(scope="module")
def slope_run(files):
    """MMSR with a 3-degree slope mask, no back-projection (so bicubic is exact there); the source
    is read in 7 x 7 chunks, so the slope and the opening cross chunk borders."""
    src, guide = inputs(files, chunks=7)
    out, q = geosr.superresolve(src, guide, SCALE, flat_mask=THRESHOLD, exact=False, quality=True, **RUN)
    assert out.attrs["geosr_flat_mask"] == "slope<3 deg"
    out, q = dask.compute(out, q)
    return out.values, q.values


def test_slope_mask_is_horn_slope_below_the_threshold_opened_3x3(files, slope_run):
    expected = expected_slope_mask(files)
    valid = files["valid"]
    print(f"flat: {expected[valid].mean():.3f} of the valid output pixels at slope < {THRESHOLD} deg")
    assert 0.2 < expected[valid].mean() < 0.8
    fallback = slope_run[1][0]
    np.testing.assert_array_equal(fallback == 1, expected & valid)
    assert (fallback[~valid] == 0).all()
    # The guide covers the whole crop: without the mask nothing falls back.
    src, guide = inputs(files)
    plain = geosr.quality_layers(geosr.superresolve(src, guide, SCALE, "bicubic", **TILES), src, guide,
                                 flat_mask=None)
    assert (plain.values[0] == 0).all()


def test_flat_cells_equal_the_hand_computation_on_any_chunking(files):
    t = files["transform"]
    expected = expected_slope_mask(files, 5.0)[::SCALE, ::SCALE]
    np.testing.assert_array_equal(flatmask.flat_cells(files["lr"], t.a, -t.e, 5.0), expected)
    for chunks in (24, 5, 3):  # the halo of 3 cells is as wide as the smallest chunk
        src, guide = inputs(files, chunks=chunks)
        q = geosr.quality_layers(geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=5, **TILES), src, guide)
        np.testing.assert_array_equal(q.values[0] == 1, repeat_cells(expected, SCALE) & files["valid"])


def test_output_is_bicubic_in_the_mask_and_guided_elsewhere(files, slope_run, bicubic):
    out, q = slope_run
    fallback, valid = q[0], files["valid"]
    inside = fallback == 1
    gap = np.abs(out - bicubic)[inside]
    print(f"max |output - bicubic| in the mask: {gap.max():.2e} m")
    np.testing.assert_allclose(out[inside], bicubic[inside], rtol=0, atol=1e-5)
    # Farther than the feather from every flat pixel, the guide has its full weight, and is used.
    far = ndimage.distance_transform_edt(~inside) > FEATHER + 1
    assert (fallback[far] == 0).all() and (far & valid).sum() > 500
    assert np.abs(out - bicubic)[far & valid].max() > 0.01
    assert np.isnan(out[~valid]).all()


def test_alignment_is_measured_on_the_whole_guide(files):
    src, guide = inputs(files)
    plain = geosr.superresolve(src, guide, SCALE, "guided", align="shift", **TILES)
    masked = geosr.superresolve(src, guide, SCALE, "guided", align="shift", flat_mask=THRESHOLD, **TILES)
    assert plain.attrs["geosr_align_shift_px"] == masked.attrs["geosr_align_shift_px"]
    assert plain.attrs["geosr_flat_mask"] == "none"


def square_in_lonlat(files, rows, cols):
    """A quadrilateral with corners at the given output pixel positions, in lon/lat (EPSG:4326)."""
    t = files["hr_transform"]
    corners = [t @ (c, r) for r, c in zip(rows, cols)]
    to_lonlat = Transformer.from_crs(files["crs"], "EPSG:4326", always_xy=True)
    return [list(to_lonlat.transform(x, y)) for x, y in corners]


def write_geojson(path, ring, crs=None, kind="Polygon"):
    coords = [ring + [ring[0]]] if kind == "Polygon" else ring
    doc = {"type": "FeatureCollection",
           "features": [{"type": "Feature", "properties": {}, "geometry": {"type": kind, "coordinates": coords}}]}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return str(path)


def test_geojson_polygons_in_lonlat_over_a_utm_source(files, bicubic):
    # A tilted quadrilateral over the plots and the flat strip, in lon/lat.
    ring = square_in_lonlat(files, rows=[10.3, 30.6, 80.2, 55.1], cols=[20.2, 75.7, 60.4, 8.9])
    path = write_geojson(files["dir"] / "area.geojson", ring)
    src, guide = inputs(files)
    out, q = geosr.superresolve(src, guide, SCALE, flat_mask=path, exact=False, quality=True, **RUN)
    assert out.attrs["geosr_flat_mask"] == f"geojson {files['dir'] / 'area.geojson'}"
    out, q = dask.compute(out, q)
    out, fallback = out.values, q.values[0]
    x, y = pixel_centres(files)
    lon, lat = Transformer.from_crs(files["crs"], "EPSG:4326", always_xy=True).transform(x, y)
    inside = shapely.contains_xy(shapely.Polygon(ring), lon, lat)
    print(f"polygon: {inside.mean():.3f} of the output pixels")
    assert 0.2 < inside.mean() < 0.6
    np.testing.assert_array_equal(fallback == 1, inside & files["valid"])
    far = ndimage.distance_transform_edt(~inside) > FEATHER + 1
    assert (fallback[far] == 0).all()
    np.testing.assert_allclose(out[inside], bicubic[inside], rtol=0, atol=1e-5)
    assert np.abs(out - bicubic)[far & files["valid"]].max() > 0.01
    # The same polygon in UTM, named by the legacy "crs" member, and as a shapely geometry in the
    # source's CRS: the same pixels (from the quality layers alone, no fit).
    t = files["hr_transform"]
    utm = [list(t @ (c, r)) for r, c in zip([10.3, 30.6, 80.2, 55.1], [20.2, 75.7, 60.4, 8.9])]
    legacy = write_geojson(files["dir"] / "utm.geojson", utm, crs="urn:ogc:def:crs:EPSG::32616")
    inside_utm = shapely.contains_xy(shapely.Polygon(utm), x, y)
    for mask in (legacy, shapely.Polygon(utm)):
        layers = geosr.quality_layers(geosr.superresolve(src, guide, SCALE, "bicubic", **TILES), src, guide,
                                      flat_mask=mask)
        np.testing.assert_array_equal(layers.values[0] == 1, inside_utm & files["valid"])


def test_vector_files_gdal_reads_in_their_own_crs(files, tmp_path):
    """The polygon above as a GeoPackage in lon/lat and a Shapefile in UTM: the same pixels as the polygon."""
    import pyogrio

    rows, cols = [10.3, 30.6, 80.2, 55.1], [20.2, 75.7, 60.4, 8.9]
    t = files["hr_transform"]
    utm = [t @ (c, r) for r, c in zip(rows, cols)]
    lonlat = square_in_lonlat(files, rows=rows, cols=cols)
    src, guide = inputs(files)
    x, y = pixel_centres(files)
    inside = shapely.contains_xy(shapely.Polygon(utm), x, y)
    for name, ring, crs in (("area.gpkg", lonlat, "EPSG:4326"), ("area.shp", utm, files["crs"].to_wkt())):
        path = str(tmp_path / name)
        pyogrio.raw.write(path, np.array([shapely.to_wkb(shapely.Polygon(ring))], dtype=object), [], [],
                          geometry_type="Polygon", crs=crs)
        out = geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=path, **TILES)
        assert out.attrs["geosr_flat_mask"] == f"vector {path}"
        layers = geosr.quality_layers(out, src, guide)  # the mask read again from the output's attributes
        np.testing.assert_array_equal(layers.values[0] == 1, inside & files["valid"])
    (tmp_path / "notes.txt").write_text("flat areas: the lake")
    with pytest.raises(geosr.InputError, match="cannot read the flat mask .* as a raster or a vector file"):
        geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=str(tmp_path / "notes.txt"))


def test_raster_mask_in_another_crs_and_resolution_is_taken_nearest(files, bicubic):
    # A lon/lat mask with pixels about 0.6 m: a block of ones, a nodata block inside it, zeros around.
    x, y = pixel_centres(files)
    to_lonlat = Transformer.from_crs(files["crs"], "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(x, y)
    dx, dy = 8e-6, 5.5e-6
    west, north = lon.min() - 20 * dx, lat.max() + 10 * dy
    width, height = int((lon.max() - west) / dx) - 15, int((north - lat.min()) / dy) + 20  # ends short of the east
    values = np.zeros((height, width), np.uint8)
    values[15:height - 15, 25:width - 5] = 1
    values[25:35, 30:40] = 255
    path = write_tif(files["dir"] / "mask_ll.tif", values, "EPSG:4326", Affine(dx, 0, west, 0, -dy, north),
                     nodata=255)
    # Expected: the mask pixel under each output pixel's centre (none off the mask).
    col, row = np.floor((lon - west) / dx).astype(int), np.floor((north - lat) / dy).astype(int)
    on = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    under = np.where(on, values[row.clip(0, height - 1), col.clip(0, width - 1)], 0)
    expected = (under == 1) & files["valid"]
    src, guide = inputs(files)
    out = geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=path, **TILES)
    assert out.attrs["geosr_flat_mask"] == f"raster {files['dir'] / 'mask_ll.tif'}"
    got = geosr.quality_layers(out, src, guide).values[0] == 1  # the mask re-read from the attribute
    # GDAL's warper may place a centre that lies within a hair of a mask pixel's edge on either side.
    frac_col, frac_row = (lon - west) / dx % 1, (north - lat) / dy % 1
    edge = (np.minimum(frac_col, 1 - frac_col) < 0.02) | (np.minimum(frac_row, 1 - frac_row) < 0.02)
    print(f"raster mask: {expected.mean():.3f} flat, {(got != expected).sum()} pixels differ, "
          f"{(got != expected)[~edge].sum()} of them away from a mask pixel edge")
    assert 0.2 < expected.mean() < 0.8 and (~expected & files["valid"] & (under == 0)).any()
    assert not (got != expected)[~edge].any()


def test_cli_flat_mask_is_recorded_and_shown_by_the_quality_layers(files, tmp_path):
    out, q = tmp_path / "out.tif", tmp_path / "q.tif"
    res = CliRunner().invoke(main, ["upsample", files["source"], files["guide"], *CLI_RUN, "--flat-mask", "3deg",
                                    "--quality", str(q), "-o", str(out)])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as r:
        tags, values = r.tags(), r.read(1, masked=True).astype(np.float64).filled(np.nan)
    assert tags["geosr_flat_mask"] == "slope<3 deg"
    with rasterio.open(q) as r:
        fallback = r.read(1)
    expected = expected_slope_mask(files) & files["valid"]
    np.testing.assert_array_equal(fallback == 1, expected)
    # With back-projection (the CLI's default) the output stays bicubic-with-back-projection in the
    # mask's interior; near its edge the cell-mean correction also carries the guided neighbours'.
    src, guide = inputs(files)
    exact_bicubic = geosr.superresolve(src, guide, SCALE, "bicubic", **TILES).compute().values
    interior = ndimage.distance_transform_edt(expected) > 4 * SCALE
    gap = np.abs(values - exact_bicubic)[interior]
    print(f"exact run: max |output - bicubic| {gap.max():.2e} m over {interior.sum()} pixels of the mask's interior")
    assert interior.sum() > 200 and gap.max() < 1e-4  # a few float32 steps at 275 m


def test_array_api_takes_a_boolean_mask_of_either_shape(files):
    from geosr.pipeline.coregister import coregister
    from geosr.spec import RunSpec

    lr = files["lr"]
    src, guide = inputs(files)
    hr_guide = np.asarray(coregister(src, guide, RunSpec(scale=SCALE, align="none")).hr_guide)  # output grid
    cells = expected_slope_mask(files)[::SCALE, ::SCALE]
    kw = dict(exact=False, align="none", epochs=20, seed=0)
    a = geosr.superresolve_array(lr, hr_guide, SCALE, flat_mask=cells, **kw)
    b = geosr.superresolve_array(lr, hr_guide, SCALE, flat_mask=repeat_cells(cells, SCALE), **kw)
    np.testing.assert_array_equal(a, b)
    plain = geosr.superresolve_array(lr, hr_guide, SCALE, "bicubic", exact=False)
    flat = repeat_cells(cells, SCALE) & files["valid"]
    np.testing.assert_allclose(a[flat], plain[flat], rtol=0, atol=1e-5)
    assert np.nanmax(np.abs(a - plain)[~flat]) > 0.01


def test_multiband_and_accessor_pass_the_mask_on(files, tmp_path):
    with rasterio.open(files["source"]) as r:
        a, profile = r.read(1), r.profile
    two = write_tif(tmp_path / "two.tif", np.stack([a, a]), profile["crs"], profile["transform"], nodata=r.nodata)
    src, guide = geosr.open_raster(two), geosr.open_raster(files["guide"])
    out = geosr.superresolve(src, guide, SCALE, "bicubic", band="all", flat_mask=THRESHOLD, **TILES)
    assert out.attrs["geosr_flat_mask"] == "slope<3 deg"
    one, _ = inputs(files)
    assert one.geosr.superresolve(guide, SCALE, "bicubic", flat_mask=2).attrs["geosr_flat_mask"] == "slope<2 deg"


def test_bad_masks_are_refused_with_what_to_do(files, tmp_path):
    src, guide = inputs(files)

    def refused(mask, message, **kw):
        with pytest.raises(geosr.InputError, match=message):
            geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=mask, **kw)

    refused(-1, "above 0 and below 90")
    refused(float("nan"), "above 0 and below 90")
    refused(tmp_path / "nope.tif", "does not exist: give a slope threshold")
    far_away = write_geojson(tmp_path / "far.geojson", [[10.0, 50.0], [10.001, 50.0], [10.001, 50.001]])
    refused(far_away, "flat mask does not overlap the source")
    refused(shapely.Point(0, 0).buffer(1), "flat mask does not overlap the source")
    with rasterio.open(files["source"]) as r:
        moved = r.transform @ Affine.translation(0, 1000)
    off = write_tif(tmp_path / "off.tif", np.ones((24, 24), np.uint8), files["crs"], moved)
    refused(off, "flat mask does not overlap the source")
    line = write_geojson(tmp_path / "line.geojson", [[-86.9, 40.4], [-86.8, 40.5]], kind="LineString")
    refused(line, "LineString: it needs polygons")
    (tmp_path / "bad.geojson").write_text("{not json")
    refused(tmp_path / "bad.geojson", "cannot read the flat mask")
    refused(np.ones((24, 24), bool), "superresolve_array")
    with pytest.raises(geosr.InputError, match="takes flat_mask as a boolean array"):
        geosr.superresolve_array(files["lr"], np.ones((3, 96, 96)), SCALE, "bicubic", flat_mask=2.0)
    with pytest.raises(geosr.InputError, match=r"flat_mask has shape \(10, 10\)"):
        geosr.superresolve_array(files["lr"], np.ones((3, 96, 96)), SCALE, "bicubic", flat_mask=np.ones((10, 10), bool))
    # A mask held in memory is not in the output's attributes: the quality layers ask for it.
    out = geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=shapely.box(*src.rio.bounds()), **TILES)
    assert out.attrs["geosr_flat_mask"] == "geometry"
    with pytest.raises(geosr.InputError, match="pass the same mask as flat_mask="):
        geosr.quality_layers(out, src, guide)
    # On the command line.
    res = CliRunner().invoke(main, ["upsample", files["source"], files["guide"], "--scale", "4", "--flat-mask",
                                    str(tmp_path / "nope.geojson"), "-o", str(tmp_path / "o.tif")])
    assert res.exit_code != 0 and "does not exist" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.tif").exists()


def test_slope_on_a_geographic_source_is_in_metres_and_refused_near_a_pole():
    from odc.geo.geobox import GeoBox

    box = GeoBox((10, 10), Affine(1e-5, 0, -86.9, 0, -1e-5, 40.5), "EPSG:4326")
    xres, yres = flatmask.cell_size(box)
    lat = 40.5 - 5e-5
    assert xres == pytest.approx(1e-5 * 111120 * np.cos(np.radians(lat)), rel=1e-9)
    assert yres == pytest.approx(1e-5 * 111120, rel=1e-12)
    polar = GeoBox((10, 10), Affine(1e-5, 0, 0, 0, -1e-5, 88.0), "EPSG:4326")
    with pytest.raises(geosr.InputError, match="reproject the DEM to a projected CRS"):
        flatmask.cell_size(polar)


def test_resuming_with_another_flat_mask_is_refused(files, tmp_path):
    src, guide = inputs(files)
    folder = tmp_path / "ckpt"
    geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=THRESHOLD, checkpoint=folder, **TILES).compute()
    geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=THRESHOLD, checkpoint=folder, resume=True,
                       **TILES).compute()
    with pytest.raises(geosr.InputError, match="flat_mask was 'slope<3 deg', now 'slope<5 deg'"):
        geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=5, checkpoint=folder, resume=True,
                           **TILES).compute()
    # A mask file is keyed by its content, like the inputs.
    ring = square_in_lonlat(files, rows=[0, 0, 40, 40], cols=[0, 40, 40, 0])
    path = write_geojson(tmp_path / "m.geojson", ring)
    other = tmp_path / "ckpt2"
    geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=path, checkpoint=other, **TILES).compute()
    write_geojson(tmp_path / "m.geojson", square_in_lonlat(files, rows=[0, 0, 50, 50], cols=[0, 50, 50, 0]))
    with pytest.raises(geosr.InputError, match="m.geojson changed"):
        geosr.superresolve(src, guide, SCALE, "bicubic", flat_mask=path, checkpoint=other, resume=True,
                           **TILES).compute()
