"""Grids, masks and the edge cases of georeferencing, on crops of the real fieldimager rasters."""
import warnings

import numpy as np
import pytest
import rasterio
import rioxarray
from affine import Affine
from rasterio.windows import Window

import geosr
from geosr.pipeline import grid, inputs
from geosr.errors import InputError
from geosr.core.metrics import border_jump_ratio, hillshade

from conftest import degrade, write_tif


@pytest.fixture(scope="module")
def small(fieldimager, tmp_path_factory):
    """A 32 x 32 source (a 128 x 128 DSM crop averaged x4, valid everywhere) and the full orthophoto."""
    dsm, ortho = fieldimager
    d = tmp_path_factory.mktemp("small")
    source, truth = degrade(dsm, d / "src.tif", 4, Window(150, 150, 128, 128))
    with rasterio.open(source) as s:
        assert (s.read(1) != s.nodata).all()
    return {"source": source, "ortho": str(ortho), "truth": truth, "dir": d}


def _bicubic(source, guide, scale=4, **kw):
    return geosr.superresolve(source, guide, scale, method="bicubic", **kw)


def test_output_grid_is_the_source_grid_refined():
    from odc.geo.geobox import GeoBox

    t = Affine(0.5, 0.1, 1000.0, 0.05, -0.5, 2000.0)
    out = grid.output_grid(GeoBox((10, 7), t, "EPSG:32633"), 4)
    assert out.shape == (40, 28)
    assert out.affine == t @ Affine.scale(0.25)
    assert out.affine.c == t.c and out.affine.f == t.f  # same origin


def test_float32_nodata_sentinel_is_compared_in_the_rasters_dtype(fieldimager):
    dsm, _ = fieldimager
    da = geosr.open_raster(str(dsm))
    raw = da.values[0]
    sentinel = np.float32(-3.4e38)
    assert da.rio.nodata == sentinel and (raw == sentinel).sum() > 1000
    assert not (raw.astype(np.float64) == -3.4e38).any()  # the float64 comparison would miss every one
    src = inputs.source_band(da).values
    np.testing.assert_array_equal(np.isnan(src), raw == sentinel)


def test_alpha_band_and_gdal_mask_act_like_nodata(small, tmp_path):
    with rasterio.open(small["ortho"]) as g:
        win = Window(200, 200, 160, 160)
        rgb = np.clip(g.read(window=win), 0, 255).astype(np.uint8)
        t, crs = g.window_transform(win), g.crs
    invalid = np.zeros(rgb.shape[1:], bool)
    invalid[:, 100:] = True
    alpha = np.where(invalid, 0, 255).astype(np.uint8)
    as_nodata = write_tif(tmp_path / "rgb_nodata.tif", np.where(invalid, -1.0, rgb.astype(np.float32)), crs, t,
                          nodata=-1)
    as_alpha = write_tif(tmp_path / "rgba.tif", np.concatenate([rgb, alpha[None]]), crs, t, photometric="RGB",
                         alpha="YES")
    as_mask = write_tif(tmp_path / "rgb_mask.tif", rgb, crs, t)
    with rasterio.open(as_mask, "r+") as dst:
        dst.write_mask(~invalid)
    stacks = {}
    for name, path in (("nodata", as_nodata), ("alpha", as_alpha), ("mask", as_mask)):
        s = inputs.guide_stack(rioxarray.open_rasterio(path, chunks={"y": 64, "x": 64}))
        assert s.sizes["band"] == 3, name  # the alpha band is a mask, never a guide band
        stacks[name] = s.values
    np.testing.assert_array_equal(np.isnan(stacks["alpha"]).any(0), invalid)
    np.testing.assert_array_equal(stacks["alpha"], stacks["nodata"])
    np.testing.assert_array_equal(stacks["mask"], stacks["nodata"])
    src = geosr.open_raster(small["source"])
    outs = [geosr.superresolve(src, rioxarray.open_rasterio(p), 4, epochs=3).values for p in (as_nodata, as_alpha)]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_guide_on_the_output_grid_passes_through_bit_identical(small, tmp_path):
    src = geosr.open_raster(small["source"])
    hr = grid.output_grid(grid.geobox_of(src, "source"), 4)
    with rasterio.open(small["ortho"]) as g:
        data = np.full((3, *hr.shape), -1, np.float32)
        for b in range(3):
            rasterio.warp.reproject(rasterio.band(g, b + 1), data[b], dst_transform=hr.affine, dst_crs=hr.crs,
                                    resampling=rasterio.enums.Resampling.average)
    path = write_tif(tmp_path / "on_grid.tif", data, hr.crs, hr.affine, nodata=-1)
    gd = geosr.open_raster(path)
    stack = inputs.guide_stack(gd)
    on = grid.onto_grid(stack, grid.geobox_of(gd, "guide"), hr)
    assert on is stack
    np.testing.assert_array_equal(on.values, data)


