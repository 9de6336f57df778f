"""MMSR on real pairs: it must beat bicubic, be reproducible, keep cell means on request, and
respect invalid pixels on both sides."""
import numpy as np
import pytest

from geosr import superresolve_array
from geosr.core.metrics import cycle_residual, rmse
from geosr.core.sampling import avg_pool

from conftest import DEPTH_FIT


@pytest.fixture(scope="module")
def crop(depth_crop):
    """The shared 128 x 128 depth crop at x4: 32 x 32 LR source, RGB guide."""
    return depth_crop


@pytest.fixture(scope="module")
def fitted(depth_fit):
    """The network's own output (exact=False), fitted once for the session (conftest.depth_fit)."""
    return depth_fit


def test_beats_bicubic_on_real_depth(crop, fitted, depth_bicubic):
    truth, src, guide = crop
    out, info = fitted
    bic = rmse(depth_bicubic, truth)
    assert rmse(out, truth) < 0.75 * bic
    assert info.details["loss_history"][-1] < 0.5 * info.details["loss_history"][0]


def test_same_seed_same_output_other_seed_differs(crop):
    """Reproducibility does not need a converged fit: 5 epochs on a 16 x 16 corner of the crop, three runs."""
    truth, src, guide = crop
    truth, src, guide = truth[:64, :64], src[:16, :16], guide[:, :64, :64]
    first, again, other = (superresolve_array(src, guide, 4, exact=False, align="none", epochs=5, seed=seed,
                                              progress=False) for seed in (0, 0, 1))
    np.testing.assert_array_equal(again, first)
    assert np.abs(other - first).max() > 1e-3 * np.ptp(truth)


def test_exact_by_default_preserves_cell_means_and_reports_residual(crop, fitted):
    """The default path at 20 epochs (keeping cell means needs no converged fit); the shared
    250-epoch fit back-projected for its effect on the accuracy."""
    from geosr.core.backprojection import back_project

    truth, src, guide = crop
    out, info = fitted
    exact, exact_info = superresolve_array(src, guide, 4, return_info=True, epochs=20, progress=False)
    assert exact_info.exact
    value_range = src.max() - src.min()
    assert info.residual.max > 1e-3 * value_range  # the network alone does not match the cells exactly
    assert exact_info.residual.max <= 1e-4 * value_range
    # The reported residual is the real one.
    assert exact_info.residual == cycle_residual(exact, src, 4)
    assert info.residual.rmse == pytest.approx(np.sqrt(np.mean((avg_pool(out.astype(float), 4) - src) ** 2)))
    # Back-projection corrects, it does not degrade: the result stays as close to the truth.
    corrected = back_project(out, src, np.isfinite(src), 4)
    assert cycle_residual(corrected, src, 4).max <= 1e-4 * value_range
    assert rmse(corrected, truth) <= 1.02 * rmse(out, truth)


@pytest.mark.parametrize("offset, relief", [(0.0, 1.0), (3700.0, 0.3)])
def test_exact_on_real_dsm_with_invalid_cells(dsm_crop, offset, relief):
    # A flat tile at 3700 m: float32 spacing there (2.4e-4 m) is 10x the tolerance (1e-4 of
    # a 0.23 m range), so plain rounding to float32 would break the cell means.
    src = (avg_pool(dsm_crop.astype(np.float64), 4) - 275.0) * relief + offset
    src[0:3, 0:2] = np.nan
    guide = np.stack([dsm_crop, np.roll(dsm_crop, 3, axis=0)])  # any real HR image will do as guide here
    out, info = superresolve_array(src, guide, 4, return_info=True, epochs=5, progress=False)
    assert np.isnan(out[:12, :8]).all() and np.isfinite(out[12:, :]).all()
    tolerance = 1e-4 * (np.nanmax(src) - np.nanmin(src))
    pooled = out.astype(np.float64).reshape(16, 4, 16, 4).mean(axis=(1, 3))
    ok = np.isfinite(src)
    assert np.abs(pooled[ok] - src[ok]).max() <= tolerance
    assert info.residual.cells == src.size - 6 and info.residual.max <= tolerance


