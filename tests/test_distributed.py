"""dask.distributed: a local cluster gives the threaded scheduler's output; GPU-resource workers get the fits."""
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geosr
from geosr.cli import main

ARGS = ["--scale", "4", "--tile-size", "12", "--overlap", "4", "--seed", "3", "-q"]


@pytest.fixture(scope="module")
def files(small_files):
    return str(small_files["source"]), str(small_files["guide"])


def read(path):
    with rasterio.open(path) as r:
        return r.read(1), r.transform, r.crs, r.tags()


def test_local_cluster_of_two_workers_equals_threads(files, tmp_path):
    """Scene mode: the training and the tiles both run on the workers (tile mode's fits go
    through the same task; the mixed-cluster test below runs them on a cluster too).

    torch's reductions depend on the thread count. dask workers fit tiles on one thread each
    (dask sets OMP_NUM_THREADS=1 in them) and train the scene model on all the cores they may
    use, so both runs are pinned to one core, in fresh processes (OpenMP's setting is per
    thread, and dask's thread pool outlives a test)."""
    import os
    import subprocess
    import sys

    one_core = {min(os.sched_getaffinity(0))}
    common = [*files, *ARGS, "--mode", "scene", "--steps", "5", "--align", "none"]
    for name, extra in (("threads", []), ("cluster", ["--scheduler", "processes", "--workers", "2"])):
        subprocess.run([sys.executable, "-m", "geosr.cli", "upsample", *common, "-o", str(tmp_path / f"{name}.tif"),
                        *extra], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       preexec_fn=lambda: os.sched_setaffinity(0, one_core))
    a, b = read(tmp_path / "threads.tif"), read(tmp_path / "cluster.tif")
    np.testing.assert_array_equal(b[0], a[0])
    assert b[1:3] == a[1:3]
    # Same tags, except the provenance of where the fits ran.
    runtime = {"geosr_device", "geosr_threads"}
    assert {k: v for k, v in b[3].items() if k not in runtime} == {k: v for k, v in a[3].items() if k not in runtime}
    assert (a[3]["geosr_device"], a[3]["geosr_threads"]) == ("cpu", "1")
    assert (b[3]["geosr_device"], b[3]["geosr_threads"]) == ("each dask worker's own (dask.distributed)",
                                                             "1 per worker (scene model training: all cores)")


def test_fits_run_only_on_workers_with_a_gpu_resource(files, tmp_path):
    """On a mixed cluster, fit and training tasks go to the worker advertising GPU=1, in both modes.

    The scheduler's view of each fit task (its resource restriction and the worker it was sent
    to) is recorded too, so a failure tells a lost annotation from a scheduling decision."""
    from distributed import Client, LocalCluster, Worker, get_task_stream
    from distributed.diagnostics.plugin import SchedulerPlugin

    sent = {}

    class RecordFits(SchedulerPlugin):
        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "processing" and str(key).startswith(("('geosr-fit", "geosr-train")):
                ts = cluster.scheduler.tasks[key]
                sent[str(key)] = (dict(ts.resource_restrictions or {}), ts.processing_on.address)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, resources={"GPU": 1},
                      dashboard_address=None) as cluster:
        cluster.worker_spec["cpu-only"] = {"cls": Worker, "options": {"nthreads": 1}}
        cluster.sync(cluster._correct_state)
        cluster.scheduler.add_plugin(RecordFits())
        with Client(cluster) as client:
            client.wait_for_workers(2)
            workers = client.scheduler_info(n_workers=-1)["workers"]
            gpu_worker = next(a for a, w in workers.items() if w["resources"])
            src, guide = geosr.open_raster(files[0]), geosr.open_raster(files[1])
            streams = {}
            for mode in ("scene", "tile"):
                with get_task_stream(client) as streams[mode]:
                    out = geosr.superresolve(src, guide, 4, mode=mode, epochs=5, tile_size=12, overlap=4,
                                             client=client)
                    geosr.write(out, tmp_path / f"{mode}.tif", client=client, progress=False)
    astray = {k: v for k, v in sent.items() if v != ({"GPU": 1}, gpu_worker)}
    assert len(sent) == 9 and not astray, (gpu_worker, len(sent), astray)
    for mode, fits_expected in (("scene", 5), ("tile", 4)):  # scene: the training and 4 tiles
        stream = streams[mode].data
        fits = [t for t in stream if str(t["key"]).startswith(("('geosr-fit", "geosr-train"))]
        assert len(fits) == fits_expected, mode
        assert {t["worker"] for t in fits} == {gpu_worker}, (mode, [(t["key"], t["worker"]) for t in fits])
        assert [t for t in stream if t not in fits], "reading and blending run anywhere"


def test_scheduler_options_are_checked(files, tmp_path):
    res = CliRunner().invoke(main, ["upsample", "--scale", "4", *files, "-o", str(tmp_path / "o.tif"), "--scheduler",
                                    "distributed"])
    assert res.exit_code != 0 and "needs --address" in res.output
    res = CliRunner().invoke(main, ["upsample", "--scale", "4", *files, "-o", str(tmp_path / "o.tif"), "--workers", "2"])
    assert res.exit_code != 0 and "--scheduler processes" in res.output
    assert not list(tmp_path.iterdir())


def _fit_then_tuned():
    import numpy as np

    from geosr.runtime import memory

    before = memory._tuned
    geosr.superresolve_array(np.arange(64.0).reshape(8, 8), np.ones((1, 32, 32)), 4, "bicubic", exact=False)
    return before, memory._tuned


def test_malloc_thresholds_are_raised_once_in_each_process_that_fits():
    """glibc's thresholds as dask's nanny leaves them (MALLOC_TRIM_THRESHOLD_=65536) made every large
    tensor a fresh mmap (scene training 2.2x slower), and glibc's own moving ones slowed training after
    the self-check's fits; geosr raises them in a process once it fits, once."""
    from distributed import Client, LocalCluster

    from geosr.runtime import memory

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            Client(c) as client:
        assert client.submit(_fit_then_tuned, pure=False).result() == (False, True)  # a fresh worker, then a fit
        assert client.submit(memory.reuse_freed_memory, pure=False).result() is False  # once per process


def test_a_worker_with_two_threads_fits_two_tiles_at_once(files):
    """Fits take one slot per torch thread: a dask worker (torch on one thread) with two threads runs two
    fits side by side, where a process-wide lock ran one. On the threaded scheduler torch uses every
    core, so one fit at a time."""
    from distributed import Client, LocalCluster, get_task_stream

    from geosr.runtime import cluster

    src, guide = geosr.open_raster(files[0]), geosr.open_raster(files[1])
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as c, \
            Client(c) as client:
        assert client.submit(cluster.fit_slots, pure=False).result() == 2
        with get_task_stream(client) as stream:
            out = geosr.superresolve(src, guide, 4, mode="tile", epochs=40, tile_size=12, overlap=4, client=client,
                                     align="none", progress=False)
            client.compute(out.data, optimize_graph=False).result()
    fits = sorted((t["startstops"][0]["start"], t["startstops"][0]["stop"]) for t in stream.data
                  if str(t["key"]).startswith("('geosr-fit"))
    assert len(fits) == 4
    assert any(b[0] < a[1] for a, b in zip(fits, fits[1:])), f"no two fits overlapped in time: {fits}"
    import torch
    from dask.system import CPU_COUNT

    torch_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(CPU_COUNT)  # as on the threaded scheduler: a fit spreads over every core
        assert cluster.fit_slots() == 1, "the threaded scheduler keeps one fit at a time"
    finally:
        torch.set_num_threads(torch_threads)
