"""`geosr upsample` as a GIS user reads it: the scale from the files, the plan up front and --dry-run,
progress lines in a log, option names that mean one thing, --help in sections, and `rio geosr`."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.warp import Resampling, reproject

from geosr.cli import main

from conftest import write_tif

# 2 x 2 tiles of the 24 x 24 source (fieldimager DSM averaged x4, 1.08 m; its orthophoto at 0.2 m).
TILES = ["--tile-size", "12", "--overlap", "4", "--align", "none", "--no-selfcheck"]


def _run(args):
    return CliRunner().invoke(main, ["upsample", *map(str, args)])


def test_scale_from_the_files_is_printed_and_sets_the_grid(small_files, tmp_path):
    out = tmp_path / "o.tif"
    res = _run([small_files["source"], small_files["guide"], "--method", "bicubic", "-o", out])
    assert res.exit_code == 0, res.output
    # 4 x 0.2704 m source pixels over 0.19996 m guide pixels: 5.41, rounded to 5
    assert "scale 5 from the files" in res.output and "ratio 5.409" in res.output, res.output
    with rasterio.open(small_files["source"]) as s, rasterio.open(out) as r:
        assert r.shape == (s.height * 5, s.width * 5) and r.crs == s.crs
        assert r.transform.almost_equals(s.transform @ Affine.scale(1 / 5))


def test_a_ratio_below_two_or_far_from_an_integer_is_refused_with_the_ratio(fieldimager, small_files, tmp_path):
    dsm, ortho = fieldimager
    # The full-resolution DSM (0.27 m) over its orthophoto (0.2 m): 1.35
    res = _run([dsm, ortho, "-o", tmp_path / "a.tif"])
    assert res.exit_code != 0 and "1.35 times the guide's" in res.output and "--scale N" in res.output, res.output
    assert "Traceback" not in res.output
    # The orthophoto resampled to 0.433 m: the 1.082 m source is 2.5 of its pixels
    with rasterio.open(small_files["guide"]) as g:
        t = g.transform * Affine.scale(1.082 / 2.5 / g.transform.a)
        h, w = int(g.height * g.transform.a / t.a), int(g.width * g.transform.a / t.a)
        coarse = np.zeros((3, h, w), np.float32)
        reproject(g.read(), coarse, src_transform=g.transform, src_crs=g.crs, dst_transform=t, dst_crs=g.crs,
                  resampling=Resampling.average)
        guide = write_tif(tmp_path / "g.tif", coarse, g.crs, t)
    res = _run([small_files["source"], guide, "-o", tmp_path / "b.tif"])
    assert res.exit_code != 0 and "2.5 times the guide's" in res.output and "far from an integer" in res.output
    assert not any(p.name.endswith(".tif") and p.name != "g.tif" for p in tmp_path.iterdir())


def test_dry_run_prints_the_plan_and_writes_nothing(small_files, tmp_path):
    out = tmp_path / "o.tif"
    res = _run([small_files["source"], small_files["guide"], "--scale", "4", *TILES[:4], "-o", out, "--dry-run"])
    assert res.exit_code == 0, res.output
    text = res.output
    for line in ("output grid: EPSG:32616, pixel 0.2704", "96 rows x 96 columns", "tiles: 2 x 2 of about 12 source",
                 "halo 4 source pixels", "mode: scene (auto: 4 tiles", "preset wide (32 channels, windows 5/3) trained "
                 "for 300 steps", "guide: resampled onto the output grid by auto: bilinear", "alignment: the guide is "
                 "displaced by", "sensor model: area", "self-check", "estimated time: about",
                 "dry run: nothing written"):
        assert line in text, (line, text)
    assert os.listdir(tmp_path) == []


def test_dry_run_of_tile_mode_names_its_budget(small_files, tmp_path):
    res = _run([small_files["source"], small_files["guide"], "--scale", "4", *TILES, "--mode", "tile", "--epochs", "40",
                "-o", tmp_path / "o.tif", "--dry-run", "-v"])
    assert res.exit_code == 0, res.output
    assert "mode: tile (as asked)" in res.output
    assert "preset fast (16 channels, windows 5/3), 40 epochs on each tile from a random start" in res.output
    assert "40 epochs x" in res.output and "on each of 4 tiles" in res.output  # -v: how the estimate was made
    assert os.listdir(tmp_path) == []


def test_progress_lines_in_a_log_when_stderr_is_not_a_terminal(small_files, tmp_path):
    out = tmp_path / "o.tif"
    cmd = [sys.executable, "-m", "geosr.cli", "upsample", small_files["source"], small_files["guide"], "--scale", "4",
           *TILES, "--mode", "scene", "--steps", "20", "-o", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # stderr is a pipe, as in a batch job
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    training = [x for x in lines if x.startswith("scene training: ")]
    tiles = [x for x in lines if x.startswith("tiles: ")]
    # every 10% of the 20 steps, each with the count, the share, the elapsed and the remaining time
    assert len(training) == 10 and training[0].startswith("scene training: 2/20 steps (10%), ") and "elapsed" in training[0]
    assert "left" in training[4] and training[-1].startswith("scene training: 20/20 steps (100%)")
    assert tiles[-1].startswith("tiles: 4/4 tiles (100%)") and "\r" not in p.stderr
    assert out.exists()


def test_old_spellings_work_with_a_warning_and_give_the_same_output(small_files, tmp_path):
    common = [small_files["source"], small_files["guide"], "--scale", "4", *TILES, "--mode", "scene", "-q"]
    new = _run([*common, "--steps", "3", "--preset", "wide", "-o", tmp_path / "new.tif"])
    assert new.exit_code == 0 and "warning" not in new.output, new.output
    old = _run([*common, "--train-steps", "3", "--preset", "scene", "-o", tmp_path / "old.tif"])
    assert old.exit_code == 0, old.output
    assert "--train-steps is now --steps" in old.output and "--preset scene is now --preset wide" in old.output
    epochs = _run([*common, "--epochs", "3", "-o", tmp_path / "epochs.tif"])
    assert epochs.exit_code == 0 and "--epochs with --mode scene (the training's steps) is now --steps" in epochs.output
    with rasterio.open(tmp_path / "new.tif") as a, rasterio.open(tmp_path / "old.tif") as b, \
            rasterio.open(tmp_path / "epochs.tif") as c:
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.read(), c.read())
    both = _run([*common, "--train-steps", "3", "--steps", "3", "-o", tmp_path / "x.tif"])
    assert both.exit_code != 0 and "give --steps only" in both.output


def test_help_groups_the_options_and_rio_finds_the_command():
    res = CliRunner().invoke(main, ["upsample", "--help"])
    assert res.exit_code == 0
    text = res.output
    heads = [text.index(f"\n{h}:\n") for h in ("Inputs", "Output", "Method", "Performance", "Messages")]
    assert heads == sorted(heads) and "Examples:" in text
    assert heads[0] < text.index("\n  --scale") < heads[1] < text.index("\n  --cog") < heads[2] < text.index("\n  --steps")
    assert "--train-steps" not in text and "wide" in text
    rio = Path(sys.executable).with_name("rio")
    if not rio.exists():
        pytest.fail(f"rasterio's rio command is not beside {sys.executable}")
    p = subprocess.run([str(rio), "geosr", "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Usage: rio geosr" in p.stdout and "Inputs:" in p.stdout, p.stdout + p.stderr


def test_overviews_inside_a_plain_geotiff_and_threads(small_files, tmp_path):
    from geosr.pipeline.io import overview_factors

    assert overview_factors((96, 96)) == [2]
    assert overview_factors((2048, 65536)) == [2, 4, 8, 16, 32, 64, 128]  # 65536 / 128 = 512: one block
    out = tmp_path / "o.tif"
    res = _run([small_files["source"], small_files["guide"], "--scale", "4", *TILES, "--method", "guided",
                "--overviews", "--threads", "1", "-q", "-o", out])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as r:
        assert r.driver == "GTiff" and r.overviews(1) == [2]
        full = r.read(1, masked=True).astype(np.float64)
        half = r.read(1, out_shape=(r.height // 2, r.width // 2), masked=True)  # GDAL reads the overview
        assert r.tags()["geosr_threads"] == "1"
    means = full.reshape(48, 2, 48, 2).mean(axis=(1, 3))
    ok = ~np.ma.getmaskarray(half) & ~np.ma.getmaskarray(means)
    assert ok.sum() > 1000
    np.testing.assert_allclose(np.asarray(half)[ok], np.asarray(means)[ok], atol=1e-3)


def test_integer_output_types_keep_centimetres_and_say_what_was_clipped(small_files, tmp_path):
    args = [small_files["source"], small_files["guide"], "--scale", "4", "--method", "bicubic", "-q"]
    assert _run([*args, "-o", tmp_path / "f.tif"]).exit_code == 0
    res = _run([*args, "--ot", "Int32", "--scale-factor", "0.01", "-o", tmp_path / "i.tif"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "f.tif") as f, rasterio.open(tmp_path / "i.tif") as i:
        assert i.dtypes[0] == "int32" and i.scales == (0.01,) and i.offsets == (0.0,)
        assert i.nodata == -2147483648 and (i.crs, i.transform) == (f.crs, f.transform)
        full, raw = f.read(1, masked=True), i.read(1, masked=True)
    assert np.array_equal(np.ma.getmaskarray(full), np.ma.getmaskarray(raw)) and full.count() > 1000
    np.testing.assert_allclose(raw.compressed() * 0.01, full.compressed(), atol=0.005 + 1e-4)  # rounded to 1 cm
    # heights of about 275 m in millimetres do not fit Int16: clipped, and said so
    with pytest.warns(UserWarning, match=r"pixels reached the limits of Int16 \(-32.767 to 32.767"):
        res = _run([*args, "--ot", "Int16", "--scale-factor", "0.001", "-o", tmp_path / "c.tif"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "c.tif") as c:
        assert c.nodata == -32768 and c.read(1, masked=True).max() == 32767
    res = _run([*args, "--ot", "UInt16", "--scale-factor", "0.01", "--offset", "250", "-o", tmp_path / "u.tif"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "u.tif") as u:
        assert u.nodata == 65535 and u.offsets == (250.0,)
        np.testing.assert_allclose(u.read(1, masked=True).compressed() * 0.01 + 250, full.compressed(), atol=0.0051)


def test_max_memory_stops_a_run_over_the_cap_and_lets_one_under_it_finish(small_files, tmp_path):
    from geosr.runtime.limit import parse_size

    assert parse_size("4G") == parse_size("4GiB") == parse_size("4gb") == 4 * 2**30
    assert parse_size("512M") == 512 * 2**20 and parse_size("1.5G") == int(1.5 * 2**30)
    res = _run([small_files["source"], small_files["guide"], "--max-memory", "lots", "-o", tmp_path / "x.tif"])
    assert res.exit_code != 0 and "a memory size such as 4G" in res.output
    base = [sys.executable, "-m", "geosr.cli", "upsample", small_files["source"], small_files["guide"], "--scale", "4",
            *TILES, "--mode", "tile", "--epochs", "30"]
    # Python with torch alone is over 100 MB: the guard stops the run, as an interrupt would
    p = subprocess.run([*base, "--max-memory", "100M", "-o", str(tmp_path / "small.tif")], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 1 and "over --max-memory 100 MB: stopped, nothing written" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not any(tmp_path.iterdir()), list(tmp_path.iterdir())
    p = subprocess.run([*base, "--max-memory", "8G", "-q", "-o", str(tmp_path / "big.tif")], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.tif"]
