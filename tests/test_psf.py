"""The sensor model (psf="area" | "gaussian"): the kernel is the Gaussian integrated over each pixel,
the loss and `exact` use it, and it pays off on real data degraded by a Gaussian sensor."""
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner
from scipy.stats import norm

import geosr
from geosr.core.backprojection import noise_gain
from geosr.cli import main
from geosr.errors import InputError
from geosr.core.metrics import rmse
from geosr.core.psf import degrade, degrade_torch, psf_from
from geosr.core.sampling import avg_pool

from conftest import write_tif

GAUSS = psf_from("gaussian", 0.5)


def test_kernel_is_the_gaussian_integrated_over_each_hr_pixel():
    scale = 4
    # One bright HR pixel at row 9, col 6 of a 16 x 16 image: cell (1, 1) sees it at an offset
    # of ((9 + 0.5) / 4 - 0.5 - 1) = 0.875 LR px down and (6.5 / 4 - 1.5) = 0.125 LR px right.
    hr = np.zeros((16, 16))
    hr[9, 6] = 1.0

    def mass(offset):  # the Gaussian's integral over one HR pixel (1/4 LR px wide), in LR px
        return norm.cdf((offset + 0.125) / 0.5) - norm.cdf((offset - 0.125) / 0.5)

    # the kernel is truncated at 1.5 LR px (3 sigma) and normalised over what is left
    total = sum(mass((k + 0.5) / 4 - 1.5) for k in range(12))
    expected = mass(0.875) * mass(0.125) / total ** 2
    assert degrade(hr, scale, GAUSS)[1, 1] == pytest.approx(expected, rel=1e-12)
    # the cell the pixel is in is not the only one that sees it, unlike avg-pool
    assert (degrade(hr, scale, GAUSS) > 0).sum() == 9 and (avg_pool(hr, scale) > 0).sum() == 1


def test_area_is_avg_pool_and_torch_matches_numpy(dsm_crop):
    hr = dsm_crop.astype(np.float64)
    assert np.array_equal(degrade(hr, 4, psf_from("area")), avg_pool(hr, 4))
    for sigma in (0.3, 0.5, 1.0):
        p = psf_from("gaussian", sigma)
        t = degrade_torch(torch.from_numpy(hr)[None, None], 4, p)[0, 0].numpy()
        np.testing.assert_allclose(t, degrade(hr, 4, p), rtol=0, atol=1e-9)
    # A symmetric kernel keeps a plane; at the raster's edge it is renormalised, not zero-padded.
    yy, xx = np.mgrid[0:64, 0:64]
    plane = 270.0 + 0.01 * yy - 0.02 * xx
    np.testing.assert_allclose(degrade(plane, 4, GAUSS)[1:-1, 1:-1], avg_pool(plane, 4)[1:-1, 1:-1], atol=1e-9)
    assert np.abs(degrade(plane, 4, GAUSS) - avg_pool(plane, 4)).max() < 0.02  # edge cells, not 270 m off


@pytest.fixture(scope="module")
def gaussian_sensor_pair(depth_pairs):
    """The real depth map seen by a Gaussian sensor (sigma 0.5 LR px), x4, and its RGB guide."""
    target, guide = depth_pairs
    truth = target[0, :96, :96].astype(np.float64)
    return truth, degrade(truth, 4, GAUSS), guide[0][:, :96, :96]


def test_exact_keeps_the_gaussian_model_and_matching_the_sensor_pays_off(gaussian_sensor_pair):
    truth, source, guide = gaussian_sensor_pair
    scores = {}
    for psf in ("area", "gaussian"):
        out, info = geosr.superresolve_array(source, guide, 4, "mmsr", psf=psf, epochs=150, seed=0, align="none",
                                             selfcheck=False, return_info=True)
        seen = degrade(out.astype(np.float64), 4, psf_from(psf))
        assert np.abs(seen - source).max() < 1e-4 and info.residual.max < 1e-4  # 8-bit depth: 0 to 255
        scores[psf] = rmse(out, truth)
    bicubic = rmse(geosr.superresolve_array(source, guide, 4, "bicubic", exact=False), truth)
    print(f"\nGaussian sensor x4, depth 96 x 96: bicubic {bicubic:.2f}, mmsr with the area loss "
          f"{scores['area']:.2f}, with the gaussian loss {scores['gaussian']:.2f}")
    # measured 9.73 and 7.22 (bicubic 11.64): the loss that matches the sensor is far better
    assert scores["gaussian"] < 0.8 * scores["area"]
    assert scores["gaussian"] < 0.7 * bicubic


