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
        """See :func:`geosr.superresolve`; this DataArray is the source (a stack of slices too)."""
        from .api import superresolve

        return superresolve(self._da, guide, scale, method, **options)

    def write(self, path, cog: bool = False, overwrite: bool = False, progress: bool | None = None,
              **creation_options):
        """See :func:`geosr.write`; this DataArray is the result to write."""
        from .pipeline.io import write

        return write(self._da, path, cog=cog, overwrite=overwrite, progress=progress, **creation_options)

