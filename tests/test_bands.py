"""Several source bands in one run (--band 1,2 / all): each band equals its own single-band run."""
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geosr
from geosr.runtime.checkpoint import stores_of
from geosr.cli import main

from conftest import write_tif

RUN = ["--scale", "4", "--tile-size", "12", "--overlap", "4", "--epochs", "5", "--seed", "1", "-q"]


@pytest.fixture(scope="module")
def three_bands(small_files, tmp_path_factory):
    """The fieldimager DSM window as a 3-band source: metres, the same in decimetres above 250 m, and
    a relief-free band (the DSM smoothed), each with the file's nodata."""
    from scipy import ndimage

    with rasterio.open(small_files["source"]) as r:
        dsm, profile = r.read(1).astype(np.float64), r.profile
    bands = np.stack([dsm, (dsm - 250.0) * 10.0, ndimage.gaussian_filter(dsm, 2.0)]).astype(np.float32)
    d = tmp_path_factory.mktemp("bands")
    path = write_tif(d / "three.tif", bands, profile["crs"], profile["transform"], nodata=r.nodata)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = ("dsm", "dsm_dm", "smooth")
    return path, str(small_files["guide"])


def read(path):
    with rasterio.open(path) as r:
        return r.read(), r.transform, r.crs, r.descriptions, r.tags()


@pytest.mark.parametrize("align", ["none", "shift"])
def test_all_bands_equal_single_band_runs(three_bands, tmp_path, align):
    source, guide = three_bands
    res = CliRunner().invoke(main, ["upsample", source, guide, *RUN, "--align", align, "--band", "all",
                                    "-o", str(tmp_path / "all.tif")])
    assert res.exit_code == 0, res.output
    data, transform, crs, names, tags = read(tmp_path / "all.tif")
    assert data.shape == (3, 96, 96) and names == ("dsm", "dsm_dm", "smooth")
    assert tags["geosr_band"] == "1,2,3"
    assert not list(tmp_path.glob("*.geosr-resume")), "every band's checkpoint is removed after success"
    for b in (1, 2, 3):
        res = CliRunner().invoke(main, ["upsample", source, guide, *RUN, "--align", align, "--band", str(b),
                                        "-o", str(tmp_path / f"b{b}.tif")])
        assert res.exit_code == 0, res.output
        one = read(tmp_path / f"b{b}.tif")
        assert (one[1], one[2]) == (transform, crs)
        if align == "shift" and b == 3:
            continue  # the smoothed band's own estimate differs: see below
        # Bands 1 and 2 are affine in each other, so their own alignment estimates agree, and
        # each band of the multi-band run is its single-band run, bit for bit.
        assert one[4].get("geosr_align_shift_px") == tags.get("geosr_align_shift_px")
        np.testing.assert_array_equal(data[b - 1], one[0][0])
    if align == "shift":
        # The alignment is measured once, on the first band, and applied to all of them.
        src, g = geosr.open_raster(source), geosr.open_raster(guide)
        kw = dict(tile_size=12, overlap=4, epochs=5, seed=1)
        first = geosr.superresolve(src, g, 4, band=1, **kw)
        third = geosr.superresolve(src, g, 4, band=3, align=first.encoding["geosr_alignment"], **kw).compute()
        np.testing.assert_array_equal(data[2], third.values)


def test_band_lists_are_checked_before_any_work(three_bands, tmp_path):
    source, guide = three_bands
    for band, message in (("2,4", "give distinct data bands from [1, 2, 3]"), ("1,1", "distinct")):
        res = CliRunner().invoke(main, ["upsample", source, guide, *RUN, "--band", band, "-o", str(tmp_path / "x.tif")])
        assert res.exit_code != 0 and message in res.output, res.output
    assert not list(tmp_path.iterdir())


def test_quality_layers_of_several_bands_are_each_bands_own(three_bands, tmp_path):
    source, guide = three_bands
    args = ["upsample", source, guide, *RUN, "--align", "none", "--mode", "tile"]
    res = CliRunner().invoke(main, [*args, "--band", "1,2", "-o", str(tmp_path / "q.tif"),
                                    "--quality", str(tmp_path / "ql.tif")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, [*args, "--band", "2", "-o", str(tmp_path / "b2.tif"),
                                    "--quality", str(tmp_path / "ql2.tif")])
    assert res.exit_code == 0, res.output
    both, one = read(tmp_path / "ql.tif"), read(tmp_path / "ql2.tif")
    assert both[0].shape == (6, 96, 96) and (both[1], both[2]) == (one[1], one[2])
    assert both[3] == ("band 1: fallback", "band 1: cycle_residual", "band 1: guide_influence",
                       "band 2: fallback", "band 2: cycle_residual", "band 2: guide_influence")
    np.testing.assert_array_equal(both[0][3:], one[0])  # band 2's layers, as its own run's
    # the decimetre band's guide influence is 10 x the metre band's, where the guide was used
    ok = np.isfinite(both[0][2]) & (both[0][2] > 1e-3)
    assert ok.sum() > 1000
    np.testing.assert_allclose(np.median(both[0][5][ok] / both[0][2][ok]), 10.0, rtol=0.01)
    # in Python, the layers of the result in memory are the written file's
    out, q = geosr.superresolve(geosr.open_raster(source), geosr.open_raster(guide), 4, band=[1, 2], quality=True,
                                tile_size=12, overlap=4, epochs=5, seed=1, align="none", mode="tile", progress=False)
    assert q.attrs["long_name"] == both[3]
    np.testing.assert_allclose(q.values, both[0], rtol=1e-6, atol=1e-6)
    out = geosr.superresolve(geosr.open_raster(source), geosr.open_raster(guide), 4, "bicubic", band=[3, 1])
    assert out.dims == ("band", "y", "x") and list(out.band.values) == [3, 1]


def test_each_band_checkpoints_in_its_own_folder_and_resumes(three_bands, tmp_path):
    source, guide = three_bands
    src, g = geosr.open_raster(source), geosr.open_raster(guide)
    kw = dict(band=[1, 2], tile_size=12, overlap=4, epochs=5, seed=1, mode="tile", checkpoint=tmp_path / "ckpt")
    first = geosr.superresolve(src, g, 4, **kw)
    assert [s.folder for s in stores_of(first)] == [tmp_path / "ckpt" / "band-1", tmp_path / "ckpt" / "band-2"]
    assert [s.folder for s in stores_of(first.sel(band=2))] == [tmp_path / "ckpt" / "band-2"]
    assert not (tmp_path / "ckpt").exists(), "built, not computed: nothing on disk yet"
    first = first.compute()
    tiles = sorted(p.relative_to(tmp_path / "ckpt") for p in (tmp_path / "ckpt").glob("band-*/tile-*.npy"))
    assert [str(p.parent) for p in tiles] == ["band-1"] * 4 + ["band-2"] * 4
    # A tile of band 2 is replaced by zeros: a resumed run loads tiles instead of fitting them.
    np.save(tmp_path / "ckpt" / "band-2" / "tile-0-0.npy", np.zeros_like(np.load(tmp_path / "ckpt" / tiles[4])))
    again = geosr.superresolve(src, g, 4, resume=True, **kw).compute()
    np.testing.assert_array_equal(again.sel(band=1).values, first.sel(band=1).values)
    assert not np.array_equal(again.sel(band=2).values, first.sel(band=2).values)
