"""Checkpoints never delete what geosr did not write, open when the graph runs, and load no code."""
import json
import pickle

import numpy as np
import pytest
import xarray as xr

import geosr
from geosr.runtime import checkpoint
from geosr.runtime.checkpoint import MARKER, TileStore, stores_of
from geosr.errors import InputError

# 2 x 2 tiles of the 24 x 24 source, 2 epochs: the checkpoint's behaviour, not the fit's quality.
RUN = dict(mode="tile", epochs=2, tile_size=12, overlap=4, progress=False, align="none")


@pytest.fixture(scope="module")
def pair(small_files):
    return geosr.open_raster(small_files["source"]), geosr.open_raster(small_files["guide"])


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_of_other_files_is_refused_and_left_untouched(pair, tmp_path):
    src, guide = pair
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    out = geosr.superresolve(src, guide, 4, checkpoint=folder, **RUN)  # building touches nothing
    with pytest.raises(InputError, match=f"{folder}.*not a geosr checkpoint.*never deletes"):
        out.compute()
    with pytest.raises(InputError, match="not a geosr checkpoint"):
        geosr.write(out, tmp_path / "o.tif", progress=False)
    assert files_in(folder) == ["notes.txt"] and (folder / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "o.tif").exists()
    checkpoint.remove(folder)  # not geosr's: nothing happens
    assert files_in(folder) == ["notes.txt"]


def test_building_twice_and_again_after_a_write(pair, tmp_path):
    src, guide = pair
    ckpt = tmp_path / "ckpt"
    first = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN)
    again = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN)  # a notebook cell run twice
    assert not ckpt.exists(), "nothing is opened before the graph runs"
    geosr.write(again, tmp_path / "o.tif", progress=False)
    assert not ckpt.exists(), "the checkpoint is removed after the write"
    geosr.write(first, tmp_path / "o.tif", progress=False, overwrite=True)  # the first graph still runs
    third = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN)
    geosr.write(third, tmp_path / "o.tif", progress=False, overwrite=True)
    assert not ckpt.exists()


def test_only_geosr_files_are_removed_and_a_rerun_here_reuses_its_tiles(pair, tmp_path):
    src, guide = pair
    ckpt = tmp_path / "ckpt"
    out = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN)
    values = out.values  # computed, not written: the checkpoint stays
    assert files_in(ckpt) == [MARKER, "tile-0-0.npy", "tile-0-1.npy", "tile-1-0.npy", "tile-1-1.npy"]
    # The same call in the same process continues from its own tiles: a tile replaced by zeros is loaded.
    np.save(ckpt / "tile-0-0.npy", np.zeros_like(np.load(ckpt / "tile-0-0.npy")))
    rerun = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN).values
    changed = np.abs(rerun - values)
    assert changed[:40, :40].max() > 0.01 > changed[-16:, -16:].max(), "loaded, not fitted again"
    (ckpt / "mine.txt").write_text("keep me")
    geosr.write(out, tmp_path / "o.tif", progress=False)
    assert files_in(ckpt) == ["mine.txt"], "geosr's files are gone, the user's stays, and so does the folder"


def test_a_checkpoint_from_another_process_needs_resume_or_overwrite(pair, tmp_path, monkeypatch):
    src, guide = pair
    ckpt = tmp_path / "ckpt"
    reference = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN).values
    monkeypatch.setattr(checkpoint, "SESSION", "another-process")  # as after a crash and a new start
    with pytest.raises(InputError, match=r"left 4 finished tile\(s\).*resume=True.*overwrite=True"):
        geosr.superresolve(src, guide, 4, checkpoint=ckpt, **RUN).compute()
    resumed = geosr.superresolve(src, guide, 4, checkpoint=ckpt, resume=True, **RUN)
    np.testing.assert_array_equal(resumed.values, reference)
    with pytest.raises(InputError, match="epochs was 2, now 3"):
        geosr.superresolve(src, guide, 4, checkpoint=ckpt, resume=True, **{**RUN, "epochs": 3}).compute()
    monkeypatch.setattr(checkpoint, "SESSION", "a third process")
    fresh = geosr.superresolve(src, guide, 4, checkpoint=ckpt, overwrite=True, **{**RUN, "epochs": 3})
    assert json.loads((ckpt / MARKER).read_text())["run"]["parameters"]["geosr_options"] != "" and fresh.shape
    fresh.compute()
    saved = json.loads((ckpt / MARKER).read_text())
    assert saved["session"] == "a third process" and '"epochs": 3' in saved["run"]["parameters"]["geosr_options"]


def test_each_slice_of_a_time_stack_has_its_own_folder(pair, tmp_path):
    src, guide = pair
    stack = xr.concat([src, src + 1.0], dim="time").assign_coords(time=np.array(["2021-06-01", "2021-07-01"],
                                                                                  dtype="datetime64[ns]"))
    ckpt = tmp_path / "ckpt"
    out = stack.geosr.superresolve(guide, scale=4, checkpoint=ckpt, **RUN)
    assert [s.folder.name for s in stores_of(out)] == ["time-2021-06-01", "time-2021-07-01"]
    out.isel(time=1).compute()  # July computed, not written: its tiles stay
    assert files_in(ckpt) == [MARKER, "time-2021-07-01"]
    geosr.write(out.isel(time=0).squeeze(drop=True), tmp_path / "june.tif", progress=False)
    assert files_in(ckpt) == [MARKER, "time-2021-07-01"], "June's checkpoint is gone, July's stays"
    assert len(list((ckpt / "time-2021-07-01").glob("tile-*.npy"))) == 4
    geosr.write(out.isel(time=1).squeeze(drop=True), tmp_path / "july.tif", progress=False)
    assert not ckpt.exists(), "the last slice written takes the group folder with it"


def test_the_scene_model_is_saved_as_arrays_and_a_pickle_is_never_loaded(pair, tmp_path):
    src, guide = pair
    ckpt = tmp_path / "ckpt"
    out = geosr.superresolve(src, guide, 4, checkpoint=ckpt, **{**RUN, "mode": "scene", "epochs": 3})
    assert not (ckpt / checkpoint.MODEL_FILE).exists()  # trained when computed, not before
    out.encoding["geosr_model"].get()
    store = stores_of(out)[0]
    model = store.load_model()
    with np.load(ckpt / checkpoint.MODEL_FILE, allow_pickle=False) as f:
        assert "settings" in f.files and any(k.startswith("state/") for k in f.files)
    assert model.scale == 4 and model.state.keys() and model.details["windows"] >= 1

    class Payload:  # what a hostile folder could hold: unpickling it would run code
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (ckpt / checkpoint.MODEL_FILE).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InputError, match="cannot read the scene model"):
        store.load_model()
    np.save(ckpt / "tile-0-0.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read the checkpoint tile"):
        store.load_tile(0, 0, (64, 64))
    assert not (tmp_path / "pwned").exists()


def test_no_module_unpickles_or_loads_torch_files_unsafely():
    """A static guard: geosr reads nothing with pickle, nor with torch.load without weights_only=True."""
    from pathlib import Path
    import re

    root = Path(geosr.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"pickle\.loads?\(|pickle\.Unpickler", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert "allow_pickle=True" not in text, path


def test_a_tile_of_the_wrong_shape_is_refused(tmp_path):
    store = TileStore(tmp_path / "c", {"parameters": {}, "inputs": {}}).open()
    store.save_tile(0, 0, np.zeros((8, 8)))
    with pytest.raises(InputError, match=r"float32 \(8, 8\), not float32 \(16, 16\)"):
        store.load_tile(0, 0, (16, 16))
