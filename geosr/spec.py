"""One run's settings: every option with its default, stated once, checked once.

Each front builds a :class:`RunSpec` (the CLI from its flags, :func:`geosr.superresolve`, the
accessor and :func:`geosr.superresolve_array` from their keyword arguments). It is checked
when it is made and then carried through the pipeline unchanged. It says which options apply
to which method and mode, writes itself into the output's ``geosr_*`` tags and reads itself
back from them (so :func:`geosr.quality_layers` and the ensemble rebuild a run from a written
file), and gives the dask token and the checkpoint key.

Options of one method (``epochs``, ``preset``, ``steps``, ``seed``, ``device``, ...) are kept
in ``options`` and checked by the method (:func:`geosr.methods.check_options`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import partial

from ._version import __version__
from .core.align import DEFAULT_ALIGN, Alignment, check_align
from .core.pair import check_scale, feather_px
from .core.psf import psf_from
from .errors import InputError
from .methods import LEARNED, check_options
from .pipeline import flatmask
from .pipeline.plan import split

MODES = ("auto", "tile", "scene", "hybrid")
TRAINED = ("scene", "hybrid")  # the modes that train one network on the whole raster first
USES_GUIDE = ("mmsr", "cmsr", "guided", "regression")
# Options that only some methods use: option -> (methods, why not elsewhere). The CLI refuses them
# elsewhere; the Python API accepts them, so a loop can sweep methods with one set of options.
APPLIES_TO = {
    "preset": (("mmsr",), "presets are MMSR networks"),
    "mode": (("mmsr",), "other methods always run tile by tile"),
    "batch_size": (("mmsr",), "it sets MMSR's scene training"),
    "train_steps": (("mmsr",), "it sets MMSR's scene training"),
    "steps": (("mmsr",), "it sets MMSR's scene training"),
    "model_in": (("mmsr",), "a scene model is an MMSR network"),
    "model_out": (("mmsr",), "a scene model is an MMSR network"),
    "share_model": (("mmsr",), "a scene model is an MMSR network"),
    "amp": (("mmsr",), "it sets MMSR's network precision"),
    "start": (("mmsr",), "a start is an MMSR network's weights"),
    "epochs": (LEARNED, "only learned methods optimise"),
    "seed": (LEARNED, "the method gives the same output for any seed"),
    "device": (LEARNED, "the method runs on the CPU"),
    "ensemble": (LEARNED, "the method gives the same output for any seed"),
    "align": (USES_GUIDE, "bicubic does not use the guide"),
    "flat_mask": (USES_GUIDE, "bicubic does not use the guide"),
    "resampling": (USES_GUIDE, "bicubic does not use the guide"),
    "guide_bands": (USES_GUIDE, "bicubic does not use the guide"),
    "selfcheck": (USES_GUIDE, "bicubic does not use the guide"),
}


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's output, with its default.

    ``tile_size``, ``overlap`` and ``mode`` may be left to the run (None, None, "auto"):
    :meth:`planned` settles them for a raster's size, and the output's tags hold the settled values.
    """

    scale: int = 4
    method: str = "mmsr"
    band: object = None  # 1-based; a list or "all" for several bands; None = the only one
    guide_bands: tuple | None = None
    src_nodata: float | None = None
    guide_nodata: float | None = None
    dst_nodata: float | None = None
    resampling: str = "auto"
    tile_size: int | None = None  # default 512 // scale: 512-pixel output tiles
    overlap: int | None = None  # default ceil(32 / scale), widened to see the feather
    exact: bool = True
    feather: float | None = None  # output pixels; default: core.pair.feather_px
    mode: str = "auto"
    batch_size: int | None = None
    train_steps: int | None = None  # the scene network's steps (scene, hybrid); default: methods.scene
    scene_model: object = None  # a trained scene network (SceneModel or its file) instead of training one
    mode_reason: str = ""  # why mode="auto" chose the mode (set by planned)
    align: object = DEFAULT_ALIGN
    flat_mask: object = None
    psf: object = "area"
    psf_sigma: float | None = None
    quality: bool = False
    ensemble: int | None = None
    selfcheck: bool = True  # the method one scale down, scored against the source (geosr.methods.selfcheck)
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        set_ = partial(object.__setattr__, self)  # normalise the frozen fields
        set_("scale", check_scale(self.scale))
        if self.method == "mmsr" and self.options.get("preset") is not None:  # an old name: warn once, here
            from .methods.mmsr import renamed_preset

            set_("options", {**self.options, "preset": renamed_preset(self.options["preset"])})
        check_options(self.method, self.options)
        check_align(self.align)
        sensor = psf_from(self.psf, self.psf_sigma)
        set_("psf", sensor)
        set_("psf_sigma", sensor.sigma)
        if self.ensemble is not None:
            if isinstance(self.ensemble, bool):
                raise InputError("ensemble=N is the number of seeds behind the quality layers' ensemble_spread band; "
                                 "CMSR's 8 rotations/flips at inference are its option self_ensemble=True/False")
            if not self.quality:
                raise InputError("ensemble adds a band to the quality layers: pass quality=True as well")
            check_ensemble(self.method, self.ensemble)
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode in TRAINED and self.method != "mmsr":
            raise InputError(f"mode={self.mode!r} trains one MMSR network for the whole raster; "
                             f"method={self.method!r} always runs tile by tile: leave mode out")
        for name in ("batch_size", "train_steps"):
            if getattr(self, name) is not None:
                if self.mode == "tile" or self.method != "mmsr":
                    which = f"mode={self.mode!r}" if self.method == "mmsr" else f"method={self.method!r}"
                    raise InputError(f"{name} sets the scene network's training: it applies to method='mmsr' with "
                                     f"mode 'scene', 'hybrid' or 'auto', not {which}")
                set_(name, positive_int(getattr(self, name), name))
        if self.learned_start:
            if self.mode in TRAINED:
                raise InputError(f"start='learned' is where each tile's own fit begins; mode={self.mode!r} trains one "
                                 "network for the whole raster first: use mode='tile' (--mode tile) with it, or leave "
                                 "start out")
            if self.ensemble is not None:
                raise InputError("an ensemble spread needs fits that differ by their seed, and from the learned start "
                                 "they do not: use start='random' (--start random) with ensemble")
        if self.scene_model is not None:
            set_("scene_model", given_model(self.scene_model, self))
            if self.ensemble is not None:
                raise InputError("an ensemble spread needs runs that differ by their seed, and with a given scene "
                                 "model they do not: leave ensemble out, or model= to train one per seed")
        if self.scene_asked_for and self.train_steps is not None and self.options.get("epochs") is not None:
            raise InputError("in mode='scene', epochs and train_steps both count the scene network's steps: "
                             "give one of them")
        if self.tile_size is not None:
            set_("tile_size", positive_int(self.tile_size, "tile_size"))
        if self.overlap is not None:
            set_("overlap", positive_int(self.overlap, "overlap", low=0))
        if self.guide_bands is not None:
            set_("guide_bands", tuple(self.guide_bands))
        set_("flat_mask", flatmask.resolve(self.flat_mask))
        if self.method == "bicubic":  # its output does not depend on the guide: nothing to measure
            set_("align", "none")
            set_("selfcheck", False)

    @classmethod
    def build(cls, **settings) -> "RunSpec":
        """A spec from keyword arguments: the fields by name, every other one a method option. ``model`` is
        MMSR's scene model (``scene_model``); for the regression sharpener it is that method's option."""
        if settings.get("method", cls.method) == "mmsr" and "model" in settings:
            settings["scene_model"] = settings.pop("model")
        names = {f.name for f in dataclasses.fields(cls)} - {"options"}
        return cls(**{k: v for k, v in settings.items() if k in names},
                   options={k: v for k, v in settings.items() if k not in names})

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    # What the defaults come to for this scale
    @property
    def feather_px(self) -> float:
        """The fallback ramp's width in output pixels."""
        return feather_px(self.scale, self.feather)

    @property
    def seed(self) -> int:
        return self.options.get("seed", 0)

    @property
    def learned_start(self) -> bool:
        return self.method == "mmsr" and self.options.get("start") == "learned"

    @property
    def several_bands(self) -> bool:
        return isinstance(self.band, (str, list, tuple))

    @property
    def align_kind(self) -> str:
        return str(getattr(self.align, "kind", self.align))

    def planned(self, lr_shape) -> "RunSpec":
        """This spec with tile size, overlap and mode settled for a source of ``lr_shape`` pixels."""
        tile = max(1, 512 // self.scale) if self.tile_size is None else self.tile_size
        overlap = self._overlap(lr_shape, tile)
        tiles = math.prod(len(split(n, tile, 2 * overlap)) for n in lr_shape)
        mode, reason = self.mode, self.mode_reason
        if self.method != "mmsr":
            mode = "tile"
        elif mode == "auto":
            mode, reason = auto_mode(tiles, self.scene_model is not None)
            if mode != "tile" and self.learned_start:
                raise InputError(f"start='learned' is where each tile's own fit begins, and mode='auto' chose {mode} "
                                 f"mode for this raster of {tiles} tiles: give mode='tile' (--mode tile) to fit every "
                                 "tile from the learned start, or leave start out")
        trained = mode in TRAINED
        return self.replace(tile_size=tile, overlap=overlap, mode=mode, mode_reason=reason,
                            batch_size=self.batch_size if trained else None,
                            train_steps=self.train_steps if trained else None)

    def train_options(self) -> dict:
        """The options of the scene network's training (:func:`geosr.methods.scene.train`) in a planned spec."""
        from .methods.scene import HYBRID_PRESET, HYBRID_STEPS

        # The scene network starts from random weights; a tile fit's start is the tile's option.
        options = {k: v for k, v in self.options.items() if k not in ("gradient_checkpointing", "start")}
        if not self.epochs_are_steps:  # epochs are the tiles' (hybrid), or train_steps count the steps
            options.pop("epochs", None)
        if self.mode == "hybrid":
            options["preset"] = options.get("preset") or HYBRID_PRESET
        steps = HYBRID_STEPS if self.train_steps is None and self.mode == "hybrid" else self.train_steps
        options.update({"epochs": steps} if steps is not None else {})
        options.update({"batch_size": self.batch_size} if self.batch_size is not None else {})
        return {**options, "psf": self.psf}

    def tile_options(self) -> dict:
        """The options of each tile's fit in a planned spec: in hybrid mode, the fine-tuning's epochs."""
        from .methods.scene import TUNE_EPOCHS

        if self.mode != "hybrid" or self.options.get("epochs") is not None:
            return self.options
        return {**self.options, "epochs": TUNE_EPOCHS}

    def _overlap(self, shape, tile_size):
        """The tiles' halo in source pixels: ``overlap``, or by default ``ceil(32 / scale)`` widened until every
        pixel a tile contributes sees the guide's gaps within ``feather`` of it, so its fallback ramp is the
        raster's own (a tile's outer half halo has weight 0; :mod:`geosr.pipeline.tiling`)."""
        feather = self.feather_px
        need = math.ceil(2 * math.ceil(feather) / self.scale)  # then half the HR halo, overlap * scale // 2, >= feather
        if self.overlap is None:
            return max(math.ceil(32 / self.scale), need)
        several = any(len(split(n, tile_size, 2 * self.overlap)) > 1 for n in shape)
        if several and self.overlap < need:
            raise InputError(f"a feather of {feather:g} output pixels needs tiles with a halo of at least {need} "
                             f"source pixels (overlap, --overlap), got {self.overlap}: a tile would not see every gap "
                             "in the guide its fallback ramp must reach, and its seams would differ from the rest. "
                             "Raise the overlap or lower the feather.")
        return self.overlap

    @property
    def scene_asked_for(self) -> bool:
        """Mode scene as given, not as chosen by auto."""
        return self.mode == "scene" and not self.mode_reason

    @property
    def epochs_are_steps(self) -> bool:
        """Whether ``epochs`` counts the scene network's steps: in mode scene unless ``train_steps`` is given."""
        return self.mode == "scene" and self.train_steps is None

    @property
    def model_fingerprint(self) -> str | None:
        from .methods.scene import fingerprint

        return None if self.scene_model is None else fingerprint(self.scene_model)

    # Tags, token and checkpoint key
    def tags(self, alignment: Alignment | None = None, hr_affine=None) -> dict:
        """The run's settings as ``geosr_*`` attributes (of a planned spec); ``geosr_options`` holds every
        method option (JSON), ``geosr_flat_mask`` the flat mask (:mod:`geosr.pipeline.flatmask`)."""
        options = {k: v for k, v in self.options.items() if k != "progress" and v is not None}
        if self.mode in TRAINED:
            options["batch_size"] = self.batch_size
            options.update({"train_steps": self.train_steps} if self.train_steps is not None else {})
            options["scene_model"] = ("trained by this run" if self.scene_model is None
                                      else f"given ({self.model_fingerprint})")
        tags = {"geosr_version": __version__, "geosr_method": self.method, "geosr_scale": self.scale,
                "geosr_exact": int(self.exact), "geosr_mode": self.mode, "geosr_tile_size": self.tile_size,
                "geosr_overlap": self.overlap, "geosr_guide_resampling": self.resampling,
                "geosr_band": "" if self.band is None else self.band,
                "geosr_guide_bands": "" if self.guide_bands is None else ",".join(map(str, self.guide_bands)),
                "geosr_flat_mask": "none" if self.flat_mask is None else self.flat_mask.description,
                "geosr_options": json.dumps(options, sort_keys=True, default=str)}
        if self.mode_reason:
            tags["geosr_mode_reason"] = self.mode_reason
        tags.update(alignment.attrs(hr_affine) if alignment is not None else {
            "geosr_align": "none" if self.align == "none" else f"none ({self.align} skipped: too little overlap)"})
        tags["geosr_feather"] = self.feather_px
        tags["geosr_psf"] = self.psf.kind
        tags["geosr_psf_sigma"] = "" if self.psf.sigma is None else self.psf.sigma
        return tags

    @classmethod
    def from_tags(cls, attrs, **overrides) -> "RunSpec":
        """The spec of the run that wrote ``attrs`` (a result's or a written file's), with ``overrides``.

        The guide's alignment is measured again (from the kind recorded), and a flat mask that was
        an object in memory must be given again (:func:`geosr.pipeline.flatmask.from_attribute` says so)."""
        def tag(name, cast=str):
            value = attrs.get(name, "")
            return None if value in ("", None) else cast(value)

        if "geosr_scale" not in attrs and "scale" not in overrides:
            raise InputError("quality_layers needs the output of geosr.superresolve (its geosr_* attributes), or scale=")
        options = json.loads(tag("geosr_options") or "{}")
        batch_size, train_steps = options.pop("batch_size", None), options.pop("train_steps", None)
        options.pop("scene_model", None)  # a given model's file is not in the tags: pass model= again
        found = dict(scale=tag("geosr_scale", int), method=tag("geosr_method"), exact=tag("geosr_exact", int),
                     align=tag("geosr_align", lambda v: v if v in ("shift", "affine") else "none"),
                     band=tag("geosr_band", _band_tag),
                     guide_bands=tag("geosr_guide_bands", lambda v: tuple(int(b) for b in str(v).split(","))),
                     resampling=tag("geosr_guide_resampling"), feather=tag("geosr_feather", float),
                     psf=tag("geosr_psf"), psf_sigma=tag("geosr_psf_sigma", float),
                     tile_size=tag("geosr_tile_size", int), overlap=tag("geosr_overlap", int),
                     mode=tag("geosr_mode"), mode_reason=tag("geosr_mode_reason"), batch_size=batch_size,
                     train_steps=train_steps)
        if "flat_mask" not in overrides:
            found["flat_mask"] = flatmask.from_attribute(attrs.get("geosr_flat_mask"))
        found = {k: v for k, v in found.items() if v is not None}
        if "exact" in found:
            found["exact"] = bool(found["exact"])
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"unknown setting(s) {sorted(unknown)}; valid ones are "
                             f"{sorted(f.name for f in dataclasses.fields(cls))}")
        return cls(**{**found, "options": options, **overrides})

    def token(self, lr, hr_guide, alignment: Alignment | None) -> str:
        """The dask token of this run on these (lazy) inputs: equal runs share their graph's keys."""
        from dask.base import tokenize

        flat = None if self.flat_mask is None else (self.flat_mask.description,
                                                    sorted(self.flat_mask.checksums.items()))
        return tokenize(lr, hr_guide, self.scale, self.method, self.mode, self.batch_size, self.train_steps, self.exact,
                        self.feather, self.tile_size, self.overlap, self.psf, sorted(self.options.items()),
                        self.align_kind, self.model_fingerprint, None if alignment is None else tuple(alignment.matrix),
                        flat)

    def checkpoint_key(self, tags: dict, hr_box, inputs: dict) -> dict:
        """What a checkpoint must match to be reused: the run's tags and settings, the grid, the inputs'
        fingerprints (:func:`geosr.runtime.provenance.inputs`)."""
        return {"parameters": {**tags, "feather": self.feather, "src_nodata": self.src_nodata,
                               "guide_nodata": self.guide_nodata,
                               "grid": [hr_box.crs.to_wkt(), list(hr_box.affine)[:6], list(hr_box.shape)]},
                "inputs": inputs}

