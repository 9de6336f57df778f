"""Quality layers: where a result can be trusted, as bands on the output grid.

  fallback          1 where the output is the bicubic fallback (the guide is invalid, or under
                    the flat mask, and the source valid), 0 where it is guided, the feathered ramp's fraction in
                    between; 0 outside the source.
  cycle_residual    avg-pool(output) - source, per LR cell, repeated onto its HR pixels:
                    how far the output's cell means are from the source: 0 by construction
                    (float32 rounding) with exact=True, so informative only without it, or
                    with a Gaussian too wide to invert exactly; NaN on cells that are not
                    fully valid. With another psf, that sensor model of the output instead
                    of its cell means.
  guide_influence   |output - bicubic| (bicubic with the same exact setting): how much of the
                    result comes from the guide. Large values on flat ground are the place to
                    look for copied guide texture.
  ensemble_spread   (when asked for) the standard deviation over runs with different seeds:
                    where one fit's detail is luck rather than evidence. A single 200-epoch
                    fit varied by up to 10% in RMSE on a real depth pair (RESULTS section 7).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.align import Alignment
from ..core.pair import feathered_weight
from ..core.psf import AREA, PSF, degrade
from ..core.sampling import repeat_cells
from ..errors import InputError

BANDS = ("fallback", "cycle_residual", "guide_influence")
SPREAD = "ensemble_spread"
SPREAD_GUIDE = ("band 4 ensemble_spread: standard deviation over runs with different seeds, source units; "
                "large where the fit is unsure what the guide means")
GUIDE = ("band 1 fallback: 1 = bicubic (no valid guide, or flat mask), 0 = guided, between = feathered edge; "
         "band 2 cycle_residual: avg-pool(output) - source per source cell, source units; "
         "band 3 guide_influence: |output - bicubic|, source units")


def layers(output, source, guide, bicubic, scale: int, feather: float, psf: PSF = AREA):
    """Lazy (3, H, W) float32 dask array of :data:`BANDS`.

    output, bicubic: dask (H, W) on the output grid; source: dask (h, w), NaN = invalid;
    guide: dask (bands, H, W) on the output grid, NaN = invalid.
    """
    import dask.array as da

    output = da.asarray(output)
    hr_chunks = tuple(tuple(c * scale for c in cs) for cs in _lr_chunks(output.chunks, scale))
    out = output.rechunk(hr_chunks)
    src = source.rechunk(tuple(tuple(c // scale for c in cs) for cs in hr_chunks))
    # Each HR pixel gets what the sensor records for its cell; the halo lets a Gaussian see across chunks.
    seen = out.map_overlap(_seen_by_sensor, depth=psf.radius * scale, boundary="none", scale=scale, psf=psf,
                           dtype=np.float64)
    residual = (seen - da.map_blocks(repeat_cells, src, scale, chunks=hr_chunks, dtype=np.float64)).astype(np.float32)
    guide_valid = da.isfinite(guide.rechunk((guide.shape[0], *hr_chunks))).all(axis=0)
    depth = math.ceil(feather) + 2  # the ramp only sees invalid guide pixels within feather + 0.5
    weight = guide_valid.map_overlap(feathered_weight, depth=depth, boundary="none", feather=feather,
                                     dtype=np.float32)
    source_valid = da.map_blocks(repeat_cells, da.isfinite(src), scale, chunks=hr_chunks, dtype=bool)
    fallback = da.where(source_valid, 1.0 - weight, 0.0).astype(np.float32)
    influence = abs(out - bicubic.rechunk(hr_chunks)).astype(np.float32)
    return da.stack([fallback, residual, influence])


def spread(members):
    """Pixel-wise sample standard deviation over the ensemble's outputs (dask (H, W) each), float32."""
    import dask.array as da

    stack = da.stack([da.asarray(m).astype(np.float64) for m in members])
    return stack.std(axis=0, ddof=1).astype(np.float32)


