"""Estimating and correcting the misregistration between the guide and the source.

A DEM from one flight and an orthophoto from another are often off by a few pixels or a
small rotation. Guided SR then copies edges to the wrong place. Here the guide's
displacement is measured against the source, and removed, before any method runs.

How it is measured: a displacement is good when the guide, moved by it and degraded the
way the source was (averaged over each source cell), explains the source well. "Explains"
is a local linear fit, the guided filter's model: within every 3 x 3 source cells the
source is a linear function of the guide bands, which holds across modalities (a field
edge is a step in height and in colour, whatever the sign). The mean absolute residual
of that fit is minimised over shifts by a coarse-to-fine grid search (to 1/8 pixel), and
for ``"affine"`` then over the six affine parameters (Nelder-Mead). On the pixtransform
pairs this recovered applied shifts within 0.25 pixel; gradient-image correlation, tried
first, was off by up to 1.5 pixels across modalities (benchmarks/RESULTS.md section 7).

Sign convention, used everywhere in geosr: the estimate ``(dx, dy)`` in output (HR)
pixels says that the guide shows at column ``c + dx``, row ``r + dy`` what the source
shows at ``(c, r)``: positive dx means the guide's content sits to the right (east on a
north-up grid), positive dy that it sits lower (south). In map units the same
displacement is ``(dx * pixel width, -dy * pixel height)`` on a north-up grid, x east and
y north. A guide whose geotransform origin was moved east by 1.5 pixels is estimated as
dx = +1.5.

A rotation (``"affine"``) is reported as the angle of ``Affine.rotation(angle)`` in output
pixel coordinates, where rows run south: ``Affine.rotation(90)`` takes east (column + 1) to
south (row + 1). So a positive angle means the guide's content is turned clockwise on a
north-up map relative to the source; a guide whose picture was turned counter-clockwise
(``scipy.ndimage.rotate(guide, +2)`` as displayed, row 0 at the top) is estimated at -2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from scipy import ndimage

from ..errors import InputError
from .pair import guide_statistics, principal_bands
from .sampling import avg_pool, fill_nearest

ALIGNMENTS = ("none", "shift", "affine")
# The default, chosen by measurement (benchmarks/RESULTS.md section 7): see api.superresolve.
DEFAULT_ALIGN = "shift"
# The estimate is made on at most this many output pixels per side, taken around the centre.
MAX_SIDE = 512
# The local linear fit's window is (2 * FIT_RADIUS + 1) source cells on a side.
FIT_RADIUS = 1


class CannotEstimate(InputError):
    """Too little shared valid area to measure a displacement."""


def check_align(align):
    """One of ALIGNMENTS, or an :class:`Alignment` already measured (applied as it is)."""
    if isinstance(align, Alignment):
        return align
    if align not in ALIGNMENTS:
        raise InputError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    return align


@dataclass(frozen=True)
class Alignment:
    """A displacement of the guide relative to the source, in output-pixel coordinates.

    ``matrix`` maps an output pixel position (column, row; pixel corners at integers, as
    in a geotransform) to where the guide shows its content: guide content at
    ``matrix * (c, r)`` belongs at ``(c, r)``. The identity means aligned.
    """

    kind: str
    matrix: Affine
    centre: tuple[float, float]  # (column, row) where ``shift`` is reported
    score: float = float("nan")  # fit residual after correction / before (below 1: it helped)

    @property
    def shift(self) -> tuple[float, float]:
        """(dx, dy) in output pixels at ``centre``: see the module's sign convention."""
        cx, cy = self.centre
        x, y = self.matrix @ (cx, cy)
        return x - cx, y - cy

    @property
    def rotation_degrees(self) -> float:
        """Rotation of the guide's content relative to the source, in degrees: positive = clockwise on a
        north-up map (``Affine.rotation`` in pixel coordinates, rows running south; see the module)."""
        m = self.matrix
        return float(np.degrees(np.arctan2(m.d - m.b, m.a + m.e)))

    def map_shift(self, transform: Affine) -> tuple[float, float]:
        """The shift at ``centre`` in map units (x, y) for an output grid with ``transform``."""
        cx, cy = self.centre
        x0, y0 = transform @ (cx, cy)
        x1, y1 = transform @ (self.matrix @ (cx, cy))
        return x1 - x0, y1 - y0

    def attrs(self, transform: Affine | None = None) -> dict:
        """What a run records about the alignment (GeoTIFF tags and DataArray attrs)."""
        dx, dy = self.shift
        out = {"geosr_align": self.kind,
               "geosr_align_shift_px": f"{dx:.3f} {dy:.3f}",
               "geosr_align_convention": "guide content displaced by (dx columns, dy rows) of the output grid "
                                         "relative to the source; removed before the fit"}
        if transform is not None:
            mx, my = self.map_shift(transform)
            out["geosr_align_shift_map"] = f"{mx:.6g} {my:.6g}"
        if self.kind == "affine":
            out["geosr_align_matrix"] = " ".join(f"{v:.6g}" for v in tuple(self.matrix)[:6])
            out["geosr_align_rotation_deg"] = f"{self.rotation_degrees:.4f}"
            out["geosr_align_rotation_convention"] = ("degrees; positive = the guide's content turned clockwise on a "
                                                      "north-up map relative to the source; removed before the fit")
        if np.isfinite(self.score):
            out["geosr_align_residual_ratio"] = f"{self.score:.4f}"
        return out

    def moved(self, dx: float, dy: float) -> "Alignment":
        """The same displacement on a grid whose pixel (0, 0) is this one's (-dx, -dy)."""
        t = Affine.translation(dx, dy)
        return Alignment(self.kind, t @ self.matrix @ ~t, (self.centre[0] + dx, self.centre[1] + dy), self.score)

    def in_map(self, transform: Affine) -> Affine:
        """The same displacement as a map-to-map affine for an output grid with ``transform``."""
        return transform @ self.matrix @ ~transform


