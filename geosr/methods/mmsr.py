"""MMSR: learning mutual modulation for self-supervised cross-modal SR (Dong et al., ECCV 2022).

A small network is fitted to one pair only, with the cycle loss
|avg-pool(prediction) - source|, then run once to predict the HR source.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..errors import InputError
from ..core.pair import Pair, blend


@dataclass(frozen=True)
class MMSRConfig:
    """Everything that defines one MMSR fit. The field defaults are the paper's depth setting."""

    channels: int = 64
    source_neighbourhood: int = 11  # n: source-to-guide window
    guide_neighbourhood: int = 5    # m: guide-to-source window
    epochs: int = 1000              # one epoch = one step over the whole pair
    lr: float = 0.002
    lr_decay: float = 0.9998
    lr_decay_every: int = 5
    guide_weight_decay: float = 5e-4


PRESETS: dict[str, MMSRConfig] = {
    # The paper's two settings, exactly.
    "depth": MMSRConfig(),
    "remote-sensing": MMSRConfig(source_neighbourhood=5, guide_neighbourhood=3),
    # geosr's default, chosen by measurement (benchmarks/RESULTS.md): a quarter of the
    # channels makes an epoch about 8x cheaper, so more epochs fit in the same time, and
    # without weight decay on the guide branch the fit converges in about half the epochs.
    # It is the best measured within ~2 min per 256 x 256 pair on 2 CPU cores; the paper's
    # presets are better still when ~12x the time is available.
    "fast": MMSRConfig(channels=16, source_neighbourhood=5, guide_neighbourhood=3, epochs=650,
                       guide_weight_decay=0.0),
    # The default for mode="scene" (one network for a whole raster; epochs = steps over a batch
    # of windows, geosr.methods.scene.BATCH): a network that generalises across a scene needs
    # more channels than one fitted to a single tile. On the Sentinel-2 Wald check, 32 channels
    # gave 0.745x bicubic against 0.839x with 16, at 300 steps (benchmarks/RESULTS.md).
    "wide": MMSRConfig(channels=32, source_neighbourhood=5, guide_neighbourhood=3, epochs=300,
                        guide_weight_decay=0.0),
}
DEFAULT_PRESET = "fast"
DEFAULT_SCENE_PRESET = "wide"
# Old preset names that still work, with a warning, until geosr 0.2: "scene" collided with mode="scene".
RENAMED_PRESETS = {"scene": "wide"}

# Above this many activation elements per feature map (H * W * channels) the network
# recomputes activations in backward (gradient checkpointing) to bound memory.
_CHECKPOINT_ABOVE = 2**25


# run() options that are not MMSRConfig fields.
RUN_OPTIONS = ("preset", "gradient_checkpointing", "amp", "start")


def config_for(preset: str | None = None, **overrides) -> MMSRConfig:
    """The preset's config with ``overrides`` (any MMSRConfig field) applied."""
    preset_name = DEFAULT_PRESET if preset is None else renamed_preset(preset)
    if preset_name not in PRESETS:
        raise InputError(f"unknown MMSR preset {preset!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(MMSRConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise InputError(f"unknown MMSR option(s) {sorted(unknown)}; valid ones are {sorted(fields)} "
                         f"plus device, seed, progress and {', '.join(RUN_OPTIONS)}")
    cfg = dataclasses.replace(PRESETS[preset_name], **{k: v for k, v in overrides.items() if v is not None})
    _check_config(cfg)
    return cfg


def renamed_preset(preset: str) -> str:
    """The preset's present name; an old one (:data:`RENAMED_PRESETS`) with a FutureWarning."""
    if preset in RENAMED_PRESETS:
        import warnings

        new = RENAMED_PRESETS[preset]
        warnings.warn(f"MMSR preset {preset!r} is now called {new!r} (the old name collided with mode {preset!r}); "
                      f"{preset!r} works until geosr 0.2", FutureWarning, stacklevel=3)
        return new
    return preset


