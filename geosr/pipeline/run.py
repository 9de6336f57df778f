"""A georeferenced run, stage by stage; :func:`geosr.superresolve` builds the spec and calls it.

co-register (:mod:`.coregister`) -> plan the tiles (:meth:`geosr.spec.RunSpec.planned`,
:mod:`.plan`) -> check the method one scale down (:mod:`geosr.methods.selfcheck`) -> train one
network (scene mode, :mod:`.train`) -> fit the tiles, blend them and make the mosaic exact
(:mod:`.tiling`) -> assemble the output DataArray (:mod:`.assemble`). The self-check runs when
this is called (its figures go into the attributes); everything from the training on runs when
the output is computed or written.
"""
from __future__ import annotations

import logging
from functools import partial

from ..runtime import provenance
from ..runtime.checkpoint import Location, TileStore
from ..runtime.cluster import current_client, gpu_resources
from ..runtime.memory import reuse_freed_memory
from ..methods import selfcheck
from ..methods.mmsr import check_start
from ..spec import TRAINED
from . import assemble, tiling
from .coregister import coregister, guide_roles
from .inputs import data_bands
from .train import as_task, scene_model

LOG = logging.getLogger("geosr")


def run(source, guide, spec, checkpoint=None, resume: bool = False, overwrite: bool = False, client=None):
    """The lazy output of ``spec`` on ``source`` guided by ``guide``: (y, x), or (band, y, x) for several bands.

    ``checkpoint``: a folder for finished tiles (:mod:`geosr.runtime.checkpoint`), with ``resume`` and
    ``overwrite``; ``client``: the dask.distributed Client the graph is meant for."""
    execution = dict(resume=resume, overwrite=overwrite, client=client)
    reuse_freed_memory()  # before the run's first allocations, not at its first fit
    if spec.several_bands:
        return _bands(source, guide, spec, checkpoint, execution)
    return _band(source, guide, spec, checkpoint, **execution)


def _band(source, guide, spec, checkpoint, resume, overwrite, client):
    co = coregister(source, guide, spec)  # 1. the inputs on the output grid
    spec = co.settled(spec).planned(co.src.shape)  # 2. the sensor model; tile size, halo and mode for this raster
    if spec.learned_start:  # before any work: is there one for this network and guide?
        check_start(spec.options, co.hr_guide.shape[0])
    if spec.mode_reason:
        LOG.info("mode %s (%s)", spec.mode, spec.mode_reason)
    token = spec.token(co.lr, co.hr_guide, co.alignment)
    tags = spec.tags(co.alignment, co.hr_box.affine)
    if co.sensor is not None:
        tags.update(co.sensor.attrs())
    flat_checksums = None if spec.flat_mask is None else spec.flat_mask.checksums
    checksums, input_tags, input_files = provenance.inputs([source, *co.guides], ["source", *guide_roles(len(co.guides))],
                                                           flat_checksums)
    store = None
    if checkpoint is not None:
        store = TileStore(checkpoint, spec.checkpoint_key(tags, co.hr_box, checksums), resume=resume,
                          overwrite=overwrite)
    # Versions and the machine are recorded, but do not key the checkpoint: a run resumed
    # after a library update is refused by its geosr_version, not by a patch release of numpy.
    client = current_client(client)
    tags.update(provenance.software())
    tags.update(provenance.runtime(spec.options.get("device"), client, spec.seed))
    tags.update(input_tags)
    check = _selfcheck(co, spec, client) if spec.selfcheck else None  # 3. the method one scale down, now
    if check is not None:
        tags.update(check.attrs())
    elif spec.method != "bicubic":
        tags["geosr_selfcheck"] = "off"
    resources = gpu_resources(client)
    # 4. one network for the scene; 5-7. the tiles fitted, blended and made exact; all lazily
    model = scene_model(co.lr, co.hr_guide, spec, token, store, resources, client) if spec.mode in TRAINED else None
    data = tiling.tiled(co.lr, co.hr_guide, spec.scale, spec.tile_size, spec.overlap, tiling.kernel(spec), spec.exact,
                        token, None if model is None else as_task(model, token), store, resources, spec.psf)
    out = assemble.output(data, source, co, spec, tags, input_files)  # 8. the georeferenced DataArray
    out.encoding["geosr_selfcheck"] = [] if check is None else [check]
    out.encoding["geosr_model"] = model
    return out


def _selfcheck(co, spec, client):
    """:mod:`geosr.methods.selfcheck` on windows of the co-registered source and guide (only those are read).

    Without a dask.distributed client the check's fits run as a task of the local scheduler, as the
    training and the tiles do: run on the calling thread, they left the scene training after them
    slower on the threaded scheduler (62 s against 41 s; 46 s so; benchmarks/RESULTS.md section 19).
    With a client they run here, beside the cluster."""
    import dask

    found = selfcheck.windows(co.valid[0], spec.scale, co.valid[1], co.valid[2])
    pieces = [(co.lr[a], co.hr_guide[b]) for a, b in selfcheck.slices(found, spec.scale)]
    score = partial(selfcheck.scored, scale=spec.scale, method=spec.method, options=spec.options, exact=spec.exact,
                    psf=spec.psf)
    check = score(dask.compute(*pieces)) if client is not None else dask.delayed(score, pure=False)(pieces).compute()
    check.warn()
    return check


def _bands(source, guide, spec, checkpoint, execution):
    """Several source bands, each exactly as a run of that band alone, stacked as (band, y, x).

    The guide's alignment is measured once, on the first band, and applied to every band;
    each band keeps its checkpoint in a folder of its own under ``checkpoint``.
    """
    numbers = data_bands(source, spec.band)
    outs = []
    for b in numbers:
        folder = None if checkpoint is None else Location.of(checkpoint).child(f"band-{b}")
        out = _band(source, guide, spec.replace(band=b), folder, **execution)
        if not outs and spec.align != "none":
            spec = spec.replace(align=out.encoding["geosr_alignment"] or "none")
        outs.append(out)
    return assemble.stack_bands(outs, numbers)
