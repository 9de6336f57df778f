"""The QGIS Processing provider (qgis/geosr_processing), headless: installed by qgis/install.sh into a profile
of its own, run by qgis_process and by QGIS's Python with a feedback that cancels.

Needs Debian's qgis, python3-qgis and qgis-providers (.ci/run installs them where they are missing). QGIS's
Python is the system's, so QGIS runs with a plain PATH (a virtual environment on PATH would become its
Python's prefix); the provider runs this environment's geosr command, as install.sh records it.
"""
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from conftest import _missing, write_tif

ROOT = Path(__file__).resolve().parents[1]
QGIS_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def qgis_process():
    found = shutil.which("qgis_process.bin") or ("/usr/bin/qgis_process.bin" if Path("/usr/bin/qgis_process.bin")
                                                  .exists() else None)
    if found is None:
        _missing("QGIS missing: apt-get install qgis python3-qgis qgis-providers (qgis_process.bin)")
    return found


@pytest.fixture(scope="module")
def home(qgis_process, tmp_path_factory):
    """A user whose QGIS profile has the plugin, installed and enabled by qgis/install.sh."""
    home = tmp_path_factory.mktemp("qgis_home")
    geosr_cli = Path(sys.executable).parent / "geosr"
    res = subprocess.run(["bash", str(ROOT / "qgis" / "install.sh")], env=_plain_env(home, GEOSR_CLI=str(geosr_cli)),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    plugin = home / ".local/share/QGIS/QGIS3/profiles/default/python/plugins/geosr_processing"
    assert (plugin / "metadata.txt").is_file() and "hasProcessingProvider=yes" in (plugin / "metadata.txt").read_text()
    ini = (home / ".local/share/QGIS/QGIS3/profiles/default/QGIS/QGIS3.ini").read_text()
    assert "geosr_processing=true" in ini and str(geosr_cli) in ini
    return home


@pytest.fixture(scope="module")
def pair(small_files, tmp_path_factory):
    """Copies of the small DSM source and orthophoto (QGIS writes its statistics beside the rasters it opens)."""
    d = tmp_path_factory.mktemp("qgis_inputs")
    for name in ("source", "guide"):
        shutil.copy(small_files[name], d / Path(small_files[name]).name)
    return {"source": d / Path(small_files["source"]).name, "guide": d / Path(small_files["guide"]).name, "dir": d}


def _plain_env(home, **extra):
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(home), **extra}


def _run(qgis_process, home, *args, timeout=300):
    res = subprocess.run([qgis_process, *args], env=_plain_env(home), capture_output=True, text=True,
                         timeout=timeout)
    return res.returncode, res.stdout + res.stderr


def test_the_algorithm_is_listed_with_its_parameters(qgis_process, home):
    code, out = _run(qgis_process, home, "list")
    assert code == 0 and "geosr:upsample" in out, out
    code, out = _run(qgis_process, home, "help", "geosr:upsample")
    assert code == 0, out
    for name in ("SOURCE", "GUIDE", "SCALE", "METHOD", "MODE", "BAND", "EPOCHS", "OUTPUT", "QUALITY", "EXTRA"):
        assert f"\n{name}: " in out, f"{name} missing:\n{out}"