def _lr_chunks(chunks, scale):
    """Chunk sizes that are whole LR cells (output chunks from a file need not be)."""
    out = []
    for cs in chunks:
        n = sum(cs) // scale
        step = max(1, max(cs) // scale)
        out.append(tuple(min(step, n - i) for i in range(0, n, step)))
    return out


def _seen_by_sensor(block, scale, psf):
    return repeat_cells(degrade(block, scale, psf), scale)


def of_result(output, source, guide, spec):
    """:func:`of_run`, band by band for a result of several source bands ((band, y, x), the band
    coordinate holding the source's band numbers): the layers of each band in turn, named
    ``band N: <layer>``. Each band's layers are those its own run's would be."""
    if not spec.several_bands:
        return of_run(output, source, guide, spec)
    import xarray as xr

    numbers = [int(b) for b in output.band.values]
    per = []
    for i, b in enumerate(numbers):
        one = output.isel(band=i, drop=True)
        one.attrs = {**output.attrs, "geosr_band": str(b)}
        for key, value in output.attrs.items():  # a tag that differs by band holds each band's, joined
            if str(key).startswith("geosr_psf") and " | " in str(value):
                one.attrs[key] = str(value).split(" | ")[i]
        one.encoding = dict(output.encoding)
        per.append(of_run(one, source, guide, spec.replace(band=b)))
    q = xr.concat(per, dim="band", combine_attrs="override")
    q = q.assign_coords(band=list(range(1, q.sizes["band"] + 1)))
    q.attrs = {**per[0].attrs, "geosr_band": ",".join(map(str, numbers)),
               "long_name": tuple(f"band {b}: {name}" for b, p in zip(numbers, per) for name in p.attrs["long_name"])}
    q = q.rio.write_crs(per[0].rio.crs).rio.write_transform(per[0].rio.transform()).rio.write_nodata(np.nan,
                                                                                                   encoded=True)
    q.encoding["geosr_inputs"] = tuple(dict.fromkeys(n for p in per for n in p.encoding.get("geosr_inputs", ())))
    return q


def of_run(output, source, guide, spec):
    """Lazy quality layers of ``output``, the result of ``spec`` on ``source`` and ``guide``
    (:func:`geosr.quality_layers`): the inputs co-registered as the run did, bicubic on the same
    tiles, and with ``spec.ensemble`` the runs with the next seeds. The alignment the run found
    (``output.encoding["geosr_alignment"]``, set while the result is in memory) is reused, not
    estimated again."""
    import dask.array as da
    import rioxarray  # noqa: F401
    import xarray as xr
    from dask.base import tokenize

    from ..runtime import provenance
    from ..runtime.fingerprint import sources_of
    from . import tiling
    from .coregister import coregister
    from .run import run

    found = output.encoding.get("geosr_alignment")
    if isinstance(found, Alignment) and spec.align in ("shift", "affine"):
        spec = spec.replace(align=found)
    co = coregister(source, guide, spec)
    spec = co.settled(spec)
    hr_box = co.hr_box
    if tuple(output.shape[-2:]) != tuple(hr_box.shape) or output.rio.transform() != hr_box.affine:
        raise InputError(f"the output ({output.shape[-2]} x {output.shape[-1]} px, transform "
                         f"{tuple(output.rio.transform())[:6]}) is not on the source grid refined by {spec.scale} "
                         f"({hr_box.shape[0]} x {hr_box.shape[1]} px, {tuple(hr_box.affine)[:6]}): pass the "
                         "source and guide the output was made from, with the same --bounds")
    planned = spec.planned(co.src.shape)
    bicubic = planned.replace(method="bicubic", mode="tile", batch_size=None, train_steps=None, scene_model=None,
                              quality=False, ensemble=None, options={})
    token = tokenize("quality-bicubic", bicubic.token(co.lr, co.hr_guide, None))
    fallback = tiling.tiled(co.lr, co.hr_guide, spec.scale, planned.tile_size, planned.overlap, tiling.kernel(bicubic),
                            spec.exact, token, psf=spec.psf)
    data = layers(output.data.astype(np.float32), co.lr, co.hr_guide, fallback, spec.scale, spec.feather_px, spec.psf)
    names = BANDS
    if spec.ensemble is not None:
        members = [output.data.astype(np.float32)]
        for k in range(1, int(spec.ensemble)):
            member = spec.replace(quality=False, ensemble=None, selfcheck=False,
                                  options={**spec.options, "seed": spec.seed + k, "progress": False})
            members.append(run(source, guide, member).data)
        data = da.concatenate([data, spread(members)[None]])
        names = (*names, SPREAD)
    q = xr.DataArray(data, dims=("band", "y", "x"),
                     coords={"band": list(range(1, len(names) + 1)), "y": output.y.values, "x": output.x.values})
    q = q.rio.write_crs(output.rio.crs).rio.write_transform(hr_box.affine).rio.write_nodata(np.nan, encoded=True)
    q.attrs.update({k: v for k, v in output.attrs.items() if str(k).startswith("geosr_")})
    q.attrs["long_name"] = names
    q.attrs["geosr_quality"] = GUIDE + ("; " + SPREAD_GUIDE if len(names) > 3 else "")
    q.attrs.update(provenance.software())
    # Every file the layers are computed from, the output's own included: writing them may replace none.
    q.encoding["geosr_inputs"] = tuple(dict.fromkeys(
        [*output.encoding.get("geosr_inputs", ()), *(n for a in [output, source, *co.guides] for n in sources_of(a)[0])]))
    return q