def test_a_wide_psf_is_not_inverted(gaussian_sensor_pair):
    """sigma 0.8 would amplify noise 300x if solved exactly; only the smooth back-projection runs."""
    truth, _, guide = gaussian_sensor_pair
    wide = psf_from("gaussian", 0.8)
    assert noise_gain(GAUSS, 4) < 8 and noise_gain(wide, 4) > 300
    source = degrade(truth, 4, wide)
    noisy = source + np.random.default_rng(0).normal(0, 1.0, source.shape)  # one grey level of noise
    out, info = geosr.superresolve_array(noisy, guide, 4, "bicubic", psf="gaussian", psf_sigma=0.8, return_info=True)
    raw = geosr.superresolve_array(noisy, guide, 4, "bicubic", exact=False)
    before = np.abs(degrade(raw, 4, wide) - noisy).max()
    assert info.residual.max < 0.5 * before  # closer to the source than bicubic ...
    assert rmse(out, truth) < 1.2 * rmse(raw, truth)  # ... without blowing the noise up


@pytest.mark.parametrize("psf, sigma, message", [
    ("box", None, "psf must be one of"),
    ("gaussian", -1.0, "psf_sigma must be a number of LR pixels in (0, 4]"),
    ("gaussian", 9.0, "psf_sigma must be a number of LR pixels in (0, 4]"),
    ("area", 0.5, "psf_sigma (--psf-sigma) applies to psf='gaussian'"),
])
def test_bad_psf_is_refused_before_any_work(psf, sigma, message, gaussian_sensor_pair):
    _, source, guide = gaussian_sensor_pair
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        geosr.superresolve_array(source, guide, 4, psf=psf, psf_sigma=sigma, epochs=1)