def _check_config(cfg: MMSRConfig) -> None:
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    for field in ("source_neighbourhood", "guide_neighbourhood"):
        v = getattr(cfg, field)
        if not is_int(v) or v < 1 or v % 2 == 0:
            raise InputError(f"{field} must be a positive odd integer (a window centred on the pixel), got {v!r}")
    for field, low in (("epochs", 0), ("channels", 1), ("lr_decay_every", 1)):
        v = getattr(cfg, field)
        if not is_int(v) or v < low:
            raise InputError(f"{field} must be an integer >= {low}, got {v!r}")
    if not cfg.lr > 0 or not 0 < cfg.lr_decay <= 1 or not cfg.guide_weight_decay >= 0:
        raise InputError(f"lr must be > 0, lr_decay in (0, 1] and guide_weight_decay >= 0; got lr={cfg.lr}, "
                         f"lr_decay={cfg.lr_decay}, guide_weight_decay={cfg.guide_weight_decay}")


def run(pair: Pair, preset: str | None = None, device=None, seed: int = 0, progress=None,
        gradient_checkpointing: bool | None = None, amp: bool | None = None, init=None, start: str | None = None,
        **overrides) -> tuple[np.ndarray, dict]:
    """Fit MMSR on ``pair`` and return the HR prediction (float64, source units) and details.

    ``amp``: bfloat16 mixed precision on CUDA (off by default). ``start``: the weights the fit starts
    from, "random" (the paper's, seeded by ``seed``; the default, :data:`DEFAULT_START`) or "learned"
    (:mod:`geosr.methods.start`, shipped with the package, for the networks and guide band counts it
    holds). ``init``: a trained :class:`geosr.methods.scene.SceneModel` to start from instead (mode
    "hybrid"): its network, its weights and the statistics its inputs were standardised with;
    ``preset`` and ``overrides`` then set only the schedule (epochs, lr, ...). A scene network that
    predicts without fitting goes through :func:`geosr.methods.engine.run_pair` instead.
    """
    from .fit import infer, mixed_precision, resolve_device

    cfg = config_for(preset, **overrides)
    if init is not None:  # the network is the scene's; the schedule is this fit's
        check_model_fits(init, pair.scale, pair.guide.shape[0])
        cfg = dataclasses.replace(cfg, **{k: init.config[k] for k in NETWORK_FIELDS})
        weights, began = init.state, "scene model"
    else:
        weights, began = starting_weights(start, cfg, pair.guide.shape[0])
    dev = resolve_device(device)
    amp = mixed_precision(dev, amp)
    net, inputs, history = fit(pair, cfg, weights, dev, amp, seed, progress, gradient_checkpointing,
                               statistics=None if init is None else init)
    pred = inputs.pair.crop(infer(net, inputs.guide, inputs.source, dev, amp)[0, 0]).double().cpu().numpy()
    details = {"config": dataclasses.asdict(cfg), "preset": preset or DEFAULT_PRESET, "psf": pair.psf.describe(),
               "start": began, "device": str(dev),
               "seed": seed, "amp": amp, "loss_history": history, "loss_cells": int(inputs.valid.sum().item())}
    return pred * inputs.std + inputs.mean, details


@dataclass
class FitInputs:
    """A pair as the network sees it: mirrored beyond the frame, standardised, as tensors."""

    pair: Pair
    mean: float
    std: float
    source: object
    guide: object
    valid: object
    compose: object


