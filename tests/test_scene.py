"""Scene-level training (mode="scene") on the real fieldimager DSM and orthophoto.

One network is trained on random windows of the whole raster and run on every tile.
Test-size settings; benchmarks/pipeline.py and benchmarks/throughput.py run the defaults.
"""
import pickle

import numpy as np
import pytest

import geosr
from geosr.errors import InputError
from geosr.core.metrics import border_jump_ratio, hillshade, rmse
from geosr.core.pair import prepare_pair
from geosr.methods import mmsr
from geosr.methods.scene import WINDOW, WINDOWS, load, predict, save, train, windows
from geosr.pipeline.train import lazy_train

from conftest import degrade

SCALE = 4
STEPS = 150
# The scene preset has 32 channels and batches of 8 windows of 64 x 64. 8 channels train about 3x faster
# than 16, and gave 0.835x bicubic here at 150 steps (2 windows a step: 0.91x; of 192 x 192: 0.826x).
CHANNELS = 8
BATCH = 8


@pytest.fixture(scope="module")
def case(fieldimager, tmp_path_factory):
    dsm, ortho = fieldimager
    source, truth = degrade(dsm, tmp_path_factory.mktemp("scene") / "dsm_x4.tif", SCALE)
    return {"source": geosr.open_raster(str(source)), "guide": geosr.open_raster(str(ortho)), "truth": truth}


def run_scene(case, **kw):
    """Scene mode at test size, without the alignment estimate and the self-check (not tested here)."""
    kw = {"mode": "scene", "epochs": STEPS, "channels": CHANNELS, "batch_size": BATCH, **kw}
    return with_model(case, None, **kw)


def with_model(case, model, **kw):
    """A run at test size given a trained scene ``model`` (default mode scene)."""
    kw = {"mode": "scene", "tile_size": 52, "align": "none", "selfcheck": False, **kw}
    return geosr.superresolve(case["source"], case["guide"], SCALE, model=model, **kw)


@pytest.fixture(scope="module")
def tiled_scene(case):
    """2 x 2 tiles sharing one scene model, trained when the output is computed, not before."""
    lazy = run_scene(case)
    assert [len(c) for c in lazy.chunks] == [2, 2]
    model = lazy.encoding["geosr_model"]
    assert not model.trained
    out = lazy.compute()
    assert model.trained
    return lazy.chunks, out


def test_scene_mode_beats_bicubic_without_seams(case, tiled_scene):
    (ys, xs), out = tiled_scene
    bicubic = geosr.superresolve(case["source"], case["guide"], SCALE, "bicubic").compute()
    truth = case["truth"]
    ratio = rmse(out.values, truth) / rmse(bicubic.values, truth)
    print(f"scene mode, {CHANNELS} channels, {STEPS} steps of {BATCH} windows, 2x2 tiles: {ratio:.3f} x bicubic")
    assert ratio <= 0.90
    assert out.attrs["geosr_mode"] == "scene"
    # Seams: the hillshade's jumps across the tile borders are no larger than inside tiles.
    jumps = border_jump_ratio(hillshade(out.values, abs(out.rio.transform().a)), np.cumsum(ys)[:-1],
                              np.cumsum(xs)[:-1])
    print(f"hillshade p99 jump across tile borders / inside: {jumps:.2f}")
    assert jumps <= 1.5


def test_same_seed_same_output_and_another_seed_differs(case):
    """On a 48 x 48 source window in 2 x 2 tiles, 3 steps: the seed fixes the training windows and the weights."""
    window = {**case, "source": case["source"].isel(y=slice(24, 72), x=slice(24, 72))}

    def run(seed):
        return run_scene(window, epochs=3, seed=seed, tile_size=24).compute().values

    a = run(0)
    np.testing.assert_array_equal(run(0), a)
    assert not np.array_equal(run(1), a)


def test_windows_are_inside_the_raster_and_reproducible():
    w = windows((300, 200), 4, count=20, window=192, seed=3)
    assert w == windows((300, 200), 4, count=20, window=192, seed=3)
    assert w != windows((300, 200), 4, count=20, window=192, seed=4)
    assert all(h == 48 and wd == 48 and 0 <= y <= 300 - 48 and 0 <= x <= 200 - 48 for y, x, h, wd in w)
    assert windows((20, 30), 4, window=192) == [(0, 0, 20, 30)]  # smaller than a window: the whole raster


def test_scene_model_travels_and_checks_what_it_is_given():
    rng = np.random.default_rng(0)
    lr, g = rng.random((24, 24)), rng.random((3, 96, 96))
    model = train([lr], [g], SCALE, epochs=2)
    restored = pickle.loads(pickle.dumps(model))
    pair = prepare_pair(lr, g, SCALE)
    a, _ = predict(model, pair)
    b, _ = predict(restored, pair)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="trained with 3 guide band"):
        predict(model, prepare_pair(lr, g[:2], SCALE))
    with pytest.raises(InputError, match="no training window"):
        train([lr], [np.full((3, 96, 96), np.nan)], SCALE, epochs=1)


