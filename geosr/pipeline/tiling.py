"""Two-resolution tiling: LR source tiles with halos, paired with HR guide tiles, blended without seams.

xarray's map_blocks/apply_ufunc and dask's multi-array map_overlap cannot pair arrays at
two resolutions, so the graph is built here by hand, in two stages:

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

Tiles are fed to dask in bands of whole tile lines across the raster's shorter side
(:func:`geosr.pipeline.plan.sweep`). dask runs ahead wherever it can, and a raster 128 tiles
wide kept rows of fitted tiles and input chunks waiting (RESULTS section 6). With more than
``LAG + 1`` bands, a band's inputs are a copy of their graph whose reads wait until the blocks
of the band ``LAG`` before it are blended (:mod:`geosr.runtime.graphcopy`), so at most about
``LAG + 1`` bands are in memory, whatever the raster's length. With a scene model, the first
``LAG`` bands' reads wait for it: while it trains nothing else is read, and the chunks its
training windows read (under the original keys) are released once it has them. Each stage
has a layer per band; the mosaic is one more layer naming each block under one key.
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
from ..runtime.graphcopy import BandedCopy, tasks_of
from ..runtime.memory import release_freed_memory
from .plan import cores, reaching, spans, split, sweep, window

FIT_LAYER = "geosr-fit"
BLEND_LAYER = "geosr-blend"
# Tiles are fed to dask in bands across the raster's shorter side (plan.sweep), at least BAND_TILES
# tiles each; a band's reads wait until the blocks of the band LAG before it are blended, so the
# tiles in flight, and memory, no longer grow with the raster's longer side.
BAND_TILES = 8
LAG = 2


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
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    h, w = source.shape
    ys, xs = split(h, tile_size, 2 * overlap), split(w, tile_size, 2 * overlap)
    dy = overlap if len(ys) > 1 else 0
    dx = overlap if len(xs) > 1 else 0
    y_span, x_span = spans(ys, dy, scale), spans(xs, dx, scale)
    lr_y, lr_x = [(a // scale, b // scale) for a, b, _, _ in y_span], [(a // scale, b // scale) for a, b, _, _ in x_span]
    # Each tile's haloed windows are cut straight from the inputs' own chunks: one task per tile
    # and input (dask's rechunk and overlap build several, and took 2 GB for 300 x 300 tiles).
    source, guide = da.asarray(source), da.asarray(guide)
    cuts = [Cut(source, lr_y, lr_x, f"geosr-lr-{token}"),
            Cut(guide, [s[:2] for s in y_span], [s[:2] for s in x_span], f"geosr-guide-{token}"),
            Cut(source, cores(ys, 1), cores(xs, 1), f"geosr-lr-core-{token}")]
    lo, ho, src = cuts
    fit_name, blend_name, gate_name = f"{FIT_LAYER}-{token}", f"{BLEND_LAYER}-{token}", f"geosr-gate-{token}"
    opened = None
    if store is not None:
        opened = open_task(store, token)
    done = store.tiles() if store is not None and store.reusable() else set()
    wys = [window(y1 - y0, yb, ya) for y0, y1, yb, ya in y_span]
    wxs = [window(x1 - x0, xb, xa) for x0, x1, xb, xa in x_span]
    model_key, store_key = None if model is None else model.key, None if store is None else opened.key
    # Per axis, the tiles that reach into each core block, and where: a block's pieces are their product.
    reach_y = reaching(y_span, cores(ys, scale))
    reach_x = reaching(x_span, cores(xs, scale))

    axis, per, n_bands = sweep(len(ys), len(xs), BAND_TILES)
    # With a model, the first LAG bands' reads wait for it (a lazy one trains first, and idle threads
    # would read the whole raster meanwhile); with many bands, each later band waits for an earlier one.
    gated = model is not None or n_bands > LAG + 1
    members = [[] for _ in range(n_bands)]  # the tiles (and output blocks) of each band
    for i in range(len(ys)):
        for j in range(len(xs)):
            members[(j if axis else i) // per].append((i, j))
    band_of = {t: k for k, ts in enumerate(members) for t in ts}
    if gated:
        copies = [BandedCopy(tasks_of(source), f"bands-{token}"), BandedCopy(tasks_of(guide), f"bands-{token}")]

        def copied_key(key):
            return (copies[0] if key[0] == source.name else copies[1]).key(key)
    layers, deps = {}, {}
    for collection in (source, guide, model, opened):
        if collection is not None:
            graph = collection.__dask_graph__()
            layers.update(graph.layers)
            deps.update(graph.dependencies)
    # Layer names made once: a name formatted per key would be a string of its own in each of ~10 keys per tile.
    fit_layers, blend_layers = [f"{fit_name}-{k}" for k in range(n_bands)], [f"{blend_name}-{k}" for k in range(n_bands)]
    for c in cuts:
        c.bands(n_bands)
    inputs, copied_layers, fit_keys = {source.__dask_layers__()[0], guide.__dask_layers__()[0]}, set(), {}
    for k, tiles in enumerate(members):
        fit_layer = fit_layers[k]
        # 1. The band's input windows: from the inputs, or (gated) from a copy of the graph under
        #    them whose reads wait until the blocks of the band LAG before are blended.
        key_of, cut_deps = None, inputs
        if gated:
            gate, gate_layer, copied = None, None, f"geosr-inputs-{token}-{k}"
            if k >= LAG:
                gate = gate_layer = f"{gate_name}-{k}"
                layers[gate] = MaterializedLayer({gate: (_gate, [(blend_layers[k - LAG], i, j)
                                                                 for i, j in members[k - LAG]])})
                deps[gate] = {blend_layers[k - LAG]}
            elif model is not None:
                gate, gate_layer = model_key, model.__dask_layers__()[0]
            new = {}
            for copy, keys in zip(copies, (lo.reads(tiles) | src.reads(tiles), ho.reads(tiles))):
                new.update(copy.band(keys, gate))
            if new:
                layers[copied], deps[copied] = MaterializedLayer(new), {gate_layer} | copied_layers | inputs
                copied_layers = copied_layers | {copied}
            cut_deps = inputs | copied_layers
            key_of = copied_key
        for c in cuts:
            layers[c.layer(k)] = MaterializedLayer(dict(c.tasks(tiles, k, key_of)))
            deps[c.layer(k)] = cut_deps
        # 2. Its fits: loaded from the checkpoint, or fitted (and saved).
        fits = {}
        for i, j in tiles:
            (_, _, yb, ya), (_, _, xb, xa) = y_span[i], x_span[j]
            fit_keys[i, j] = key = (fit_layer, i, j)
            if (i, j) in done:
                fits[key] = (_load_tile, store_key, (i, j), wys[i], wxs[j])
            else:
                frame = (yb == 0, ya == 0, xb == 0, xa == 0)  # sides without a halo
                fits[key] = (_tile_task, lo.key(k, i, j), ho.key(k, i, j), wys[i], wxs[j], fit, frame, model_key,
                             store_key, (i, j))
        layers[fit_layer] = MaterializedLayer(fits, annotations={"resources": resources} if resources else None)
        deps[fit_layer] = {lo.layer(k), ho.layer(k)} | {c.__dask_layers__()[0] for c in (model, opened) if c is not None}
    for k, tiles in enumerate(members):
        # 3. Each band's output blocks: the weighted tiles reaching into each, summed (neighbours
        #    may be in the bands either side).
        blend_layer, blends, reached = blend_layers[k], {}, set()
        for i, j in tiles:
            (ny, row), (nx, col) = reach_y[i], reach_x[j]
            keys = [fit_keys[ti, tj] for ti, _ in row for tj, _ in col]
            reached.update(key[0] for key in keys)
            blends[(blend_layer, i, j)] = (_blend, (ny, nx), keys, row, col, src.key(k, i, j), scale, exact, psf)
        layers[blend_layer] = MaterializedLayer(blends)
        deps[blend_layer] = reached | {src.layer(k)}
    # The mosaic, and the LR cores it is made exact against, each under one name.
    layers[blend_name] = MaterializedLayer({(blend_name, i, j): (blend_layers[k], i, j) for (i, j), k in band_of.items()})
    deps[blend_name] = set(blend_layers)
    layers[src.name] = MaterializedLayer({(src.name, i, j): src.key(k, i, j) for (i, j), k in band_of.items()})
    deps[src.name] = {src.layer(k) for k in range(n_bands)}
    graph = HighLevelGraph(layers, deps)
    chunks = (tuple(c * scale for c in ys), tuple(c * scale for c in xs))
    mosaic = da.Array(graph, blend_name, chunks=chunks, dtype=np.float32)
    if not exact or psf is None or psf.radius == 0 or (len(ys), len(xs)) == (1, 1):
        return mosaic
    # A Gaussian cell sees across block borders: correct each block once more, seeing the
    # blended mosaic and the source a few cells beyond it (measured: 0.038 m -> 0.0011 m at
    # the borders on the drone DSM; benchmarks/RESULTS.md).
    halo = psf.radius + 2
    lr_cores = da.Array(graph, src.name, chunks=(tuple(ys), tuple(xs)), dtype=source.dtype)
    return da.map_overlap(_correct_across_borders, mosaic, lr_cores, depth=[halo * scale, halo], boundary="none",
                          align_arrays=False, dtype=np.float32, scale=scale, psf=psf)


def _gate(_blocks):
    """A band's inputs may be read: the blocks of the band LAG before it are blended."""
    return None


