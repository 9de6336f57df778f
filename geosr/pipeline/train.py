"""Stage 3 of a run in scene mode: train one MMSR network on random windows of the whole raster.

The network is trained when :func:`geosr.superresolve` is called, before any tile: were it a
node of the tile graph, idle threads would read the whole raster ahead while it trains, and
guide chunks read for training windows would stay in memory until their tiles ran. The
trained model then goes to every tile's fit task (:mod:`geosr.pipeline.tiling`).
"""
from __future__ import annotations

import os
from contextlib import contextmanager

from ..methods.mmsr import check_model_fits
from ..methods.scene import train, windows
from ..runtime.checkpoint import open_task
from ..runtime.cluster import current_client, in_worker
from ..runtime.memory import reuse_freed_memory


def scene_model(lr, hr_guide, spec, token: str, store=None, resources=None, client=None):
    """The scene model of a planned ``spec``: the one it was given (checked against the guide), or one trained now."""
    if spec.scene_model is None:
        return _compute_now(lazy_train(lr, hr_guide, spec.scale, spec.train_options(), token, store, resources), client)
    check_model_fits(spec.scene_model, spec.scale, hr_guide.shape[0])
    return spec.scene_model


def as_task(model, token: str):
    """A scene model as a dask Delayed that every tile's fit task depends on."""
    import dask

    return dask.delayed(model, name=f"geosr-model-{token}", traverse=False)


def lazy_train(lr, hr_guide, scale: int, options: dict, token: str, store=None, resources=None):
    """A dask Delayed that trains the scene model on random windows of the lazy ``lr``/``hr_guide``.

    Only the windows are read. With a ``store`` (:mod:`geosr.runtime.checkpoint`), opened when this
    computes, the model is saved there once trained, and a model already there is loaded instead.
    """
    import dask

    name = f"geosr-train-{token}"
    opened = None if store is None else open_task(store, token)
    if store is not None and store.reusable() and store.has_model():  # no window needs reading
        return dask.delayed(_load_model, pure=True)(opened, dask_key_name=name)
    s = scale
    wins = windows(lr.shape, s, seed=options.get("seed") or 0)
    sources = [lr[y:y + h, x:x + w] for y, x, h, w in wins]
    guides = [hr_guide[:, y * s:(y + h) * s, x * s:(x + w) * s] for y, x, h, w in wins]
    with dask.annotate(**({"resources": resources} if resources else {})):
        return dask.delayed(_train_and_keep, pure=True)(sources, guides, s, opened, options, dask_key_name=name)


def _compute_now(delayed, client):
    client = current_client(client)
    if client is None:
        return delayed.compute()
    return client.compute(delayed, optimize_graph=False).result()  # optimising can drop resource annotations


def _load_model(store):
    return store.load_model()


def _train_and_keep(sources, guides, scale, store, options):
    if store is not None and store.has_model():  # saved by an earlier compute of this run
        return store.load_model()
    with _all_cores_in_a_worker():
        model = train(sources, guides, scale, **options)
    if store is not None:
        store.save_model(model)
    return model


@contextmanager
def _all_cores_in_a_worker():
    """In a dask worker, let the scene model's training use the machine's cores and reuse freed memory.

    Worker processes run torch on one thread (the nanny sets OMP_NUM_THREADS=1), which suits
    many tile fits side by side. The scene model trains alone, before any tile is fitted, so
    one thread would leave the other cores idle. Measured on 2 cores (the whole Sentinel-2 scene of
    notebooks/03): 1323 s on one thread, 1089 s on two, 356 s on two once freed memory is
    reused (:func:`geosr.runtime.memory.reuse_freed_memory`); more cores gain more.
    """
    if not in_worker():
        yield
        return
    reuse_freed_memory()
    import torch

    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(before, cores))
    try:
        yield
    finally:
        torch.set_num_threads(before)
