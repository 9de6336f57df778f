"""The numpy core: one (LR source, HR guide) pair as arrays, no georeferencing, no torch.

Checking and preparing a pair (:mod:`.pair`), resampling between the two grids (:mod:`.sampling`,
:mod:`.warp`), the sensor model (:mod:`.psf`), back-projection (:mod:`.backprojection`), the
guide's displacement (:mod:`.align`), terrain derivatives (:mod:`.terrain`) and scores (:mod:`.metrics`).
"""
