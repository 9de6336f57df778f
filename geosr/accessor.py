"""``DataArray.geosr``: a thin front over :mod:`geosr.api`, registered by ``import geosr``."""
from __future__ import annotations

import xarray as xr


@xr.register_dataarray_accessor("geosr")
class GeosrAccessor:
    """``da.geosr.superresolve(guide, scale=4, **options)`` and ``da.geosr.write(path, ...)``."""

    def __init__(self, da: xr.DataArray):
        self._da = da

    def superresolve(self, guide, scale=4, method: str = "mmsr", **options) -> xr.DataArray:
        """See :func:`geosr.superresolve`; this DataArray is the source.

        Dimensions other than band, y and x (``time``, a stack of scenes) are mapped over:
        each (y, x) slice is super-resolved with the same guide and options, and the results
        are stacked along those dimensions again (with ``quality=True`` the layers too).
        """
        from .api import superresolve

        extra = [d for d in self._da.dims if d not in ("band", "y", "x")]
        if not extra:
            return superresolve(self._da, guide, scale, method, **options)
        stacked = self._da.stack(geosr_slice=extra)
        results = [superresolve(stacked.isel(geosr_slice=i).drop_vars(["geosr_slice", *extra], errors="ignore"),
                                guide, scale, method, **options) for i in range(stacked.sizes["geosr_slice"])]

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
        from .io import write

        return write(self._da, path, cog=cog, overwrite=overwrite, progress=progress, **creation_options)
