"""geosr: guided super-resolution of rasters (DEM, thermal) with a high-resolution image as guide.

Importing geosr registers the ``DataArray.geosr`` accessor. It does not import torch; the
learned methods load it when they run.
"""
from ._version import __version__
from . import accessor as _accessor  # noqa: F401  (registers DataArray.geosr)
from .api import SRInfo, quality_layers, save_model, superresolve, superresolve_array
from .errors import InputError
from .pipeline.io import open_raster, write
from .core.metrics import CycleResidual, cycle_residual

__all__ = ["__version__", "superresolve", "superresolve_array", "quality_layers", "save_model", "open_raster", "write", "SRInfo",
           "cycle_residual", "CycleResidual", "InputError"]