class Cut:
    """Windows ``array[..., r0:r1, c0:c1]`` for ``row_spans[i] = (r0, r1)`` x ``col_spans[j] = (c0, c1)``
    (spans may overlap: tiles with halos), every leading axis whole: one task per window, assembling
    the pieces of the chunks it meets, so a window never reads more of the input than the chunks under it."""

    def __init__(self, array, row_spans, col_spans, name: str):
        self.array, self.name, self.row_spans, self.col_spans = array, name, row_spans, col_spans
        lead = array.ndim - 2
        self.lead = (0,) * lead
        lead_pieces = [()]
        for axis in range(lead):  # all chunks of the leading (band) axes, each into its place
            edges = np.concatenate([[0], np.cumsum(array.chunks[axis])])
            lead_pieces = [(*p, (k, slice(None), slice(int(edges[k]), int(edges[k + 1]))))
                           for p in lead_pieces for k in range(len(array.chunks[axis]))]
        self.rows = _pieces(array.chunks[-2], row_spans)
        self.cols = _pieces(array.chunks[-1], col_spans)
        self.lead_keys = [tuple(k for k, _, _ in lp) for lp in lead_pieces]
        self.lead_where = [(tuple(s for _, s, _ in lp), tuple(d for _, _, d in lp)) for lp in lead_pieces]
        self.bands(1)
        self._keys = {}

    def chunk_keys(self, i, j):
        """The keys of ``array``'s chunks under window (i, j), ordered lead x row x col (as the pieces)."""
        return [self._key(lk, ci, cj) for lk in self.lead_keys for ci, _, _ in self.rows[i] for cj, _, _ in self.cols[j]]

    def _key(self, lead, ci, cj):
        """One tuple per chunk, shared by every window that reads it (a raster of 10^5 tiles has 10^6 references)."""
        at = (lead, ci, cj)
        if at not in self._keys:
            self._keys[at] = (self.array.name, *lead, ci, cj)
        return self._keys[at]

    def reads(self, windows) -> set:
        return {key for i, j in windows for key in self.chunk_keys(i, j)}

    def bands(self, n: int) -> None:
        self._layers = [f"{self.name}-{k}" for k in range(n)]

    def layer(self, band) -> str:
        return self._layers[band]

    def key(self, band, i, j):
        return (self.layer(band), *self.lead, i, j)

    def tasks(self, windows, band=0, key_of=None):
        """(key, task) of the windows, reading chunk keys through ``key_of`` (a copy's renaming)."""
        for i, j in windows:
            keys = self.chunk_keys(i, j)
            if key_of is not None:
                keys = [key_of(k) for k in keys]
            shape = (*self.array.shape[:len(self.lead)], self.row_spans[i][1] - self.row_spans[i][0],
                     self.col_spans[j][1] - self.col_spans[j][0])
            yield self.key(band, i, j), (_assemble, shape, self.array.dtype, keys, self.lead_where, self.rows[i],
                                         self.cols[j])


