"""Resumable runs: finished tiles (and a scene model) kept in a folder beside the output.

A run that dies at 90% must not start again from zero. Every fitted tile is saved (as
float32, the output's type) the moment it is done; a resumed run loads those and fits only
the rest, so its output is bitwise identical to an uninterrupted run on the same device.

The folder is keyed by the run's parameters and SHA-256 checksums of the input files:
resuming after either changed is refused, naming what changed. It is removed once the
output is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np

from .errors import InputError

RUN_FILE = "run.json"


def folder_for(output) -> Path:
    """Where the checkpoints of a run writing ``output`` live."""
    output = Path(output)
    return output.with_name(output.name + ".geosr-resume")


def file_checksums(names) -> dict[str, str]:
    """SHA-256 of every file GDAL reads for each dataset name (a VRT's sources, sidecars included)."""
    import rasterio

    out = {}
    for name in names:
        try:
            with rasterio.open(name) as ds:
                files = ds.files or [name]
        except rasterio.errors.RasterioIOError:
            files = [name]
        for f in files:
            if os.path.isfile(f):
                out[str(Path(f).resolve())] = _sha256(f)
    return out


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class TileStore:
    """The checkpoint folder of one run. Picklable: dask workers save tiles into it directly."""

    def __init__(self, folder, run: dict):
        self.folder = Path(folder)
        self.run = run

    @classmethod
    def open(cls, folder, run: dict, resume: bool = False, overwrite: bool = False) -> "TileStore":
        """Start a checkpoint for ``run`` (parameters and input checksums), or resume one.

        An existing checkpoint is reused only with ``resume`` and only if ``run`` matches;
        ``overwrite`` discards it. Otherwise it is left alone and the error says what to do.
        """
        folder = Path(folder)
        run = json.loads(json.dumps(run, sort_keys=True, default=str))
        previous = folder / RUN_FILE
        if previous.exists() and not overwrite:
            saved = json.loads(previous.read_text())
            done = cls(folder, saved).tiles_done()
            if not resume:
                raise InputError(f"an interrupted run left {done} finished tile(s) in {folder}. Pass --resume "
                                 "(resume=True) to continue it, or --overwrite (overwrite=True) to start over.")
            changed = _differences(saved, run)
            if changed:
                raise InputError(f"cannot resume from {folder}: {'; '.join(changed)} since the interrupted run. "
                                 "Resuming would mix two different results. Pass --overwrite (overwrite=True) "
                                 "to start over, or restore the original inputs and options.")
            return cls(folder, run)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        _atomic_write(previous, json.dumps(run, indent=1, sort_keys=True).encode())
        return cls(folder, run)

    def _tile(self, i, j) -> Path:
        return self.folder / f"tile-{i}-{j}.npy"

    def has_tile(self, i, j) -> bool:
        return self._tile(i, j).exists()

    def load_tile(self, i, j) -> np.ndarray:
        return np.load(self._tile(i, j))

    def save_tile(self, i, j, array) -> None:
        path = self._tile(i, j)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array))
        os.replace(tmp, path)

    def tiles_done(self) -> int:
        return len(list(self.folder.glob("tile-*.npy")))

    @property
    def _model(self) -> Path:
        return self.folder / "scene-model.pickle"

    def has_model(self) -> bool:
        return self._model.exists()

    def load_model(self):
        with open(self._model, "rb") as f:
            return pickle.load(f)

    def save_model(self, model) -> None:
        _atomic_write(self._model, pickle.dumps(model))

    def holds_work(self) -> bool:
        """True once a tile or a scene model has been saved: something worth resuming from."""
        return self.has_model() or self.tiles_done() > 0

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class StoreGroup:
    """The checkpoints of a multi-band run (one folder per band under ``folder``), seen as one."""

    def __init__(self, folder, stores):
        self.folder, self.stores = Path(folder), list(stores)

    def tiles_done(self) -> int:
        return sum(s.tiles_done() for s in self.stores)

    def has_model(self) -> bool:
        return any(s.has_model() for s in self.stores)

    def holds_work(self) -> bool:
        return any(s.holds_work() for s in self.stores)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _differences(saved: dict, run: dict) -> list[str]:
    out = []
    old_inputs, new_inputs = saved.get("inputs", {}), run.get("inputs", {})
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            out.append(f"the input {name} changed" if name in old_inputs and name in new_inputs
                       else f"the input {name} was {'added' if name in new_inputs else 'removed'}")
    old, new = saved.get("parameters", {}), run.get("parameters", {})
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"{k} was {old.get(k)!r}, now {new.get(k)!r}")
    return out
