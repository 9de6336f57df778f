"""Provenance: an output records the software, the machine's settings, every option and the inputs'
checksums, and `geosr info` prints them back."""
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import rasterio
import torch
from click.testing import CliRunner

import geosr
from geosr.cli import main

ROOT = Path(__file__).resolve().parents[1]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_output_records_versions_machine_options_and_input_checksums(small_files, tmp_path):
    out = tmp_path / "out.tif"
    res = CliRunner().invoke(main, ["upsample", small_files["source"], small_files["guide"], "--scale", "4",
                                    "--method", "mmsr", "--epochs", "3", "--seed", "7", "--device", "cpu",
                                    "--align", "none", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as r:
        tags = r.tags()
    assert tags["geosr_version"] == geosr.__version__
    assert tags["geosr_torch"] == torch.__version__
    assert tags["geosr_cuda"] == (torch.version.cuda or "none (CPU build of torch)")
    assert tags["geosr_gdal"] == rasterio.__gdal_version__
    assert tags["geosr_numpy"] == np.__version__
    assert tags["geosr_device"] == "cpu" and tags["geosr_threads"] == str(torch.get_num_threads())
    assert tags["geosr_seed"] == "7" and tags["geosr_deterministic"] == "1"
    assert json.loads(tags["geosr_options"]) == {"device": "cpu", "epochs": 3, "seed": 7}
    inputs = json.loads(tags["geosr_input_sha256"])
    assert inputs == {str(Path(p).resolve()): sha256(p) for p in (small_files["source"], small_files["guide"])}
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a source checkout (CI clones one): the commit is recorded
        assert tags["geosr_commit"].split("-")[0] == head.stdout.strip()


def test_info_prints_the_provenance_readably(small_files, tmp_path):
    out = tmp_path / "out.tif"
    runner = CliRunner()
    assert runner.invoke(main, ["upsample", small_files["source"], small_files["guide"], "--scale", "4",
                                "--method", "bicubic", "-o", str(out), "-q"]).exit_code == 0
    res = runner.invoke(main, ["info", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "24 x 24" not in lines[0] and "96 x 96 px" in lines[0] and "EPSG:32616" in lines[0]
    assert any(line.split() == ["torch", torch.__version__] for line in lines)
    assert any(line.split() == ["method", "bicubic"] for line in lines)
    i = lines.index("input_sha256:")
    assert lines[i + 1].strip() == f"{Path(small_files['source']).resolve()}: {sha256(small_files['source'])}"


def test_info_on_a_raster_geosr_did_not_write(small_files):
    res = CliRunner().invoke(main, ["info", small_files["source"]])
    assert res.exit_code == 0 and "no geosr tags" in res.output
    res = CliRunner().invoke(main, ["info", "missing.tif"])
    assert res.exit_code != 0 and "does not exist" in res.output
