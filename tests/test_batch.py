"""`geosr upsample` over many sources: a glob, a folder, a list or a CSV of pairs, one guide or one per source.

Real data: three 24 x 24 crops of the fieldimager drone DSM averaged x4, with the 0.2 m orthophoto (whole,
on its own grid) as the one guide, or its crop under each tile as that tile's guide. The fast
regression sharpener (which reads the guide) keeps the runs short; one scene-mode batch checks the
shared model.
"""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.windows import Window

from geosr.cli import main

from conftest import degrade, write_tif

FAST = ["--scale", "4", "--method", "regression", "--no-selfcheck", "-q"]
CORNERS = {"a": (150, 150), "b": (150, 246), "c": (246, 150)}


@pytest.fixture(scope="module")
def tiles(fieldimager, tmp_path_factory):
    dsm, ortho = fieldimager
    d = tmp_path_factory.mktemp("batch")
    (d / "tiles").mkdir()
    (d / "guides").mkdir()
    for name, (row, col) in CORNERS.items():
        path, _ = degrade(dsm, d / "tiles" / f"{name}.tif", 4, Window(col, row, 96, 96))
        if name != "c":  # c has no guide of its own
            with rasterio.open(ortho) as g, rasterio.open(path) as s:
                win = rasterio.windows.from_bounds(*s.bounds, transform=g.transform).round_offsets().round_lengths()
                write_tif(d / "guides" / f"{name}_rgb.tif", g.read(window=win), g.crs, g.window_transform(win),
                          nodata=g.nodata)
    return d, str(ortho)


def _invoke(*args):
    return CliRunner().invoke(main, ["upsample", *map(str, args)])


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_glob_writes_one_output_per_source_on_its_grid(tiles, tmp_path):
    d, ortho = tiles
    out = tmp_path / "out"
    res = _invoke(f"{d}/tiles/*.tif", ortho, "-o", out, *FAST[:-1])  # not -q: the summary shows
    assert res.exit_code == 0, res.output
    assert "batch: 2/3" in res.output and "batch of 3: 3 written, 0 skipped (output exists), 0 failed" in res.output
    assert sorted(os.listdir(out)) == ["a_x4.tif", "b_x4.tif", "c_x4.tif"]
    for name in CORNERS:
        with rasterio.open(out / f"{name}_x4.tif") as r, rasterio.open(d / "tiles" / f"{name}.tif") as s:
            assert r.crs == s.crs and r.transform == s.transform @ Affine.scale(0.25) and r.shape == (96, 96)
    single = tmp_path / "single.tif"
    assert _invoke(d / "tiles" / "b.tif", ortho, "-o", single, *FAST).exit_code == 0
    with rasterio.open(single) as one, rasterio.open(out / "b_x4.tif") as batch:
        np.testing.assert_array_equal(one.read(), batch.read())


def test_existing_outputs_are_skipped_and_a_failed_source_does_not_stop_the_rest(tiles, tmp_path):
    d, ortho = tiles
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / f"{name}.tif").write_bytes((d / "tiles" / f"{name}.tif").read_bytes())
    (src / "broken.tif").write_text("not a raster")
    out = tmp_path / "out"
    res = _invoke(src, ortho, "-o", out, *FAST)  # a folder of sources
    assert res.exit_code == 1, res.output
    assert "batch of 3: 2 written, 0 skipped (output exists), 1 failed" in res.output
    assert f"failed: {src / 'broken.tif'}: cannot open the source" in res.output and "Traceback" not in res.output
    assert sorted(os.listdir(out)) == ["a_x4.tif", "b_x4.tif"]
    before = {p: _sha(out / p) for p in os.listdir(out)}
    mtimes = {p: os.stat(out / p).st_mtime_ns for p in os.listdir(out)}
    (src / "broken.tif").unlink()
    res = _invoke(src, ortho, "-o", out, *FAST[:-1])
    assert res.exit_code == 0 and "batch of 2: 0 written, 2 skipped (output exists), 0 failed" in res.output
    assert f"skipped {src / 'a.tif'}: {out / 'a_x4.tif'} exists (--overwrite replaces it)" in res.output
    assert {p: os.stat(out / p).st_mtime_ns for p in os.listdir(out)} == mtimes
    res = _invoke(src, ortho, "-o", out, "--overwrite", *FAST[:-1])
    assert res.exit_code == 0 and "2 written, 0 skipped" in res.output
    assert {p: _sha(out / p) for p in os.listdir(out)} == before  # the same run again: the same bytes