def cut(array, row_spans, col_spans, name: str):
    """:class:`Cut`'s windows as a dask array whose block (i, j) is window (i, j)."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    array = da.asarray(array)
    c = Cut(array, row_spans, col_spans, name)
    layer = {(name, *c.lead, i, j): task for (_, *_, i, j), task in
             c.tasks([(i, j) for i in range(len(row_spans)) for j in range(len(col_spans))])}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[array])
    chunks = (*((n,) for n in array.shape[:len(c.lead)]), tuple(b - a for a, b in row_spans),
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
    pair = prepare_pair(source, guide, scale, feather=feather, psf=psf)
    pair.frame = tuple(frame)
    return run_pair(pair, method, {"progress": False, **options}, exact, model, tune, slot=fit_slot())[0]


def _tile_task(lr, hr_guide, wy, wx, fit, frame, model=None, store=None, tile=None):
    """One tile of the mosaic, weighted for the blend: loaded from the checkpoint, or fitted (and saved)."""
    if store is not None and store.has_tile(*tile):  # saved by an earlier compute of this run
        return _load_tile(store, tile, wy, wx)
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
    """A counter of fitted tiles while dask computes (local schedulers): a bar on a terminal,
    plain lines in a log (:func:`geosr.runtime.progress.counter`).

    Use as a context manager around ``.compute()``, ``.rio.to_raster`` or ``geosr.write``.
    """

    def __init__(self, disable: bool | None = None):
        from dask.callbacks import Callback

        bar = {}

        def start_state(dsk, state):
            from ..runtime.progress import counter

            total = sum(1 for k in dsk if _is_fit(k))
            if total and "bar" not in bar:
                bar["bar"] = counter(total, "tiles", "tile", disable=disable)

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
