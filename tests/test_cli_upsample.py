"""`geosr upsample`: bad input gets a clear message and a non-zero exit, and nothing is left behind.

Every case checks that the output folder holds no output or temporary file afterwards and
that the inputs are byte-for-byte untouched.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geosr.cli import main

from conftest import write_tif


@pytest.fixture(scope="module")
def files(small_files):
    return small_files


def _digest(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def _upsample(args, out_dir, inputs):
    before = _digest(inputs)
    listing = sorted(os.listdir(out_dir))
    res = CliRunner().invoke(main, ["upsample", "--scale", "4", *map(str, args)])
    assert _digest(inputs) == before, "an input was modified"
    return res, listing


def _fails(args, out_dir, inputs, message, new_files=()):
    res, listing = _upsample(args, out_dir, inputs)
    assert res.exit_code != 0, res.output
    assert message in res.output, res.output
    assert "Traceback" not in res.output
    assert sorted(os.listdir(out_dir)) == sorted([*listing, *new_files]), "something was left behind"
    return res


def test_upsample_writes_the_default_output_name(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res, _ = _upsample([files["source"], files["guide"], "--scale", "4", "--epochs", "2", "-q"], tmp_path,
                       [files["source"], files["guide"]])
    assert res.exit_code == 0, res.output
    assert os.listdir(tmp_path) == ["src_x4.tif"]
    with rasterio.open(tmp_path / "src_x4.tif") as r, rasterio.open(files["source"]) as s:
        assert r.shape == (96, 96) and r.transform == s.transform @ Affine.scale(0.25) and r.crs == s.crs


def test_help_shows_examples_and_version_works():
    res = CliRunner().invoke(main, ["upsample", "--help"])
    assert res.exit_code == 0 and "geosr upsample dem.tif ortho.tif --scale 4" in res.output
    import geosr

    assert geosr.__version__ in CliRunner().invoke(main, ["--version"]).output


def test_missing_and_non_raster_inputs(files, tmp_path):
    ins = [files["source"], files["guide"]]
    out = tmp_path / "o.tif"
    _fails([tmp_path / "nope.tif", files["guide"], "-o", out], tmp_path, ins, "cannot open the source")
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    _fails([files["source"], text, "-o", out], tmp_path, [*ins, text], "cannot open the guide")


def test_inputs_without_crs(files, tmp_path):
    with rasterio.open(files["source"]) as s:
        data, t = s.read(1), s.transform
    no_crs = write_tif(tmp_path / "nocrs.tif", data, None, t)
    ins = [files["source"], files["guide"], no_crs]
    out = tmp_path / "o.tif"
    _fails([no_crs, files["guide"], "-o", out], tmp_path, ins, "the source has no CRS")
    _fails([files["source"], no_crs, "-o", out], tmp_path, ins, "the guide has no CRS")


def test_extents_that_do_not_intersect(files, tmp_path):
    with rasterio.open(files["source"]) as s:
        data, t, crs = s.read(1), s.transform, s.crs
    far = write_tif(tmp_path / "far.tif", data, crs, Affine.translation(5000, 0) @ t)
    _fails([far, files["guide"], "-o", tmp_path / "o.tif"], tmp_path, [far, files["guide"]], "does not overlap")


def test_multiband_source_needs_band(files, tmp_path):
    with rasterio.open(files["source"]) as s:
        data, t, crs = s.read(1), s.transform, s.crs
    two = write_tif(tmp_path / "two.tif", np.stack([data, data + 1]), crs, t)
    ins = [two, files["guide"]]
    _fails([two, files["guide"], "--scale", "4", "-o", tmp_path / "o.tif"], tmp_path, ins, "--band N")
    res, _ = _upsample([two, files["guide"], "--scale", "4", "--band", "2", "--method", "bicubic", "-o", tmp_path / "o.tif", "-q"],
                       tmp_path, ins)
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "o.tif") as r:
        np.testing.assert_allclose(r.read(1).reshape(24, 4, 24, 4).mean(axis=(1, 3)), data + 1, atol=1e-3)


def test_all_nodata_source(files, tmp_path):
    with rasterio.open(files["source"]) as s:
        t, crs = s.transform, s.crs
    empty = write_tif(tmp_path / "empty.tif", np.full((24, 24), -9999, np.float32), crs, t, nodata=-9999)
    _fails([empty, files["guide"], "-o", tmp_path / "o.tif"], tmp_path, [empty, files["guide"]], "no valid pixel")


def test_scale_below_two(files, tmp_path):
    _fails([files["source"], files["guide"], "--scale", "1", "-o", tmp_path / "o.tif"], tmp_path,
           [files["source"], files["guide"]], "scale must be an integer >= 2")


def test_existing_output_and_output_that_is_an_input(files, tmp_path):
    ins = [files["source"], files["guide"]]
    out = tmp_path / "o.tif"
    out.write_bytes(b"precious")
    _fails([files["source"], files["guide"], "-o", out], tmp_path, ins, "--overwrite")
    assert out.read_bytes() == b"precious"
    _fails([files["source"], files["guide"], "-o", files["guide"], "--overwrite"], tmp_path, ins,
           "never writes over its inputs")


def test_unwritable_output_folder(files, tmp_path):
    target = Path("/sys/geosr_out.tif")  # sysfs refuses new files, even to root
    if not Path("/sys").is_dir():
        pytest.skip("needs Linux /sys as an unwritable folder")
    res, _ = _upsample([files["source"], files["guide"], "-o", target], tmp_path,
                       [files["source"], files["guide"]])
    assert res.exit_code != 0 and "cannot write to the output folder" in res.output, res.output
    assert not target.exists()


def test_output_larger_than_the_disk_is_refused_before_work(files, tmp_path):
    """A 1 KB file declaring a 1,000,000 x 1,000,000 raster: x4 would need 64 TB."""
    with rasterio.open(files["source"]) as s:
        t, crs = s.transform, s.crs
    huge = tmp_path / "huge.vrt"
    huge.write_text(f"""<VRTDataset rasterXSize="1000000" rasterYSize="1000000">
  <SRS>{crs.to_wkt()}</SRS>
  <GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>
  <VRTRasterBand dataType="Float32" band="1"><NoDataValue>-9999</NoDataValue></VRTRasterBand>
