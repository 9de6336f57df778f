"""Resumable runs: finished tiles (and a scene model) kept in a folder, for a run that dies at 90%.

Every fitted tile is saved (as float32, the output's type) the moment it is done; a resumed
run loads those and fits only the rest, so its output is bitwise identical to an
uninterrupted run on the same device.

A checkpoint folder is geosr's only where it holds the marker file :data:`MARKER`, and geosr
removes nothing else:

- a folder that exists, holds files and has no marker is refused, never emptied;
- removing a checkpoint deletes the marker, the tiles, the scene model and geosr's own
  temporary files, then the folder if that left it empty. Anything else in it stays.

The folder is opened by the first task of the run, when the graph computes, not when it is
built: building the same call twice, or again after a successful write, changes nothing on
disk. The marker records the run's parameters, its inputs' fingerprints
(:mod:`geosr.runtime.fingerprint`) and the process that made it. The same run in the same process
continues from it (a notebook cell run again after an interrupt); a checkpoint left by
another process (a run that crashed) is reused only with ``resume=True`` and only if
parameters and inputs match; ``overwrite=True`` discards it. A folder of several runs
(bands of a multi-band source, slices of a time stack) is a group: it carries its own
marker and holds one checkpoint per run in a sub-folder.

Nothing in a checkpoint is unpickled: tiles are ``.npy`` files and the scene model an
``.npz`` file of arrays with its settings as JSON text, both read with ``allow_pickle=False``,
so a folder from someone else cannot run code.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .files import atomic_write

MARKER = "geosr-checkpoint.json"
FORMAT = "geosr-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "scene-model.npz"
TILE_GLOB = "tile-*-*.npy"
_TMP_PREFIX = ".geosr-tmp-"  # files.atomic_write's temporary files
# The run that made a checkpoint: this process (a uuid, so pids reused across hosts cannot collide).
SESSION = uuid.uuid4().hex
_open_lock = threading.Lock()


def folder_for(output) -> Path:
    """Where the checkpoints of a run writing ``output`` live."""
    output = Path(output)
    return output.with_name(output.name + ".geosr-resume")


@dataclass(frozen=True)
class Location:
    """A checkpoint folder and the group folders it sits in (outermost first)."""

    folder: Path
    groups: tuple[Path, ...] = ()

    @classmethod
    def of(cls, checkpoint) -> "Location":
        return checkpoint if isinstance(checkpoint, Location) else cls(Path(checkpoint))

    def child(self, name: str) -> "Location":
        """The checkpoint of one run of a group (a band, a time step) in a sub-folder of this one."""
        return Location(self.folder / name, (*self.groups, self.folder))


def read_marker(folder: Path) -> dict | None:
    """The marker of a geosr checkpoint folder; None when there is none. A folder that exists with files
    but no marker, or a marker geosr cannot read, is refused here."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise InputError(f"the checkpoint folder {folder} is a file; give a folder (or no checkpoint)")
    marker = folder / MARKER
    if not marker.exists():
        if any(folder.iterdir()):
            old = " It looks like a checkpoint of an older geosr, which this version cannot resume." \
                if (folder / "run.json").exists() else ""
            raise InputError(f"the checkpoint folder {folder} holds files but is not a geosr checkpoint (it has "
                             f"no {MARKER}).{old} geosr never deletes what it did not write: choose another "
                             "checkpoint folder (or output name), or empty this one yourself.")
        return None
    try:
        saved = json.loads(marker.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the checkpoint marker {marker} ({e}); remove the folder {folder} "
                         "yourself if it is not needed") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("version") != FORMAT_VERSION:
        raise InputError(f"{marker} is not a checkpoint this geosr version can use; choose another checkpoint "
                         f"folder, or remove {folder} yourself if it is not needed")
    return saved


def _write_marker(folder: Path, kind: str, **fields) -> None:
    atomic_write(folder / MARKER, json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, **fields},
                                             indent=1, sort_keys=True).encode())


def _own_files(folder: Path) -> list[Path]:
    """What geosr writes in a run's checkpoint folder besides its marker: tiles, the scene model, temporaries."""
    return [*folder.glob(TILE_GLOB), folder / MODEL_FILE, *folder.glob(_TMP_PREFIX + "*")]


