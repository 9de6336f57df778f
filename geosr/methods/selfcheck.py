"""The self-check: the run's method one scale down, on the user's own pair, scored against the source.

On a real raster there is no truth at the output's resolution, but the source is a truth one scale
down: degraded by ``scale`` with the run's sensor model it becomes a source, the guide averaged onto
the source grid becomes a guide, and the method's output at the source's resolution can be scored
against the real source, beside bicubic's. The ratio (guided RMSE / bicubic RMSE) says whether the
guide helps on this pair, at this scale, with these settings. It is a prediction of the real ratio,
not a measurement of it: benchmarks/RESULTS.md puts the two side by side where a truth exists.

It runs on at most :data:`WINDOWS` windows of at most :data:`SIDE` source pixels a side (a whole
small raster), each MMSR fit for at most :data:`EPOCHS` epochs, so its cost is bounded whatever
the raster's size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.align import window_of
from ..core.pair import prepare_pair
from ..core.psf import degrade
from ..core.sampling import avg_pool

# Windows of at most this many source pixels a side, at most this many of them (one per quadrant).
SIDE = 128
WINDOWS = 4
# One scale down, the check's source needs at least this many pixels a side.
MIN_SIDE = 8
# An MMSR fit of the check runs at most this many epochs: the setting at which benchmarks/RESULTS.md
# section 15 compared the check with true ratios. At the default preset's 650 it took 78 s of a
# whole Sentinel-2 scene's fixed cost (benchmarks/RESULTS.md section 19).
EPOCHS = 200
ABOUT = ("the method run one scale down: the source degraded by the scale with the run's sensor model, the guide "
         f"averaged onto the source grid (MMSR: at most {EPOCHS} epochs a window), the output scored against the "
         "source; ratio = guided RMSE / bicubic RMSE")


@dataclass(frozen=True)
class SelfCheck:
    """The check's result: RMSEs in source units over ``pixels`` source pixels of ``windows`` windows,
    or ``skipped`` (why it could not run)."""

    method: str
    scale: int
    rmse: float | None = None
    rmse_bicubic: float | None = None
    windows: int = 0
    pixels: int = 0
    skipped: str | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.rmse is None else self.rmse / self.rmse_bicubic

    @property
    def helps(self) -> bool | None:
        """Whether the method beat bicubic one scale down (None: not checked). A network can beat bicubic
        with a guide that has nothing to do with the source, so this is evidence for the method on this
        pair, not proof that the guide's detail is right."""
        return None if self.ratio is None else self.ratio < 1.0

    def attrs(self) -> dict:
        """The output's tags: ``geosr_selfcheck_ratio`` and the RMSEs beside it, or why it was skipped."""
        if self.skipped is not None:
            return {"geosr_selfcheck": f"skipped: {self.skipped}"}
        return {"geosr_selfcheck": ABOUT, "geosr_selfcheck_ratio": f"{self.ratio:.4f}",
                "geosr_selfcheck_rmse": f"{self.rmse:.6g}", "geosr_selfcheck_rmse_bicubic": f"{self.rmse_bicubic:.6g}",
                "geosr_selfcheck_pixels": f"{self.pixels} source pixels in {self.windows} window(s)"}

    def message(self, units: str = "") -> str:
        """One line for a person, and what to do where the guide did not help."""
        if self.skipped is not None:
            return f"self-check skipped: {self.skipped}"
        u = f" {units}" if units else ""
        line = (f"self-check one scale down (x{self.scale} on {self.pixels} source pixels): {self.method} RMSE "
                f"{self.rmse:.4g}{u}, bicubic {self.rmse_bicubic:.4g}{u}, ratio {self.ratio:.3f}")
        if self.helps:
            return line + " (below 1: better than bicubic at that scale)"
        return (line + ". The guide did not beat bicubic at that scale, so the output may be no better than "
                "bicubic. Check the guide's alignment (align / --align affine), the sensor model (psf='auto' / "
                "--psf auto) and the guide bands, or use bicubic.")

    def warn(self) -> None:
        """A UserWarning where the check ran and the guide did not help."""
        if self.helps is False:
            import warnings

            warnings.warn(self.message(), UserWarning, stacklevel=4)


