"""Stage 2 of a run: where the tiles lie, with their halos, and how much each one weighs in the blend.

All sizes are along one axis; a tile is the product of a row span and a column span. A tile's
LR core has a halo of ``overlap`` source pixels on each inner side; its blending weight is 0
over the outer half of the halo and ramps to 1 over the next ``overlap * scale`` output pixels,
so a ramp and its neighbour's mirror add up to 1 (:func:`window`).
"""
from __future__ import annotations

import math

import numpy as np


def split(n: int, tile: int, min_chunk: int) -> tuple[int, ...]:
    """Near-equal chunk sizes covering ``n``: about ``tile`` each, none below ``min_chunk``."""
    k = max(1, math.ceil(n / tile))
    while k > 1 and n // k < min_chunk:
        k -= 1
    base, extra = divmod(n, k)
    return tuple(base + (1 if i < extra else 0) for i in range(k))


def window(length: int, before: int, after: int) -> np.ndarray:
    """1-D blending weights over a haloed tile of ``length`` HR pixels.

    ``before``/``after`` are the HR halo widths; the shared band with a neighbour is twice
    the halo. Over it the weight falls from 1 to 0 (see :func:`_fall`), and the
    neighbour's is 1 minus that, so the two sum to 1.
    """
    w = np.ones(length)
    if after:
        w[length - 2 * after:] = _fall(2 * after)
    if before:
        w[: 2 * before] = 1.0 - _fall(2 * before)
    return w


def _fall(n: int) -> np.ndarray:
    """1 over the first quarter of the band, a raised-cosine fall over the middle half, 0 over the last quarter.

    The last quarter is the outer half of the tile's halo: the pixels nearest its edge,
    where zero padding (or a kernel's edge rule) shows, never reach the mosaic.
    """
    dead = n // 4
    ramp = n - 2 * dead
    fall = 0.5 * (1.0 + np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp))
    return np.concatenate([np.ones(dead), fall, np.zeros(dead)])


def spans(chunks, depth, scale):
    """Per tile along one axis: HR start and end including halos, and the HR halo before/after."""
    edges = np.concatenate([[0], np.cumsum(chunks)])
    n = len(chunks)
    out = []
    for i in range(n):
        before = depth if i > 0 else 0
        after = depth if i < n - 1 else 0
        out.append((int(edges[i] - before) * scale, int(edges[i + 1] + after) * scale, before * scale, after * scale))
    return out


def cores(chunks, scale):
    edges = np.concatenate([[0], np.cumsum(chunks)]) * scale
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def reaching(spans, cores):
    """Per core block along one axis: its length, and [(tile, (slice in the tile, slice in the block))]
    for the tiles (at most the block's own and its two neighbours) whose haloed span meets it."""
    out = []
    for i, (c0, c1) in enumerate(cores):
        pieces = []
        for t in range(max(0, i - 1), min(len(spans), i + 2)):
            cut = intersect(spans[t], c0, c1)
            if cut:
                pieces.append((t, cut))
        out.append((c1 - c0, pieces))
    return out


def intersect(span, c0, c1):
    """(slice in the tile, slice in the block) where a haloed tile meets the core block [c0, c1)."""
    t0, t1 = span[0], span[1]
    a, b = max(t0, c0), min(t1, c1)
    if a >= b:
        return None
    return slice(a - t0, b - t0), slice(a - c0, b - c0)


def sweep(n_rows: int, n_cols: int, band_tiles: int) -> tuple[int, int, int]:
    """How the tiles are fed to dask in bands: (axis, tile lines per band, bands).

    A band is whole lines of tiles across the raster's shorter side (rows of tiles when it is
    taller than wide, columns otherwise), at least ``band_tiles`` tiles, so the tiles in flight
    at once grow with the shorter side only."""
    axis = 1 if n_cols > n_rows else 0
    lines, across = (n_cols, n_rows) if axis else (n_rows, n_cols)
    per = max(1, math.ceil(band_tiles / across))
    return axis, per, math.ceil(lines / per)