def test_a_coarser_guide_warns_and_a_finer_one_is_averaged(small):
    src = geosr.open_raster(small["source"])  # 1.08 m pixels; the orthophoto has 0.2 m
    g = geosr.open_raster(small["ortho"])
    src_box, g_box = grid.geobox_of(src, "source"), grid.geobox_of(g, "guide")
    with pytest.warns(UserWarning, match="coarser"):
        _bicubic(src, g, scale=8)  # 0.135 m output pixels: finer than the guide
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = _bicubic(src, g, scale=4)  # 0.27 m: the guide is as fine as the output
    assert out.shape == (128, 128)
    assert grid.choose_resampling(g_box, grid.output_grid(src_box, 4)) == "bilinear"
    assert grid.choose_resampling(g_box, grid.output_grid(src_box, 2)) == "average"  # 0.54 m: anti-aliased


def test_source_in_a_geographic_crs(small, tmp_path):
    from rasterio.warp import calculate_default_transform, reproject, Resampling

    with rasterio.open(small["source"]) as s:
        t, w, h = calculate_default_transform(s.crs, "EPSG:4326", s.width, s.height, *s.bounds)
        data = np.full((h, w), np.nan, np.float32)
        reproject(rasterio.band(s, 1), data, dst_transform=t, dst_crs="EPSG:4326", resampling=Resampling.bilinear,
                  dst_nodata=np.nan)
    path = write_tif(tmp_path / "geo.tif", data, "EPSG:4326", t, nodata=np.nan)
    src = geosr.open_raster(path)
    out = _bicubic(src, geosr.open_raster(small["ortho"]), scale=2)
    assert out.rio.crs == "EPSG:4326" and out.rio.transform() == t @ Affine.scale(0.5)
    assert out.dims == ("y", "x") and abs(out.x.values[0] - (t.c + t.a / 4)) < 1e-9  # pixel-centre coordinates
    assert out.isel(x=slice(10, 20)).rio.transform().c == pytest.approx(t.c + 10 * t.a / 2, abs=1e-9)
    assert np.isfinite(out.values).sum() == 4 * np.isfinite(data).sum()


def test_rotated_geotransform(small, tmp_path):
    with rasterio.open(small["source"]) as s:
        data, t, crs = s.read(1), s.transform, s.crs
    rotated = t @ Affine.rotation(7.0)
    path = write_tif(tmp_path / "rot.tif", data, crs, rotated)
    src = geosr.open_raster(path)
    g = geosr.open_raster(small["ortho"])
    out_grid = grid.output_grid(grid.geobox_of(src, "source"), 4)
    on = grid.onto_grid(inputs.guide_stack(g), grid.geobox_of(g, "guide"), out_grid, "nearest").values
    assert np.isfinite(on).all(0).mean() > 0.9  # the warped guide covers the rotated grid
    # Each output pixel holds the orthophoto at its own map position: a mirrored or unrotated warp fails.
    with rasterio.open(small["ortho"]) as o:
        ortho = o.read()
        for r, c in [(10, 10), (10, 110), (64, 64), (110, 20), (115, 115)]:
            x, y = out_grid.affine * (c + 0.5, r + 0.5)
            col, row = ~o.transform * (x, y)
            np.testing.assert_array_equal(on[:, r, c], ortho[:, int(row), int(col)])
    out = geosr.superresolve(src, g, 4, epochs=3)
    written = geosr.write(out, tmp_path / "out.tif")
    with rasterio.open(written) as r:
        assert r.transform.almost_equals(rotated @ Affine.scale(0.25), precision=1e-9)
        assert np.isfinite(r.read(1)).all()


@pytest.mark.parametrize("kind", ["gcps", "rpcs"])
def test_rasters_placed_only_by_gcps_or_rpcs_are_refused(small, tmp_path, kind):
    from rasterio.control import GroundControlPoint
    from rasterio.rpc import RPC

    path = tmp_path / f"{kind}.tif"
    with rasterio.open(small["source"]) as s:
        data = s.read(1)
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1, dtype="float32") as dst:
        dst.write(data, 1)
        if kind == "gcps":
            dst.gcps = ([GroundControlPoint(0, 0, 296600, 4888200), GroundControlPoint(32, 0, 296610, 4888200),
                         GroundControlPoint(0, 32, 296600, 4888190)], rasterio.crs.CRS.from_epsg(32616))
        else:
            dst.rpcs = RPC(height_off=0, height_scale=1, lat_off=44, lat_scale=1, line_den_coeff=[1] + [0] * 19,
                           line_num_coeff=[0, 0, 1] + [0] * 17, line_off=16, line_scale=16, long_off=-87,
                           long_scale=1, samp_den_coeff=[1] + [0] * 19, samp_num_coeff=[0, 1] + [0] * 18,
                           samp_off=16, samp_scale=16)
    with pytest.raises(InputError, match="gdalwarp"):
        geosr.open_raster(str(path), "source")
    if kind == "gcps":
        with pytest.raises(InputError, match="ground control points"):
            _bicubic(rioxarray.open_rasterio(path), geosr.open_raster(small["ortho"]))


