"""glibc's memory behaviour around fits: let torch reuse what a fit frees, and hand it back after each tile.

Both are no-ops where the C library is not glibc (or cannot be loaded).
"""
from __future__ import annotations

_tuned = False
_malloc_trim = None


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def reuse_freed_memory() -> bool:
    """Let torch reuse the memory a fit frees: raise glibc's mmap and trim thresholds, once per process
    (when a run starts, or at the first fit in a dask worker).

    Below its mmap threshold glibc reuses freed memory; above it, every tensor is mapped afresh
    and zeroed by the kernel, at every step. dask's nanny starts workers with
    MALLOC_TRIM_THRESHOLD_=65536, which pins that threshold at 128 KiB: a LocalCluster trained the
    Sentinel-2 scene model 2.2x slower (20 steps: 216 s against 100 s). In a plain process glibc
    moves the threshold by itself, and after the self-check's fits the scene training of the
    Sentinel-2 Wald check took 62 s instead of 41 s; raised, 49 s (41 s without the check: 33 s;
    benchmarks/RESULTS.md section 19). :func:`release_freed_memory` still hands the memory back
    after each tile. Returns whether glibc took the new thresholds (in this call).
    """
    global _tuned
    if _tuned:
        return False
    _tuned = True
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # 32 MiB: glibc's largest mmap threshold on 64-bit; mallopt returns 1 on success.
    return mallopt(m_mmap_threshold, 32 << 20) == 1 and mallopt(m_trim_threshold, 64 << 20) == 1


def release_freed_memory() -> None:
    """Hand memory freed by a fit back to the OS.

    A fit allocates and frees hundreds of MB in pieces of many sizes, and glibc may keep
    freed pieces in its per-thread arenas instead of returning them (why dask's workers
    trim too). Costs milliseconds per tile. Its share in the memory figures of
    benchmarks/memory.py was not measured separately; most of the peak there is tiles
    and inputs waiting in dask's cache.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = _libc().malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)
