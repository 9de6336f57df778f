"""Resumable runs: a run killed partway continues with --resume and gives the same output bit for bit."""
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geosr.runtime.checkpoint import TileStore, folder_for
from geosr.cli import main

# 2 x 2 tiles of 12 x 12 source pixels; no alignment estimate (not what is tested here).
TILES = ["--tile-size", "12", "--overlap", "4", "--scale", "4", "--align", "none"]


@pytest.fixture(scope="module")
def files(small_files):
    return str(small_files["source"]), str(small_files["guide"])


def start(args):
    return subprocess.Popen([sys.executable, "-m", "geosr.cli", "upsample", "--scale", "4", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cli(*args):
    """One run in a fresh process, as the killed runs are: torch's thread count (an OpenMP
    per-thread setting, inherited by dask's long-lived pool in this process) is then the
    same in every run compared bit for bit."""
    proc = start(args)
    output, _ = proc.communicate(timeout=600)
    return SimpleNamespace(exit_code=proc.returncode, output=output)


def refused(*args):
    """A run that must stop before any fit, with a message: in this process (CliRunner), as another
    process than the one that left the checkpoint (this one's checkpoint session differs from it)."""
    res = CliRunner().invoke(main, ["upsample", "--scale", "4", *map(str, args)])
    assert res.exit_code != 0, res.output
    return res


def kill_when(proc, ready, timeout=180):
    """SIGKILL ``proc`` (no chance to clean up, like a crash) as soon as ``ready()`` holds."""
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and not ready():
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.05)
        assert ready(), "the run never reached the point to interrupt"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)


def read(path):
    with rasterio.open(path) as r:
        return r.read(1), r.transform, r.crs


def test_tile_mode_run_killed_then_resumed_equals_an_uninterrupted_run(files, tmp_path):
    original, source, guide = tmp_path / "original.tif", tmp_path / "src.tif", files[1]
    shutil.copy(files[0], original)
    shutil.copy(original, source)
    args = [source, guide, *TILES, "--mode", "tile", "--epochs", "30"]
    res = cli(*args, "-o", tmp_path / "ref.tif")
    assert res.exit_code == 0, res.output
    assert not folder_for(tmp_path / "ref.tif").exists(), "the checkpoint is removed after success"

    out = tmp_path / "out.tif"
    ckpt = folder_for(out)
    kill_when(start([*args, "-o", out]), lambda: len(list(ckpt.glob("tile-*.npy"))) >= 1)
    done = len(list(ckpt.glob("tile-*.npy")))
    assert not out.exists() and 1 <= done < 4
    # float32 like the output, so the checkpoint fits the disk space the CLI checked for.
    assert {np.load(t).dtype for t in ckpt.glob("tile-*.npy")} == {np.dtype(np.float32)}

    res = refused(*args, "-o", out)
    assert "--resume" in res.output and "finished tile" in res.output, res.output

    # A changed input cannot be resumed from, and the checkpoint is left alone.
    with rasterio.open(source, "r+") as r:
        a = r.read(1)
        a[5, 5] += 1.0
        r.write(a, 1)
    res = refused(*args, "-o", out, "--resume")
    assert "changed" in res.output and "src.tif" in res.output, res.output
    assert len(list(ckpt.glob("tile-*.npy"))) == done

    shutil.copy(original, source)  # the same bytes again: resuming is allowed
    res = cli(*args, "-o", out, "--resume")
    assert res.exit_code == 0, res.output
    assert f"{done} of 4 tiles already done" in res.output, res.output
    ref, resumed = read(tmp_path / "ref.tif"), read(out)
    np.testing.assert_array_equal(resumed[0], ref[0])
    assert resumed[1:] == ref[1:]
    assert not ckpt.exists()
    assert not list(tmp_path.glob(".out.tif.geosr-partial-*")), "the killed run's temporary output is cleaned up"


def test_overwrite_discards_an_old_checkpoint(files, tmp_path):
    """Only exit codes, messages and files are compared: both runs in this process."""
    out = tmp_path / "o.tif"
    old = TileStore(folder_for(out), {"parameters": {"epochs": 1}, "inputs": {}})
    old.session = "an earlier process"
    old.open().save_tile(0, 0, np.zeros((56, 56)))
    args = [*files, *TILES, "--mode", "tile", "--epochs", "5", "-o", out]
    res = refused(*args)
    assert "1 finished tile" in res.output and "--overwrite" in res.output, res.output
    assert old.has_tile(0, 0)
    res = CliRunner().invoke(main, ["upsample", "--scale", "4", *map(str, args), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert out.exists() and not folder_for(out).exists()


def test_scene_mode_resumes_with_the_trained_model(files, tmp_path):
    source, guide = files
    args = [source, guide, *TILES, "--mode", "scene", "--steps", "10"]
    res = cli(*args, "-o", tmp_path / "ref.tif")
    assert res.exit_code == 0, res.output
    out = tmp_path / "out.tif"
    kill_when(start([*args, "-o", out]), lambda: (folder_for(out) / "scene-model.npz").exists())
    res = cli(*args, "-o", out, "--resume")
    assert res.exit_code == 0, res.output
    assert "scene model trained" in res.output
    np.testing.assert_array_equal(read(out)[0], read(tmp_path / "ref.tif")[0])


def test_resume_without_a_checkpoint_says_so(files, tmp_path):
    res = refused(*files, *TILES, "-o", tmp_path / "o.tif", "--resume")
    assert "no checkpoint" in res.output


@pytest.mark.parametrize("choice", ["keep", "discard"])
def test_on_interrupt_keeps_or_discards_the_finished_tiles(files, tmp_path, choice):
    """SIGTERM after a tile is done: --on-interrupt keep (the default) leaves the checkpoint for --resume,
    discard (the QGIS plugin's) leaves nothing."""
    out = tmp_path / "o.tif"
    ckpt = folder_for(out)
    proc = start([files[0], files[1], *TILES, "--mode", "tile", "--epochs", "60", "--no-selfcheck", "-o", out,
                  "--on-interrupt", choice])
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not list(ckpt.glob("tile-*.npy")):
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.05)
        assert list(ckpt.glob("tile-*.npy")), "no tile was finished to keep or discard"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted: nothing written" in output, output
    if choice == "keep":
        assert "--resume" in output and list(ckpt.glob("tile-*.npy"))
    else:
        assert "--resume" not in output and sorted(p.name for p in tmp_path.iterdir()) == []
