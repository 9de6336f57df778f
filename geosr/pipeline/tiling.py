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

import gc
from contextlib import contextmanager
from functools import partial

import numpy as np

from ..core.backprojection import back_project
from ..core.pair import FRAME, prepare_pair
from ..core.psf import AREA
from ..methods.engine import run_pair
from ..runtime.checkpoint import open_task
from ..runtime.cluster import fit_slot
from ..runtime.memory import release_freed_memory, reuse_freed_memory
from .plan import cores, reaching, spans, split, window

FIT_LAYER = "geosr-fit"
BLEND_LAYER = "geosr-blend"


def tiled(source, guide, scale: int, tile_size: int, overlap: int, fit, exact: bool, token: str,
          model=None, store=None, resources=None, psf=None):
    """Lazy HR float32 mosaic of ``fit(lr_tile, hr_guide_tile[, model])`` over all tiles.

    source: dask (h, w) float64, NaN = invalid. guide: dask (bands, h*scale, w*scale).
    ``fit`` must be a picklable function (it may run in another process); it is called with
    ``frame=(top, bottom, left, right)``, True on the tile's sides without a halo: the raster's
    edge, or every side with ``overlap=0`` (:attr:`geosr.core.pair.Pair.frame`). ``model``: a
    dask Delayed passed to every fit (a scene model). ``store``: a
    :class:`geosr.runtime.checkpoint.TileStore`, opened by a task of the graph when it computes;
    tiles it holds are loaded, not fitted (nor read, where the checkpoint could already be
    reused when the graph was built), and new ones are saved. ``resources``: dask worker resources the fit tasks
    need (e.g. ``{"GPU": 1}``). ``psf``: the sensor model ``exact`` keeps after blending
    (:mod:`geosr.core.psf`; default avg-pool). Blocks are corrected one by one; a Gaussian reaches
    into the next block, so there each block is corrected once more with a halo, which
    leaves a small residual at block borders (the blocks do not iterate to agreement).
    """
    with _no_gc():  # hundreds of thousands of small tuples: the cyclic collector's passes took 4x the build
        return _tiled(source, guide, scale, tile_size, overlap, fit, exact, token, model, store, resources, psf)