def test_a_run_on_real_data_writes_the_output_on_the_refined_grid(qgis_process, home, pair, tmp_path):
    src, guide = pair["source"], pair["guide"]
    inputs = sorted(n for n in os.listdir(pair["dir"]) if not n.endswith(".aux.xml"))
    out = tmp_path / "dsm_x4.tif"
    code, log = _run(qgis_process, home, "run", "geosr:upsample", "--", f"SOURCE={src}", f"GUIDE={guide}", "SCALE=4",
                     "EPOCHS=5", f"OUTPUT={out}")
    assert code == 0, log
    assert "tiles: 1/1" in log and "wrote" in log, log  # the CLI's progress, read back into the feedback
    with rasterio.open(out) as r, rasterio.open(src) as s:
        assert r.crs == s.crs and r.transform == s.transform @ Affine.scale(0.25) and r.shape == (96, 96)
        hr, lr = r.read(1, masked=True).astype(np.float64), s.read(1, masked=True).astype(np.float64)
        assert r.tags()["geosr_method"] == "mmsr" and r.nodata == s.nodata
    cells = hr.reshape(24, 4, 24, 4).mean(axis=(1, 3))
    valid = ~np.ma.getmaskarray(cells) & ~np.ma.getmaskarray(lr)
    assert valid.sum() > 400
    assert np.abs(cells - lr)[valid].max() < 1e-4 * float(np.ptp(lr[valid]))  # exact: the source's cell means kept
    # With the regression sharpener and two guide layers (stacked as bands), the plugin's output is the
    # CLI's, bit for bit.
    from geosr.cli import main

    with rasterio.open(guide) as g:
        gray = write_tif(tmp_path / "gray.tif", g.read(masked=True).mean(axis=0).filled(g.nodata).astype("float32"),
                         g.crs, g.transform, nodata=g.nodata)
    code, log = _run(qgis_process, home, "run", "geosr:upsample", "--", f"SOURCE={src}", f"GUIDE={guide}",
                     f"GUIDE={gray}", "METHOD=regression", "SELFCHECK=false", f"OUTPUT={tmp_path / 'q.tif'}")
    assert code == 0 and f"{guide} {gray}" in log, log
    res = CliRunner().invoke(main, ["upsample", str(src), str(guide), gray, "--method", "regression",
                                    "--no-selfcheck", "-o", str(tmp_path / "c.tif"), "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "q.tif") as q, rasterio.open(tmp_path / "c.tif") as c:
        np.testing.assert_array_equal(q.read(), c.read())
    # Only QGIS's own statistics (GDAL's .aux.xml, written when QGIS opens a raster as a layer) appear there.
    assert [n for n in sorted(os.listdir(pair["dir"])) if not n.endswith(".aux.xml")] == inputs


def test_bad_input_gives_the_cli_message_and_writes_nothing(qgis_process, home, pair, tmp_path):
    with rasterio.open(pair["guide"]) as g:
        away = write_tif(tmp_path / "elsewhere.tif", g.read(), g.crs, Affine.translation(5000, 0) @ g.transform,
                         nodata=g.nodata)
    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    code, log = _run(qgis_process, home, "run", "geosr:upsample", "--", f"SOURCE={pair['source']}",
                     f"GUIDE={away}", "SCALE=4", f"OUTPUT={out}")
    assert code != 0 and "geosr upsample failed: the guide does not overlap the source" in log, log
    assert os.listdir(out.parent) == []


CANCEL = """
import json, os, sys
from qgis.core import QgsApplication, QgsProcessingFeedback
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
sys.path[:0] = ["/usr/share/qgis/python/plugins", sys.argv[1]]
from processing.core.Processing import Processing
import processing
Processing.initialize()
import geosr_processing
plugin = geosr_processing.classFactory(None)  # headless: no iface
plugin.initProcessing()
params = json.loads(sys.argv[2])
feedback, seen = QgsProcessingFeedback(), {}

def on_progress(percent):
    if percent > 0 and not feedback.isCanceled():  # a tile is done: cancel now
        folder = params["OUTPUT"] + ".geosr-resume"
        seen["tiles_done"] = len([n for n in os.listdir(folder) if n.startswith("tile-")]) if os.path.isdir(folder) else 0
        seen["percent"] = percent
        feedback.cancel()

feedback.progressChanged.connect(on_progress)
try:
    result = processing.run("geosr:upsample", params, feedback=feedback)
except Exception as e:
    result = {"error": str(e)}
print("RESULT " + json.dumps({"result": {k: str(v) for k, v in result.items()}, **seen}))
"""


def test_cancelling_stops_the_run_and_leaves_nothing(home, pair, tmp_path):
    plugins = home / ".local/share/QGIS/QGIS3/profiles/default/python/plugins"
    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    params = {"SOURCE": str(pair["source"]), "GUIDE": [str(pair["guide"])], "SCALE": 4, "MODE": "tile",
              "EPOCHS": 60, "SELFCHECK": False, "EXTRA": "--tile-size 12 --overlap 4 --align none",
              "OUTPUT": str(out)}
    res = subprocess.run([QGIS_PYTHON, "-c", CANCEL, str(plugins), json.dumps(params)],
                         env=_plain_env(home, GEOSR_CLI=str(Path(sys.executable).parent / "geosr")),
                         capture_output=True, text=True, timeout=300)
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, res.stdout + res.stderr
    found = json.loads(line[-1][len("RESULT "):])
    assert found["tiles_done"] >= 1 and 0 < found["percent"] < 100, found  # cancelled with work done
    assert "cancelled: geosr stopped, and nothing was written" in found["result"].get("error", ""), found
    assert os.listdir(out.parent) == [], "the cancelled run left something behind"


def test_the_plugin_offers_geosr_own_choices():
    """The algorithm's lists (qgis/geosr_processing/algorithm.py, which cannot import geosr) are geosr's."""
    from geosr.core.align import ALIGNMENTS
    from geosr.core.psf import CHOICES
    from geosr.methods import METHODS
    from geosr.methods.mmsr import PRESETS
    from geosr.spec import MODES

    tree = ast.parse((ROOT / "qgis" / "geosr_processing" / "algorithm.py").read_text())
    lists = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, ast.List)}
    assert sorted(lists["METHODS"]) == sorted(METHODS) and lists["METHODS"][0] == "mmsr"
    assert lists["MODES"] == list(MODES)
    assert sorted(lists["PRESETS"]) == sorted(PRESETS)
    assert sorted(lists["PSFS"]) == sorted(CHOICES) and sorted(lists["ALIGNMENTS"]) == sorted(ALIGNMENTS)


