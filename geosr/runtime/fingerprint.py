"""What identifies an input: the files behind a raster, and a fingerprint of each.

A checkpoint must not be resumed after its inputs changed, and an output's tags should let
anyone check years later which files made it. So every input is named by what it is:

- a local file (and every file GDAL reads for it: a VRT's sources, sidecars, the archive
  behind a ``/vsizip/`` path) by its SHA-256;
- a remote file (``/vsicurl/``, ``/vsis3/``, ``http(s)://`` ...) by what the server says
  about it: size, modification time and ETag. Not its content: reading a whole remote file
  to hash it would cost more than many runs. A remote file replaced by another of the
  same size and time, without an ETag, goes unnoticed;
- data held in memory by its dask token (a hash of the values for numpy data).

The files behind a DataArray are found in its data, not only in ``encoding["source"]``,
which xarray keeps from the first of several concatenated arrays: a guide stacked from three
lazily opened files names all three. A DataArray already loaded into memory has lost the
link to its files and is identified by its token.

Each file is hashed once per process for as long as its size and modification time stay
the same, so a run that opens a file for several purposes (bands, quality layers, flat mask)
reads it once.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

# Prefixes of GDAL's network file systems, and of URLs GDAL opens through /vsicurl/.
REMOTE_PREFIXES = ("/vsicurl/", "/vsicurl?", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/", "/vsiswift/",
                   "/vsiwebhdfs/", "/vsihdfs/", "http://", "https://", "ftp://", "s3://", "gs://")
# Archive file systems whose path starts with the local archive file.
ARCHIVE_PREFIXES = ("/vsizip/", "/vsigzip/", "/vsitar/", "/vsi7z/", "/vsirar/")
# The HTTP headers that say which version of a remote file this is.
REMOTE_HEADERS = ("content-length", "last-modified", "etag", "x-amz-version-id", "x-goog-generation")

_cache: dict[tuple, str] = {}
_cache_lock = threading.Lock()


def is_remote(name: str) -> bool:
    return str(name).lower().startswith(REMOTE_PREFIXES)


def sha256(path) -> str:
    """SHA-256 of a local file, computed once per process while its size and mtime are unchanged."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    with _cache_lock:
        _cache[key] = h.hexdigest()
    return _cache[key]


def files_of(names) -> list[str]:
    """Every file GDAL reads for each dataset name (a VRT's sources, sidecars included), in order."""
    import rasterio

    out = []
    for name in names:
        try:
            with rasterio.open(name) as ds:
                files = list(ds.files) or [name]
        except rasterio.errors.RasterioIOError:
            files = [name]
        for f in files:
            if f not in out:
                out.append(f)
    return out


def fingerprints(names) -> dict[str, dict[str, str]]:
    """{name: {"sha256": hex}} for local files, {name: {"size": ..., "modified": ..., "etag": ...}} for
    remote ones, each file GDAL reads for ``names`` once."""
    out = {}
    for f in files_of(names):
        if is_remote(f):
            out[f] = remote_signature(f)
            continue
        local = _local_file(f)
        if local is not None:
            out[str(Path(local).resolve())] = {"sha256": sha256(local)}
    return out


def _local_file(name: str) -> str | None:
    """The local file behind ``name``: itself, or the archive of a /vsizip/-style path."""
    if os.path.isfile(name):
        return name
    lower = name.lower()
    for prefix in ARCHIVE_PREFIXES:
        if lower.startswith(prefix):
            rest = name[len(prefix):]
            parts = rest.split("/")
            for i in range(len(parts), 0, -1):  # the longest leading path that is a file
                candidate = "/".join(parts[:i])
                if candidate and os.path.isfile(candidate):
                    return candidate
    return None


def remote_signature(name: str) -> dict[str, str]:
    """What the server says identifies this version of a remote file (GDAL's view of its HTTP headers).

    Falls back to an HTTP HEAD request for plain http(s) URLs where GDAL's headers cannot be read.
    An empty answer is recorded as such: the run is then not keyed by that file's version.
    """
    headers = _gdal_headers(name)
    if headers is None:
        headers = _http_head(name)
    found = {k: v for k, v in (headers or {}).items() if k in REMOTE_HEADERS}
    if not found:
        return {"unknown": "the server gave no size, modification time or ETag"}
    names = {"content-length": "size", "last-modified": "modified"}
    return {names.get(k, k): v for k, v in sorted(found.items())}


