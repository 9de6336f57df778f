"""Provenance: an output records the software, the machine's settings, every option and the inputs'
checksums, and `geosr info` prints them back."""
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
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
    i = lines.index("input_sha256:  (input files, SHA-256)")
    assert lines[i + 1].strip() == f"{Path(small_files['source']).resolve()}: {sha256(small_files['source'])}"


def test_info_on_a_raster_geosr_did_not_write(small_files):
    res = CliRunner().invoke(main, ["info", small_files["source"]])
    assert res.exit_code == 0 and "no geosr tags" in res.output
    res = CliRunner().invoke(main, ["info", "missing.tif"])
    assert res.exit_code != 0 and "does not exist" in res.output


def test_every_guide_file_is_recorded_and_in_memory_inputs_are_labelled_tokens(small_files, tmp_path):
    """A guide stacked from three lazily opened files names all three (xarray keeps only the first's
    encoding); a source computed in memory is recorded by its dask token, under its own tag."""
    import rioxarray
    import xarray as xr

    with rasterio.open(small_files["guide"]) as g:
        paths = []
        for b in (1, 2, 3):
            paths.append(str(tmp_path / f"band{b}.tif"))
            with rasterio.open(paths[-1], "w", **{**g.profile, "count": 1}) as dst:
                dst.write(g.read(b), 1)
    guide = xr.concat([rioxarray.open_rasterio(p, chunks={"x": 64, "y": 64}) for p in paths], "band")
    guide = guide.assign_coords(band=[1, 2, 3])
    assert guide.encoding["source"] == paths[0]  # what xarray leaves
    source = geosr.open_raster(small_files["source"]).load()  # in memory now
    source.encoding = {}
    out = geosr.superresolve(source, guide, 4, "bicubic")
    files = json.loads(out.attrs["geosr_input_sha256"])
    assert files == {str(Path(p).resolve()): sha256(p) for p in paths}
    tokens = json.loads(out.attrs["geosr_input_token"])
    assert list(tokens) == ["in-memory source"] and len(tokens["in-memory source"]) == 32
    assert set(out.encoding["geosr_inputs"]) == set(paths), "an output may replace none of them"
    written = geosr.write(out, tmp_path / "out.tif", progress=False)
    text = CliRunner().invoke(main, ["info", str(written)]).output
    assert "input_token:  (inputs held in memory or computed from files: dask token (not a file checksum))" in text
    assert all(f"{Path(p).resolve()}: {sha256(p)}" in text for p in paths)


def test_each_input_file_is_hashed_once_per_run(small_files, monkeypatch):
    from geosr.runtime import fingerprint

    reads = []
    real = fingerprint.hashlib.sha256

    def counting():
        reads.append(1)
        return real()

    monkeypatch.setattr(fingerprint, "_cache", {})
    monkeypatch.setattr(fingerprint.hashlib, "sha256", counting)
    src, guide = geosr.open_raster(small_files["source"]), geosr.open_raster(small_files["guide"])
    out = geosr.superresolve(src, guide, 4, "bicubic")
    geosr.superresolve(src, guide, 4, "guided")
    geosr.quality_layers(out, src, guide)
    assert len(reads) == 2, "two files, each read once"


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A loopback HTTP server over a folder, as a remote store seen through GDAL's /vsicurl/."""
    import functools
    import http.server
    import os
    import threading

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.headers.get("Range"):
                return super().do_GET()
            path = self.translate_path(self.path)
            size = os.path.getsize(path)
            start, end = self.headers["Range"].split("=")[1].split("-")
            start, end = int(start), min(int(end or size - 1), size - 1)
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start + 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    # Python's server hangs on HEAD requests for missing files, which GDAL sends for sidecars.
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"/vsicurl/http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_remote_inputs_are_keyed_by_size_and_modification_time(small_files, http_folder):
    import os
    import shutil
    import subprocess
    import sys

    from geosr.runtime import fingerprint
    from geosr.runtime.checkpoint import TileStore
    from geosr.errors import InputError

    folder, base = http_folder
    shutil.copy(small_files["source"], folder / "dem.tif")
    url = f"{base}/dem.tif"
    out = geosr.superresolve(geosr.open_raster(url), geosr.open_raster(small_files["guide"]), 4, "bicubic")
    remote = json.loads(out.attrs["geosr_input_remote"])
    size = str((folder / "dem.tif").stat().st_size)
    assert list(remote) == [url] and f"size {size}" in remote[url] and "modified " in remote[url]
    assert list(json.loads(out.attrs["geosr_input_sha256"])) == [str(Path(small_files["guide"]).resolve())]

    def key_in_a_new_process():  # as a resumed run sees it (GDAL caches what a server said per process)
        code = f"import json; from geosr.runtime import fingerprint; print(json.dumps(fingerprint.fingerprints([{url!r}])))"
        return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                         env=os.environ).stdout)

    before = key_in_a_new_process()
    assert before == fingerprint.fingerprints([url])
    with rasterio.open(folder / "dem.tif", "r+") as r:  # the remote file is replaced by another version
        r.write(r.read(1) + 1.0, 1)
    os.utime(folder / "dem.tif", (1e9, 1e9))
    after = key_in_a_new_process()
    assert after != before
    run = {"parameters": {}}
    TileStore(folder.parent / "ckpt", {**run, "inputs": {url: str(before[url])}}).open()
    later = TileStore(folder.parent / "ckpt", {**run, "inputs": {url: str(after[url])}}, resume=True)
    later.session = "a later process"
    with pytest.raises(InputError, match=f"the input {url} changed"):
        later.open()