def test_pixel_is_point_rasters_keep_their_convention(small, tmp_path):
    with rasterio.open(small["source"]) as s:
        data, t, crs = s.read(1), s.transform, s.crs
    path = tmp_path / "point.tif"
    write_tif(path, data, crs, t)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(AREA_OR_POINT="Point")
    src = geosr.open_raster(str(path))
    assert src.attrs["AREA_OR_POINT"] == "Point"
    out = _bicubic(src, geosr.open_raster(small["ortho"]), scale=3, exact=False)
    written = geosr.write(out, tmp_path / "out.tif")
    with rasterio.open(path) as s, rasterio.open(written) as r:
        assert r.tags()["AREA_OR_POINT"] == "Point"
        assert r.transform.almost_equals(s.transform @ Affine.scale(1 / 3), precision=1e-9)
        assert r.bounds == pytest.approx(s.bounds, abs=1e-6)
        # At x3 the middle output pixel of each cell sits on the source's sample point, in map coordinates
        # as read back from both files, and interpolation passes through the sample there.
        lr, hr = s.read(1), r.read(1)
        for row, col in [(0, 0), (5, 17), (31, 31)]:
            assert r.xy(3 * row + 1, 3 * col + 1) == pytest.approx(s.xy(row, col), abs=1e-6)
            assert hr[3 * row + 1, 3 * col + 1] == pytest.approx(lr[row, col], abs=1e-4)


def test_compound_crs_keeps_its_vertical_datum(small, tmp_path):
    with rasterio.open(small["source"]) as s:
        data, t = s.read(1), s.transform
    path = write_tif(tmp_path / "compound.tif", data, "EPSG:32616+5703", t)
    out = _bicubic(geosr.open_raster(path), geosr.open_raster(small["ortho"]), scale=2)
    written = geosr.write(out, tmp_path / "out.tif")
    with rasterio.open(path) as s, rasterio.open(written) as r:
        assert "NAVD88" in r.crs.to_wkt() and r.crs == s.crs


def test_partial_guide_falls_back_to_bicubic_without_a_seam(fieldimager, tmp_path):
    """The guide covers the west half: east of it the output is bicubic, across the edge there is no seam."""
    dsm, ortho = fieldimager
    source, truth = degrade(dsm, tmp_path / "src.tif", 4, Window(100, 120, 200, 200))
    src = geosr.open_raster(source)
    t = src.rio.transform()
    edge_x = t.c + 25 * t.a  # the guide stops at source column 25 = output column 100
    with rasterio.open(ortho) as g:
        win = rasterio.windows.from_bounds(g.bounds.left, g.bounds.bottom, edge_x, g.bounds.top, g.transform)
        win = win.round_offsets().round_lengths()
        half = write_tif(tmp_path / "west.tif", g.read(window=win), g.crs, g.window_transform(win), nodata=g.nodata)
        edge_x = g.window_transform(win).c + win.width * g.transform.a
    # align="none": the guide's edge stays where the file puts it (alignment is tested in test_align).
    out = geosr.superresolve(src, geosr.open_raster(half), 4, epochs=30, align="none").values
    bic = _bicubic(src, geosr.open_raster(half), align="none").values
    assert np.isfinite(out).all()  # no pixel that had data is lost
    edge_col = int(round((edge_x - t.c) / (t.a / 4)))
    far = slice(edge_col + 48, None)  # beyond the feather and back-projection reach: plain bicubic
    np.testing.assert_allclose(out[:, far], bic[:, far], atol=1e-4)
    assert not np.allclose(out[:, : edge_col - 16], bic[:, : edge_col - 16], atol=1e-3)  # guided west of it
    jumps = border_jump_ratio(hillshade(out, abs(t.a) / 4), cols=[edge_col])
    print(f"hillshade p99 jump across the guide's edge / elsewhere: {jumps:.2f}")
    assert jumps <= 1.5


