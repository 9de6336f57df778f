"""Quality layers on the real fieldimager DSM and orthophoto: the fallback band marks exactly the
pixels where the guide is missing, the residual and the influence are what they say."""
import dask
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geosr
from geosr.errors import InputError
from geosr.cli import main
from geosr.core.sampling import avg_pool, repeat_cells

from conftest import write_tif

SCALE = 4
RUN = ["--scale", "4", "--tile-size", "12", "--overlap", "4", "--epochs", "10", "--seed", "0", "-q"]  # 2 x 2 tiles


@pytest.fixture(scope="module")
def files(small_files, tmp_path_factory):
    """The 24 x 24 source with a 3 x 3 nodata corner, and the orthophoto with its western 45 % set to
    nodata (a gap in the guide, along a line in map coordinates)."""
    d = tmp_path_factory.mktemp("quality")
    with rasterio.open(small_files["source"]) as r:
        a, profile = r.read(1), r.profile
    a[:3, :3] = r.nodata
    source = write_tif(d / "src.tif", a, profile["crs"], profile["transform"], nodata=r.nodata)
    with rasterio.open(small_files["guide"]) as g:
        # The gap ends near output column 44, so its feathered edge crosses the border between
        # the two 48-pixel tiles (the layers are computed in chunks, and must not see it).
        t = profile["transform"]
        b, cut_col = g.read(), int((t.c + 44 * t.a / SCALE - g.transform.c) / g.transform.a)
        b[:, :, :cut_col] = g.nodata
        cut_x = (g.transform @ (cut_col, 0))[0]
        guide = write_tif(d / "ortho.tif", b, g.crs, g.transform, nodata=g.nodata)
        bounds = g.bounds
    return {"source": source, "guide": guide, "cut_x": cut_x, "guide_bounds": bounds, "dir": d}


def read(path):
    with rasterio.open(path) as r:
        return r.read(masked=True).astype(np.float64).filled(np.nan), r.transform, r.crs, r.descriptions


def run_cli(files, tmp_path, *extra):
    out, q = tmp_path / "out.tif", tmp_path / "quality.tif"
    res = CliRunner().invoke(main, ["upsample", files["source"], files["guide"], *RUN, *extra, "-o", str(out),
                                    "--quality", str(q)])
    assert res.exit_code == 0, res.output
    return read(out), read(q)


def test_fallback_marks_the_guide_gap_and_the_output_is_bicubic_there(files, tmp_path):
    # --align none: the gap's edge stays where the file puts it (alignment would move the guide).
    (out, t, crs, _), (q, qt, qcrs, names) = run_cli(files, tmp_path, "--no-exact", "--align", "none")
    out = out[0]
    assert (qt, qcrs) == (t, crs) and q.shape == (3, 96, 96)
    assert names == ("fallback", "cycle_residual", "guide_influence")
    fallback = q[0]
    # Output pixels lying wholly west of the gap's edge have no guide; those more than the
    # feather (8 px) plus one inside the guide's valid extent have the whole guide.
    edge = 9 * t.a
    left = np.array([(t @ (c, 0))[0] for c in range(97)])
    top = np.array([(t @ (0, r))[1] for r in range(97)])
    no_guide = left[1:] <= files["cut_x"]
    b = files["guide_bounds"]
    cols = (left[:-1] >= files["cut_x"] + edge) & (left[1:] <= b.right - edge)
    rows = (top[:-1] <= b.top - edge) & (top[1:] >= b.bottom + edge)
    full_guide = rows[:, None] & cols[None, :]
    source_valid = repeat_cells(np.isfinite(read(files["source"])[0][0]), SCALE)
    assert no_guide.sum() >= 20 and full_guide.sum() >= 20 * 60
    np.testing.assert_array_equal(fallback[:, no_guide], np.where(source_valid[:, no_guide], 1.0, 0.0))
    np.testing.assert_array_equal(fallback[full_guide], 0.0)
    assert (fallback[~source_valid] == 0).all() and np.isnan(out[~source_valid]).all()
    # East of the gap the fallback fades out linearly over the feather: 1 - clip((d - 0.5) / 8, 0, 1)
    # at d pixels from the last pixel without guide (rows clear of the corner and the guide's edges).
    for r in range(20, 60):
        last = np.flatnonzero(fallback[r] < 1)[0] - 1  # the gap's last column
        assert last >= no_guide.sum() - 1
        d = np.arange(1, 20)
        np.testing.assert_allclose(fallback[r, last + d], 1 - np.clip((d - 0.5) / 8, 0, 1), rtol=0, atol=1e-6)
    # Where the layer says bicubic, the output is bicubic (exact=False: no back-projection).
    src, guide = geosr.open_raster(files["source"]), geosr.open_raster(files["guide"])
    bicubic = geosr.superresolve(src, guide, SCALE, "bicubic", exact=False, tile_size=12, overlap=4,
                                 align="none").compute().values
    is_fallback = fallback == 1
    np.testing.assert_allclose(out[is_fallback], bicubic[is_fallback], rtol=0, atol=1e-5)
    guided = fallback == 0
    assert np.nanmax(np.abs(out - bicubic)[guided & source_valid]) > 0.01
    # Band 3 is |output - bicubic|; band 2 is avg-pool(output) - source, per cell.
    np.testing.assert_allclose(q[2], np.abs(out - bicubic), rtol=0, atol=1e-5)
    lr = read(files["source"])[0][0]
    np.testing.assert_allclose(q[1], repeat_cells(avg_pool(out, SCALE) - lr, SCALE), rtol=0, atol=1e-5)


