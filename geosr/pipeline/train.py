"""Stage 3 of a run in scene and hybrid mode: one MMSR network trained on random windows of the whole raster.

The training is a task of the output's graph, so it runs when the output is computed or
written, not when :func:`geosr.superresolve` is called. Two things kept it out of the graph
before (benchmarks/RESULTS.md section 6), and both are handled here:

- read-ahead: while the model trains, idle threads would read the whole raster for the
  tiles, which cannot start before it. The tiles' reads therefore wait for the training
  (:func:`geosr.pipeline.tiling.tiled` gates its first bands on the model).
- cache: guide chunks read for training windows stayed in memory until their tiles ran.
  The tiles read a copy of the inputs' graph, under keys of their own, so the training's
  chunks are released once it has its windows (the chunks under them are read twice).

With a dask.distributed client the training is submitted to the cluster at once and the
call returns; the tiles wait for it. A model trained in this process is handed to the run's
:class:`LazyModel` and kept (a few, by token), so computing the output again, or saving the
model after writing, trains nothing.
"""
from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager

from ..methods.mmsr import check_model_fits
from ..methods.scene import SceneModel, train, windows
from ..runtime.checkpoint import open_task
from ..runtime.cluster import current_client, in_worker

KEPT = 4  # trained models kept in this process, most recent first (each a few hundred kB)
_kept: OrderedDict = OrderedDict()
_kept_lock = threading.Lock()
# Each LazyModel alive, by token: a model trained in this process is handed to them, so a result
# holds its own model however many other runs trained since (KEPT bounds only the others).
_waiting: dict = {}


class LazyModel:
    """The scene model a run trains when its output is first computed (``result.encoding["geosr_model"]``).

    :meth:`get` returns it, training it now if nothing has computed it yet."""

    def __init__(self, task, token: str, future=None):
        self.task, self.token, self._future = task, token, future
        with _kept_lock:
            self._model = _kept.get(token)
            if self._model is None:
                _waiting.setdefault(token, weakref.WeakSet()).add(self)

    @property
    def trained(self) -> bool:
        """Whether the model exists already (trained by a compute of this run, or on the cluster)."""
        if self._future is not None:
            return self._future.done()
        return self._model is not None

    def get(self) -> SceneModel:
        if self._future is not None:
            return self._future.result()
        if self._model is None:  # no compute in this process trained it (one would hand it over: _keep)
            self._model = self.task.compute()
        return self._model


def resolved(model):
    """A :class:`SceneModel` from a model or a :class:`LazyModel` (trained now if it is not yet); other values as they are."""
    return model.get() if isinstance(model, LazyModel) else model


def scene_model(lr, hr_guide, spec, token: str, store=None, resources=None, client=None):
    """The scene model of a planned ``spec``: the one it was given (checked against the guide, a
    :class:`SceneModel`), or a :class:`LazyModel` trained when the output is computed."""
    if spec.scene_model is not None:
        check_model_fits(spec.scene_model, spec.scale, hr_guide.shape[0])
        return spec.scene_model
    task = lazy_train(lr, hr_guide, spec.scale, spec.train_options(), token, store, resources)
    client = current_client(client)
    if client is None:
        return LazyModel(task, token)
    import dask

    future = client.compute(task, optimize_graph=False)  # optimising can drop resource annotations
    return LazyModel(dask.delayed(future), token, future)


def as_task(model, token: str):
    """A scene model as a dask Delayed that every tile's fit task depends on."""
    import dask

    if isinstance(model, LazyModel):
        return model.task
    return dask.delayed(model, name=f"geosr-model-{token}", traverse=False)


def lazy_train(lr, hr_guide, scale: int, options: dict, token: str, store=None, resources=None):
    """A dask Delayed that trains the scene model on random windows of the lazy ``lr``/``hr_guide``.

    Only the windows are read. With a ``store`` (:mod:`geosr.runtime.checkpoint`), opened when this
    computes, the model is saved there once trained, and a model already there is loaded instead.
    """
    import dask
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from .tiling import cut

    name = f"geosr-train-{token}"
    opened = None if store is None else open_task(store, token)
    if store is not None and store.reusable() and store.has_model():  # no window needs reading
        return Delayed(name, HighLevelGraph.from_collections(name, {name: (_load_model, opened.key)}, [opened]))
    # One task per window, cut from the chunks under it as the tiles are, and the training a
    # graph layer over them (dask.delayed would first optimise, and so rename, the windows' graphs).
    s = scale
    wins = windows(lr.shape, s, seed=options.get("seed") or 0)
    sources = [cut(lr, [(y, y + h)], [(x, x + w)], f"geosr-window-lr-{k}-{token}") for k, (y, x, h, w) in enumerate(wins)]
    guides = [cut(hr_guide, [(y * s, (y + h) * s)], [(x * s, (x + w) * s)], f"geosr-window-guide-{k}-{token}")
              for k, (y, x, h, w) in enumerate(wins)]
    task = (_train_and_keep, [(a.name, 0, 0) for a in sources], [(g.name, 0, 0, 0) for g in guides], s,
            None if opened is None else opened.key, options, token)
    with dask.annotate(**({"resources": resources} if resources else {})):
        graph = HighLevelGraph.from_collections(name, {name: task}, dependencies=[*sources, *guides]
                                                + ([] if opened is None else [opened]))
    return Delayed(name, graph)


def _load_model(store):
    return store.load_model()


def _train_and_keep(sources, guides, scale, store, options, token):
    model = _recall(token)  # trained by an earlier compute in this process
    if model is None and store is not None and store.has_model():  # saved by an earlier compute of this run
        model = store.load_model()
    if model is None:
        with _all_cores_in_a_worker():
            model = train(sources, guides, scale, **options)
        if store is not None:
            store.save_model(model)
    _keep(token, model)
    return model


def _recall(token):
    with _kept_lock:
        return _kept.get(token)


def _keep(token, model):
    with _kept_lock:
        _kept[token] = model
        _kept.move_to_end(token, last=False)
        while len(_kept) > KEPT:
            _kept.popitem()
        for lazy in _waiting.pop(token, ()):
            lazy._model = model
        for gone in [t for t, alive in _waiting.items() if not alive]:
            del _waiting[gone]


@contextmanager
def _all_cores_in_a_worker():
    """In a dask worker, let the scene model's training use the machine's cores.

    Worker processes run torch on one thread (the nanny sets OMP_NUM_THREADS=1), which suits
    many tile fits side by side. The scene model trains alone, before any tile is fitted, so
    one thread would leave the other cores idle. Measured on 2 cores (the whole Sentinel-2 scene of
    notebooks/03): 1323 s on one thread, 1089 s on two, 356 s on two once freed memory is
    reused (:func:`geosr.runtime.memory.reuse_freed_memory`); more cores gain more.
    """
    if not in_worker():
        yield
        return
    import torch

    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(before, cores))
    try:
        yield
    finally:
        torch.set_num_threads(before)