def _ensure_group(folder: Path) -> None:
    saved = read_marker(folder)
    if saved is None:
        folder.mkdir(parents=True, exist_ok=True)
        _write_marker(folder, "group")
    elif saved.get("kind") != "group":
        raise InputError(f"{folder} is the checkpoint of a single run, not of several (bands or slices); "
                         "choose another checkpoint folder")


class TileStore:
    """The checkpoint of one run. Picklable: dask workers save tiles into it directly.

    Built on the client with the run's description; :meth:`open` (the graph's checkpoint task)
    checks and creates the folder when the run computes.
    """

    def __init__(self, checkpoint, run: dict, resume: bool = False, overwrite: bool = False):
        self.location = Location.of(checkpoint)
        self.folder = self.location.folder
        self.run = json.loads(json.dumps(run, sort_keys=True, default=str))
        self.resume, self.overwrite, self.session = bool(resume), bool(overwrite), SESSION

    def reusable(self) -> bool:
        """Whether :meth:`open` would keep what the folder holds (read-only; no error: open says why not).

        Lets the graph load finished tiles without reading their inputs."""
        try:
            saved = read_marker(self.folder)
        except InputError:
            return False
        if saved is None or saved.get("kind") != "run" or self.overwrite or saved.get("run") != self.run:
            return False
        return self.resume or saved.get("session") == self.session

    def open(self) -> "TileStore":
        """Check the folder against this run and create it, or take over a matching one. Returns self."""
        with _open_lock:
            for group in self.location.groups:
                _ensure_group(group)
            saved = read_marker(self.folder)
            if saved is not None and saved.get("kind") != "run":
                raise InputError(f"{self.folder} is a checkpoint of several runs (bands or slices), not of one; "
                                 "choose another checkpoint folder")
            if saved is None:
                self.folder.mkdir(parents=True, exist_ok=True)
            elif saved.get("session") == self.session and saved.get("run") == self.run:
                return self  # made by this process for this run: its tiles are this run's
            elif self.overwrite:
                for p in _own_files(self.folder):  # the marker is replaced below
                    p.unlink(missing_ok=True)
            else:
                self._check_resumable(saved)
            _write_marker(self.folder, "run", session=self.session, run=self.run)
        return self

    def _check_resumable(self, saved: dict) -> None:
        done = f"{self.tiles_done()} finished tile(s)" + (" and a trained scene model" if self.has_model() else "")
        if not self.resume:
            raise InputError(f"an earlier run left {done} in {self.folder}. Pass --resume (resume=True) to "
                             "continue it, or --overwrite (overwrite=True) to start over.")
        changed = _differences(saved.get("run", {}), self.run)
        if changed:
            raise InputError(f"cannot resume from {self.folder}: {'; '.join(changed)} since the interrupted run. "
                             "Resuming would mix two different results. Pass --overwrite (overwrite=True) "
                             "to start over, or restore the original inputs and options.")

    def _tile(self, i, j) -> Path:
        return self.folder / f"tile-{i}-{j}.npy"

    def has_tile(self, i, j) -> bool:
        return self._tile(i, j).exists()

    def load_tile(self, i, j, shape) -> np.ndarray:
        """A saved tile, checked to be a float32 array of ``shape`` (a folder may hold anything)."""
        path = self._tile(i, j)
        try:
            tile = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read the checkpoint tile {path} ({e}); pass --overwrite (overwrite=True) "
                             "to start over") from None
        if tile.dtype != np.float32 or tile.shape != tuple(shape):
            raise InputError(f"the checkpoint tile {path} holds {tile.dtype} {tile.shape}, not float32 "
                             f"{tuple(shape)}: it is not from this run. Pass --overwrite (overwrite=True) to start "
                             "over.")
        return tile

    def save_tile(self, i, j, array) -> None:
        def write(f):
            np.save(f, np.asarray(array, np.float32), allow_pickle=False)

        atomic_write(self._tile(i, j), write)

    def tiles(self) -> set[tuple[int, int]]:
        """(row, column) of every tile saved here."""
        if not self.folder.is_dir():
            return set()
        found = (re.fullmatch(r"tile-(\d+)-(\d+)\.npy", p.name) for p in self.folder.glob(TILE_GLOB))
        return {(int(m[1]), int(m[2])) for m in found if m}

    def tiles_done(self) -> int:
        return len(self.tiles())

    @property
    def _model(self) -> Path:
        return self.folder / MODEL_FILE

    def has_model(self) -> bool:
        return self._model.exists()

    def load_model(self):
        from ..methods import scene

        return scene.load(self._model, hint="pass --overwrite (overwrite=True) to train it again")

    def save_model(self, model) -> None:
        from ..methods import scene

        scene.save(model, self._model)

    def remove(self) -> None:
        """Delete what geosr wrote here, the folder if that empties it, and emptied group folders around it."""
        remove(self.folder)
        for group in reversed(self.location.groups):
            remove(group, members=False)


