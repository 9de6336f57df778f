"""A stack of rasters, (time, y, x) or (time, band, y, x): each slice super-resolved as a run of its own.

The guide is one raster for every slice, or a stack with the source's coordinates along some of
its extra dimensions (a guide per time step), from which each slice takes its own. With
``share_model`` the scene network trained on the first slice is run on (scene mode) or fine-tuned
to (hybrid mode) every other one: a time series of one place shares one training.
"""
from __future__ import annotations

import re

import numpy as np
import xarray as xr

from ..errors import InputError
from ..spec import TRAINED

SPATIAL = ("band", "y", "x")
SLICE = "geosr_slice"


def extra_dims(da) -> list[str]:
    """The dimensions of ``da`` other than band, y and x (none for anything but a DataArray)."""
    return [d for d in da.dims if d not in SPATIAL] if isinstance(da, xr.DataArray) else []


def over_slices(run_one, source: xr.DataArray, guide, share_model: bool = False, **options):
    """``run_one(slice, its guide, **options)`` on every slice of ``source``, restacked along its extra dimensions.

    With ``checkpoint=``, each slice keeps its checkpoint in a sub-folder named by its coordinates
    (``time-2021-06-01``)."""
    extra = extra_dims(source)
    if share_model:
        _check_shareable(options)
    stacked = source.stack({SLICE: extra})
    names = _slice_names(stacked, extra)
    slices = [stacked.isel({SLICE: i}) for i in range(len(names))]
    guides = [guide_for(guide, {d: one[d].values[()] for d in extra}, name) for one, name in zip(slices, names)]
    results, model = [], None
    for one, name, its_guide in zip(slices, names, guides):
        settings = dict(options)
        if settings.get("checkpoint") is not None:
            from ..runtime.checkpoint import Location

            settings["checkpoint"] = Location.of(settings["checkpoint"]).child(name)
        if model is not None:  # trained by the first slice: no training settings for the others (in mode
            # scene, epochs counts the training's steps too)
            training = ("train_steps", "batch_size", *(("epochs",) if settings.get("mode") == "scene" else ()))
            settings = {k: v for k, v in settings.items() if k not in training} | {"model": model}
        out = run_one(one.drop_vars([SLICE, *extra], errors="ignore"), its_guide, **settings)
        if share_model and model is None:
            model = (out[0] if isinstance(out, tuple) else out).encoding.get("geosr_model")
        results.append(out)

    def restack(parts):
        out = xr.concat(parts, dim=SLICE, combine_attrs="override")
        index = xr.Coordinates.from_pandas_multiindex(stacked.indexes[SLICE], SLICE)
        out = out.assign_coords(index).unstack(SLICE)
        return out.transpose(*extra, *parts[0].dims).rio.write_crs(parts[0].rio.crs)

    if isinstance(results[0], tuple):  # quality=True: (output, layers) per slice
        return restack([r[0] for r in results]), restack([r[1] for r in results])
    return restack(results)


def guide_for(guide, coords: dict, name: str):
    """The guide of one slice: ``guide`` itself, or its slice at ``coords`` where it has those dimensions."""
    if isinstance(guide, (list, tuple)):
        return [guide_for(g, coords, name) for g in guide]
    dims = extra_dims(guide)
    if not dims:
        return guide
    unknown = [d for d in dims if d not in coords]
    if unknown:
        raise InputError(f"the guide has the dimension(s) {', '.join(unknown)}, which the source has not: give one "
                         f"guide for every slice, or a guide per slice along the source's own dimensions "
                         f"({', '.join(coords)})")
    try:
        picked = guide.sel({d: coords[d] for d in dims})
    except KeyError:
        raise InputError(f"the guide has no slice at {name}: give a guide for every {', '.join(dims)} of the source "
                         f"(same coordinates), or one guide without a {dims[0]} dimension for all") from None
    if any(d in picked.dims for d in dims):
        raise InputError(f"the guide has more than one slice at {name}: give one guide per {', '.join(dims)}")
    return picked.drop_vars(dims, errors="ignore")


def _check_shareable(options: dict) -> None:
    if options.get("method", "mmsr") != "mmsr" or options.get("mode") not in TRAINED:
        raise InputError("share_model=True runs the scene network trained on the first slice on every slice: give "
                         "method 'mmsr' with mode 'scene' or 'hybrid'")
    if options.get("model") is not None:
        raise InputError("share_model=True trains one model on the first slice, model= gives one: pass one of them")


def _slice_names(stacked, dims) -> list[str]:
    """A folder name per slice from its coordinates ("time-2021-06-01"), unique; by position where not."""

    def text(v):
        if isinstance(v, np.datetime64) or hasattr(v, "isoformat"):  # 2021-06-01, 2021-06-01T12-30-00
            v = str(np.datetime64(v, "s")).removesuffix("T00:00:00")
        return re.sub(r"[^A-Za-z0-9._-]+", "-", str(v)).strip("-") or "x"

    values = stacked.indexes[SLICE]
    names = ["_".join(f"{d}-{text(v)}" for d, v in zip(dims, key if isinstance(key, tuple) else (key,)))
             for key in values]
    if len(set(names)) != len(names):
        names = [f"slice-{i}" for i in range(len(names))]
    return names
