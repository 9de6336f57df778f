"""Writing results: GeoTIFF/COG defaults, nodata policy, metadata carried over, atomic and safe."""
import numpy as np
import pytest
import rasterio
from affine import Affine

import geosr
from geosr.errors import InputError
from geosr.pipeline.io import output_nodata

from conftest import write_tif

CRS = "EPSG:32616"
T = Affine(1.0, 0, 296600.0, 0, -1.0, 4888200.0)


@pytest.fixture(scope="module")
def dsm_block(dsm_crop):
    return dsm_crop.astype(np.float32)  # 64 x 64 metres, valid everywhere


def _pair(tmp_path, source, nodata=None, **profile):
    """A source file and an RGB-like guide (the source's gradients) on its x2 grid."""
    src = write_tif(tmp_path / "src.tif", source, CRS, T, nodata=nodata, **profile)
    fine = np.kron(np.nan_to_num(source.astype(np.float64)), np.ones((2, 2)))
    guide = np.stack([fine, np.gradient(fine)[0], np.gradient(fine)[1]]).astype(np.float32)
    g = write_tif(tmp_path / "guide.tif", guide, CRS, T @ Affine.scale(0.5))
    return geosr.open_raster(src), geosr.open_raster(g)


def test_geotiff_defaults_metadata_and_provenance(tmp_path, dsm_block):
    src_path = write_tif(tmp_path / "dem.tif", dsm_block, CRS, T, nodata=-9999.0)
    with rasterio.open(src_path, "r+") as dst:
        dst.set_band_description(1, "elevation")
        dst.set_band_unit(1, "metre")
    src = geosr.open_raster(src_path)
    g = _pair(tmp_path, dsm_block)[1]
    out = geosr.superresolve(src, g, 2, method="bicubic")
    path = geosr.write(out, tmp_path / "out.tif")
    with rasterio.open(path) as r:
        assert r.dtypes[0] == "float32" and r.crs == CRS and r.transform == T @ Affine.scale(0.5)
        assert r.profile["tiled"] and r.block_shapes[0] == (512, 512)
        assert r.compression.name.lower() == "deflate"
        assert r.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"
        assert r.nodata == -9999.0
        assert r.descriptions == ("elevation",) and r.units == ("metre",)
        tags = r.tags()
        assert tags["geosr_version"] == geosr.__version__ and tags["geosr_method"] == "bicubic"
        assert tags["geosr_scale"] == "2" and tags["AREA_OR_POINT"] == "Area"
        assert "scale_factor" not in tags and "STATISTICS_MEAN" not in tags
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_cog_has_average_overviews(tmp_path, dsm_block):
    big = np.kron(dsm_block, np.ones((5, 5), np.float32))  # 320 x 320 source -> 640 x 640 output
    src, g = _pair(tmp_path, big)
    out = geosr.superresolve(src, g, 2, method="bicubic")
    path = geosr.write(out, tmp_path / "out.tif", cog=True)
    with rasterio.open(path) as r:
        assert r.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert r.overviews(1) == [2]
        full = r.read(1).astype(np.float64)
        ov = r.read(1, out_shape=(320, 320)).astype(np.float64)  # served from the overview
    np.testing.assert_allclose(ov, full.reshape(320, 2, 320, 2).mean(axis=(1, 3)), atol=1e-3)


def test_nodata_policy(tmp_path, dsm_block):
    a = dsm_block.copy()
    a[:8, :8] = -9999.0
    src, g = _pair(tmp_path, a, nodata=-9999.0)
    out = geosr.superresolve(src, g, 2, method="bicubic")
    assert out.rio.encoded_nodata == -9999.0
    assert np.isnan(out.values[:16, :16]).all() and np.isfinite(out.values[16:, 16:]).all()
    path = geosr.write(out, tmp_path / "kept.tif")
    with rasterio.open(path) as r:
        assert r.nodata == -9999.0 and (r.read(1)[:16, :16] == -9999.0).all()
    path = geosr.write(geosr.superresolve(src, g, 2, method="bicubic", dst_nodata=-1), tmp_path / "set.tif")
    with rasterio.open(path) as r:
        assert r.nodata == -1 and (r.read(1)[:16, :16] == -1).all()
    assert np.isnan(output_nodata(1e300))  # float32 cannot hold it: NaN
    assert output_nodata(65535) == 65535.0 and np.isnan(output_nodata(None))
    with pytest.raises(InputError, match="float32"):
        output_nodata(1e300, dst_nodata=1e300)


# (scale, offset): centimetres above 270 m; Landsat Collection 2 surface temperature (K).
@pytest.mark.parametrize("scale,offset", [(0.01, 270.0), (0.00341802, 149.0)])
def test_scaled_integer_source_is_written_in_physical_units(tmp_path, dsm_block, scale, offset):
    """uint16 DN with scale, offset and fill 0: the output holds physical values whose cell means are
    the source's, and no scale/offset tag is left for a reader to apply a second time."""
    physical = dsm_block.astype(np.float64)
    assert ((physical - offset) / scale).max() < 65535
    dn = np.round((physical - offset) / scale).astype(np.uint16)
    dn[:4, :4] = 0
    src_path = write_tif(tmp_path / "dn.tif", dn, CRS, T, nodata=0)
    with rasterio.open(src_path, "r+") as dst:
        dst.scales, dst.offsets = (scale,), (offset,)
    src = geosr.open_raster(src_path)
    g = _pair(tmp_path, dsm_block)[1]
    path = geosr.write(geosr.superresolve(src, g, 2, method="bicubic"), tmp_path / "out.tif")
    with rasterio.open(path) as r:
        assert r.scales == (1.0,) and r.offsets == (0.0,)  # no tag would make a reader scale twice
        out = r.read(1, masked=True)
    pooled = out.astype(np.float64).reshape(64, 2, 64, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(pooled[4:, 4:], dn[4:, 4:] * scale + offset, atol=1e-3)
    assert out.mask[:8, :8].all()


def test_refuses_to_overwrite_and_creation_options_override(tmp_path, dsm_block):
    src, g = _pair(tmp_path, dsm_block)
    out = geosr.superresolve(src, g, 2, method="bicubic")
    path = geosr.write(out, tmp_path / "out.tif")
    before = path.read_bytes()
    with pytest.raises(InputError, match="exists"):
        geosr.write(out, path)
    assert path.read_bytes() == before
    geosr.write(out, path, overwrite=True, compress="lzw", blockxsize=256, blockysize=256)
    with rasterio.open(path) as r:
        assert r.compression.name.lower() == "lzw" and r.block_shapes[0] == (256, 256)
    with pytest.raises(InputError, match="never writes over its inputs"):
        geosr.write(out, tmp_path / "src.tif", overwrite=True)


def test_multiband_source_keeps_the_chosen_bands_description(tmp_path, dsm_block):
    path = write_tif(tmp_path / "two.tif", np.stack([dsm_block, dsm_block + 1]), CRS, T)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = ("dsm", "dtm")
        dst.units = ("metre", "foot")
    g = _pair(tmp_path, dsm_block)[1]
    out = geosr.superresolve(geosr.open_raster(path), g, 2, method="bicubic", band=2)
    written = geosr.write(out, tmp_path / "out.tif")
    with rasterio.open(written) as r:
        assert r.descriptions == ("dtm",) and r.units == ("foot",)