def test_bad_options_fail_before_any_work(small):
    src, g = geosr.open_raster(small["source"]), geosr.open_raster(small["ortho"])
    with pytest.raises(InputError, match="unknown option"):
        geosr.superresolve(src, g, 4, method="bicubic", epochs=5)
    with pytest.raises(InputError, match="source_neighbourhood"):
        geosr.superresolve(src, g, 4, source_neighbourhood=4)
    with pytest.raises(InputError, match="tile_size"):
        geosr.superresolve(src, g, 4, tile_size=0)
    with pytest.raises(InputError, match="at least one guide"):
        geosr.superresolve(src, [], 4)


def test_crop_to_bounds_selects_whole_pixels(small):
    src = geosr.open_raster(small["source"])
    t = src.rio.transform()
    edges = (t.c + 3 * t.a, t.f + 20 * t.e, t.c + 13 * t.a, t.f + 5 * t.e)  # on pixel edges
    crop = grid.crop_to_bounds(src, edges)
    assert crop.rio.shape == (15, 10) and crop.rio.transform() == t @ Affine.translation(3, 5)
    inside = (edges[0] + 0.3 * t.a, edges[1], edges[2], edges[3])  # the left edge cuts a pixel: kept
    assert grid.crop_to_bounds(src, inside).rio.shape == (15, 10)
    with pytest.raises(InputError, match="select no pixel"):
        grid.crop_to_bounds(src, (0, 0, 1, 1))
    with pytest.raises(InputError, match="left < right"):
        grid.crop_to_bounds(src, (edges[2], edges[1], edges[0], edges[3]))


def test_strided_or_flipped_arrays_get_their_real_grid(small):
    src = geosr.open_raster(small["source"])
    t = src.rio.transform()
    every_other = grid.geobox_of(src.isel(x=slice(None, None, 2), y=slice(None, None, 2)), "source")
    # every other pixel centre, each now standing for a 2 x 2 pixel cell centred on it
    expected = t @ Affine.translation(-0.5, -0.5) @ Affine.scale(2)
    assert every_other.affine.almost_equals(expected, precision=1e-6) and every_other.shape == (16, 16)
    flipped = grid.geobox_of(src.sortby("y"), "source")  # south-up
    assert flipped.affine.e == pytest.approx(-t.e, rel=1e-9) and flipped.affine.f == pytest.approx(t.f + 32 * t.e, abs=1e-6)


@pytest.mark.parametrize("method", ["bicubic", "guided"])
def test_a_south_up_source_runs_end_to_end_as_the_north_up_one_flipped(small, tmp_path, method):
    """The same DSM stored south-up (rows running north, positive pixel height) gives the north-up result
    flipped, on the flipped grid: the guide is warped onto it the right way up."""
    south = geosr.open_raster(small["source"]).sortby("y")
    path = tmp_path / "south_up.tif"
    south.rio.to_raster(path)
    with rasterio.open(path) as r:
        assert r.transform.e > 0
    g = geosr.open_raster(small["ortho"])
    north_out = geosr.superresolve(geosr.open_raster(small["source"]), g, 4, method, align="none")
    south_out = geosr.superresolve(geosr.open_raster(str(path)), g, 4, method, align="none")
    written = geosr.write(south_out, tmp_path / "out.tif")
    with rasterio.open(written) as r, rasterio.open(path) as s:
        assert r.transform.almost_equals(s.transform @ Affine.scale(0.25), precision=1e-9) and r.transform.e > 0
        np.testing.assert_allclose(r.read(1), north_out.values[::-1], rtol=0, atol=2e-3)


def test_multiband_nodata_needs_every_band_and_user_nodata_must_fit(small, tmp_path):
    rgb = np.full((3, 8, 8), 120, np.uint8)
    rgb[:, 0, 0] = 0          # every band at nodata: missing
    rgb[0, 1, 1] = 0          # a dark red-free pixel: data
    path = write_tif(tmp_path / "rgb0.tif", rgb, "EPSG:32616", Affine(1, 0, 296600, 0, -1, 4888200), nodata=0)
    valid = np.isfinite(inputs.guide_stack(geosr.open_raster(path)).values).all(0)
    assert not valid[0, 0] and valid[1, 1] and valid.sum() == 63
    with pytest.raises(InputError, match="cannot occur in a uint8"):
        inputs.guide_stack(geosr.open_raster(path), nodata=-9999)
    with pytest.raises(InputError, match="cannot occur"):
        inputs.source_band(geosr.open_raster(path), band=1, nodata=300)


def test_guide_bands_with_several_guides_is_an_error(small):
    src, g = geosr.open_raster(small["source"]), geosr.open_raster(small["ortho"])
    with pytest.raises(InputError, match="single guide"):
        geosr.superresolve(src, [g, g], 4, method="bicubic", guide_bands=[1])