def test_a_guide_per_source_by_pattern_list_and_csv(tiles, tmp_path):
    d, _ = tiles
    pattern = f"{d}/guides/{{stem}}_rgb.tif"
    res = _invoke(f"{d}/tiles/*.tif", pattern, "-o", tmp_path / "by_pattern", *FAST)
    assert res.exit_code == 1, res.output  # c has no guide
    assert "2 written, 0 skipped (output exists), 1 failed" in res.output and "cannot open the guide" in res.output
    assert sorted(os.listdir(tmp_path / "by_pattern")) == ["a_x4.tif", "b_x4.tif"]
    # The same pairs from a CSV beside the files (paths relative to it), and from a list of sources.
    (d / "pairs.csv").write_text("source, guide\ntiles/a.tif, guides/a_rgb.tif\ntiles/b.tif,guides/b_rgb.tif\n",
                                 encoding="utf-8-sig")  # as a spreadsheet saves it: a byte-order mark
    res = _invoke(d / "pairs.csv", "-o", tmp_path / "by_csv", *FAST)
    assert res.exit_code == 0, res.output
    (d / "list.txt").write_text("# two tiles\ntiles/a.tif\n\ntiles/b.tif  # the second\n")
    res = _invoke(d / "list.txt", pattern, "-o", tmp_path / "by_list", *FAST)
    assert res.exit_code == 0, res.output
    for name in ("a_x4.tif", "b_x4.tif"):
        digests = {_sha(tmp_path / f / name) for f in ("by_pattern", "by_csv", "by_list")}
        assert len(digests) == 1, f"{name} differs between the pattern, the CSV and the list"
    with rasterio.open(tmp_path / "by_csv" / "a_x4.tif") as own:
        whole = tmp_path / "whole.tif"
        assert _invoke(d / "tiles" / "a.tif", tiles[1], "-o", whole, *FAST).exit_code == 0
        with rasterio.open(whole) as other:
            assert not np.array_equal(own.read(), other.read()), "each source's own guide was not used"


def test_share_model_trains_once_and_saves_it(tiles, tmp_path):
    d, ortho = tiles
    scene = ["--scale", "4", "--mode", "scene", "--steps", "3", "--batch-size", "2", "--no-selfcheck", "-q"]
    out = tmp_path / "out"
    res = _invoke(f"{d}/tiles/[ab].tif", ortho, "-o", out, "--share-model", "--model-out", tmp_path / "m.npz", *scene)
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(out)) == ["a_x4.tif", "b_x4.tif"] and (tmp_path / "m.npz").is_file()
    given = tmp_path / "given.tif"
    res = _invoke(d / "tiles" / "b.tif", ortho, "-o", given, "--model-in", tmp_path / "m.npz",
                  *[a for a in scene if a not in ("--steps", "3", "--batch-size", "2")])
    assert res.exit_code == 0, res.output
    with rasterio.open(given) as g, rasterio.open(out / "b_x4.tif") as b:
        np.testing.assert_array_equal(g.read(), b.read())
    own = tmp_path / "own.tif"
    assert _invoke(d / "tiles" / "b.tif", ortho, "-o", own, *scene).exit_code == 0
    with rasterio.open(own) as o, rasterio.open(out / "b_x4.tif") as b:
        assert not np.array_equal(o.read(), b.read()), "b's own training gives another network"
    # Without --model-out the network is kept in the output folder: a rerun after b was lost uses it again.
    again = tmp_path / "again"
    res = _invoke(f"{d}/tiles/[ab].tif", ortho, "-o", again, "--share-model", *scene)
    assert res.exit_code == 0 and sorted(os.listdir(again)) == ["a_x4.tif", "b_x4.tif", "geosr_shared_model.npz"]
    first = _sha(again / "b_x4.tif")
    (again / "b_x4.tif").unlink()
    res = _invoke(f"{d}/tiles/[ab].tif", ortho, "-o", again, "--share-model", *scene[:-1])
    assert res.exit_code == 0 and "of an earlier run of this batch" in res.output, res.output
    assert "1 written, 1 skipped" in res.output and _sha(again / "b_x4.tif") == first


