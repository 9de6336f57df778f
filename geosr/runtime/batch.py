"""Many runs from one command: the source, guides and output of each, from a glob, a folder, a list or a CSV.

``geosr upsample 'tiles/*.tif' ortho.tif -o out/`` runs every tile with the one guide and writes
``out/<stem>_x<scale>.tif``. The sources are a glob pattern, a folder (its rasters, by suffix, not
recursive), a text file of paths (``.txt`` or ``.lst``, one a line, ``#`` starts a comment) or a CSV
of pairs (``.csv`` with a header: a ``source`` column and one or more ``guide`` columns). A guide is
one file for every source, or a pattern in which ``{stem}`` is each source's file name without its
suffix (``'ortho/{stem}_rgb.tif'``, a glob after that). Relative paths in a list or a CSV are taken
from the folder of that file, as GDAL takes a VRT's.
"""
from __future__ import annotations

import csv
import glob
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .files import same_file

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".asc", ".nc", ".bil", ".dem", ".hgt", ".gpkg")
LIST_SUFFIXES = (".txt", ".lst")
PAIRS_SUFFIX = ".csv"
STEM = "{stem}"
# Where --share-model keeps the batch's scene network (without --model-out), for a rerun or --resume.
SHARED_MODEL = "geosr_shared_model.npz"
_MAGIC = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Job:
    """One run of a batch; ``problem`` says why it cannot run (reported when its turn comes)."""

    source: str
    guides: tuple[str, ...]
    problem: str | None = None

    @property
    def stem(self) -> str:
        return stem_of(self.source)


def stem_of(source: str) -> str:
    return Path(source.rstrip("/")).stem


def output_name(source: str, scale: int) -> str:
    """``<stem>_x<scale>.tif``: the output's name of one run (the default of ``-o``) and of each in a batch."""
    return f"{stem_of(source)}_x{scale}.tif"


def is_batch(source: str) -> bool:
    """Whether SOURCE names many sources: a folder that is not itself a dataset (an ESRI grid, a .SAFE), a list
    or CSV file, or a glob that is not a file's name (GDAL names, /vsi... and URLs, are never globs)."""
    path = Path(source)
    if path.is_dir():
        return not _is_dataset(source)
    if path.suffix.lower() in (*LIST_SUFFIXES, PAIRS_SUFFIX) and path.is_file():
        return True
    if source.startswith("/vsi") or "://" in source:
        return False
    return bool(_MAGIC.search(source)) and not path.exists()


def _is_dataset(name: str) -> bool:
    import rasterio

    try:
        with rasterio.open(name):
            return True
    except rasterio.errors.RasterioError:
        return False


def input_at(path: Path, inputs) -> str | None:
    """The input of ``inputs`` that the existing file ``path`` is, if any."""
    if not path.exists():
        return None
    return next((name for name in inputs if Path(name).exists() and same_file(path, name)), None)


def jobs(source: str, guides: list[str]) -> list[Job]:
    """The batch's runs in order, checked before any work: something to run, and no two outputs alike."""
    path = Path(source)
    if path.suffix.lower() == PAIRS_SUFFIX and path.is_file():
        if guides:
            raise InputError(f"{source} is a CSV of pairs and names each source's guide: leave GUIDE out")
        found = _pairs(path)
    else:
        if not guides:
            raise InputError("give a GUIDE: one file for every source, or a pattern with {stem} for a guide per "
                             "source (e.g. 'ortho/{stem}_rgb.tif')")
        found = [Job(s, *_guides_of(s, guides)) for s in _sources(source, guides)]
    if not found:
        raise InputError(f"{source} names no raster: give a glob such as 'tiles/*.tif', a folder of rasters "
                         f"({', '.join(RASTER_SUFFIXES[:4])}, ...), a text file of paths or a CSV of pairs")
    seen: dict[str, str] = {}
    for job in found:
        if job.stem in seen:
            raise InputError(f"{seen[job.stem]} and {job.source} would both write {job.stem}_x<scale>.tif: "
                             "give sources whose file names differ, or run them into separate folders")
        seen[job.stem] = job.source
    return found


def _sources(source: str, guides) -> list[str]:
    """The sources a folder, list or glob names. A folder or glob leaves out hidden files (a killed run's
    temporary output), the batch's guides, and geosr's own outputs (a second run into the same folder
    would otherwise sharpen them again)."""
    path = Path(source)
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
        return [_relative_to(path.parent, line) for line in lines if line]
    if path.is_dir():
        found = [str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES]
    else:
        found = [p for p in glob.glob(source) if Path(p).is_file()]  # glob leaves out hidden files itself
    guides = [g for g in guides if STEM not in g]
    return sorted(p for p in found if not Path(p).name.startswith(".") and input_at(Path(p), guides) is None
                  and not _is_output(p))


def _is_output(path: str) -> bool:
    """A file named as geosr names a batch's outputs, whose tags say geosr wrote it."""
    if not re.search(r"_x\d+$", Path(path).stem):
        return False
    import rasterio

    try:
        with rasterio.open(path) as r:
            return "geosr_scale" in r.tags()
    except rasterio.errors.RasterioError:
        return False


def _guides_of(source: str, guides: list[str]) -> tuple[tuple[str, ...], str | None]:
    """The guides of one source, and what is wrong with them (a pattern matching no file or several)."""
    out = []
    for pattern in guides:
        name = pattern.replace(STEM, Path(source.rstrip("/")).stem)
        if STEM in pattern and _MAGIC.search(name) and not Path(name).exists():
            matches = sorted(glob.glob(name))
            if len(matches) != 1:
                return tuple(out), (f"the guide pattern {pattern} matches {len(matches) or 'no'} file"
                                    f"{'s' if len(matches) != 1 else ''} for this source ({name})")
            name = matches[0]
        out.append(name)
    return tuple(out), None


def _pairs(path: Path) -> list[Job]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(f)
        rows = list(reader)
        names = [n.strip().lower() for n in reader.fieldnames or []]
    if "source" not in names or not any(n.startswith("guide") for n in names):
        raise InputError(f"{path} needs a header line with a 'source' column and a 'guide' column (more guide "
                         "columns, guide2, guide3, ..., for guides stacked as bands), e.g. source,guide")
    out = []
    for row in rows:
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        if not row.get("source"):
            continue
        guides = tuple(_relative_to(path.parent, v) for k, v in row.items() if k.startswith("guide") and v)
        out.append(Job(_relative_to(path.parent, row["source"]), guides,
                       None if guides else f"{path} gives no guide for this source"))
    return out


def _relative_to(folder: Path, name: str) -> str:
    """A path of a list or CSV file, relative to its folder; GDAL names (/vsi..., URLs) and absolute paths as they are."""
    if name.startswith("/") or "://" in name or re.match(r"^[A-Za-z]:[\\/]", name):
        return name
    return str(folder / name)