def test_tiled_gaussian_run_from_the_cli_keeps_the_model_across_tiles(fieldimager, tmp_path):
    """The real drone DSM seen by a Gaussian sensor, x4, in 2 x 2 tiles: the whole mosaic, seen by
    the same sensor, gives the source back, including the cells at tile borders, and the quality
    layers' residual is that same model."""
    dsm, ortho = fieldimager
    with rasterio.open(dsm) as r:
        truth = r.read(1, window=((150, 246), (150, 246))).astype(np.float64)
        t = r.window_transform(((150, 246), (150, 246)))
        crs = r.crs
        assert (truth > -1e30).all()
    source = write_tif(tmp_path / "src.tif", degrade(truth, 4, GAUSS).astype(np.float32), crs, t @ Affine.scale(4))
    out, q = tmp_path / "out.tif", tmp_path / "q.tif"
    args = ["upsample", source, str(ortho), "--scale", "4", "--tile-size", "12", "--overlap", "4", "--epochs", "20",
            "--psf", "gaussian", "--psf-sigma", "0.5", "-q", "-o", str(out), "--quality", str(q)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as r:
        o, tags = r.read(1).astype(np.float64), r.tags()
    with rasterio.open(source) as r:
        src = r.read(1).astype(np.float64)
    with rasterio.open(q) as r:
        residual = r.read(2).astype(np.float64)
    assert tags["geosr_psf"] == "gaussian" and float(tags["geosr_psf_sigma"]) == 0.5
    seen = degrade(o, 4, GAUSS)
    err = np.abs(seen - src)
    print(f"\nmax |degrade(output) - source|: {err.max():.2e} m over the mosaic, "
          f"{err[11:13].max():.2e} m on the cells either side of the tile border")
    # DSM heights ~275 m: float32 rounding inside the tiles, about a millimetre at their borders
    # (0.038 m before the second, haloed correction pass), where the blocks do not iterate to agreement.
    inside = np.ones(err.shape, bool)
    inside[9:15] = inside[:, 9:15] = False
    assert err[inside].max() < 1e-4 and err.max() < 3e-3
    np.testing.assert_allclose(residual, np.repeat(np.repeat(seen - src, 4, 0), 4, 1), atol=1e-4)
    # the same run with --psf area would not have been told about the blur
    res = CliRunner().invoke(main, ["upsample", source, str(ortho), "--scale", "4", "--psf", "area", "--psf-sigma",
                                    "0.5", "-o", str(tmp_path / "x.tif")])
    assert res.exit_code != 0 and "applies to psf='gaussian'" in res.output


# psf="auto": the sensor model estimated from the pair

def _scipy_gaussian_sensor(truth, scale, sigma=0.5, noise=0.01):
    """A Gaussian sensor written with scipy, not geosr's model (benchmarks/quality.py's): blur of ``sigma``
    LR px sampled at each cell centre, plus white noise of ``noise`` x the truth's std."""
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(truth, sigma * scale, mode="reflect")
    c = scale // 2
    rows = [c - 1, c] if scale % 2 == 0 else [c]
    h, w = truth.shape[0] // scale, truth.shape[1] // scale
    lr = blurred[: h * scale, : w * scale].reshape(h, scale, w, scale)[:, rows][:, :, :, rows].mean(axis=(1, 3))
    return lr + np.random.default_rng(0).normal(0.0, noise * truth.std(), lr.shape)


def test_auto_tells_a_gaussian_sensor_from_cell_means(depth_pairs):
    """On the real depth maps x4 (256 x 256): sigma within 0.15 of the truth where a Gaussian sensor
    made the source, area where it is the cell mean (no fit: the estimate alone)."""
    from geosr.core.psf import estimate

    target, guide = depth_pairs
    for i in range(3):
        truth = target[i].astype(np.float64)
        blurred = estimate(_scipy_gaussian_sensor(truth, 4), guide[i], 4).psf
        assert blurred.kind == "gaussian" and abs(blurred.sigma - 0.5) <= 0.15, (i, blurred)  # measured 0.40
        assert estimate(avg_pool(truth, 4), guide[i], 4).psf.kind == "area", i


def test_auto_from_the_cli_estimates_writes_and_reuses_the_model(fieldimager, tmp_path):
    """The real drone DSM x4 (256 x 256 px under the orthophoto, which geosr warps and aligns): cell means
    are read as area, a Gaussian sensor as a Gaussian; the estimate is printed and in the tags, the run
    uses it (exact keeps that model), and a spec rebuilt from the tags has it."""
    from rasterio.windows import Window

    from conftest import degrade as average
    from geosr.core.psf import PSF
    from geosr.spec import RunSpec

    dsm, ortho = fieldimager
    win = Window(100, 100, 256, 256)
    cell_means, truth = average(dsm, tmp_path / "means.tif", 4, win)
    with rasterio.open(cell_means) as r:
        crs, transform = r.crs, r.transform
    blurred = write_tif(tmp_path / "blurred.tif", _scipy_gaussian_sensor(truth, 4).astype(np.float32), crs, transform)
    found = {}
    for name, source in (("means", cell_means), ("blurred", blurred)):
        out = tmp_path / f"{name}_x4.tif"
        res = CliRunner().invoke(main, ["upsample", str(source), str(ortho), "--scale", "4", "--method", "regression",
                                        "--psf", "auto", "-o", str(out)])
        assert res.exit_code == 0, res.output
        with rasterio.open(out) as r:
            tags, o = r.tags(), r.read(1).astype(np.float64)
        with rasterio.open(source) as r:
            src = np.where(r.read(1) > -1e30, r.read(1), np.nan).astype(np.float64)
        assert f"sensor model: {tags['geosr_psf_estimate']}" in res.output
        psf = RunSpec.from_tags(tags).psf
        assert tags["geosr_psf"] == psf.kind and "geosr_psf_estimate_residuals" in tags
        seen = degrade(o, 4, psf)
        ok = np.isfinite(seen) & np.isfinite(src)
        assert np.abs(seen - src)[ok].max() < 1e-3  # heights ~275 m: exact under the model chosen
        found[name] = psf
    assert found["means"] == PSF("area")
    assert found["blurred"].kind == "gaussian" and abs(found["blurred"].sigma - 0.5) <= 0.15  # measured 0.45


def test_auto_on_a_pair_too_small_falls_back_to_area_with_a_warning(gaussian_sensor_pair):
    truth, _, guide = gaussian_sensor_pair
    tiny = avg_pool(truth[:32, :32], 4)  # 8 x 8 cells: too few to tell a blur
    with pytest.warns(UserWarning, match=r"psf='auto' skipped: too few valid source cells"):
        out, info = geosr.superresolve_array(tiny, guide[:, :32, :32], 4, "bicubic", psf="auto", return_info=True)
    assert info.details["psf"]["geosr_psf"] == "area"
    assert info.details["psf"]["geosr_psf_estimate"].startswith("area: psf='auto' skipped: too few")
    assert np.abs(avg_pool(out.astype(np.float64), 4) - tiny).max() < 1e-4


def test_auto_takes_no_sigma():
    with pytest.raises(InputError, match=r"psf='auto' estimates sigma from the pair"):
        psf_from("auto", 0.5)


def test_point_model_keeps_each_cell_centre(dsm_crop):
    """psf="point": the output at each cell's centre (the central pixel at x3, the central 2 x 2 at x4)
    equals the source, where "area" keeps the cell mean instead."""
    hr = dsm_crop[:48, :48].astype(np.float64)
    for scale in (3, 4):
        n, c = 48 // scale, slice(scale // 2 - 1, scale // 2 + 1)
        source = hr[1::3, 1::3] if scale == 3 else hr.reshape(n, scale, n, scale)[:, c, :, c].mean(axis=(1, 3))
        guide = np.stack([hr] * 3).astype(np.float32)
        out = geosr.superresolve_array(source, guide, scale, "bicubic", psf="point").astype(np.float64)
        np.testing.assert_allclose(degrade(out, scale, psf_from("point")), source, rtol=0, atol=1e-4)
        if scale == 3:
            np.testing.assert_allclose(out[1::3, 1::3], source, rtol=0, atol=1e-4)
        assert np.abs(avg_pool(out, scale) - source).max() > 1e-3  # not the cell mean


def test_a_source_tagged_point_gets_the_point_model(small_files, tmp_path):
    """A GeoTIFF tagged AREA_OR_POINT=Point (the drone DSM's cells, retagged): the run says it uses the point
    model, writes it to the tags, and keeps each cell-centre value; the output keeps the tag."""
    with rasterio.open(small_files["source"]) as r:
        profile, values = r.profile, r.read()
    point = tmp_path / "point.tif"
    with rasterio.open(point, "w", **profile) as dst:
        dst.write(values)
        dst.update_tags(AREA_OR_POINT="Point")
    out = tmp_path / "out.tif"
    with pytest.warns(UserWarning, match=r"psf='area' replaced by psf='point': the source is tagged AREA_OR_POINT"):
        res = CliRunner().invoke(main, ["upsample", str(point), str(small_files["guide"]), "--scale", "4",
                                        "--method", "regression", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "sensor model: point: the source is tagged AREA_OR_POINT=Point" in res.output
    with rasterio.open(out) as r:
        tags, o = r.tags(), r.read(1).astype(np.float64)
    assert tags["geosr_psf"] == "point" and tags["AREA_OR_POINT"] == "Point"
    assert tags["geosr_psf_estimate"].startswith("point: the source is tagged AREA_OR_POINT=Point")
    np.testing.assert_allclose(degrade(o, 4, psf_from("point")), values[0], rtol=0, atol=1e-3)


def test_auto_estimates_each_band_of_a_multi_band_source(fieldimager, tmp_path):
    """Two bands of one file, the drone DSM as cell means and as a Gaussian sensor saw it: each band gets
    its own estimate, and the tags say which band got which."""
    from rasterio.windows import Window

    from conftest import degrade as average

    dsm, ortho = fieldimager
    cell_means, truth = average(dsm, tmp_path / "means.tif", 4, Window(100, 100, 256, 256))
    with rasterio.open(cell_means) as r:
        crs, transform, means = r.crs, r.transform, r.read(1)
    both = write_tif(tmp_path / "both.tif", np.stack([means, _scipy_gaussian_sensor(truth, 4).astype(np.float32)]),
                     crs, transform)
    res = CliRunner().invoke(main, ["upsample", both, str(ortho), "--scale", "4", "--band", "all", "--method",
                                    "regression", "--psf", "auto", "-q", "-o", str(tmp_path / "out.tif")])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "out.tif") as r:
        tags = r.tags()
    kinds = tags["geosr_psf"].split(" | ")
    assert kinds == ["area", "gaussian"] and tags["geosr_psf_estimate"].startswith("auto: area | auto: gaussian")
