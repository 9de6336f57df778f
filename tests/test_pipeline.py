"""The geospatial pipeline on the real fieldimager drone DSM and orthophoto (../shared/data).

The source is the DSM averaged x4 over valid pixels; the output is scored against the
original DSM. Settings are test-size (fewer epochs than the default); the benchmark
(benchmarks/pipeline.py) runs the defaults.
"""
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

import geosr
from geosr.metrics import border_jump_ratio, hillshade, rmse
from geosr.sampling import repeat_cells

from conftest import degrade

SCALE = 4
EPOCHS = 200


@pytest.fixture(scope="module")
def case(fieldimager, tmp_path_factory):
    dsm, ortho = fieldimager
    d = tmp_path_factory.mktemp("fieldimager")
    source, truth = degrade(dsm, d / "dsm_x4.tif", SCALE)
    return {"source": source, "ortho": str(ortho), "truth": truth, "dir": d}


def run(case, guide=None, **kw):
    src = geosr.open_raster(case["source"])
    g = geosr.open_raster(guide or case["ortho"])
    if kw.get("method", "mmsr") == "mmsr":
        kw = {"epochs": EPOCHS, "mode": "tile", **kw}
    return src, geosr.superresolve(src, g, SCALE, **kw).compute()


@pytest.fixture(scope="module")
def single(case):
    return run(case, tile_size=1024)


@pytest.fixture(scope="module")
def bicubic(case):
    return run(case, method="bicubic", tile_size=1024)[1]


def test_output_grid_footprint_and_accuracy(case, single, bicubic):
    src, out = single
    t = src.rio.transform()
    assert out.rio.crs == src.rio.crs
    assert out.rio.transform() == t @ Affine.scale(1 / SCALE)
    assert out.shape == (src.shape[1] * SCALE, src.shape[2] * SCALE)
    # nodata footprint: exactly the source's nodata cells, refined
    src_invalid = (src.values[0] == src.rio.nodata)
    assert src_invalid.any()
    np.testing.assert_array_equal(np.isnan(out.values), repeat_cells(src_invalid, SCALE))
    truth = case["truth"]
    ratio = rmse(out.values, truth) / rmse(bicubic.values, truth)
    print(f"fieldimager x4, {EPOCHS} epochs: {ratio:.3f} x bicubic")
    assert ratio <= 0.80


def test_guide_in_geographic_crs_gives_the_same_grid_and_accuracy(case, single, tmp_path):
    import rasterio
    from rasterio.warp import calculate_default_transform, reproject, Resampling

    with rasterio.open(case["ortho"]) as g:
        transform, w, h = calculate_default_transform(g.crs, "EPSG:4326", g.width, g.height, *g.bounds)
        prof = g.profile | dict(crs="EPSG:4326", transform=transform, width=w, height=h)
        path = tmp_path / "ortho_4326.tif"
        with rasterio.open(path, "w", **prof) as dst:
            for b in range(1, g.count + 1):
                reproject(rasterio.band(g, b), rasterio.band(dst, b), resampling=Resampling.bilinear,
                          src_nodata=g.nodata, dst_nodata=g.nodata)
    src, native = single
    _, out = run(case, guide=str(path), tile_size=1024)
    assert out.rio.crs == native.rio.crs
    assert out.rio.transform() == native.rio.transform() and out.shape == native.shape
    r_native, r_geo = rmse(native.values, case["truth"]), rmse(out.values, case["truth"])
    print(f"RMSE native guide {r_native:.4f} m, EPSG:4326 guide {r_geo:.4f} m")
    assert abs(r_geo / r_native - 1) <= 0.05


def test_tiles_blend_without_seams(case, single):
    src, one = single
    lazy = geosr.superresolve(src, geosr.open_raster(case["ortho"]), SCALE, epochs=EPOCHS, tile_size=52,
                             mode="tile")
    ys, xs = lazy.chunks
    assert len(ys) == 2 and len(xs) == 2
    tiled = lazy.compute()
    truth = case["truth"]
    r_one, r_tiled = rmse(one.values, truth), rmse(tiled.values, truth)
    print(f"RMSE single tile {r_one:.4f} m, 2 x 2 tiles {r_tiled:.4f} m")
    assert r_tiled <= 1.02 * r_one
    pixel = abs(tiled.rio.transform().a)
    rows, cols = np.cumsum(ys)[:-1], np.cumsum(xs)[:-1]
    jumps = border_jump_ratio(hillshade(tiled.values, pixel), rows, cols)
    print(f"hillshade p99 jump across tile borders / inside: {jumps:.2f}")
    assert jumps <= 1.5


def test_accessor_and_cli_give_the_same_result(case, tmp_path):
    import rioxarray  # noqa: F401

    from geosr.cli import main

    src = geosr.open_raster(case["source"])
    t = src.rio.transform()
    bounds = (t.c + 20 * t.a, t.f + 60 * t.e, t.c + 60 * t.a, t.f + 20 * t.e)  # 40 x 40 source pixels
    out = tmp_path / "cli.tif"
    res = CliRunner().invoke(main, ["upsample", case["source"], case["ortho"], "--scale", str(SCALE), "--epochs",
                                    "10", "--seed", "5", "--bounds", *map(str, bounds), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    via_accessor = src.isel(y=slice(20, 60), x=slice(20, 60)).geosr.superresolve(
        geosr.open_raster(case["ortho"]), scale=SCALE, epochs=10, seed=5).compute()
    via_cli = rioxarray.open_rasterio(out, masked=True).squeeze("band")
    assert via_cli.shape == via_accessor.shape == (160, 160)
    assert via_cli.rio.transform() == via_accessor.rio.transform()
    np.testing.assert_array_equal(via_cli.values, via_accessor.values)
