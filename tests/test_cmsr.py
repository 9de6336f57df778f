"""CMSR: beats bicubic on a real pair at test size, learns the displacement of a shifted guide, and runs
from the accessor and the CLI keeping the grid."""
import numpy as np
import pytest
import rasterio
import rioxarray
from click.testing import CliRunner

import geosr
from geosr.cli import main
from geosr.core.sampling import avg_pool


def test_cmsr_beats_bicubic_on_a_real_depth_pair(depth_pairs):
    truth, guides = depth_pairs
    t, g = truth[0][:128, :128], guides[0][:, :128, :128]
    src = avg_pool(t, 4)

    def rmse(method, **opts):
        out = geosr.superresolve_array(src, g, 4, method, align="none", selfcheck=False, **opts)
        return np.sqrt(np.mean((out - t) ** 2))

    ratio = rmse("cmsr", steps=100, progress=False) / rmse("bicubic")
    assert ratio < 0.85, ratio  # measured 0.808 at 100 steps (0.805 at 200)


def test_cmsr_learned_warp_follows_a_shifted_guide(vhm_pairs):
    """The vegetation-height pair's guide sits about (-1.1, -1.8) px off (geosr.core.align finds the same);
    shifted 4 px further right, the learned warp must move by about that much more. On the pair's
    128 x 128 top-left quarter (measured: 4.01 px right, 0.14 px up; on the whole pair 3.99 and 0.00)."""
    truth, guides = vhm_pairs
    t, g = truth[0][:128, :128], guides[0][:, :128, :128].astype(np.float64)
    src = avg_pool(t, 4)

    def warp(guide):
        _, info = geosr.superresolve_array(src, guide, 4, "cmsr", align="none", steps=150, self_ensemble=False,
                                           selfcheck=False, return_info=True, progress=False)
        return info.details["warp"]["mean_shift_px"]

    moved = np.full_like(g, np.nan)
    moved[:, :, 4:] = g[:, :, :-4]
    (x0, y0), (x1, y1) = warp(g), warp(moved)
    assert x1 - x0 == pytest.approx(4.0, abs=1.0)
    assert y1 - y0 == pytest.approx(0.0, abs=1.0)


