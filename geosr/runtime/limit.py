"""``--max-memory``: a cap on a run's resident memory, summed over its processes.

dask's threaded scheduler has no memory limit of its own, and a machine that runs out of memory
kills the process (or another one) without a word. The guard samples the resident memory of this
process and its children; over the cap it stops the run as an interrupt does (no output, the
finished tiles kept for ``--resume``) and says what to change. A local cluster's workers get their
share of the cap as dask's ``memory_limit`` too, so they spill and pause before it is reached.
"""
from __future__ import annotations

import re
import threading

from ..errors import InputError

SAMPLE_SECONDS = 0.2
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text) -> int:
    """Bytes of ``4G``, ``4GB``, ``4GiB``, ``512M``, ``1.5G`` or a plain number of bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", str(text).upper())
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"a memory size such as 4G, 512M or 1.5GB is needed, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def size_text(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def resident_bytes() -> int:
    """Resident memory of this process and its children (a local cluster's workers)."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


class MemoryGuard:
    """Calls ``stop`` once, from its own thread, when :func:`resident_bytes` goes over ``cap``;
    ``peak`` is then what it saw."""

    def __init__(self, cap: int, stop):
        self.cap, self.stop, self.peak = cap, stop, None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="geosr-memory-guard", daemon=True)

    def _watch(self):
        while not self._done.wait(SAMPLE_SECONDS):
            used = resident_bytes()
            if used > self.cap:
                self.peak = used
                self.stop()
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False