</VRTDataset>""")
    t0 = time.perf_counter()
    _fails([huge, files["guide"], "-o", tmp_path / "o.tif"], tmp_path, [huge, files["guide"]], "free")
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_nothing_behind(files, tmp_path, sig):
    before = _digest([files["source"], files["guide"]])
    out = tmp_path / "o.tif"
    cmd = [sys.executable, "-m", "geosr.cli", "upsample", "--scale", "4", files["source"], files["guide"], "--epochs", "100000",
           "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(p.name.startswith(".o.tif.geosr-partial") for p in tmp_path.iterdir()):
            time.sleep(0.2)  # the temporary output exists once the work has started
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(1.0)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never leave a fit running if the test fails
    assert proc.returncode == 128 + sig
    assert "interrupted" in output and "Traceback" not in output, output
    assert os.listdir(tmp_path) == []
    assert _digest([files["source"], files["guide"]]) == before


def test_inputs_are_gdal_dataset_names(files, tmp_path):
    """A source inside a zip (/vsizip/) and a guide given as a VRT work like plain files."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "src.zip", "w") as z:
        z.write(files["source"], "dem/src.tif")
    with rasterio.open(files["guide"]) as g:
        bands = "".join(
            f'<VRTRasterBand dataType="Float32" band="{b}"><NoDataValue>{g.nodata}</NoDataValue><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{files["guide"]}</SourceFilename><SourceBand>{b}</SourceBand>'
            f'</SimpleSource></VRTRasterBand>' for b in (1, 2, 3))
        t = g.transform
        vrt = (f'<VRTDataset rasterXSize="{g.width}" rasterYSize="{g.height}"><SRS>{g.crs.to_wkt()}</SRS>'
               f'<GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>{bands}</VRTDataset>')
    (tmp_path / "guide.vrt").write_text(vrt)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res, _ = _upsample([f"/vsizip/{tmp_path / 'src.zip'}/dem/src.tif", tmp_path / "guide.vrt", "--epochs", "2",
                        "-o", out_dir / "a.tif", "-q"], out_dir, [files["source"], files["guide"]])
    assert res.exit_code == 0, res.output
    res, _ = _upsample([files["source"], files["guide"], "--epochs", "2", "-o", out_dir / "b.tif", "-q"], out_dir,
                       [files["source"], files["guide"]])
    assert res.exit_code == 0, res.output
    with rasterio.open(out_dir / "a.tif") as a, rasterio.open(out_dir / "b.tif") as b:
        assert a.transform == b.transform and a.crs == b.crs
        np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.parametrize("device, message", [("gpu", "unknown device 'gpu'"), ("cuda:7", "cuda")])