def remove(folder, members: bool = True) -> None:
    """Delete a geosr checkpoint's own files (and, for a group, its members' when ``members``), then the
    folder if that left it empty. A folder without geosr's marker is left as it is."""
    folder = Path(folder)
    try:
        saved = read_marker(folder)
    except InputError:
        return
    if saved is None:
        return
    if saved.get("kind") == "group":
        subs = [p for p in folder.iterdir() if (p / MARKER).exists()]
        if subs and not members:
            return  # other runs of the group are still there
        for p in subs:
            remove(p)
    else:
        for p in _own_files(folder):
            p.unlink(missing_ok=True)
    (folder / MARKER).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:  # something that is not geosr's is in it: it stays, and so does the folder
        pass


def holds_work(folder) -> bool:
    """Whether a checkpoint folder (a run's or a group's) holds a finished tile or a scene model."""
    folder = Path(folder)
    try:
        saved = read_marker(folder)
    except InputError:
        return False
    if saved is None:
        return False
    if saved.get("kind") == "group":
        return any(holds_work(p) for p in folder.iterdir() if p.is_dir())
    return (folder / MODEL_FILE).exists() or any(folder.glob(TILE_GLOB))


def stores_of(array) -> list[TileStore]:
    """The checkpoints a (lazy) result computes through: those of the tiles its values need.

    Found in the dask graph, culled to the array's own keys, so writing one slice of a time
    stack finds that slice's checkpoint only."""
    import dask
    from dask.core import flatten
    from dask.optimization import cull

    data = getattr(array, "data", array)
    if not dask.is_dask_collection(data):
        return []
    graph = data.__dask_graph__()
    if not any(str(name).startswith(OPEN_LAYER) for name in graph.layers):
        return []
    # Task by task: the high-level graph's cull kept every band's layers after a selection.
    needed, _ = cull(dict(graph), list(flatten(data.__dask_keys__())))
    stores = [_store_in(task) for key, task in needed.items() if str(key).startswith(OPEN_LAYER)]
    return sorted((s for s in stores if s is not None), key=lambda s: str(s.folder))


OPEN_LAYER = "geosr-checkpoint-"


def open_task(store: TileStore, token: str):
    """The graph task that opens ``store`` when the run computes; fits and training depend on it."""
    import dask

    return dask.delayed(_open, pure=True)(store, dask_key_name=f"{OPEN_LAYER}{token}")


def _open(store: TileStore) -> TileStore:
    return store.open()


def _store_in(task):
    """The TileStore argument of an open task, whichever form dask gives the task."""
    args = getattr(task, "args", None)
    if args is None and isinstance(task, tuple):
        args = task[1:]
    for a in args or ():
        value = getattr(a, "value", a)
        if isinstance(value, TileStore):
            return value
    return None


def _differences(saved: dict, run: dict) -> list[str]:
    out = []
    old_inputs, new_inputs = saved.get("inputs", {}), run.get("inputs", {})
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            out.append(f"the input {name} changed" if name in old_inputs and name in new_inputs
                       else f"the input {name} was {'added' if name in new_inputs else 'removed'}")
    old, new = _flat(saved.get("parameters", {})), _flat(run.get("parameters", {}))
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"{k} was {old.get(k)!r}, now {new.get(k)!r}")
    return out


def _flat(parameters: dict) -> dict:
    """The run's parameters with the method options (JSON in ``geosr_options``) as entries of their own."""
    out = {k.removeprefix("geosr_"): v for k, v in parameters.items() if k != "geosr_options"}
    try:
        out.update(json.loads(parameters.get("geosr_options") or "{}"))
    except ValueError:
        out["options"] = parameters.get("geosr_options")
    return out