def test_cmsr_from_the_accessor_and_the_cli_keeps_the_grid(small_files, tmp_path):
    src = rioxarray.open_rasterio(small_files["source"])
    guide = rioxarray.open_rasterio(small_files["guide"])
    out = src.geosr.superresolve(guide, scale=4, method="cmsr", steps=20, progress=False)
    assert out.rio.crs == src.rio.crs
    assert out.rio.transform() == src.rio.transform() * rasterio.Affine.scale(1 / 4)
    assert out.attrs["geosr_method"] == "cmsr" and out.attrs["geosr_align"] == "shift"
    path = tmp_path / "cmsr.tif"
    res = CliRunner().invoke(main, ["upsample", small_files["source"], small_files["guide"], "--scale", "4",
                                    "--method", "cmsr", "--epochs", "20", "-o", str(path), "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(path) as r:
        assert r.tags()["geosr_method"] == "cmsr"
        np.testing.assert_allclose(r.read(1), out.values, rtol=0, atol=1e-5)


def test_cmsr_self_ensemble_is_its_own_option():
    """``ensemble`` is the quality layers' seed ensemble; CMSR's rotations/flips are ``self_ensemble``."""
    from geosr.errors import InputError
    from geosr.methods.cmsr import config_for

    assert config_for(self_ensemble=False).self_ensemble is False
    with pytest.raises(InputError, match="self_ensemble"):
        config_for(ensemble=False)


@pytest.mark.parametrize("scale", [3, 4])
def test_cmsr_trains_on_the_cubic_that_inference_uses(scale):
    """The son is upsampled by the function inference applies to the real source (GDAL's a = -0.5 cubic),
    not by torch's a = -0.75 bicubic, which puts a ripple on planar slopes."""
    import torch
    import torch.nn.functional as F

    from geosr.methods.cmsr import upsampled_son
    from geosr.core.pair import prepare_pair
    from geosr.core.psf import AREA

    rng = np.random.default_rng(0)
    src = rng.normal(size=(13 * scale, 11 * scale))
    son = avg_pool(src, scale)
    inference = prepare_pair(son, np.zeros((1, *src.shape)), scale).bicubic_filled
    np.testing.assert_allclose(upsampled_son(src, scale, AREA), inference, rtol=0, atol=1e-12)
    np.testing.assert_allclose(upsampled_son(src, scale, AREA, 1, 2),
                               upsampled_son(src[1:1 + 12 * scale, 2:2 + 10 * scale], scale, AREA), rtol=0, atol=1e-12)

    yy, xx = np.mgrid[: 13 * scale, : 11 * scale]
    plane = 0.3 * yy - 0.7 * xx
    inner = (slice(2 * scale, -2 * scale),) * 2  # GDAL is bilinear within two pixels of the border
    np.testing.assert_allclose(upsampled_son(plane, scale, AREA)[inner], plane[inner], rtol=0, atol=1e-9)
    torch_bicubic = F.interpolate(torch.from_numpy(avg_pool(plane, scale))[None, None], scale_factor=scale,
                                  mode="bicubic", align_corners=False)[0, 0].numpy()
    assert np.abs(torch_bicubic - plane)[inner].max() > 0.01


def test_cmsr_runs_on_a_source_narrower_than_its_crop(depth_pairs):
    """A 24 x 10 source gives 24 x 8 crops; a quarter turn of one would not batch with the others."""
    truth, guides = depth_pairs
    t, g = truth[0][:96, :40], guides[0][:, :96, :40]
    out = geosr.superresolve_array(avg_pool(t, 4), g, 4, "cmsr", align="none", steps=8, channels=8,
                                   progress=False)
    assert out.shape == t.shape and np.isfinite(out).all()


def test_cmsr_back_projects_only_onto_valid_cells(depth_pairs):
    """Over a hole in the source, back-projection must leave each self-ensemble member as the network made
    it, not pull its cell means onto the nearest-filled values that stand in for the missing data."""
    from geosr.methods import cmsr
    from geosr.core.pair import prepare_pair

    truth, guides = depth_pairs
    src = avg_pool(truth[0][:64, :64], 4)
    src[5:10, 6:10] = np.nan
    pair = prepare_pair(src, guides[0][:, :64, :64], 4)
    opts = dict(steps=10, crop=16, channels=8, guide_channels=8)
    raw, _ = cmsr.run(pair, **opts, backprojection=0)
    fitted, _ = cmsr.run(pair, **opts)
    hole = ~pair.hr_valid
    np.testing.assert_allclose(fitted[hole], raw[hole], rtol=1e-6)
    cells = avg_pool(fitted, 4)
    assert np.abs(cells - src)[pair.source_valid].max() < 0.05 * np.nanstd(src)


def test_cmsr_warp_penalty_spares_translations():
    """The penalty that keeps the warp from drifting where the guide says little is on its departure from a
    translation, so a shifted guide is still followed at no cost (the shifted-guide test above)."""
    import torch

    from geosr.methods.nn.cmsr_net import GuideWarp

    warp = GuideWarp(4)
    with torch.no_grad():
        warp.affine[:, 2] = torch.tensor([0.1, -0.05])  # 3.2 and -1.6 px on a 64 x 64 grid
        assert warp.displacement_pixels(64, 64)[:2] == pytest.approx((3.2, -1.6), abs=1e-4)
        assert float(warp.nonrigid_displacement(64, 64)) < 1e-9
        warp.affine[0, 1] = 0.01  # a shear: 0.32 px per 32 rows
        warp.field[0, 0, 1, 1] = 0.05
        assert float(warp.nonrigid_displacement(64, 64)) > 0.05
