"""Alignment: the estimate recovers known displacements of real guides, with the documented sign,
through the array API and through a georeferenced guide's geotransform, and removing it helps."""
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

import geosr
from geosr.core import align, warp
from geosr.cli import main
from geosr.core.sampling import avg_pool


def _displaced(guide, d: Affine):
    """The guide with its content moved by d (output pixels): content at p now sits at d * p."""
    return warp.displace(guide, align.Alignment("shift", ~d, (0, 0)))


@pytest.fixture(scope="module")
def depth(depth_pairs):
    truth, guides = depth_pairs
    return truth[0], guides[0].astype(np.float64)


def test_estimate_recovers_known_shifts_with_the_documented_sign(depth):
    truth, guide = depth
    src = avg_pool(truth, 4)
    # The "aligned" pair carries its own small offset (depth and colour from two sensors);
    # what must be recovered is the displacement applied on top of it.
    base = align.estimate(src, guide, 4, "shift").shift
    assert max(map(abs, base)) < 1.0
    for d in [(2.5, 3.5), (-4.0, 4.0)]:
        est = align.estimate(src, _displaced(guide, Affine.translation(*d)), 4, "shift")
        assert est.shift[0] - base[0] == pytest.approx(d[0], abs=0.5)
        assert est.shift[1] - base[1] == pytest.approx(d[1], abs=0.5)
        assert est.score < 0.7  # the fit residual dropped: the correction explains the source better


def test_the_search_shift_is_the_general_warp_of_a_translation(depth):
    """The grid search's fast path (two 1-D interpolations) samples as the affine warp does, edges included."""
    bands = depth[1][:, :40, :57].astype(np.float64)
    for tx, ty in [(0, 0), (-8.875, 3.25), (7.75, -0.5), (16.125, -12), (0.125, 0.375)]:
        general = np.stack([align._warp(b, np.array([tx, ty, 0, 0, 0, 0]), 28.5) for b in bands])
        np.testing.assert_allclose(align._shifted(bands, ty, tx), general, rtol=0, atol=1e-9)


def test_affine_estimate_recovers_a_one_degree_rotation(depth):
    truth, guide = depth
    d = Affine.rotation(1.0, pivot=(128, 128))
    est = align.estimate(avg_pool(truth, 4), _displaced(guide, d), 4, "affine")
    assert est.rotation_degrees == pytest.approx(align.Alignment("affine", d, (128, 128)).rotation_degrees, abs=0.3)


def test_align_shift_beats_none_on_a_misaligned_guide(depth):
    truth, guide = depth[0][:128, :128], depth[1][:, :128, :128]
    src = avg_pool(truth, 4)
    moved = _displaced(guide, Affine.translation(-4, 4))

    def rmse(align_kind):
        out, info = geosr.superresolve_array(src, moved, 4, "mmsr", align=align_kind, epochs=100, return_info=True,
                                             selfcheck=False, progress=False)
        return np.sqrt(np.mean((out - truth) ** 2)), info

    none, _ = rmse("none")
    shifted, info = rmse("shift")
    assert shifted < 0.98 * none  # measured at 100 epochs, GDAL displacement: 7.27 against 7.73 (0.941)
    dx, dy = map(float, info.details["alignment"]["geosr_align_shift_px"].split())
    assert (dx, dy) == pytest.approx((-4, 4), abs=1.0)


def test_cli_estimates_a_geotransform_shift_and_writes_it_to_the_tags(small_files, tmp_path):
    """A guide whose geotransform puts it 2 output pixels east and 1 south is estimated as (+2, +1)."""
    with rasterio.open(small_files["source"]) as s:
        hr = s.transform @ Affine.scale(1 / 4)
    with rasterio.open(small_files["guide"]) as g:
        profile, pixels = g.profile, g.read()
    moved = tmp_path / "moved_guide.tif"
    with rasterio.open(moved, "w", **{**profile, "transform": Affine.translation(2 * hr.a, 1 * hr.e) @ g.transform}) as dst:
        dst.write(pixels)

    def tags(guide, name, *extra):
        out = tmp_path / name
        res = CliRunner().invoke(main, ["upsample", small_files["source"], str(guide), "--scale", "4",
                                        "--method", "guided", "-o", str(out), "-q", *extra])
        assert res.exit_code == 0, res.output
        with rasterio.open(out) as r:
            return r.tags()

    base = [float(v) for v in tags(small_files["guide"], "base.tif")["geosr_align_shift_px"].split()]
    t = tags(moved, "moved.tif")
    assert t["geosr_align"] == "shift"
    px = [float(v) for v in t["geosr_align_shift_px"].split()]
    assert px[0] - base[0] == pytest.approx(2.0, abs=0.5)
    assert px[1] - base[1] == pytest.approx(1.0, abs=0.5)
    mx, my = (float(v) for v in t["geosr_align_shift_map"].split())
    assert (mx, my) == pytest.approx((px[0] * hr.a, px[1] * hr.e), rel=1e-3)  # x east, y north
    assert tags(moved, "none.tif", "--align", "none")["geosr_align"] == "none"


def test_bad_align_value_is_refused_with_the_choices():
    with pytest.raises(geosr.InputError, match="align must be one of"):
        geosr.superresolve_array(np.zeros((8, 8)), np.zeros((32, 32)), 4, "bicubic", align="rigid")


def test_too_small_to_estimate_warns_and_uses_the_guide_as_is(depth):
    truth, guide = depth
    with pytest.warns(UserWarning, match="align='shift' skipped"):
        out = geosr.superresolve_array(avg_pool(truth[:24, :24], 4), guide[:, :24, :24], 4, epochs=1)
    assert out.shape == (24, 24)


@pytest.mark.parametrize("turn", [+3.0, -3.0])
def test_rotation_sign_end_to_end_on_a_georeferenced_guide(fieldimager, tmp_path, turn):
    """A guide whose picture is turned counter-clockwise as displayed (north up, scipy's positive angle)
    is reported with a negative geosr_align_rotation_deg: positive means clockwise on the map."""
    from rasterio.windows import Window
    from scipy import ndimage

    from conftest import degrade, ortho_on, write_tif

    dsm, ortho = fieldimager
    source, _ = degrade(dsm, tmp_path / "src.tif", 4, Window(140, 140, 128, 128))
    src = geosr.open_raster(source)
    on_grid = geosr.superresolve(src, geosr.open_raster(str(ortho)), 4, "bicubic")  # the output grid
    grid = ortho_on(on_grid, ortho)
    turned = np.stack([ndimage.rotate(b, turn, reshape=False, order=1, mode="nearest") for b in grid])
    guide = write_tif(tmp_path / f"turned{turn:+g}.tif", turned, src.rio.crs, on_grid.rio.transform())
    out = geosr.superresolve(src, geosr.open_raster(guide), 4, "guided", align="affine")
    assert float(out.attrs["geosr_align_rotation_deg"]) == pytest.approx(-turn, abs=0.5)
    assert "clockwise on a north-up map" in out.attrs["geosr_align_rotation_convention"]