def _band_tag(value) -> int | list[int]:
    """``geosr_band``: one band number, or several joined by commas (a run of several bands)."""
    numbers = [int(b) for b in str(value).split(",")]
    return numbers[0] if len(numbers) == 1 else numbers


def auto_mode(tiles: int, have_model: bool) -> tuple[str, str]:
    """(mode, why) for a raster of ``tiles`` tiles. Hybrid is not chosen: at its defaults it beat scene mode on one
    of four rasters measured, tied on one and lost on two, the Sentinel-2 Wald check among them
    (benchmarks/RESULTS.md section 17)."""
    if have_model:
        return "scene", "auto: a scene model was given, run on every tile"
    if tiles == 1:
        return "tile", "auto: 1 tile, fitted on its own"
    return "scene", f"auto: {tiles} tiles, one network trained on the whole raster and run on every tile"


def given_model(model, spec: RunSpec):
    """``model=`` (a :class:`geosr.methods.scene.SceneModel` or the path of its file) checked against ``spec``."""
    from .methods import scene

    if spec.method != "mmsr" or spec.mode == "tile":
        raise InputError("model= is a trained scene network: it applies to method='mmsr' in mode 'scene', "
                         f"'hybrid' or 'auto', not method={spec.method!r} mode={spec.mode!r}")
    steps = spec.scene_asked_for and spec.options.get("epochs") is not None
    if spec.train_steps is not None or spec.batch_size is not None or steps:
        raise InputError("model= is trained already: train_steps, batch_size (and in mode scene, epochs) set a "
                         "training; leave them out")
    from .methods.mmsr import check_model_fits
    from .pipeline.train import resolved

    model = resolved(model)  # another run's result.encoding["geosr_model"]: its model, trained now if not yet
    found = model if isinstance(model, scene.SceneModel) else scene.load(model)
    check_model_fits(found, spec.scale)
    return found


def not_applying(method: str, given) -> list[tuple[str, str]]:
    """(option, why) for each option named in ``given`` that ``method`` would ignore."""
    return [(name, why) for name, (methods, why) in APPLIES_TO.items() if name in given and method not in methods]


def check_ensemble(method, n) -> None:
    """An ensemble spread needs n >= 2 runs of a method whose output depends on the seed."""
    import numpy as np

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"ensemble must be an integer >= 2 (the output and n - 1 more seeds), got {n!r}")
    if method not in LEARNED:
        raise InputError(f"an ensemble spread needs a learned method (mmsr, cmsr); {method!r} gives the same "
                         "output for every seed")


def positive_int(v, name, low=1) -> int:
    if isinstance(v, bool) or not float(v).is_integer() or int(v) < low:
        raise InputError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)