def _gdal_headers(name: str) -> dict[str, str] | None:
    """HTTP headers of a /vsicurl/-style path, from GDAL's VSIGetFileMetadata (None if it cannot be asked)."""
    lib = _libgdal()
    if lib is None:
        return None
    import rasterio  # noqa: F401  (GDAL is initialised, with rasterio's configuration)

    path = name if name.startswith("/vsi") else "/vsicurl/" + name
    with rasterio.Env():
        result = lib.VSIGetFileMetadata(path.encode(), b"HEADERS", None)
    if not result:
        return {}
    headers = {}
    try:
        i = 0
        while result[i]:
            key, _, value = result[i].decode("utf-8", "replace").partition("=")
            headers[key.strip().lower()] = value.strip()
            i += 1
    finally:
        lib.CSLDestroy(result)
    return headers


def _http_head(name: str) -> dict[str, str] | None:
    import urllib.request

    url = name[len("/vsicurl/"):] if name.startswith("/vsicurl/") else name
    if not url.lower().startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as r:
            return {k.lower(): v for k, v in r.headers.items()}
    except OSError:
        return None


_gdal = None


def _libgdal():
    """The GDAL library rasterio runs on, through ctypes (None where it cannot be found)."""
    global _gdal
    if _gdal is None:
        import ctypes
        import ctypes.util
        import glob

        import rasterio

        wheel = glob.glob(os.path.join(os.path.dirname(rasterio.__file__) + ".libs", "libgdal*"))
        try:
            lib = ctypes.CDLL(wheel[0] if wheel else (ctypes.util.find_library("gdal") or "libgdal.so"))
            lib.VSIGetFileMetadata.restype = ctypes.POINTER(ctypes.c_char_p)
            lib.VSIGetFileMetadata.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
            lib.CSLDestroy.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
            _gdal = lib
        except (OSError, AttributeError):
            _gdal = False
    return _gdal or None


# dask layers that only select, reorder or stack values (their output holds the file's values as read).
_SELECTING = ("original-", "open_rasterio-", "getitem-", "concatenate-", "rechunk-", "transpose-", "squeeze-",
              "stack-", "array-original-")


def sources_of(da) -> tuple[list[str], bool]:
    """(names, derived): the dataset names a DataArray's values come from, found in its lazy data ([] if it
    is held in memory), and whether its graph computes anything from them beyond selecting and stacking.

    Lazily opened rioxarray data (with or without dask chunks) keeps a link to its file; a
    concatenation of such arrays keeps all of them.
    """
    import dask.array

    data = da.variable._data
    if not isinstance(data, dask.array.Array):
        source = _backend_source(data)
        return ([source] if source else []), False
    found, derived = [], False
    for name, layer in data.__dask_graph__().layers.items():
        name = str(name)
        derived |= not name.startswith(_SELECTING)
        if not name.startswith("original-"):  # dask's layer for the array an xarray backend holds
            continue
        for value in layer.values():
            source = _backend_source(value)
            if source and source not in found:
                found.append(source)
    return found, derived and bool(found)


def _backend_source(value) -> str | None:
    """The file name behind an xarray backend array (rioxarray's), unwrapping xarray's lazy wrappers."""
    for _ in range(16):
        manager = getattr(value, "manager", None)
        if manager is not None and hasattr(manager, "acquire"):
            try:
                return str(manager.acquire().name)
            except Exception:  # a closed or unreachable file: not identifiable
                return None
        value = getattr(value, "array", None)
        if value is None:
            return None
    return None


def of_arrays(arrays, roles) -> tuple[dict, dict]:
    """(files, tokens) of the inputs: the fingerprints of the files behind them, and the dask token of
    each input held in memory, or computed from its files by more than selecting and stacking
    (keyed by its role: "in-memory source", "computed guide 2", ...)."""
    from dask.base import tokenize

    files, tokens = {}, {}
    for a, role in zip(arrays, roles):
        names, derived = sources_of(a)
        files.update(fingerprints(names))
        if names and derived:
            tokens[f"computed {role}"] = tokenize(a.data)
        elif not names:  # the encoding may name where it was loaded from: a hint, not a fingerprint
            hint = f" (its encoding names {a.encoding['source']})" if a.encoding.get("source") else ""
            tokens[f"in-memory {role}{hint}"] = tokenize(a.data)
    return files, tokens