@pytest.mark.parametrize("args, message", [
    (["{d}/tiles/*.tif", "{o}", "-o", "{t}/one.tif"], "a batch writes one file per source, so -o names a folder"),
    (["{d}/tiles/*.tif", "{o}", "--quality", "{t}/q.tif"], "--quality names one file"),
    (["{d}/tiles/a.tif", "{o}", "--share-model", "--mode", "scene"], "--share-model shares one scene network"),
    (["{d}/tiles/*.tif", "{o}", "--share-model"], "give --mode scene or --mode hybrid"),
    (["{d}/tiles/*.tif", "{o}", "--mode", "scene", "--model-out", "{t}/m.npz"], "add --share-model"),
    (["{d}/tiles/*.nothing", "{o}"], "names no raster"),
    (["{d}/tiles/*.tif"], "give a GUIDE"),
    (["{d}/pairs.csv", "{o}"], "is a CSV of pairs and names each source's guide: leave GUIDE out"),
])
def test_batch_mistakes_are_refused_before_any_work(tiles, tmp_path, args, message):
    d, ortho = tiles
    (d / "pairs.csv").write_text("source,guide\ntiles/a.tif,guides/a_rgb.tif\n")
    res = _invoke(*[a.format(d=d, o=ortho, t=tmp_path) for a in args], "--scale", "4")
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output, res.output
    assert os.listdir(tmp_path) == []


def test_two_sources_with_one_name_are_refused(tiles, tmp_path):
    d, ortho = tiles
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.tif").write_bytes((d / "tiles" / "a.tif").read_bytes())
    (tmp_path / "list.txt").write_text(f"{d}/tiles/a.tif\nx/a.tif\n")
    res = _invoke(tmp_path / "list.txt", ortho, "-o", tmp_path / "out", *FAST)
    assert res.exit_code != 0 and "would both write a_x<scale>.tif" in res.output
    assert not (tmp_path / "out").exists()


def test_outputs_written_beside_the_sources_are_not_taken_as_sources_again(tiles, tmp_path):
    """A folder's sources leave out geosr's outputs, hidden files and the guide; a user's file that a
    source's output would replace is never written over, not even with --overwrite."""
    d, ortho = tiles
    (tmp_path / "a.tif").write_bytes((d / "tiles" / "a.tif").read_bytes())
    (tmp_path / "keep_x2.tif").write_bytes((d / "tiles" / "b.tif").read_bytes())  # not geosr's: a source
    (tmp_path / ".hidden.tif").write_text("a killed run's temporary file")
    (tmp_path / "ortho.tif").write_bytes(Path(ortho).read_bytes())
    res = _invoke(tmp_path, tmp_path / "ortho.tif", "-o", tmp_path, *FAST[:-1])
    assert res.exit_code == 0 and "batch of 2: 2 written" in res.output, res.output
    res = _invoke(f"{tmp_path}/*.tif", tmp_path / "ortho.tif", "-o", tmp_path, *FAST[:-1])
    assert res.exit_code == 0 and "batch of 2: 0 written, 2 skipped (output exists)" in res.output, res.output
    assert sorted(os.listdir(tmp_path)) == [".hidden.tif", "a.tif", "a_x4.tif", "keep_x2.tif", "keep_x2_x4.tif",
                                            "ortho.tif"]
    users = tmp_path / "users"
    users.mkdir()
    (users / "c.tif").write_bytes((d / "tiles" / "c.tif").read_bytes())
    (users / "c_x4.tif").write_bytes((d / "tiles" / "a.tif").read_bytes())  # the user's, named like an output
    before = _sha(users / "c_x4.tif")
    res = _invoke(users, ortho, "-o", users, "--overwrite", *FAST)
    assert res.exit_code == 1 and "would replace" in res.output and "an input of this batch" in res.output
    assert _sha(users / "c_x4.tif") == before and sorted(os.listdir(users)) == ["c.tif", "c_x4.tif", "c_x4_x4.tif"]
