"""Bad input gets a clear error that names the fix; odd but valid input just works."""
import numpy as np
import pytest

import geosr
from geosr import InputError, superresolve_array


@pytest.fixture
def small():
    """Arrays for checks that need no real data: input errors must not depend on ../shared."""
    rng = np.random.default_rng(0)
    return rng.normal(100.0, 5.0, (64, 64)), rng.uniform(0, 255, (3, 64, 64)).astype(np.float32)


def lr(t, s=4):
    return t.reshape(t.shape[0] // s, s, t.shape[1] // s, s).mean(axis=(1, 3))


def test_guide_shape_must_match_scale(small):
    t, g = small
    with pytest.raises(InputError, match=r"needs a 64 x 64 guide.*Crop or resample"):
        superresolve_array(lr(t), g[:, :60, :64], 4, method="bicubic")
    with pytest.raises(InputError, match="needs a 128 x 128 guide"):
        superresolve_array(lr(t), g, 8, method="bicubic")


def test_band_last_guide_gets_a_hint(small):
    t, g = small
    with pytest.raises(InputError, match=r"band-last.*np.moveaxis"):
        superresolve_array(lr(t), np.moveaxis(g, 0, -1), 4, method="bicubic")


@pytest.mark.parametrize("scale, message", [(1, "nothing to super-resolve"), (0, ">= 2"), (2.5, "integer >= 2"),
                                            (True, "integer"), ("4", "integer")])
def test_bad_scale(small, scale, message):
    t, g = small
    with pytest.raises(InputError, match=message):
        superresolve_array(lr(t), g, scale, method="bicubic")


def test_integral_float_scale_is_accepted(small):
    t, g = small
    assert superresolve_array(lr(t), g, 4.0, method="bicubic").shape == (64, 64)


def test_empty_and_all_invalid_sources(small):
    t, g = small
    with pytest.raises(InputError, match="empty"):
        superresolve_array(np.zeros((0, 16)), g[:, :0], 4, method="bicubic")
    with pytest.raises(InputError, match="no valid pixel.*nodata"):
        superresolve_array(np.full((16, 16), np.nan), g, 4, method="bicubic")
    with pytest.raises(InputError, match="no valid pixel"):
        superresolve_array(lr(t), g, 4, method="bicubic", mask=np.ones((16, 16), bool))


def test_guide_without_bands(small):
    t, _ = small
    with pytest.raises(InputError, match="0 bands"):
        superresolve_array(lr(t), np.zeros((0, 64, 64)), 4, method="bicubic")


def test_source_must_be_2d_real(small):
    t, g = small
    with pytest.raises(InputError, match="2-D"):
        superresolve_array(np.stack([lr(t), lr(t)]), g, 4, method="bicubic")
    with pytest.raises(InputError, match="real numbers"):
        superresolve_array(lr(t).astype(complex), g, 4, method="bicubic")


def test_mask_shape_and_unknown_method_and_options(small):
    t, g = small
    with pytest.raises(InputError, match="mask has shape"):
        superresolve_array(lr(t), g, 4, method="bicubic", mask=np.zeros((3, 3), bool))
    # A GDAL/rasterio dataset mask (255 = valid) would be silently inverted if taken as bool.
    with pytest.raises(InputError, match=r"mask must be boolean.*mask == 0"):
        superresolve_array(lr(t), g, 4, method="bicubic", mask=np.full((16, 16), 255, np.uint8))
    with pytest.raises(InputError, match="unknown method 'srcnn'.*bicubic"):
        superresolve_array(lr(t), g, 4, method="srcnn")
    with pytest.raises(InputError, match=r"unknown option\(s\) \['radius'\]"):
        superresolve_array(lr(t), g, 4, method="bicubic", radius=3)
    with pytest.raises(InputError, match=r"unknown MMSR option\(s\) \['epoch'\]"):
        superresolve_array(lr(t), g, 4, epoch=3)
    with pytest.raises(InputError, match="positive odd"):
        superresolve_array(lr(t), g, 4, source_neighbourhood=4)
    with pytest.raises(InputError, match="unknown MMSR preset"):
        superresolve_array(lr(t), g, 4, preset="thermal")
    with pytest.raises(InputError, match="epochs must be an integer"):
        superresolve_array(lr(t), g, 4, epochs=2.5)
    with pytest.raises(InputError, match="lr must be"):
        superresolve_array(lr(t), g, 4, lr=-1.0)


def test_unavailable_device_is_named(small):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    t, g = small
    with pytest.raises(InputError, match="has no CUDA device"):
        superresolve_array(lr(t), g, 4, device="cuda", epochs=1)


def test_odd_sizes_int_dtypes_and_single_band_guides_work(depth_pairs):
    t, g = depth_pairs
    src = np.round(lr(t[1, :39, :21], 3)).astype(np.uint16)  # 13 x 7, not a multiple of anything
    guide = g[1, 0, :39, :21].astype(np.uint8)                # (H, W), one band, uint8
    for method in ("bicubic", "guided"):
        out = superresolve_array(src, guide, 3, method=method)
        assert out.shape == (39, 21) and out.dtype == np.float32 and np.isfinite(out).all()
    out = superresolve_array(src, guide, 3, epochs=3, progress=False)
    assert out.shape == (39, 21) and out.dtype == np.float32 and np.isfinite(out).all()


def test_inputs_are_not_altered(small):
    t, g = small
    src = lr(t)
    src[2, 3] = np.nan
    g = g.copy()
    g[:, 5:9, 5:9] = np.nan
    mask = np.zeros(src.shape, bool)
    mask[0, 0] = True
    masked = np.ma.masked_array(src.copy(), mask.copy())
    before = [a.copy() for a in (src, g, mask, masked.data, masked.mask)]
    for method in ("mmsr", "bicubic", "guided"):
        superresolve_array(src, g, 4, method=method, exact=True, mask=mask, progress=False,
                           **({"epochs": 2} if method == "mmsr" else {}))
        superresolve_array(masked, g, 4, method=method, exact=True, progress=False,
                           **({"epochs": 2} if method == "mmsr" else {}))
    for a, b in zip((src, g, mask, masked.data, masked.mask), before):
        np.testing.assert_array_equal(a, b)


def test_masked_integer_guide_as_rasterio_reads_it(small):
    # rasterio's read(masked=True) gives masked uint8/uint16 arrays: masked pixels are invalid guide.
    t, g = small
    g8 = np.ma.masked_array(g.astype(np.uint8), np.zeros(g.shape, bool))
    g8.mask[:, :, 40:] = True
    out = superresolve_array(lr(t), g8, 4, method="bicubic")
    assert np.isfinite(out).all()
    out = superresolve_array(lr(t), g8, 4, epochs=2, progress=False)
    assert np.isfinite(out).all()


def test_masked_array_and_mask_and_nan_agree(small):
    t, g = small
    src = lr(t)
    hole = np.zeros(src.shape, bool)
    hole[5:8, 2:6] = True
    with_nan = np.where(hole, np.nan, src)
    a = superresolve_array(with_nan, g, 4, method="bicubic")
    b = superresolve_array(src, g, 4, method="bicubic", mask=hole)
    c = superresolve_array(np.ma.masked_array(src, hole), g, 4, method="bicubic")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_importing_geosr_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, geosr; assert 'torch' not in sys.modules, 'torch imported'; print(geosr.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == geosr.__version__
