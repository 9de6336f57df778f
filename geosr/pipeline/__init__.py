"""The lazy pipeline: georeferenced rasters of any size through the stages of a run (:mod:`.run`).

Reading and writing (:mod:`.io`, :mod:`.inputs`), grids (:mod:`.grid`), co-registration
(:mod:`.coregister`, :mod:`.flatmask`), the tile plan (:mod:`.plan`), scene training (:mod:`.train`),
the tile graph with its blend (:mod:`.tiling`), the output DataArray (:mod:`.assemble`) and the
quality layers (:mod:`.quality`).
"""