@contextmanager
def _no_gc():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _tiled(source, guide, scale, tile_size, overlap, fit, exact, token, model, store, resources, psf):
    import dask
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    h, w = source.shape
    ys, xs = split(h, tile_size, 2 * overlap), split(w, tile_size, 2 * overlap)
    dy = overlap if len(ys) > 1 else 0
    dx = overlap if len(xs) > 1 else 0
    y_span, x_span = spans(ys, dy, scale), spans(xs, dx, scale)
    # Each tile's haloed windows are cut straight from the inputs' own chunks: one task per tile
    # and input (dask's rechunk and overlap build several, and took 2 GB for 300 x 300 tiles).
    lr_y, lr_x = [(a // scale, b // scale) for a, b, _, _ in y_span], [(a // scale, b // scale) for a, b, _, _ in x_span]
    lo = cut(source, lr_y, lr_x, f"geosr-lr-{token}")
    ho = cut(guide, [s[:2] for s in y_span], [s[:2] for s in x_span], f"geosr-guide-{token}")
    src = cut(source, cores(ys, 1), cores(xs, 1), f"geosr-lr-core-{token}")

    fit_name, blend_name = f"{FIT_LAYER}-{token}", f"{BLEND_LAYER}-{token}"
    opened = None
    if store is not None:
        opened = open_task(store, token)
    done = store.tiles() if store is not None and store.reusable() else set()
    wys = [window(y1 - y0, yb, ya) for y0, y1, yb, ya in y_span]
    wxs = [window(x1 - x0, xb, xa) for x0, x1, xb, xa in x_span]
    model_key, store_key = None if model is None else model.key, None if store is None else opened.key
    fits = {}
    for i, (wy, (_, _, yb, ya)) in enumerate(zip(wys, y_span)):
        for j, (wx, (_, _, xb, xa)) in enumerate(zip(wxs, x_span)):
            if (i, j) in done:
                fits[(fit_name, i, j)] = (_load_tile, store_key, (i, j), wy, wx)
            else:
                frame = (yb == 0, ya == 0, xb == 0, xa == 0)  # sides without a halo
                fits[(fit_name, i, j)] = (_tile_task, (lo.name, i, j), (ho.name, 0, i, j), wy, wx, fit, frame,
                                          model_key, store_key, (i, j))
    # Per axis, the tiles that reach into each core block, and where: a block's pieces are their product.
    reach_y = reaching(y_span, cores(ys, scale))
    reach_x = reaching(x_span, cores(xs, scale))
    blends = {}
    for i, (ny, row) in enumerate(reach_y):
        for j, (nx, col) in enumerate(reach_x):
            keys = [(fit_name, ti, tj) for ti, _ in row for tj, _ in col]
            blends[(blend_name, i, j)] = (_blend, (ny, nx), keys, row, col, (src.name, i, j), scale, exact, psf)
    haloed = (tuple(b - a for a, b, _, _ in y_span), tuple(b - a for a, b, _, _ in x_span))
    with dask.annotate(**({"resources": resources} if resources else {})):
        layer = HighLevelGraph.from_collections(fit_name, fits, dependencies=[lo, ho] + [d for d in (model, opened)
                                                                                          if d is not None])
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


def cut(array, row_spans, col_spans, name: str):
    """A dask array whose block (i, j) is ``array[..., r0:r1, c0:c1]`` for ``row_spans[i] = (r0, r1)`` and
    ``col_spans[j] = (c0, c1)`` (spans may overlap: tiles with halos), every leading axis whole.

    Each block is one task assembling the pieces of the chunks it meets, so a window never reads
    more of the input than the chunks under it."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    array = da.asarray(array)
    lead = array.ndim - 2
    lead_pieces = [()]
    for axis in range(lead):  # all chunks of the leading (band) axes, each into its place
        edges = np.concatenate([[0], np.cumsum(array.chunks[axis])])
        lead_pieces = [(*p, (k, slice(None), slice(int(edges[k]), int(edges[k + 1]))))
                       for p in lead_pieces for k in range(len(array.chunks[axis]))]
    rows = _pieces(array.chunks[-2], row_spans)
    cols = _pieces(array.chunks[-1], col_spans)
    lead_keys = [tuple(k for k, _, _ in lp) for lp in lead_pieces]
    lead_where = [(tuple(s for _, s, _ in lp), tuple(d for _, _, d in lp)) for lp in lead_pieces]
    layer = {}
    for i, row in enumerate(rows):
        height = row_spans[i][1] - row_spans[i][0]
        for j, col in enumerate(cols):
            # Pieces in the order lead x row x col; the row and column lists are shared by all tasks.
            keys = [(array.name, *lk, ci, cj) for lk in lead_keys for ci, _, _ in row for cj, _, _ in col]
            shape = (*array.shape[:lead], height, col_spans[j][1] - col_spans[j][0])
            layer[(name, *([0] * lead), i, j)] = (_assemble, shape, array.dtype, keys, lead_where, row, col)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[array])
    chunks = (*((n,) for n in array.shape[:lead]), tuple(b - a for a, b in row_spans),
              tuple(b - a for a, b in col_spans))
    return da.Array(graph, name, chunks=chunks, dtype=array.dtype)


def _pieces(chunks, spans):
    """Per span along one axis: [(chunk index, slice in the chunk, slice in the span)] for the chunks it meets."""
    edges = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    out = []
    for a, b in spans:
        first = int(np.searchsorted(edges, a, side="right")) - 1
        last = int(np.searchsorted(edges, b, side="left"))
        out.append([(k, slice(max(a, edges[k]) - edges[k], min(b, edges[k + 1]) - edges[k]),
                     slice(max(a, edges[k]) - a, min(b, edges[k + 1]) - a)) for k in range(first, last)])
    return out


def _assemble(shape, dtype, blocks, lead, rows, cols):
    """The window of :func:`cut` from its chunks (ordered lead x rows x cols, as the pieces)."""
    out = np.empty(shape, dtype)  # a copy, never a view: a view would keep the whole input chunk in memory
    pieces = ((ls, ld, rs, rd, cs, cd) for ls, ld in lead for _, rs, rd in rows for _, cs, cd in cols)
    for block, (ls, ld, rs, rd, cs, cd) in zip(blocks, pieces):
        out[(*ld, rd, cd)] = block[(*ls, rs, cs)]
    return out


def kernel(spec, **changes):
    """The fit function of ``spec``'s tiles (:func:`fit_tile` with the settings it needs, picklable)."""
    return partial(fit_tile, scale=spec.scale, exact=spec.exact, feather=spec.feather, psf=spec.psf,
                   **{"method": spec.method, "options": spec.tile_options(), "tune": spec.mode == "hybrid",
                      **changes})


def fit_tile(source, guide, model=None, *, scale, method, options, exact, feather, psf, tune=False, frame=FRAME):
    """One tile pair through the engine (:func:`geosr.methods.engine.run_pair`; runs in a dask worker).

    ``model``: a trained scene model, run on the tile, or with ``tune`` fine-tuned on it first;
    ``frame``: the tile's sides on the raster's edge. The pipeline has checked the arrays and
    options already; a tile with no valid guide pixel is bicubic."""
    if not np.isfinite(source).any():
        return np.full((source.shape[0] * scale, source.shape[1] * scale), np.nan, np.float32)
    if not np.isfinite(guide).all(axis=0).any():  # no guide here: bicubic, nothing to fit
        method, options, model = "bicubic", {}, None
    with fit_slot():
        pair = prepare_pair(source, guide, scale, feather=feather, psf=psf)
        pair.frame = tuple(frame)
        return run_pair(pair, method, {"progress": False, **options}, exact, model, tune)[0]


def _tile_task(lr, hr_guide, wy, wx, fit, frame, model=None, store=None, tile=None):
    """One tile of the mosaic, weighted for the blend: loaded from the checkpoint, or fitted (and saved)."""
    if store is not None and store.has_tile(*tile):  # saved by an earlier compute of this run
        return _load_tile(store, tile, wy, wx)
    reuse_freed_memory()
    out = fit(lr, hr_guide, frame=frame) if model is None else fit(lr, hr_guide, model, frame=frame)
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
    return _weighted(store.load_tile(*tile, (len(wy), len(wx))), wy, wx)


def _weighted(out, wy, wx):
    out = np.asarray(out, np.float64)
    w = wy[:, None] * wx[None, :]
    return np.where(w > 0, out * w, 0.0)  # a pixel a tile does not weigh cannot spoil the sum, even if NaN


def _blend(shape, tiles, rows, cols, lr, scale, exact, psf=None):
    """One output block: the sum of the weighted tiles reaching into it (ordered rows x cols, as the pieces)."""
    slices = [((sy[0], sx[0]), (sy[1], sx[1])) for _, sy in rows for _, sx in cols]
    if len(tiles) == 1:  # a lone tile: its output as the method gave it
        (src_sl, dst_sl), = slices
        return np.asarray(tiles[0][src_sl], np.float32)
    out = np.zeros(shape)
    for tile, (src_sl, dst_sl) in zip(tiles, slices):
        out[dst_sl] += tile[src_sl]
    if not exact:
        return out.astype(np.float32)
    return back_project(out, lr, np.isfinite(lr), scale, psf=psf or AREA)


def _correct_across_borders(hr, lr, scale, psf):
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