def test_a_device_this_machine_lacks_is_one_line(files, tmp_path, device, message):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 CUDA devices")
    res = _fails([files["source"], files["guide"], "--scale", "4", "--device", device, "-o", tmp_path / "o.tif"], tmp_path,
                 [files["source"], files["guide"]], message)
    assert res.output.count("\n") == 1 and "has: cpu" in res.output, res.output


def test_swapped_source_and_guide_are_refused(files, tmp_path):
    res = _fails([files["guide"], files["source"], "-o", tmp_path / "o.tif"], tmp_path,
                 [files["source"], files["guide"]], "not finer than the source")
    assert "swapped" in res.output


@pytest.mark.parametrize("args, message", [
    (["--method", "bicubic", "--epochs", "5"], "--epochs does not apply to --method bicubic"),
    (["--method", "bicubic", "--seed", "3", "--align", "affine"], "--seed (the method gives the same output"),
    (["--method", "cmsr", "--mode", "scene"], "--mode does not apply to --method cmsr"),
    (["--method", "cmsr", "--batch-size", "2"], "--batch-size does not apply to --method cmsr"),
    (["--method", "guided", "--preset", "depth"], "--preset does not apply to --method guided"),
    (["--mode", "tile", "--batch-size", "2"], "does not apply to --mode tile"),
    (["--mode", "tile", "--model-out", "m.npz"], "--model-out sets the scene network; it does not apply to --mode tile"),
    (["--method", "bicubic", "--steps", "5"], "--steps does not apply to --method bicubic"),
    (["--model-out", "m.npz"], "--model-out saves the scene network a run trains: give --mode scene"),
    (["--mode", "scene", "--band", "all", "--model-out", "m.npz"], "run each band with --band N"),
])
def test_options_the_method_would_ignore_are_refused(files, tmp_path, args, message):
    _fails([files["source"], files["guide"], *args, "-o", tmp_path / "o.tif"], tmp_path,
           [files["source"], files["guide"]], message)


def test_a_model_saved_with_model_out_gives_the_same_output_with_model_in(files, tmp_path):
    """Scene mode on 2 x 2 tiles, 3 training steps: --model-out saves the network, --model-in reuses it
    (no training) and gives the same output bit for bit; an existing model file is never replaced."""
    inputs = [files["source"], files["guide"]]
    common = [*inputs, "--scale", "4", "--mode", "scene", "--tile-size", "12", "--align", "none", "--no-selfcheck", "-q"]
    model = tmp_path / "scene.npz"
    res, _ = _upsample([*common, "--steps", "3", "-o", tmp_path / "a.tif", "--model-out", model], tmp_path,
                       inputs)
    assert res.exit_code == 0, res.output
    res, _ = _upsample([*common, "--model-in", model, "-o", tmp_path / "b.tif"], tmp_path, [*inputs, model])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert '"scene_model": "trained by this run"' in a.tags()["geosr_options"]
        assert '"scene_model": "given (' in b.tags()["geosr_options"]
    before = model.read_bytes()
    _fails([*common, "-o", tmp_path / "c.tif", "--model-out", model], tmp_path, inputs, "exists")
    _fails([*common, "-o", tmp_path / "c.tif", "--model-in", model, "--model-out", model], tmp_path, inputs,
           "--model-out is the --model-in file")
    _fails([*common, "-o", tmp_path / "c.tif", "--model-in", files["source"]], tmp_path, inputs,
           "cannot read the scene model")
    assert model.read_bytes() == before


def test_a_missing_optional_dependency_is_one_line(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed: its import fails
    _fails([files["source"], files["guide"], "--method", "guided", "-o", tmp_path / "o.tif"], tmp_path,
           [files["source"], files["guide"]], "pip install 'geosr[guided]'")


def test_python_api_refuses_a_mode_or_ensemble_the_method_does_not_have(files):
    import geosr
    from geosr.errors import InputError

    src, guide = geosr.open_raster(files["source"]), geosr.open_raster(files["guide"])
    with pytest.raises(InputError, match="mode='scene' trains one MMSR network"):
        geosr.superresolve(src, guide, 4, "cmsr", mode="scene")
    with pytest.raises(InputError, match="self_ensemble"):
        geosr.superresolve(src, guide, 4, "cmsr", ensemble=False)
    with pytest.raises(InputError, match="not finer than the source.*swapped"):
        geosr.superresolve(guide, src, 4, "bicubic")