def fit(pair: Pair, cfg: MMSRConfig, weights, dev, amp: bool, seed: int = 0, progress=None,
        gradient_checkpointing: bool | None = None, statistics=None):
    """(network, :class:`FitInputs`, loss history): an MMSRNet fitted to ``pair`` under ``cfg``'s schedule,
    from ``weights`` (a state dict of arrays) or, where None, from random weights drawn with ``seed``.
    ``statistics``: an object with source_mean/std and guide_mean/std to standardise with (a scene
    model's) instead of the pair's own."""
    from .fit import Schedule, autocast, deterministic_kernels, masked_cycle_l1, optimise, seeded_init, to_device
    from .nn.mmsr_net import MMSRNet
    import torch

    s = pair.scale
    # The network sees a mirrored margin beyond the raster's frame, and is scored without it.
    pair = pair.mirrored(margin_cells(cfg.source_neighbourhood, cfg.guide_neighbourhood, s))
    mean, std = pair.source_statistics if statistics is None else (statistics.source_mean, statistics.source_std)
    tensor = partial(to_device, device=dev)
    guide = pair.guide if statistics is None else pair.guide_standardised(statistics.guide_mean, statistics.guide_std)
    inputs = FitInputs(pair, mean, std, tensor((pair.source_filled - mean) / std)[None, None], tensor(guide)[None],
                       tensor(pair.loss_valid)[None, None], _fallback_blend(pair, mean, std, tensor))

    h, w = pair.hr_shape
    if gradient_checkpointing is None:
        gradient_checkpointing = h * w * cfg.channels > _CHECKPOINT_ABOVE
    net = seeded_init(seed, lambda: MMSRNet(pair.guide.shape[0], cfg.channels, cfg.source_neighbourhood,
                                            cfg.guide_neighbourhood,
                                            gradient_checkpointing=gradient_checkpointing))
    if weights is not None:
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    net.to(dev)
    with deterministic_kernels(dev):
        schedule = Schedule(cfg.epochs, cfg.lr, cfg.lr_decay, cfg.lr_decay_every)
        net.train()

        def step_loss(epoch):
            with autocast(dev, amp):
                prediction = net(inputs.guide, inputs.source)
            return masked_cycle_l1(inputs.compose(prediction.float()), inputs.source, inputs.valid, s, pair.psf)

        history = optimise(net.param_groups(cfg.guide_weight_decay), step_loss, schedule, progress=progress,
                           description="mmsr")
    return net, inputs, history


# How a per-pair fit starts where none is asked for: "random", the paper's. "learned" (geosr.methods.start) was
# ahead at 100 epochs on 5 of 6 real pairs, but behind at the default 650 on 5 of 6, and behind at every budget on
# one drone DSM (benchmarks/RESULTS.md section 21); a seed no longer changes its fits either.
STARTS = ("random", "learned")
DEFAULT_START = "random"


def check_start(options: dict, guide_bands: int) -> None:
    """The InputError a fit with ``options`` would raise over its start, before any work."""
    from . import COMMON_OPTIONS

    cfg = config_for(options.get("preset"), **{k: v for k, v in options.items()
                                               if k not in (*COMMON_OPTIONS, *RUN_OPTIONS)})
    starting_weights(options.get("start"), cfg, guide_bands)


def starting_weights(start: str | None, cfg: MMSRConfig, guide_bands: int):
    """(weights or None for random ones, what the details call the start) of a fit with ``start``."""
    start = DEFAULT_START if start is None else start
    if start not in STARTS:
        raise InputError(f"unknown start {start!r}; choose one of {list(STARTS)}")
    if start == "random":
        return None, "random"
    from . import start as learned

    found = learned.shipped(cfg, guide_bands)
    return found.state, f"learned ({found.name})"


# The fields of MMSRConfig that shape the network (the rest set the optimisation).
NETWORK_FIELDS = ("channels", "source_neighbourhood", "guide_neighbourhood")


def check_model_fits(model, scale: int, guide_bands: int | None = None) -> None:
    """A scene model runs only at the scale and with the number of guide bands it was trained with."""
    if scale != model.scale:
        raise InputError(f"the scene model was trained at scale {model.scale}; this run has scale {scale}: "
                         "train a model at this scale (leave model= out)")
    if guide_bands is not None and guide_bands != model.guide_bands:
        raise InputError(f"the scene model was trained with {model.guide_bands} guide band(s); this run's guide has "
                         f"{guide_bands}: give the same guide bands (guide_bands=, --guide-bands)")


def margin_cells(source_neighbourhood: int, guide_neighbourhood: int, scale: int) -> int:
    """LR cells of mirrored margin that keep the network's zero padding off the pixels at the frame."""
    from .nn.mmsr_net import reach

    return -(-reach(source_neighbourhood, guide_neighbourhood) // scale)


def _fallback_blend(pair: Pair, mean: float, std: float, tensor):
    """The loss sees what the user gets: the network where the guide is valid, bicubic where not."""
    if pair.guide_complete:
        return lambda p: p
    w = tensor(pair.guide_weight)[None, None]
    fallback = tensor((pair.bicubic_filled - mean) / std)[None, None]
    return lambda p: blend(p, w, fallback)
