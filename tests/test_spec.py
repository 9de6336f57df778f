"""The run specification: defaults stated once, checked once, tags that read back as the same run."""
import dask.array as da
import pytest

from geosr import InputError
from geosr.methods.scene import HYBRID_PRESET, HYBRID_STEPS, TUNE_EPOCHS
from geosr.spec import RunSpec, not_applying


def test_tags_read_back_as_the_same_planned_run():
    spec = RunSpec.build(scale=4, method="mmsr", band=2, guide_bands=[1, 3], resampling="bilinear", feather=12.0,
                         mode="scene", batch_size=2, align="none", flat_mask=2.5, psf="gaussian", psf_sigma=0.7,
                         exact=False, epochs=30, seed=5, preset="depth")
    planned = spec.planned((300, 200))
    assert (planned.tile_size, planned.overlap, planned.mode) == (128, 8, "scene")
    again = RunSpec.from_tags({k: str(v) for k, v in planned.tags().items()})
    for name in ("scale", "method", "band", "guide_bands", "resampling", "feather", "mode", "batch_size", "align",
                 "psf", "psf_sigma", "exact", "tile_size", "overlap", "options"):
        assert getattr(again, name) == getattr(planned, name), name
    assert again.flat_mask.description == planned.flat_mask.description == "slope<2.5 deg"
    assert again.seed == 5


def test_a_hybrid_run_reads_back_with_its_training_steps():
    planned = RunSpec.build(scale=4, mode="hybrid", train_steps=40, batch_size=3, epochs=20).planned((300, 200))
    tags = {k: str(v) for k, v in planned.tags().items()}
    assert tags["geosr_mode"] == "hybrid" and "geosr_mode_reason" not in tags  # asked for, not chosen
    again = RunSpec.from_tags(tags).planned((300, 200))
    assert (again.mode, again.train_steps, again.batch_size, again.options["epochs"]) == ("hybrid", 40, 3, 20)
    assert again.train_options()["epochs"] == 40 and again.tile_options()["epochs"] == 20
    auto = RunSpec.build(scale=4, epochs=20).planned((300, 200))
    assert RunSpec.from_tags(auto.tags()).mode_reason.startswith("auto: 6 tiles")


def test_defaults_are_settled_once_for_the_scale_and_the_raster():
    spec = RunSpec(scale=8)
    assert spec.feather_px == 16 and RunSpec(scale=2).feather_px == 8  # max(2 * scale, 8)
    one = spec.planned((40, 40))
    assert (one.tile_size, one.overlap, one.mode) == (64, 4, "tile")  # 512 // 8, ceil(32 / 8); one tile
    many = spec.planned((400, 40))  # 7 tiles
    assert many.mode == "scene" and many.batch_size is None and many.train_options().get("epochs") is None
    assert many.replace(options={"epochs": 7}).train_options()["epochs"] == 7  # scene: epochs count its steps
    auto = RunSpec.build(scale=8, train_steps=40, epochs=20).planned((400, 40))  # train_steps win under auto
    assert auto.mode == "scene" and auto.train_options()["epochs"] == 40
    hybrid = RunSpec(scale=8, mode="hybrid").planned((400, 40))
    assert hybrid.tile_options()["epochs"] == TUNE_EPOCHS and hybrid.train_options()["epochs"] == HYBRID_STEPS
    assert hybrid.train_options()["preset"] == HYBRID_PRESET
    assert RunSpec(scale=8, mode="scene", train_steps=9).planned((400, 40)).train_options().get("preset") is None
    assert RunSpec(method="cmsr").planned((400, 400)).mode == "tile"
    assert RunSpec(method="bicubic").align == "none"  # bicubic does not look at the guide
    assert RunSpec().selfcheck and not RunSpec(method="bicubic").selfcheck  # nothing to check without a guide


def test_token_follows_every_setting_and_the_inputs():
    lr, hr = da.zeros((8, 8), chunks=4), da.zeros((3, 32, 32), chunks=16)
    base = RunSpec(scale=4, options={"epochs": 10}).planned((8, 8))
    assert base.token(lr, hr, None) == RunSpec(scale=4, options={"epochs": 10}).planned((8, 8)).token(lr, hr, None)
    others = [base.replace(exact=False), base.replace(options={"epochs": 11}), base.replace(feather=9.0),
              base.replace(mode="hybrid"), base.replace(mode="hybrid", train_steps=5),
              base.replace(psf="gaussian")]
    tokens = {s.token(lr, hr, None) for s in others} | {base.token(lr, hr + 1, None)}
    assert base.token(lr, hr, None) not in tokens and len(tokens) == len(others) + 1


def test_bad_settings_are_refused_with_what_to_do():
    with pytest.raises(InputError, match="pass quality=True as well"):
        RunSpec(ensemble=3)
    with pytest.raises(InputError, match="needs a learned method"):
        RunSpec(method="bicubic", quality=True, ensemble=3)
    with pytest.raises(InputError, match="method='cmsr' always runs tile by tile"):
        RunSpec(method="cmsr", mode="scene")
    with pytest.raises(InputError, match="batch_size sets the scene network's training"):
        RunSpec(mode="tile", batch_size=4)
    with pytest.raises(InputError, match="tile_size must be an integer >= 1"):
        RunSpec(tile_size=0)
    with pytest.raises(InputError, match="unknown MMSR option"):
        RunSpec.build(epoch=10)
    with pytest.raises(InputError, match="needs tiles with a halo of at least 4"):
        RunSpec(scale=4, overlap=2, tile_size=16).planned((64, 64))
    with pytest.raises(InputError, match="unknown setting"):
        RunSpec.from_tags({"geosr_scale": "4"}, tiles=3)


def test_options_that_a_method_ignores_are_named_with_why():
    assert not_applying("bicubic", ["epochs", "align", "band"]) == [
        ("epochs", "only learned methods optimise"), ("align", "bicubic does not use the guide")]
    assert not_applying("mmsr", ["epochs", "preset", "mode"]) == []
    assert [n for n, _ in not_applying("cmsr", ["preset", "mode", "seed"])] == ["preset", "mode"]
    assert not_applying("bicubic", ["selfcheck"]) == [("selfcheck", "bicubic does not use the guide")]


def test_the_checkpoint_key_holds_the_grid_and_the_inputs():
    from affine import Affine
    from odc.geo.geobox import GeoBox

    box = GeoBox((8, 8), Affine(1, 0, 0, 0, -1, 8), "EPSG:32616")
    spec = RunSpec().planned((8, 8))
    key = spec.checkpoint_key(spec.tags(), box, {"source": "sha256 ab"})
    assert key["inputs"] == {"source": "sha256 ab"}
    assert key["parameters"]["grid"][1:] == [list(box.affine)[:6], [8, 8]]
    assert key["parameters"]["geosr_scale"] == 4 and key["parameters"]["geosr_tile_size"] == 128