def identity(shape) -> Alignment:
    h, w = shape
    return Alignment("none", Affine.identity(), (w / 2, h / 2))


def estimate_or_skip(source, guide, scale: int, kind: str, **kwargs) -> Alignment | None:
    """:func:`estimate`, or None with a warning where the rasters are too small to measure it."""
    import warnings

    try:
        return estimate(source, guide, scale, kind, **kwargs)
    except CannotEstimate as e:
        warnings.warn(f"align={kind!r} skipped: {e}. The guide is used as it is.", UserWarning, stacklevel=3)
        return None


def estimate(source, guide, scale: int, kind: str = "shift", source_valid=None, max_side: int = MAX_SIDE,
             reach: int | None = None) -> Alignment:
    """Estimate the guide's displacement relative to the source.

    source: (h, w), NaN or ``~source_valid`` invalid. guide: (c, h*scale, w*scale), NaN
    invalid. On a larger raster a centred window of at most ``max_side`` output pixels
    is used (the displacement is assumed the same over the raster, or affine).
    ``reach``: the largest displacement looked for, in output pixels (default
    ``max(8, 2 * scale)``).
    """
    check_align(kind)
    if kind == "none":
        return identity(tuple(n * scale for n in np.shape(source)))
    src, valid, g, g_valid, (y0, x0) = central_window(source, guide, scale, source_valid, max_side)
    wh, ww = src.shape
    if valid.sum() < 16 or g_valid.mean() < 0.05:
        raise CannotEstimate("too few valid pixels shared by source and guide to estimate their alignment")
    reach = max(8, 2 * scale) if reach is None else int(reach)
    p, bands = fit_inputs(src, valid, g, g_valid)
    cells = valid & (avg_pool(g_valid.astype(np.float64), scale) == 1.0)
    # Cells whose fit window could see past the guide's edge once it is moved are not scored.
    cells = ndimage.binary_erosion(cells, iterations=FIT_RADIUS + -(-reach // scale), border_value=0)
    if cells.sum() < 16:
        raise CannotEstimate("the valid overlap of source and guide is too small to estimate their alignment "
                             f"(it needs a margin of {reach} output pixels beyond 3 x 3 source cells)")
    matrix, score = _search(p, bands, cells.astype(np.float64), kind, scale, reach)
    return Alignment(kind, matrix, (ww * scale / 2, wh * scale / 2), score).moved(x0 * scale, y0 * scale)


def central_window(source, guide, scale: int, source_valid=None, max_side: int = MAX_SIDE):
    """(source, valid, guide, guide valid, (y0, x0)) as float64 arrays on the window of at most ``max_side``
    output pixels a side at the centre of the source's valid area, where the fits are made: ``source``
    (h, w), NaN or ``~source_valid`` invalid; ``guide`` (c, h*scale, w*scale) or (h*scale, w*scale), NaN
    invalid."""
    src = np.asarray(source, np.float64)
    g = np.asarray(guide, np.float64)
    g = g[None] if g.ndim == 2 else g
    valid = np.isfinite(src) if source_valid is None else (np.asarray(source_valid) & np.isfinite(src))
    y0, x0, h, w = window_of(valid, max(8, max_side // scale))
    g = g[:, y0 * scale:(y0 + h) * scale, x0 * scale:(x0 + w) * scale]
    return src[y0:y0 + h, x0:x0 + w], valid[y0:y0 + h, x0:x0 + w], g, np.isfinite(g).all(axis=0), (y0, x0)


def fit_inputs(src, valid, g, g_valid) -> tuple[np.ndarray, np.ndarray]:
    """What the local linear fit compares: the source with its gaps filled, standardised, and at most 3
    principal bands of the standardised guide, gaps filled (``valid``, ``g_valid``: where each has data)."""
    p = fill_nearest(np.where(valid, src, 0.0), valid)
    p = (p - p[valid].mean()) / (p[valid].std() or 1.0)
    mean, std = guide_statistics(g, g_valid)
    bands = principal_bands(np.stack([fill_nearest(np.where(g_valid, (b - m) / sd, 0.0), g_valid)
                                      for b, m, sd in zip(g, mean, std)]), 3)
    return p, bands


def fit_residual(p, lr_bands, cells) -> float:
    """The mean absolute residual over ``cells`` of ``p`` fitted as a local linear function of ``lr_bands``
    (the guide brought to the source grid): how well the guide explains the source."""
    return float((cells * np.abs(p - local_linear_fit(p, lr_bands, FIT_RADIUS))).sum() / cells.sum())


def window_of(valid, side, row_edges=None, col_edges=None):
    """(y0, x0, height, width) of at most side x side LR pixels centred on the valid pixels.

    ``valid`` is per pixel, or per cell of a coarse map whose cells span the pixel rows
    ``row_edges[i]:row_edges[i + 1]`` and columns ``col_edges[j]:col_edges[j + 1]``
    (:func:`geosr.pipeline.inputs.valid_map`)."""
    row_edges = np.arange(valid.shape[0] + 1) if row_edges is None else np.asarray(row_edges)
    col_edges = np.arange(valid.shape[1] + 1) if col_edges is None else np.asarray(col_edges)
    h, w = int(row_edges[-1]), int(col_edges[-1])
    rows, cols = np.nonzero(valid)
    cy = (int(row_edges[rows.min()]) + int(row_edges[rows.max() + 1])) // 2
    cx = (int(col_edges[cols.min()]) + int(col_edges[cols.max() + 1])) // 2
    hh, ww = min(side, h), min(side, w)
    y0 = int(np.clip(cy - hh // 2, 0, h - hh))
    x0 = int(np.clip(cx - ww // 2, 0, w - ww))
    return y0, x0, hh, ww


def _box(a, r):
    return ndimage.uniform_filter(a, size=(1,) * (a.ndim - 2) + (2 * r + 1, 2 * r + 1), mode="reflect")


def local_linear_fit(p, g, radius: int = 1, eps: float = 1e-2) -> np.ndarray:
    """p (h, w) as a local linear function of the bands g (c, h, w): He et al.'s guided filter model."""
    a, b = local_linear_coefficients(p, g, radius, eps)
    return (a * g).sum(0) + b


def local_linear_coefficients(p, g, radius: int = 1, eps: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """(a (c, h, w), b (h, w)): p ~ sum(a * g) + b fitted by least squares in every (2 radius + 1)^2 window
    (``eps`` a ridge on a), each averaged over the windows that hold the pixel."""
    c = g.shape[0]
    mg, mp = _box(g, radius), _box(p[None], radius)[0]
    cov_gp = _box(g * p[None], radius) - mg * mp
    cov_gg = _box((g[:, None] * g[None]).reshape(c * c, *p.shape), radius).reshape(c, c, *p.shape)
    cov_gg = cov_gg - mg[:, None] * mg[None]
    a = np.linalg.solve(np.moveaxis(cov_gg, (0, 1), (-2, -1)) + eps * np.eye(c), np.moveaxis(cov_gp, 0, -1)[..., None])
    a = np.moveaxis(a[..., 0], -1, 0)
    b = mp - (a * mg).sum(0)
    return _box(a, radius), _box(b[None], radius)[0]



def _warp(img, params, half):
    """img sampled at the displaced positions: p + t + L (p - centre) / half (bilinear)."""
    tx, ty, a, b, c, d = params
    h, w = img.shape
    # ndimage: output[o] = input[M o + offset], (row, col) with pixel centres at integers.
    m = np.array([[1 + d / half, c / half], [b / half, 1 + a / half]])
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - m @ centre + np.array([ty, tx])
    return ndimage.affine_transform(img, m, offset, order=1, mode="nearest")


def _shifted(img, ty, tx):
    """img (..., h, w) sampled at (row + ty, column + tx), bilinear, edges repeated: :func:`_warp` of a
    pure translation, done as two 1-D interpolations (the grid search makes hundreds of them)."""
    for axis, t in ((-2, ty), (-1, tx)):
        n = img.shape[axis]
        i0 = np.arange(n) + int(np.floor(t))
        f = t - np.floor(t)
        lo, hi = (np.take(img, np.clip(i, 0, n - 1), axis=axis) for i in (i0, i0 + 1))
        img = lo if f == 0 else (1 - f) * lo + f * hi
    return img


def _search(p, bands, cells, kind, scale, reach):
    """The displacement whose moved, degraded guide best explains ``p`` by a local linear fit.

    Returns the (column, row) pixel-corner affine, and the fit's residual after correction
    divided by that without (below 1: the correction helped).
    """
    from scipy.optimize import minimize

    h, w = bands.shape[-2:]
    half = max(h, w) / 2

    def cost(params):
        if np.any(params[2:]):
            moved = np.stack([_warp(b, params, half) for b in bands])
        else:
            moved = _shifted(bands, params[1], params[0])
        return fit_residual(p, avg_pool(moved, scale), cells)

    best, span = np.zeros(6), reach
    for step in (2, 1, 0.5, 0.25, 0.125):
        offsets = np.arange(-span, span + step / 2, step)
        trials = [np.array([best[0] + dx, best[1] + dy, 0, 0, 0, 0]) for dx in offsets for dy in offsets]
        costs = [cost(t) for t in trials]
        best, span = trials[int(np.argmin(costs))], step
    best_cost = min(costs)
    if kind == "affine":
        res = minimize(cost, best, method="Nelder-Mead",
                       options={"initial_simplex": best + np.vstack([np.zeros(6), 0.5 * np.eye(6)]),
                                "xatol": 0.02, "fatol": 1e-6, "maxiter": 400})
        if res.fun < best_cost:
            best, best_cost = res.x, float(res.fun)
    tx, ty, la, lb, lc, ld = best
    cx, cy = w / 2, h / 2
    lin = Affine(1 + la / half, lb / half, 0, lc / half, 1 + ld / half, 0)
    matrix = Affine.translation(cx + tx, cy + ty) @ lin @ Affine.translation(-cx, -cy)
    return matrix, best_cost / (cost(np.zeros(6)) or 1.0)
