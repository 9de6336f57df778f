"""What it takes to reproduce a run years later, written into the output's tags.

Software versions (with the git commit of a source checkout), the device and thread count
the fit ran with, the seed, whether deterministic kernels were asked for, every option and
the SHA-256 of every input file. ``geosr info OUTPUT.tif`` prints them back.

The same seed on the same device type, with the same thread count and versions, gives
the same output: geosr seeds torch for each fit and, on CUDA, asks cuDNN for
deterministic kernels (:func:`geosr.methods.fit.seeded_init`, :func:`geosr.methods.fit.deterministic_kernels`).
"""
from __future__ import annotations

import functools
import json
import platform
import subprocess
from pathlib import Path

PREFIX = "geosr_"
# Tags holding JSON, shown indented by ``geosr info``.
JSON_TAGS = ("geosr_options", "geosr_input_sha256", "geosr_input_remote", "geosr_input_token")
# What ``geosr info`` says each JSON tag holds.
CAPTIONS = {"geosr_input_sha256": "input files, SHA-256",
            "geosr_input_remote": "remote input files: size, modification time, ETag (not a checksum of the content)",
            "geosr_input_token": "inputs held in memory or computed from files: dask token (not a file checksum)"}
# ``geosr info`` shows these first, in this order: what made the numbers, then how it ran.
FIRST = ("version", "commit", "method", "scale", "options", "flat_mask", "seed", "device", "threads", "deterministic",
         "torch", "cuda", "gdal", "rasterio", "numpy", "python")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the geosr source checkout, with "-dirty" when tracked files differ from it;
    None for an installed copy (or without git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)

        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def software() -> dict[str, str]:
    """The geosr commit and the versions of the libraries that decide its numbers (geosr_version is
    among the run's parameters)."""
    import numpy
    import rasterio
    import torch

    return {
        "geosr_commit": git_commit() or "",
        "geosr_python": platform.python_version(),
        "geosr_numpy": numpy.__version__,
        "geosr_torch": torch.__version__,
        "geosr_cuda": torch.version.cuda or "none (CPU build of torch)",
        "geosr_gdal": rasterio.__gdal_version__,
        "geosr_rasterio": rasterio.__version__,
    }


def runtime(device=None, client=None, seed: int = 0) -> dict[str, str]:
    """Where the fits ran: the device, the torch thread count, the seed and the deterministic flag
    (always 1: every fit is seeded, and on CUDA runs with deterministic cuDNN kernels).

    On a dask.distributed cluster the fits run in the workers, which resolve the device
    themselves and run torch on one thread each (dask sets OMP_NUM_THREADS=1); a scene model
    trains alone, on all the cores of its worker's machine.
    """
    import torch

    from ..methods.fit import resolve_device

    if client is not None:
        where = "each dask worker's own" if device is None else str(device)
        dev, threads = f"{where} (dask.distributed)", "1 per worker (scene model training: all cores)"
    else:
        d = resolve_device(device)
        dev = str(d)
        if d.type == "cuda":
            dev += f" ({torch.cuda.get_device_name(d)})"
        threads = str(torch.get_num_threads())
    return {"geosr_device": dev, "geosr_threads": threads, "geosr_seed": str(seed), "geosr_deterministic": "1"}


def inputs(arrays, roles, extra=None) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """What identifies a run's inputs (:mod:`geosr.runtime.fingerprint`), three ways.

    Returns (key, tags, files): ``key`` maps each input file or in-memory input to one line
    that changes when it does (the checkpoint's key); ``tags`` are the output's
    ``geosr_input_sha256`` (local files), ``geosr_input_remote`` (remote files: size,
    modification time, ETag) and ``geosr_input_token`` (dask tokens of inputs held in memory or
    computed from files, not checksums of a file); ``files`` are the dataset names read, which
    an output may never replace. ``extra``: fingerprints of other inputs (a flat mask's file).
    """
    from . import fingerprint

    found, tokens = fingerprint.of_arrays(arrays, roles)
    found.update(extra or {})
    key, local, remote = {}, {}, {}
    for name, fp in found.items():
        if "dask_token" in fp:
            tokens[name] = fp["dask_token"]
        elif "sha256" in fp:
            local[name] = fp["sha256"]
            key[name] = f"sha256 {fp['sha256']}"
        else:
            remote[name] = ", ".join(f"{k} {v}" for k, v in fp.items())
            key[name] = f"remote: {remote[name]}"
    key.update({role: f"dask token {t}" for role, t in tokens.items()})
    tags = {"geosr_input_sha256": json.dumps(local), "geosr_input_remote": json.dumps(remote),
            "geosr_input_token": json.dumps(tokens)}
    files = tuple(dict.fromkeys(n for a in arrays for n in fingerprint.sources_of(a)[0]))
    return key, tags, files


def describe_file(path) -> str:
    """``geosr info``: the raster's grid, then its geosr tags one per line, JSON tags indented."""
    import rasterio

    with rasterio.open(path) as r:
        tags = {k: v for k, v in r.tags().items() if k.startswith(PREFIX)}
        lines = [f"{path}: {r.width} x {r.height} px, {r.count} band(s) {r.dtypes[0]}, CRS {r.crs}, "
                 f"pixel {r.res[0]:g} x {r.res[1]:g}, nodata {r.nodata}"]
    if not tags:
        return "\n".join(lines + ["no geosr tags: not written by geosr, or its tags were stripped"])
    width = max(len(k) for k in tags) - len(PREFIX)
    order = {PREFIX + name: i for i, name in enumerate(FIRST)}
    for key, value in sorted(tags.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        name = key[len(PREFIX):]
        parsed = None
        if key in JSON_TAGS:
            try:
                parsed = json.loads(value)
            except ValueError:
                pass
        if isinstance(parsed, dict):
            lines.append(f"{name}:" + (f"  ({CAPTIONS[key]})" if key in CAPTIONS else ""))
            lines += [f"    {k}: {v}" for k, v in parsed.items()] or ["    (none)"]
        else:
            lines.append(f"{name:<{width}}  {value}")
    return "\n".join(lines)
