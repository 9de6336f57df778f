"""The golden cases: small runs through every path of the pipeline, whose outputs were recorded
before the pipeline was restructured (issue 19), so a refactor can be checked bit for bit.

``outputs.json`` keeps a digest of each output (SHA-256 of its float32 bytes, with its shape and a
few statistics for the message when it differs) and its tags, not the arrays: the inputs are crops
of shared data that the project may not redistribute, and outputs made from them would. ``python
tests/golden/cases.py`` writes it again; only do that when a change of output is intended, and say
why in the commit. Torch runs on one thread and dask synchronously, so the outputs do not depend
on the machine's core count.
"""
from __future__ import annotations

import hashlib
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUTS = HERE / "outputs.json"
# Tags that name the machine, the versions or the files' places, not what the run did.
VOLATILE = ("geosr_version", "geosr_commit", "geosr_python", "geosr_numpy", "geosr_torch", "geosr_gdal",
            "geosr_rasterio", "geosr_cuda", "geosr_threads", "geosr_input_sha256", "geosr_input_remote",
            "geosr_input_token")


@contextmanager
def pinned():
    """One torch thread, the synchronous scheduler."""
    import dask
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with dask.config.set(scheduler="synchronous"):
            yield
    finally:
        torch.set_num_threads(before)


def tags(da) -> str:
    keep = {k: str(v) for k, v in da.attrs.items() if str(k).startswith("geosr_")
            and k not in VOLATILE}
    return json.dumps(keep, sort_keys=True)


def digest(a) -> dict:
    """What the golden file keeps of an output: its shape, the SHA-256 of its float32 bytes (every NaN
    and zero written one way, as ``==`` compares them) and statistics that show how far it moved."""
    a = np.asarray(a, np.float32) + np.float32(0)  # -0.0 becomes 0.0
    a[np.isnan(a)] = np.nan
    finite = a[np.isfinite(a)]
    return {"shape": list(a.shape), "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
            "nan": int(np.isnan(a).sum()), "mean": float(finite.mean()) if finite.size else None,
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None}


def run_all(files: dict, depth: tuple) -> dict:
    """Every case's output (a :func:`digest`) and tags (a dict), by name."""
    import geosr

    target, guide = depth
    hr = target[0, :64, :64]
    rgb = guide[0][:, :64, :64]
    lr = hr.reshape(16, 4, 16, 4).mean(axis=(1, 3))
    out = {}
    with pinned():
        out["array_mmsr"] = geosr.superresolve_array(lr, rgb, 4, epochs=15, progress=False)
        out["array_mmsr_raw_gaussian"] = geosr.superresolve_array(lr, rgb, 4, epochs=15, exact=False, psf="gaussian",
                                                                  align="none", progress=False)
        out["array_cmsr"] = geosr.superresolve_array(lr, rgb, 4, "cmsr", steps=15, align="none", progress=False)
        src, ortho = geosr.open_raster(files["source"]), geosr.open_raster(files["guide"])
        runs = {
            "tile_mmsr": dict(epochs=10, tile_size=12, mode="tile"),
            "tile_mmsr_flat": dict(epochs=10, tile_size=12, mode="tile", flat_mask=3.0, align="none"),
            "scene_mmsr": dict(epochs=10, tile_size=12, mode="scene", batch_size=2, align="none"),
            "tile_bicubic": dict(method="bicubic", tile_size=12),
            "tile_cmsr_gaussian": dict(method="cmsr", steps=10, tile_size=12, psf="gaussian", align="none"),
        }
        for name, kw in runs.items():
            kw = dict(kw)
            method = kw.pop("method", "mmsr")
            lazy = geosr.superresolve(src, ortho, 4, method, progress=False, **kw)
            out[name] = lazy.values
            out[name + ".tags"] = tags(lazy)
        lazy, q = geosr.superresolve(src, ortho, 4, epochs=10, tile_size=12, mode="tile", align="none",
                                     quality=True, ensemble=2, progress=False)
        out["quality_ensemble"] = q.values
        out["quality_ensemble.tags"] = tags(q)
    return {k: (json.loads(v) if isinstance(v, str) else digest(v)) for k, v in out.items()}


def _inputs():
    sys.path.insert(0, str(HERE.parent))
    import tempfile

    import rasterio
    from rasterio.windows import Window, from_bounds

    from conftest import DATA, degrade, write_tif

    d = Path(tempfile.mkdtemp())
    source, _ = degrade(DATA / "fieldimager" / "dsm.tif", d / "src.tif", 4, Window(150, 150, 96, 96))
    with rasterio.open(DATA / "fieldimager" / "odm_orthophoto.tif") as g:
        win = from_bounds(*rasterio.open(source).bounds, transform=g.transform).round_offsets().round_lengths()
        guide = write_tif(d / "ortho.tif", g.read(window=win), g.crs, g.window_transform(win), nodata=g.nodata)
    z = np.load(DATA / "pixtransform" / "depth_sample_images.npz")
    return {"source": source, "guide": guide}, (z["target_imgs"].astype(np.float64), z["guide_imgs"])


if __name__ == "__main__":
    import torch

    results = run_all(*_inputs())
    results["_platform"] = {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    OUTPUTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    for k, v in results.items():
        print(k, v)