def windows(valid, scale: int, row_edges=None, col_edges=None, side: int = SIDE) -> list[tuple[int, int, int, int]]:
    """(y0, x0, h, w) windows of the source for the check, sizes multiples of ``scale``: the whole source
    if it is at most 2 * ``side`` a side, else one window of ``side`` at the valid area of each quadrant.
    ``valid`` as for :func:`geosr.core.align.window_of` (per pixel, or a coarse map with its edges)."""
    valid = np.asarray(valid, bool)
    row_edges = np.arange(valid.shape[0] + 1) if row_edges is None else np.asarray(row_edges)
    col_edges = np.arange(valid.shape[1] + 1) if col_edges is None else np.asarray(col_edges)
    h, w = int(row_edges[-1]), int(col_edges[-1])
    if not valid.any() or min(h, w) < MIN_SIDE * scale:
        return []
    if max(h, w) <= 2 * side:
        found = [(0, 0, h, w)]
    else:
        found = []
        rows, cols = (row_edges[:-1] + row_edges[1:]) / 2, (col_edges[:-1] + col_edges[1:]) / 2
        for in_rows in (rows < h / 2, rows >= h / 2):
            for in_cols in (cols < w / 2, cols >= w / 2):
                quadrant = valid & in_rows[:, None] & in_cols[None, :]
                if quadrant.any():
                    found.append(window_of(quadrant, side, row_edges, col_edges))
        found = list(dict.fromkeys(found))[:WINDOWS]
    return [(y0, x0, hh - hh % scale, ww - ww % scale) for y0, x0, hh, ww in found
            if min(hh, ww) >= MIN_SIDE * scale]


def errors(source, guide, scale: int, method: str, options: dict, exact: bool, psf) -> tuple[float, float, int]:
    """(sum of squared errors of the method, of bicubic, number of pixels) one scale down on one window.

    ``source`` (h, w) float64 NaN = invalid, the truth; ``guide`` (c, h * scale, w * scale) NaN = invalid,
    already aligned and flat-masked as the run's. Both sizes multiples of ``scale``."""
    from .engine import run_pair

    source = np.asarray(source, np.float64)
    lower = degrade(source, scale, psf)  # NaN where a cell has an invalid pixel
    guide = avg_pool(np.asarray(guide, np.float64), scale)
    if np.isfinite(lower).sum() < 16 or not np.isfinite(guide).all(axis=0).any():
        return 0.0, 0.0, 0
    pair = prepare_pair(lower, guide, scale, psf=psf)
    guided = run_pair(pair, method, {"progress": False, **capped(method, options)}, exact)[0]
    bicubic = run_pair(pair, "bicubic", {}, exact)[0]
    ok = np.isfinite(source) & np.isfinite(guided) & np.isfinite(bicubic)
    return (float(np.sum((guided[ok] - source[ok]) ** 2)), float(np.sum((bicubic[ok] - source[ok]) ** 2)),
            int(ok.sum()))


def capped(method: str, options: dict) -> dict:
    """``options`` with MMSR's epochs at most :data:`EPOCHS` (the preset's where none are given)."""
    if method != "mmsr":
        return options
    from .mmsr import config_for

    epochs = options.get("epochs")
    if epochs is None:
        epochs = config_for(options.get("preset")).epochs
    return {**options, "epochs": min(int(epochs), EPOCHS)}


def slices(found, scale: int) -> list[tuple[tuple, tuple]]:
    """(source index, guide index) of each of :func:`windows`' windows, for arrays (h, w) and (c, H, W)."""
    return [((slice(y, y + h), slice(x, x + w)), (slice(None), slice(y * scale, (y + h) * scale),
                                                  slice(x * scale, (x + w) * scale))) for y, x, h, w in found]


def run(pieces, scale: int, method: str, options: dict, exact: bool, psf) -> SelfCheck:
    """The check over ``pieces``, an iterable of (source window, guide window) as :func:`errors` takes them,
    with a warning where the method did not beat bicubic."""
    check = scored(pieces, scale, method, options, exact, psf)
    check.warn()
    return check


def scored(pieces, scale: int, method: str, options: dict, exact: bool, psf) -> SelfCheck:
    """The check over ``pieces`` as :func:`run` takes them, without the warning (for a caller that
    computes it elsewhere and warns itself)."""
    sq, sq_bicubic, pixels, used = 0.0, 0.0, 0, 0
    for source, guide in pieces:
        e, e_bicubic, n = errors(source, guide, scale, method, options, exact, psf)
        sq, sq_bicubic, pixels, used = sq + e, sq_bicubic + e_bicubic, pixels + n, used + (n > 0)
    if pixels == 0:
        return skipped(method, scale, f"no window of at least {MIN_SIDE * scale} x {MIN_SIDE * scale} source pixels "
                                      "with a valid source and guide (a smaller source cannot be checked one scale "
                                      "down)")
    if sq_bicubic == 0:
        return skipped(method, scale, "bicubic is exact one scale down (a constant or linear source)")
    return SelfCheck(method, scale, float(np.sqrt(sq / pixels)), float(np.sqrt(sq_bicubic / pixels)), used, pixels)


def skipped(method: str, scale: int, why: str) -> SelfCheck:
    return SelfCheck(method, scale, skipped=why)


def of_pair(pair, method: str, options: dict, exact: bool) -> SelfCheck:
    """The check on a prepared :class:`geosr.core.pair.Pair` (its guide aligned and masked as the run's),
    with a warning where the guide did not help."""
    guide = pair.guide_with_gaps()
    pieces = ((pair.source[a], guide[b]) for a, b in slices(windows(pair.source_valid, pair.scale), pair.scale))
    return run(pieces, pair.scale, method, options, exact, pair.psf)
