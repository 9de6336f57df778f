"""The plan of a run, in the style of gdalinfo and gdalwarp: what will happen, before minutes of work.

It reads a lazy result of :func:`geosr.pipeline.run.run` (its grid, chunks and ``geosr_*`` tags),
so it says what the run settled (the mode ``auto`` chose, the measured alignment, the sensor model,
the self-check), not what was asked for.
"""
from __future__ import annotations

from ..spec import RunSpec


def tile_pixels(result) -> list[int]:
    """HR pixels of each tile with its halo (the chunks are the tiles' cores; edge tiles counted with
    a halo on every side, so the figure is an upper bound)."""
    scale, overlap = int(result.attrs["geosr_scale"]), int(result.attrs["geosr_overlap"])
    halo = 2 * overlap * scale
    rows, cols = result.chunks[-2], result.chunks[-1]
    return [(h + halo) * (w + halo) for h in rows for w in cols]


def lines(result, spec: RunSpec, guide_resampling: str, estimate: tuple[float, str] | None = None,
          verbose: bool = False) -> list[str]:
    """The plan as lines of text. ``spec``: the run's spec as given (its model, if any); the rest is
    read back from ``result``. ``guide_resampling``: the resampling the guide is warped with."""
    from ..runtime.progress import duration

    a = result.attrs
    planned = RunSpec.from_tags(a, scene_model=spec.scene_model)
    crs = result.rio.crs
    t = result.rio.transform()
    units = _units_of(crs)
    left, bottom, right, top = result.rio.bounds()
    h, w = result.shape[-2:]
    n_rows, n_cols = len(result.chunks[-2]), len(result.chunks[-1])
    out = [f"output grid: {crs.to_string() if crs.to_epsg() is None else f'EPSG:{crs.to_epsg()}'}, pixel "
           f"{abs(t.a):.6g} x {abs(t.e):.6g} {units}, {h} rows x {w} columns"
           + (f" x {result.shape[0]} bands" if result.ndim == 3 else ""),
           f"  bounds: left {left:.3f}, bottom {bottom:.3f}, right {right:.3f}, top {top:.3f}",
           f"tiles: {n_rows} x {n_cols} of about {planned.tile_size} source pixels ({planned.tile_size * planned.scale} "
           f"output), halo {planned.overlap} source pixels"]
    if a.get("geosr_mode_reason") or planned.method == "mmsr":
        out.append(f"mode: {a['geosr_mode']}" + (f" ({a['geosr_mode_reason']})" if a.get("geosr_mode_reason") else
                                               " (as asked)"))
    out.append(f"method: {_method(planned)}")
    if planned.method != "bicubic":
        out.append(f"guide: resampled onto the output grid by {guide_resampling}")
        out.append(f"alignment: {_alignment(a, units)}")
    out.append(f"sensor model: {a.get('geosr_psf_estimate') or _psf(planned)}")
    for check in result.encoding.get("geosr_selfcheck", ()):  # where it found no help, the warning said so
        out.append(check.message(a.get("units", "")) if check.helps is not False else
                   f"self-check one scale down: ratio {check.ratio:.3f}, not better than bicubic (see the warning)")
    if estimate is not None:
        seconds, how = estimate
        out.append(f"estimated time: about {duration(seconds)} for the fits" + (f": {how}" if verbose else ""))
    return out


def _units_of(crs) -> str:
    if crs.is_geographic:
        return "degrees"
    try:
        name = crs.linear_units
    except Exception:
        return "units"
    return {"metre": "m", "meter": "m"}.get(name, name)


def _method(spec: RunSpec) -> str:
    if spec.method != "mmsr":
        return spec.method
    from ..methods.mmsr import DEFAULT_PRESET, DEFAULT_SCENE_PRESET, config_for
    from ..methods.scene import BATCH, WINDOW, network_config

    def network(preset, default=DEFAULT_PRESET):
        cfg = config_for(preset or default)
        return (f"preset {preset or default} ({cfg.channels} channels, windows {cfg.source_neighbourhood}/"
                f"{cfg.guide_neighbourhood})")

    if spec.mode == "tile":
        epochs = spec.options.get("epochs") or config_for(spec.options.get("preset")).epochs
        start = spec.options.get("start") or "random"
        return f"MMSR {network(spec.options.get('preset'))}, {epochs} epochs on each tile from a {start} start"
    train = spec.train_options()
    if spec.scene_model is not None:
        training = "a given scene model, no training"
    else:
        steps = network_config(train.get("preset"), train.get("epochs")).epochs
        training = (f"{network(train.get('preset'), DEFAULT_SCENE_PRESET)} trained for {steps} steps of {spec.batch_size or BATCH} windows of "
                    f"{WINDOW} x {WINDOW} output pixels")
    if spec.mode == "hybrid":
        return f"MMSR {training}, then {spec.tile_options()['epochs']} epochs of fine-tuning on each tile"
    return f"MMSR {training}, then one forward pass a tile"


def _alignment(attrs, units: str) -> str:
    kind = attrs.get("geosr_align", "none")
    if kind == "shift" and "geosr_align_shift_px" in attrs:
        dx, dy = attrs["geosr_align_shift_px"].split()
        mx, my = attrs.get("geosr_align_shift_map", "? ?").split()
        return (f"the guide is displaced by {dx}, {dy} output pixels (columns, rows) = {float(mx):.4g}, {float(my):.4g} "
                f"{units} (x, y); removed before the fit")
    extra = {k[len("geosr_align_"):]: v for k, v in attrs.items() if k.startswith("geosr_align_") and
             k != "geosr_align_convention"}
    return kind + "".join(f"; {k} {v}" for k, v in extra.items())


def _psf(spec: RunSpec) -> str:
    return spec.psf.describe() if hasattr(spec.psf, "describe") else str(spec.psf.kind)
