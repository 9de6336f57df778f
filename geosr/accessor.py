"""``DataArray.geosr``: a thin front over :mod:`geosr.api`, registered by ``import geosr``."""
from __future__ import annotations

import xarray as xr

from .spec import RunSpec


@xr.register_dataarray_accessor("geosr")
class GeosrAccessor:
    """``da.geosr.superresolve(guide, scale=4, **options)`` and ``da.geosr.write(path, ...)``."""

    def __init__(self, da: xr.DataArray):
        self._da = da

    def superresolve(self, guide, scale=RunSpec.scale, method: str = RunSpec.method, **options) -> xr.DataArray:
        """See :func:`geosr.superresolve`; this DataArray is the source.

        Dimensions other than band, y and x (``time``, a stack of scenes) are mapped over:
        each (y, x) slice is super-resolved with the same guide and options, and the results
        are stacked along those dimensions again (with ``quality=True`` the layers too). With
        ``checkpoint=``, each slice keeps its checkpoint in a sub-folder named by its
        coordinates (e.g. ``time-2021-06-01``).
        """
        from .api import superresolve

        extra = [d for d in self._da.dims if d not in ("band", "y", "x")]
        if not extra:
            return superresolve(self._da, guide, scale, method, **options)
        stacked = self._da.stack(geosr_slice=extra)
        names = _slice_names(stacked, extra)
        results = []
        for i, name in enumerate(names):
            one = dict(options)
            if one.get("checkpoint") is not None:
                from .runtime.checkpoint import Location

                one["checkpoint"] = Location.of(one["checkpoint"]).child(name)
            results.append(superresolve(stacked.isel(geosr_slice=i).drop_vars(["geosr_slice", *extra],
                                                                              errors="ignore"),
                                        guide, scale, method, **one))

        def restack(parts):
            out = xr.concat(parts, dim="geosr_slice", combine_attrs="override")
            index = xr.Coordinates.from_pandas_multiindex(stacked.indexes["geosr_slice"], "geosr_slice")
            out = out.assign_coords(index).unstack("geosr_slice")
            return out.transpose(*extra, *parts[0].dims).rio.write_crs(parts[0].rio.crs)

        if options.get("quality"):
            return restack([r[0] for r in results]), restack([r[1] for r in results])
        return restack(results)

    def write(self, path, cog: bool = False, overwrite: bool = False, progress: bool | None = None,
              **creation_options):
        """See :func:`geosr.write`; this DataArray is the result to write."""
        from .pipeline.io import write

        return write(self._da, path, cog=cog, overwrite=overwrite, progress=progress, **creation_options)


def _slice_names(stacked, dims) -> list[str]:
    """A folder name per slice from its coordinates ("time-2021-06-01"), unique; by position where not."""
    import re

    import numpy as np

    def text(v):
        if isinstance(v, np.datetime64) or hasattr(v, "isoformat"):  # 2021-06-01, 2021-06-01T12-30-00
            v = str(np.datetime64(v, "s")).removesuffix("T00:00:00")
        return re.sub(r"[^A-Za-z0-9._-]+", "-", str(v)).strip("-") or "x"

    values = stacked.indexes["geosr_slice"]
    names = ["_".join(f"{d}-{text(v)}" for d, v in zip(dims, key if isinstance(key, tuple) else (key,)))
             for key in values]
    if len(set(names)) != len(names):
        names = [f"slice-{i}" for i in range(len(names))]
    return names
