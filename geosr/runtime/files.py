"""Writing files so that a crash leaves the old file or the new one, never half of one.

Temporary names are unique across threads, processes and hosts (a pid alone repeats on
another host sharing the folder); data is flushed to disk before the rename, and the
folder's entry after it.
"""
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from pathlib import Path

# Identifies this host in temporary names, so a stale-file sweep only judges its own processes.
HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def unique_suffix() -> str:
    """``<pid>-<random>-<host>``: unique for every call, and says which process made it."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}-{HOST}"


def made_by_dead_process(suffix: str) -> bool:
    """Whether a :func:`unique_suffix` was made by a process of this host that no longer runs."""
    parts = suffix.split("-")
    if len(parts) < 3 or not parts[0].isdigit() or parts[2] != HOST:
        return False
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def same_file(path, name) -> bool:
    """Whether ``path`` and the file ``name`` are one file (links included), or would be once written."""
    path, other = Path(path), Path(str(name))
    if path.exists() and other.exists():
        return os.path.samefile(path, other)
    return path.resolve() == other.resolve()


def fsync_file(path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_folder(folder) -> None:
    """Flush a folder's entries (a rename) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def durable_replace(tmp, path) -> None:
    """Rename a complete temporary file into place, flushed to disk before and after."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_folder(Path(path).parent)


def atomic_write(path, data, prefix: str = ".geosr-tmp-") -> None:
    """Write ``data`` (bytes, or a function of a binary file) to ``path`` through a unique temporary file."""
    path = Path(path)
    tmp = path.with_name(f"{prefix}{path.name}-{unique_suffix()}")
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, (bytes, bytearray)):
                f.write(data)
            else:
                data(f)
        durable_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
