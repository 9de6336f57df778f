"""geosr: guided super-resolution of rasters (DEM, thermal) with a high-resolution image as guide.

Importing geosr does not import torch; the learned methods load it when they run.
"""
from ._version import __version__
from .api import SRInfo, superresolve_array
from .metrics import CycleResidual, cycle_residual
from .errors import InputError

__all__ = ["__version__", "superresolve_array", "SRInfo", "cycle_residual", "CycleResidual", "InputError"]