def test_lazy_training_draws_its_windows_from_the_lazy_arrays():
    import dask.array as da

    lr = da.from_array(np.ones((400, 400)), chunks=100)
    hr = da.from_array(np.ones((1, 1600, 1600), np.float32), chunks=(1, 400, 400))
    model = lazy_train(lr, hr, SCALE, {"epochs": 1, "seed": 0}, "t")
    wins = windows(lr.shape, SCALE)
    assert len(wins) == WINDOWS and all(h == w == -(-WINDOW // SCALE) for _, _, h, w in wins)
    trained = model.compute()
    assert trained.details["windows"] == WINDOWS and trained.scale == SCALE


def _repeated(lr, guide, model, frame=None):
    """A stand-in tile fit: each source pixel repeated SCALE x SCALE."""
    return np.kron(lr, np.ones((SCALE, SCALE)))


def test_tile_reads_wait_for_the_training_and_read_their_own_chunks():
    """The tiles' inputs, gated on the training: on 2 threads, no chunk of theirs is read while the
    model trains (the training reads only the chunks under its windows), and after it every chunk is
    read once, in 12 bands of tiles that each wait for an earlier one too."""
    import dask
    import dask.array as da

    from geosr.pipeline.tiling import tiled
    from geosr.pipeline.train import LazyModel

    reads = []
    model = None

    def read(block_id=None):
        reads.append((block_id, model is not None and model.trained))
        return np.ones((100, 100))

    lr = da.map_blocks(read, chunks=((100,) * 12, (100,) * 12), dtype=float, meta=np.array(()))
    hr = da.ones((1, 4800, 4800), np.float32, chunks=(1, 400, 400))
    model = LazyModel(lazy_train(lr, hr, SCALE, {"epochs": 1, "seed": 0, "channels": 4}, "bound"), "bound")
    under = {(y // 100, x // 100) for y0, x0, h, w in windows(lr.shape, SCALE)
             for y in (y0, y0 + h - 1) for x in (x0, x0 + w - 1)}
    mosaic = tiled(lr, hr, SCALE, 100, 4, _repeated, False, "bound", model.task)
    assert dask.compute(mosaic.sum(), scheduler="threads", num_workers=2)[0] == 4800 * 4800
    before = {b for b, trained in reads if not trained}
    after = [b for b, trained in reads if trained]
    assert before <= under and len(under) < 144
    assert sorted(after) == sorted((i, j) for i in range(12) for j in range(12))


def test_a_result_keeps_its_model_however_many_runs_trained_since():
    """A run's LazyModel is handed the model its compute trained, so saving it later trains nothing,
    even after more than KEPT other trainings in this process."""
    import dask.array as da

    from geosr.pipeline.train import KEPT, LazyModel

    lr = da.from_array(np.random.default_rng(0).random((200, 200)), chunks=100)
    hr = da.from_array(np.random.default_rng(1).random((1, 800, 800)).astype(np.float32), chunks=(1, 400, 400))

    def lazy(token):
        return LazyModel(lazy_train(lr, hr, SCALE, {"epochs": 1, "seed": 0, "channels": 4}, token), token)

    mine = lazy("mine")
    assert not mine.trained
    trained = mine.task.compute()  # as computing the output does
    assert mine.trained and mine.get() is trained
    for k in range(KEPT + 1):
        lazy(f"other-{k}").get()
    assert lazy("mine").trained is False  # no longer kept for a new run of that token ...
    assert mine.get() is trained  # ... but the run that trained it still has it


def test_auto_mode_is_per_tile_for_one_tile_and_scene_for_more_and_says_so(case, caplog):
    import logging

    one = geosr.superresolve(case["source"], case["guide"], SCALE, align="none", selfcheck=False)
    assert len(one.chunks[0]) * len(one.chunks[1]) == 1 and one.attrs["geosr_mode"] == "tile"
    assert one.attrs["geosr_mode_reason"] == "auto: 1 tile, fitted on its own"
    with caplog.at_level(logging.INFO, logger="geosr"):
        many = geosr.superresolve(case["source"], case["guide"], SCALE, tile_size=52, epochs=1, align="none",
                                  selfcheck=False)
    assert many.attrs["geosr_mode"] == "scene" and many.attrs["geosr_mode_reason"].startswith("auto: 4 tiles")
    assert any("mode scene (auto: 4 tiles" in r.getMessage() for r in caplog.records)
    assert many.encoding["geosr_model"].get().config["epochs"] == 1  # under auto too, epochs count the scene's steps
    given = geosr.superresolve(case["source"], case["guide"], SCALE, model=many.encoding["geosr_model"],
                               align="none", selfcheck=False)  # one tile, and a model: run it
    assert given.attrs["geosr_mode"] == "scene" and "a scene model was given" in given.attrs["geosr_mode_reason"]
    bicubic = geosr.superresolve(case["source"], case["guide"], SCALE, "bicubic", tile_size=52)
    assert bicubic.attrs["geosr_mode"] == "tile" and "geosr_mode_reason" not in bicubic.attrs
    with pytest.raises(InputError, match="batch_size sets the scene network's training"):
        geosr.superresolve(case["source"], case["guide"], SCALE, mode="tile", batch_size=2)
    with pytest.raises(InputError, match="mode must be one of"):
        geosr.superresolve(case["source"], case["guide"], SCALE, mode="scenes")


TUNE_EPOCHS = 40


def test_hybrid_mode_fine_tunes_the_scene_network_on_each_tile(case, tiled_scene):
    """The scene model of ``tiled_scene`` on a 48 x 48 source window in 2 x 2 tiles (model= skips the
    training), fine-tuned on each tile: closer to the truth than the scene network alone, without seams."""
    (_, _), scene_out = tiled_scene
    model = scene_out.encoding["geosr_model"]
    assert model.trained  # the fixture's compute trained it; no retraining here
    window = {**case, "source": case["source"].isel(y=slice(24, 72), x=slice(24, 72))}
    truth = case["truth"][96:288, 96:288]
    alone = with_model(window, model, tile_size=24).compute()
    lazy = with_model(window, model, mode="hybrid", epochs=TUNE_EPOCHS, tile_size=24)
    out = lazy.compute()
    scene_error, hybrid_error = rmse(alone.values, truth), rmse(out.values, truth)
    print(f"hybrid, {TUNE_EPOCHS} epochs per tile from the scene model: RMSE {hybrid_error:.4f} m "
          f"against {scene_error:.4f} m for the scene model alone")
    assert hybrid_error < 0.97 * scene_error
    assert out.attrs["geosr_mode"] == "hybrid" and [len(c) for c in lazy.chunks] == [2, 2]
    ys, xs = lazy.chunks
    jumps = border_jump_ratio(hillshade(out.values, abs(out.rio.transform().a)), np.cumsum(ys)[:-1],
                              np.cumsum(xs)[:-1])
    assert jumps <= 1.5


def test_no_fine_tuning_is_the_scene_network_itself():
    """A fit that starts from a scene model and runs 0 epochs predicts what the scene model does."""
    rng = np.random.default_rng(1)
    lr, g = rng.random((20, 20)), rng.random((3, 80, 80))
    model = train([lr], [g], SCALE, epochs=3, channels=CHANNELS)
    pair = prepare_pair(lr, g, SCALE)
    tuned, details = mmsr.run(pair, init=model, epochs=0)
    np.testing.assert_allclose(tuned, predict(model, pair)[0], rtol=0, atol=1e-9)
    assert details["start"] == "scene model" and details["config"]["channels"] == CHANNELS
    assert not np.allclose(mmsr.run(pair, init=model, epochs=5)[0], tuned)


def test_a_saved_model_gives_the_run_that_trained_it(case, tiled_scene, tmp_path):
    (_, _), out = tiled_scene
    path = geosr.save_model(out, tmp_path / "scene.npz")
    with pytest.raises(InputError, match="exists; pass overwrite=True"):
        geosr.save_model(out, path)
    again = with_model(case, str(path)).compute()
    np.testing.assert_array_equal(again.values, out.values)
    assert again.attrs["geosr_options"] != out.attrs["geosr_options"]  # "given (<hash>)" against "trained ..."
    assert "given (" in again.attrs["geosr_options"]
    model = load(path)
    assert model.details["windows"] > 0 and model.details["psf"] == "area" and model.config["channels"] == CHANNELS


def test_a_model_that_does_not_fit_the_run_is_refused(case, tiled_scene, tmp_path):
    (_, _), out = tiled_scene
    model = out.encoding["geosr_model"].get()
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    (tmp_path / "text.npz").write_text("not a model")
    (tmp_path / "empty.npz").touch()
    for bad, message in [(tmp_path / "other.npz", "is not a geosr scene model"),
                         (tmp_path / "text.npz", "cannot read the scene model"),
                         (tmp_path / "empty.npz", "cannot read the scene model")]:
        with pytest.raises(InputError, match=message):
            with_model(case, str(bad))
    with pytest.raises(InputError, match="trained at scale 4; this run has scale 2"):
        geosr.superresolve(case["source"], case["guide"], 2, mode="scene", model=model)
    with pytest.raises(InputError, match="model= is a trained scene network"):
        geosr.superresolve(case["source"], case["guide"], SCALE, mode="tile", model=model)
    with pytest.raises(InputError, match="trained with 3 guide band"):
        with_model(case, model, guide_bands=[1, 2])
    with pytest.raises(InputError, match="model= is trained already"):
        with_model(case, model, epochs=5)
    with pytest.raises(InputError, match="with a given scene model they do not"):
        with_model(case, model, quality=True, ensemble=2)
    with pytest.raises(InputError, match="superresolve_array fits one pair"):
        geosr.superresolve_array(np.ones((8, 8)), np.ones((3, 32, 32)), SCALE, model=model)
    with pytest.raises(InputError, match="this result has no scene model"):
        geosr.save_model(geosr.superresolve(case["source"], case["guide"], SCALE, "bicubic"), tmp_path / "m.npz")
    save(model, tmp_path / "kept.npz")
    assert load(tmp_path / "kept.npz").state.keys() == model.state.keys()
