"""The self-check (geosr.methods.selfcheck): the method one scale down on the user's own pair, scored
against the source, on real data; its windows; its tags, warning and CLI line."""
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geosr
from geosr.cli import main
from geosr.core.metrics import rmse
from geosr.core.sampling import avg_pool
from geosr.methods import selfcheck
from geosr.methods.engine import prepare


def test_windows_take_a_small_source_whole_and_one_window_per_quadrant_of_a_large_one():
    assert selfcheck.windows(np.ones((31, 80), bool), 4) == []  # under 8 x 4 pixels a side: nothing to check
    assert selfcheck.windows(np.ones((50, 256), bool), 4) == [(0, 0, 48, 256)]  # whole, in multiples of 4
    valid = np.zeros((1000, 700), bool)
    valid[100:900, 50:650] = True
    valid[:, 350:] = False  # the eastern half empty: two windows, one in each western quadrant
    found = selfcheck.windows(valid, 4)
    assert len(found) == 2 and all(h == w == 128 and x + w <= 350 for y, x, h, w in found)
    assert found[0][0] + 128 <= 500 <= found[1][0]
    # On a coarse map (a large raster's probes: cells of 100 x 100 pixels) the windows are in pixels.
    coarse = np.ones((10, 10), bool)
    found = selfcheck.windows(coarse, 8, np.arange(0, 1001, 100), np.arange(0, 1001, 100))
    assert len(found) == 4 and {(h, w) for _, _, h, w in found} == {(128, 128)}


def test_the_shared_depth_fit_carries_its_check_and_the_check_follows_the_protocol(depth_fit, depth_crop,
                                                                                   depth_bicubic):
    """Depth image 0's 128 x 128 crop at x4 (MMSR, 200 epochs, exact=False): the check runs on the whole
    32 x 32 source, degraded to 8 x 8. Its bicubic RMSE is the hand computation's, and its ratio is
    printed beside the true one (on a source this small it is a rough guide)."""
    truth, src, guide = depth_crop
    out, info = depth_fit
    check = info.selfcheck
    assert (check.windows, check.pixels, check.scale, check.method) == (1, 32 * 32, 4, "mmsr")
    by_hand = geosr.superresolve_array(avg_pool(src, 4), avg_pool(guide.astype(np.float64), 4), 4, "bicubic",
                                       exact=False)
    assert check.rmse_bicubic == pytest.approx(rmse(by_hand, src), rel=1e-9)
    true_ratio = rmse(out, truth) / rmse(depth_bicubic, truth)
    print(f"\nself-check {check.ratio:.3f}, true ratio {true_ratio:.3f}")
    assert check.helps and abs(check.ratio - true_ratio) < 0.15
    attrs = check.attrs()
    assert float(attrs["geosr_selfcheck_ratio"]) == pytest.approx(check.ratio, abs=1e-4)
    assert attrs["geosr_selfcheck_pixels"] == "1024 source pixels in 1 window(s)"


def test_a_guide_unrelated_to_the_source_is_flagged(depth_crop):
    """Noise as the guide, 50 epochs: one scale down the method does worse than bicubic, and says so."""
    _, src, _ = depth_crop
    pair, _, _ = prepare(src, np.random.default_rng(0).normal(size=(3, 128, 128)), 4)
    with pytest.warns(UserWarning, match="did not beat bicubic at that scale.*--align affine.*--psf"):
        check = selfcheck.of_pair(pair, "mmsr", {"epochs": 50, "progress": False}, exact=False)
    assert check.helps is False and check.ratio > 1


@pytest.mark.filterwarnings("ignore:self-check one scale down")  # 5 epochs do not beat bicubic
def test_the_checks_fits_stop_at_its_epoch_cap(depth_crop, monkeypatch):
    """The check fits MMSR for at most selfcheck.EPOCHS epochs a window, whatever the run's: 10000 asked
    for gives bitwise the check at the cap (here lowered to 5), and the tag says so."""
    _, src, guide = depth_crop
    pair, _, _ = prepare(src, guide, 4)
    monkeypatch.setattr(selfcheck, "EPOCHS", 5)
    capped = selfcheck.of_pair(pair, "mmsr", {"epochs": 10000, "progress": False}, exact=False)
    at_cap = selfcheck.of_pair(pair, "mmsr", {"epochs": 5, "progress": False}, exact=False)
    assert (capped.rmse, capped.rmse_bicubic) == (at_cap.rmse, at_cap.rmse_bicubic)
    assert selfcheck.capped("mmsr", {"epochs": 3}) == {"epochs": 3}  # fewer than the cap: as asked
    assert selfcheck.capped("cmsr", {"epochs": 900}) == {"epochs": 900}  # other methods: their own
    assert "at most 200 epochs a window" in selfcheck.ABOUT


def test_the_cli_prints_the_check_and_writes_it_to_the_tags(small_files, tmp_path):
    """A 24 x 24 source is too small to check one scale down at x4: the run says so and goes on;
    --no-selfcheck records that the check was off; bicubic does not take the flag."""
    base = ["upsample", small_files["source"], small_files["guide"], "--scale", "4", "--epochs", "1",
            "--align", "none"]
    res = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "a.tif")])
    assert res.exit_code == 0, res.output
    assert "self-check skipped: no window of at least 32 x 32 source pixels" in res.output
    with rasterio.open(tmp_path / "a.tif") as f:
        assert f.tags()["geosr_selfcheck"].startswith("skipped: no window")
    res = CliRunner().invoke(main, [*base, "--no-selfcheck", "-q", "-o", str(tmp_path / "b.tif")])
    assert res.exit_code == 0 and res.output == "", res.output
    with rasterio.open(tmp_path / "b.tif") as f:
        assert f.tags()["geosr_selfcheck"] == "off"
    res = CliRunner().invoke(main, ["upsample", "--scale", "4", small_files["source"], small_files["guide"], "--method", "bicubic",
                                    "--no-selfcheck", "-o", str(tmp_path / "c.tif")])
    assert res.exit_code != 0 and "--selfcheck does not apply to --method bicubic" in res.output, res.output
