"""Two-resolution tiling: LR source tiles with halos, paired with HR guide tiles, blended without seams.

xarray's map_blocks/apply_ufunc and dask's multi-array map_overlap cannot pair arrays at
two resolutions, so the graph is built here by hand, in two layers:

1. ``geosr-fit``: one task per tile. The LR tile with a halo of ``overlap`` pixels on
   each inner side, and the guide tile with ``scale * overlap`` HR pixels, go to the
   method; its HR output is multiplied by a blending window that is 0 over the outer half
   of the halo and ramps to 1 over the next overlap * scale pixels.
2. ``geosr-blend``: one task per output block (the tile's core). It sums the windowed
   outputs of the tile and its neighbours that reach into the block. The windows are
   raised-cosine ramps across each shared band, and a ramp and its neighbour's mirror add
   up to 1, so the mosaic is a convex combination with no seam. Each tile's padding
   artefacts sit at its outer edge, where its weight is 0.

Blocks are cell-aligned (an HR block is ``scale`` x an LR block), so the per-cell
exactness correction can be re-applied after blending.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

FIT_LAYER = "geosr-fit"
BLEND_LAYER = "geosr-blend"


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


def tiled(source, guide, scale: int, tile_size: int, overlap: int, fit, exact: bool, token: str,
          model=None, store=None, resources=None, psf=None):
    """Lazy HR float32 mosaic of ``fit(lr_tile, hr_guide_tile[, model])`` over all tiles.

    source: dask (h, w) float64, NaN = invalid. guide: dask (bands, h*scale, w*scale).
    ``fit`` must be a picklable function (it may run in another process); it is called with
    ``frame=(top, bottom, left, right)``, True on the tile's sides without a halo: the raster's
    edge, or every side with ``overlap=0`` (:attr:`geosr.pair.Pair.frame`). ``model``: a
    dask Delayed passed to every fit (a scene model). ``store``: a
    :class:`geosr.checkpoint.TileStore`; tiles already in it are loaded, not fitted (nor
    read), and new ones are saved. ``resources``: dask worker resources the fit tasks
    need (e.g. ``{"GPU": 1}``). ``psf``: the sensor model ``exact`` keeps after blending
    (:mod:`geosr.psf`; default avg-pool). Blocks are corrected one by one; a Gaussian reaches
    into the next block, so there each block is corrected once more with a halo, which
    leaves a small residual at block borders (the blocks do not iterate to agreement).
    """
    import dask
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    h, w = source.shape
    ys, xs = split(h, tile_size, 2 * overlap), split(w, tile_size, 2 * overlap)
    dy = overlap if len(ys) > 1 else 0
    dx = overlap if len(xs) > 1 else 0
    src = source.rechunk((ys, xs))
    gd = guide.rechunk((guide.shape[0], tuple(c * scale for c in ys), tuple(c * scale for c in xs)))
    lo = da.overlap.overlap(src, depth={0: dy, 1: dx}, boundary="none")
    ho = da.overlap.overlap(gd, depth={0: 0, 1: dy * scale, 2: dx * scale}, boundary="none")

    y_span, x_span = _spans(ys, dy, scale), _spans(xs, dx, scale)
    fit_name, blend_name = f"{FIT_LAYER}-{token}", f"{BLEND_LAYER}-{token}"
    fits = {}
    for i, (y0, y1, yb, ya) in enumerate(y_span):
        wy = window(y1 - y0, yb, ya)
        for j, (x0, x1, xb, xa) in enumerate(x_span):
            wx = window(x1 - x0, xb, xa)
            if store is not None and store.has_tile(i, j):
                fits[(fit_name, i, j)] = (_load_tile, store, (i, j), wy, wx)
            else:
                at_frame = partial(fit, frame=(yb == 0, ya == 0, xb == 0, xa == 0))
                fits[(fit_name, i, j)] = (_fit_tile, (lo.name, i, j), (ho.name, 0, i, j), wy, wx, at_frame,
                                          None if model is None else model.key, store, (i, j))
    blends = {}
    cores_y, cores_x = _cores(ys, scale), _cores(xs, scale)
    for i, (cy0, cy1) in enumerate(cores_y):
        for j, (cx0, cx1) in enumerate(cores_x):
            pieces = []
            for ti in range(max(0, i - 1), min(len(ys), i + 2)):
                for tj in range(max(0, j - 1), min(len(xs), j + 2)):
                    sy = _intersect(y_span[ti], cy0, cy1)
                    sx = _intersect(x_span[tj], cx0, cx1)
                    if sy and sx:
                        pieces.append(((fit_name, ti, tj), (sy[0], sx[0]), (sy[1], sx[1])))
            keys = [p[0] for p in pieces]
            blends[(blend_name, i, j)] = (_blend, (cy1 - cy0, cx1 - cx0), keys, [p[1:] for p in pieces],
                                          (src.name, i, j), scale, exact, psf)
    haloed = (tuple(b - a for a, b, _, _ in y_span), tuple(b - a for a, b, _, _ in x_span))
    with dask.annotate(**({"resources": resources} if resources else {})):
        layer = HighLevelGraph.from_collections(fit_name, fits, dependencies=[lo, ho] + ([] if model is None else [model]))
    tiles = da.Array(layer, fit_name, chunks=haloed, dtype=np.float64)
    graph = HighLevelGraph.from_collections(blend_name, blends, dependencies=[tiles, src])
    chunks = (tuple(c * scale for c in ys), tuple(c * scale for c in xs))
    mosaic = da.Array(graph, blend_name, chunks=chunks, dtype=np.float32)
    if not exact or psf is None or psf.radius == 0 or (len(ys), len(xs)) == (1, 1):
        return mosaic
    # A Gaussian cell sees across block borders: correct each block once more, seeing the
    # blended mosaic and the source a few cells beyond it (measured: 0.038 m -> 0.0011 m at
    # the borders on the drone DSM; benchmarks/RESULTS.md).
    halo = psf.radius + 2
    return da.map_overlap(_correct_across_borders, mosaic, src, depth=[halo * scale, halo], boundary="none",
                          align_arrays=False, dtype=np.float32, scale=scale, psf=psf)


def _spans(chunks, depth, scale):
    """Per tile along one axis: HR start and end including halos, and the HR halo before/after."""
    edges = np.concatenate([[0], np.cumsum(chunks)])
    n = len(chunks)
    out = []
    for i in range(n):
        before = depth if i > 0 else 0
        after = depth if i < n - 1 else 0
        out.append((int(edges[i] - before) * scale, int(edges[i + 1] + after) * scale, before * scale, after * scale))
    return out


def _cores(chunks, scale):
    edges = np.concatenate([[0], np.cumsum(chunks)]) * scale
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _intersect(span, c0, c1):
    """(slice in the tile, slice in the block) where a haloed tile meets the core block [c0, c1)."""
    t0, t1 = span[0], span[1]
    a, b = max(t0, c0), min(t1, c1)
    if a >= b:
        return None
    return slice(a - t0, b - t0), slice(a - c0, b - c0)


def _fit_tile(lr, hr_guide, wy, wx, fit, model=None, store=None, tile=None):
    from .cluster import reuse_freed_memory

    reuse_freed_memory()
    out = fit(lr, hr_guide) if model is None else fit(lr, hr_guide, model)
    if store is not None:
        # The checkpoint keeps float32, the output's type (float64 tiles took twice the disk
        # the CLI reserves); this run blends what it keeps, so a resumed run equals it bitwise.
        out = np.asarray(out, np.float32)
        store.save_tile(*tile, out)
    weighted = _weighted(out, wy, wx)
    del out
    release_freed_memory()
    return weighted


def _load_tile(store, tile, wy, wx):
    return _weighted(store.load_tile(*tile), wy, wx)


def _weighted(out, wy, wx):
    out = np.asarray(out, np.float64)
    w = wy[:, None] * wx[None, :]
    return np.where(w > 0, out * w, 0.0)  # a pixel a tile does not weigh cannot spoil the sum, even if NaN


def release_freed_memory() -> None:
    """Hand memory freed by a fit back to the OS (glibc only; elsewhere a no-op).

    A fit allocates and frees hundreds of MB in pieces of many sizes, and glibc may keep
    freed pieces in its per-thread arenas instead of returning them (why dask's workers
    trim too). Costs milliseconds per tile. Its share in the memory figures of
    benchmarks/memory.py was not measured separately; most of the peak there is tiles
    and inputs waiting in dask's cache.
    """
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes
        import ctypes.util

        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def _blend(shape, tiles, slices, lr, scale, exact, psf=None):
    if len(tiles) == 1:  # a lone tile: its output as the method gave it
        (src_sl, dst_sl), = slices
        return np.asarray(tiles[0][src_sl], np.float32)
    out = np.zeros(shape)
    for tile, (src_sl, dst_sl) in zip(tiles, slices):
        out[dst_sl] += tile[src_sl]
    if not exact:
        return out.astype(np.float32)
    from .backprojection import back_project
    from .psf import AREA

    return back_project(out, lr, np.isfinite(lr), scale, psf=psf or AREA)


def _correct_across_borders(hr, lr, scale, psf):
    from .backprojection import back_project

    return back_project(hr, lr, np.isfinite(lr), scale, psf=psf)


class TileProgress:
    """A tqdm bar counting fitted tiles while dask computes (local schedulers).

    Use as a context manager around ``.compute()``, ``.rio.to_raster`` or ``geosr.write``.
    """

    def __init__(self, disable: bool | None = None):
        from dask.callbacks import Callback

        bar = {}

        def start_state(dsk, state):
            from tqdm.auto import tqdm

            total = sum(1 for k in dsk if _is_fit(k))
            if total and "bar" not in bar:
                bar["bar"] = tqdm(total=total, desc="tiles", unit="tile", disable=disable)

        def posttask(key, result, dsk, state, worker_id):
            if _is_fit(key) and "bar" in bar:
                bar["bar"].update(1)

        def finish(dsk, state, errored):
            if "bar" in bar:
                bar.pop("bar").close()

        self._callback = Callback(start_state=start_state, posttask=posttask, finish=finish)

    def __enter__(self):
        self._callback.__enter__()
        return self

    def __exit__(self, *exc):
        return self._callback.__exit__(*exc)


def _is_fit(key) -> bool:
    name = key[0] if isinstance(key, tuple) else key
    return isinstance(name, str) and name.startswith(FIT_LAYER)