def test_progress_lines_become_one_percentage():
    sys.path.insert(0, str(ROOT / "qgis"))
    try:
        from geosr_processing.command import Progress, child_environment
    finally:
        sys.path.remove(str(ROOT / "qgis"))
    p = Progress()
    assert p.read("output grid: EPSG:32616") is None
    assert p.read("scene training: 150/300 steps (50%), 30 s elapsed, about 30 s left") == (20.0, "scene training: 150/300")
    assert p.read("tiles: 2/4 tiles (50%), 1 min 02 s elapsed") == (70.0, "tiles: 2/4")
    tile_mode = Progress()
    assert tile_mode.read("tiles: 1/4 tiles (25%), 5 s elapsed") == (25.0, "tiles: 1/4")
    assert "PYTHONPATH" not in child_environment({"PYTHONPATH": "/usr/share/qgis/python", "HOME": "/h"})


def test_killing_qgis_process_stops_the_command_and_leaves_nothing(qgis_process, home, pair, tmp_path):
    """qgis_process killed (no cancel, no handler of its own): the geosr command gets SIGTERM as its parent dies
    (Linux's parent-death signal) and removes its partial output and checkpoint."""
    import time

    import psutil

    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    proc = subprocess.Popen([qgis_process, "run", "geosr:upsample", "--", f"SOURCE={pair['source']}",
                             f"GUIDE={pair['guide']}", "SCALE=4", "MODE=tile", "EPOCHS=60", "SELFCHECK=false",
                             "EXTRA=--tile-size 12 --overlap 4 --align none", f"OUTPUT={out}"],
                            env=_plain_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.parent.glob("*.geosr-resume/tile-*.npy")):
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.05)
        assert list(out.parent.glob("*.geosr-resume/tile-*.npy")), "no tile was finished before the kill"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the geosr command is not a child of qgis_process"
        proc.send_signal(signal.SIGKILL)  # no handler of its own runs
        proc.communicate(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"the geosr command outlived qgis_process: {alive}"
    finally:
        proc.kill()
    assert os.listdir(out.parent) == [], "the killed run left something behind"