def test_exact_output_has_a_near_zero_residual_and_the_api_gives_the_same_layers(files, tmp_path):
    (out, *_), (q, *_) = run_cli(files, tmp_path)
    lr = read(files["source"])[0][0]
    residual = q[1][np.isfinite(q[1])]
    assert residual.size > 0 and np.abs(residual).max() <= 1e-4 * np.nanmax(np.ptp(lr[np.isfinite(lr)]))
    src, guide = geosr.open_raster(files["source"]), geosr.open_raster(files["guide"])
    result, layers = geosr.superresolve(src, guide, SCALE, tile_size=12, overlap=4, epochs=10, seed=0, quality=True)
    assert [len(c) for c in layers.chunks[1:]] == [2, 2]
    result, layers = dask.compute(result, layers)
    np.testing.assert_allclose(result.values, out[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(layers.values, q, rtol=0, atol=1e-5)


def test_quality_file_is_never_overwritten_and_never_the_output(files, tmp_path):
    taken = tmp_path / "quality.tif"
    taken.write_bytes(b"keep me")
    args = ["upsample", files["source"], files["guide"], *RUN, "-o", str(tmp_path / "o.tif")]
    res = CliRunner().invoke(main, [*args, "--quality", str(taken)])
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert taken.read_bytes() == b"keep me" and not (tmp_path / "o.tif").exists()
    res = CliRunner().invoke(main, [*args, "--quality", str(tmp_path / "o.tif")])
    assert res.exit_code != 0 and "file of their own" in res.output


def test_ensemble_spread_is_the_std_over_seeds(files, tmp_path, monkeypatch):
    """--ensemble 2: band 4 is the sample std of the output and a run with the next seed, computed
    here from that run made separately; 0 where both fell back to bicubic, > 0 where the guide acts.
    The guide's alignment is estimated once: the layers and the second seed reuse the run's."""
    from geosr.pipeline import coregister

    estimates = []
    real = coregister._estimate_alignment
    monkeypatch.setattr(coregister, "_estimate_alignment", lambda *a: estimates.append(real(*a)) or estimates[-1])
    (out, *_), (q, *_, names) = run_cli(files, tmp_path, "--ensemble", "2")
    assert len(estimates) == 1 and estimates[0] is not None
    monkeypatch.undo()
    assert names == ("fallback", "cycle_residual", "guide_influence", "ensemble_spread")
    other = tmp_path / "seed1.tif"
    res = CliRunner().invoke(main, ["upsample", files["source"], files["guide"], *RUN[:-3], "--seed", "1", "-q",
                                    "-o", str(other)])
    assert res.exit_code == 0, res.output
    second = read(other)[0][0]
    expected = np.abs(out[0] - second) / np.sqrt(2)  # std with ddof=1 of two values
    np.testing.assert_allclose(q[3], expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    guided, bicubic = q[0] == 0, q[0] == 1
    # Where the output fell back to bicubic the seeds agree, up to the exact correction that
    # back-projection spreads in from guided neighbours.
    spread_guided, spread_bicubic = np.nanmean(q[3][guided]), np.nanmean(q[3][bicubic])
    print(f"\nensemble spread over 2 seeds: mean {spread_guided:.2e} m guided, {spread_bicubic:.2e} m on bicubic")
    assert spread_guided > 1e-3 and spread_bicubic < 0.1 * spread_guided
    res = CliRunner().invoke(main, ["upsample", files["source"], files["guide"], *RUN, "--ensemble", "2",
                                    "-o", str(tmp_path / "x.tif")])
    assert res.exit_code != 0 and "give --quality FILE as well" in res.output
    res = CliRunner().invoke(main, ["upsample", files["source"], files["guide"], *RUN, "--method", "bicubic",
                                    "--ensemble", "2", "--quality", str(tmp_path / "q2.tif"), "-o", str(tmp_path / "b.tif")])
    assert res.exit_code != 0 and "do not apply to --method bicubic" in res.output, res.output
    assert "--ensemble (the method gives the same output for any seed)" in res.output
    with pytest.raises(InputError, match="needs a learned method"):
        geosr.spec.check_ensemble("bicubic", 2)