def test_invalid_source_pixels_are_masked_from_the_loss(crop):
    """Masked cells cannot influence the fit: whatever garbage they hold, the output is the same, bit for
    bit (20 epochs: the seed fixes the rest), and NaN over them only."""
    _, src, guide = crop
    hole = np.zeros(src.shape, bool)
    hole[10:14, 10:14] = True
    runs = []
    for garbage in (1e6, -3.0):
        broken = src.copy()
        broken[hole] = garbage
        runs.append(superresolve_array(broken, guide, 4, mask=hole, exact=False, return_info=True, epochs=20,
                                       align="none", progress=False))
    (out, info), (other, _) = runs
    np.testing.assert_array_equal(out, other)
    assert info.details["loss_cells"] == src.size - 16
    assert np.isnan(out[40:56, 40:56]).all()
    valid = np.isfinite(out)
    assert valid.sum() == 128 * 128 - 256


def test_invalid_guide_falls_back_to_bicubic(crop, depth_bicubic):
    """100 epochs (the fallback and its feathered edge do not need a converged fit)."""
    truth, src, guide = crop
    g = guide.astype(np.float64).copy()
    g[:, :, 80:] = np.nan  # the guide covers only the left 80 columns
    fit = dict(epochs=100, align="none", selfcheck=False, progress=False)
    # exact=False: the blend itself; back-projection would then adjust both sides of the edge.
    out = superresolve_array(src, g, 4, exact=False, **fit)
    bic = depth_bicubic
    feather = 8  # default: max(2 * scale, 8) HR pixels
    np.testing.assert_allclose(out[:, 80:], bic[:, 80:], rtol=0, atol=1e-4)
    assert np.isfinite(out).all()  # no pixel that had data is lost
    # Inside the guide's footprint the guided result differs from bicubic and is better.
    inside = (slice(None), slice(0, 80 - feather))
    assert rmse(out[inside], truth[inside]) < 0.9 * rmse(bic[inside], truth[inside])  # measured 0.77 (250 epochs: 0.58)
    # The guided correction fades out towards the footprint edge instead of stopping dead:
    # against a hard switch (feather=0), the step at the edge is at least 4x smaller (measured 20x).
    hard = superresolve_array(src, g, 4, feather=0, exact=False, **fit)
    step = np.abs((out - bic)[:, 79]).max()
    hard_step = np.abs((hard - bic)[:, 79]).max()
    assert step <= 0.25 * hard_step


def test_output_follows_source_units_and_ignores_guide_band_scaling(crop):
    # Per-band standardisation: metres vs millimetres, or a guide band x10, changes nothing but units.
    truth, src, guide = crop
    base = superresolve_array(src, guide, 4, epochs=10, progress=False)
    rescaled_guide = guide * np.array([10.0, 1.0, 0.01])[:, None, None] + np.array([0.0, 500.0, -3.0])[:, None, None]
    scaled = superresolve_array(src * 1000.0 + 5.0, rescaled_guide, 4, epochs=10, progress=False)
    np.testing.assert_allclose((scaled.astype(np.float64) - 5.0) / 1000.0, base, rtol=0, atol=1e-3 * np.ptp(src))


def test_guided_filter_respects_source_holes(dsm_crop):
    from conftest import require

    require("cv2.ximgproc")
    src = avg_pool(dsm_crop.astype(np.float64), 4)
    src[6:9, 4:7] = np.nan
    out = superresolve_array(src, np.stack([dsm_crop, dsm_crop.T]), 4, method="guided")
    hole = np.zeros((64, 64), bool)
    hole[24:36, 16:28] = True
    assert np.isnan(out[hole]).all() and np.isfinite(out[~hole]).all()
    ring = out[20:40, 12:32][~hole[20:40, 12:32]]
    assert np.nanmin(src) - 0.05 <= ring.min()  # not dragged towards a zero fill


def test_paper_presets_are_the_paper(crop):
    from geosr.methods.mmsr import config_for

    depth, rs = config_for("depth"), config_for("remote-sensing")
    assert (depth.channels, depth.source_neighbourhood, depth.guide_neighbourhood, depth.epochs) == (64, 11, 5, 1000)
    assert (rs.channels, rs.source_neighbourhood, rs.guide_neighbourhood, rs.epochs) == (64, 5, 3, 1000)
    assert (depth.lr, depth.lr_decay, depth.lr_decay_every, depth.guide_weight_decay) == (0.002, 0.9998, 5, 5e-4)
    truth, src, guide = crop
    _, info = superresolve_array(src[:8, :8], guide[:, :32, :32], 4, preset="depth", epochs=3,
                                 return_info=True, progress=False)
    assert len(info.details["loss_history"]) == 3  # one epoch = one optimisation step over the whole pair
    assert info.details["config"]["source_neighbourhood"] == 11 and info.details["device"] == "cpu"
