"""Scene-level training: one MMSR network for a whole raster, trained on random tile pairs.

The paper fits one network per pair. Over a scene cut into many tiles that costs
epochs x tiles, and each tile ends with its own low-frequency offset. Here one network
is trained, with the same cycle loss, on batches of windows drawn at random from the
whole scene; then it is run once over every tile. The cost is the training budget plus
one forward pass per tile, and all tiles share one model, so they agree at the seams.

Inputs are standardised with statistics of the whole scene (estimated on the training
windows), not per tile, so that a dark tile is not stretched to look like a bright one.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..errors import InputError
from ..core.pair import blend, guide_statistics, prepare_pair
from ..core.psf import AREA

# Training windows: side in output pixels, how many are drawn, and how many go into one step.
# Smaller windows, more to a step: on the Sentinel-2 Wald check (RESULTS section 19) 8 windows of 64
# trained in 46 s to 0.764x bicubic, where 4 of 192 had taken 300 s to 0.771x.
WINDOW = 64
WINDOWS = 64
BATCH = 8
# mode="hybrid": the network (an MMSR preset), its training steps on the scene, then the epochs each
# tile pair fine-tunes it for. Measured (benchmarks/modes.py, RESULTS section 17): on the fieldimager
# DSM in 2 x 2 tiles, 16 channels at 100 + 100 gave 0.775x bicubic in 149 s, against 0.763x in 710 s
# per tile from scratch and 0.782x in 445 s for the scene network alone; on the Sentinel-2 Wald
# check it lost to the scene network (0.805x against 0.771x), so mode="auto" does not choose it.
HYBRID_PRESET = "fast"
HYBRID_STEPS = 100
TUNE_EPOCHS = 100
# A window is used for training only if this share of its guide pixels is valid.
MIN_GUIDE_VALID = 0.25


@dataclass
class SceneModel:
    """A trained scene network and the statistics its inputs were standardised with.

    Plain numpy arrays, so it travels to dask workers; a checkpoint keeps it as arrays and JSON
    text (:meth:`to_arrays`), which load without running code.
    """

    config: dict
    scale: int
    guide_bands: int
    source_mean: float
    source_std: float
    guide_mean: np.ndarray
    guide_std: np.ndarray
    state: dict
    details: dict = field(default_factory=dict, repr=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The model as named arrays (for ``numpy.savez``): the weights, the guide statistics, and the
        rest as a JSON string."""
        settings = {"config": self.config, "scale": self.scale, "guide_bands": self.guide_bands,
                    "source_mean": self.source_mean, "source_std": self.source_std, "details": self.details}
        return {"settings": np.array(json.dumps(settings, default=float)), "guide_mean": np.asarray(self.guide_mean),
                "guide_std": np.asarray(self.guide_std), **{_STATE + k: np.asarray(v) for k, v in self.state.items()}}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "SceneModel":
        """The model :meth:`to_arrays` gave (arrays loaded with ``allow_pickle=False``)."""
        s = json.loads(str(arrays["settings"]))
        state = {k[len(_STATE):]: v for k, v in arrays.items() if k.startswith(_STATE)}
        return cls(s["config"], int(s["scale"]), int(s["guide_bands"]), float(s["source_mean"]),
                   float(s["source_std"]), arrays["guide_mean"], arrays["guide_std"], state, s.get("details", {}))


_STATE = "state/"
# What a model file says it is, so another .npz is refused with a clear message.
MODEL_FORMAT = "geosr-scene-model/1"


def save(model: SceneModel, path) -> None:
    """Write ``model`` to ``path`` (numpy ``.npz``: arrays and a JSON string, no code), atomically."""
    from ..runtime.files import atomic_write

    arrays = {"format": np.array(MODEL_FORMAT), **model.to_arrays()}
    atomic_write(path, lambda f: np.savez(f, **arrays))


GIVE_A_SAVED_ONE = "give a file that a geosr run saved (--model-out, geosr.save_model)"


def load(path, hint: str = GIVE_A_SAVED_ONE) -> SceneModel:
    """The model :func:`save` wrote to ``path``; loading runs no code (``allow_pickle=False``).
    ``hint``: what the error message tells the user to do."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"cannot read the scene model {path} ({str(e) or 'empty'}): {hint}") from None
    if str(arrays.pop("format", "")) != MODEL_FORMAT:
        raise InputError(f"{path} is not a geosr scene model ({MODEL_FORMAT}): {hint}")
    try:
        return SceneModel.from_arrays(arrays)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"the scene model {path} is incomplete ({e}): {hint}") from None


def fingerprint(model: SceneModel) -> str:
    """A short hash of the model's weights and settings: equal models, equal hash."""
    import hashlib

    h = hashlib.sha256()
    for name, a in sorted(model.to_arrays().items()):
        a = np.ascontiguousarray(a)
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def windows(lr_shape, scale: int, count: int = WINDOWS, window: int = WINDOW, seed: int = 0):
    """``count`` random windows (y0, x0, height, width) in source pixels, inside the raster.

    A window is ``window`` output pixels on a side (at least 8 source pixels), or the
    whole raster where it is smaller.
    """
    h, w = lr_shape
    side = max(8, -(-window // scale))
    wy, wx = min(side, h), min(side, w)
    if (wy, wx) == (h, w):
        return [(0, 0, h, w)]
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, h - wy + 1, count)
    xs = rng.integers(0, w - wx + 1, count)
    return [(int(y), int(x), wy, wx) for y, x in zip(ys, xs)]


def network_config(preset=None, epochs=None, **overrides):
    """The scene network's MMSRConfig: ``preset`` (default :data:`DEFAULT_SCENE_PRESET`), ``epochs`` its steps."""
    from .mmsr import DEFAULT_SCENE_PRESET, config_for

    return config_for(preset or DEFAULT_SCENE_PRESET, **({"epochs": epochs} if epochs is not None else {}), **overrides)


def train(sources, guides, scale: int, *, preset=None, epochs=None, batch_size: int = BATCH, device=None,
          seed: int = 0, progress=None, amp: bool | None = None, psf=None, **overrides) -> SceneModel:
    """Train one network on the windows ``sources`` [(h, w)] and ``guides`` [(c, h*s, w*s)].

    NaN marks invalid pixels in both; ``psf``: the sensor model of the loss (default avg-pool). ``preset`` defaults to "wide" (32 channels, 300
    steps). ``epochs`` counts optimisation steps, each over a batch of ``batch_size``
    windows (default: the preset's epochs).
    """
    import torch

    from .fit import (Schedule, autocast, deterministic_kernels, masked_cycle_l1, mixed_precision, optimise,
                      resolve_device, seeded_init, to_device)
    from ..runtime.memory import reuse_freed_memory
    from .nn.mmsr_net import MMSRNet

    reuse_freed_memory()
    t0 = time.perf_counter()
    cfg = network_config(preset, epochs, **overrides)
    dev = resolve_device(device)
    amp = mixed_precision(dev, amp)
    pairs = []
    for src, gd in zip(sources, guides):
        src = np.asarray(src, np.float64)
        if not np.isfinite(src).any():
            continue
        pair = prepare_pair(src, gd, scale, psf=psf or AREA)
        if (pair.guide_weight > 0).mean() >= MIN_GUIDE_VALID:
            pairs.append(pair)
    if not pairs:
        raise InputError("no training window has a valid source and a valid guide; check the guide's nodata and "
                         "footprint (and a flat mask: the guide is invalid where it is set), or use mode='tile'")
    values = np.concatenate([p.source[p.source_valid] for p in pairs])
    source_mean, source_std = float(values.mean()), float(values.std()) or 1.0
    raw = np.concatenate([(p.guide.astype(np.float64) * p.guide_std[:, None, None] + p.guide_mean[:, None, None])
                          [:, p.guide_weight > 0] for p in pairs], axis=1)
    guide_mean, guide_std = guide_statistics(raw, np.ones(raw.shape[1], bool))

    def stack(arrays):
        return to_device(np.stack(arrays), dev)

    src_in = stack([(p.source_filled - source_mean) / source_std for p in pairs])[:, None]
    valid = stack([p.source_valid for p in pairs])[:, None]
    guide = stack([p.guide_standardised(guide_mean, guide_std) for p in pairs])
    weight = stack([p.guide_weight for p in pairs])[:, None]
    fallback = stack([(p.bicubic_filled - source_mean) / source_std for p in pairs])[:, None]

    batch_size = int(batch_size)
    if batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size}")
    batch_size = min(batch_size, len(pairs))
    net = seeded_init(seed, lambda: MMSRNet(guide.shape[1], cfg.channels, cfg.source_neighbourhood,
                                            cfg.guide_neighbourhood)).to(dev)
    with deterministic_kernels(dev):
        order = torch.Generator().manual_seed(seed)
        net.train()

        def step_loss(epoch):
            i = torch.randperm(len(pairs), generator=order)[:batch_size].to(dev)
            with autocast(dev, amp):
                prediction = net(guide[i], src_in[i])
            composed = blend(prediction.float(), weight[i], fallback[i])
            return masked_cycle_l1(composed, src_in[i], valid[i], scale, psf)

        schedule = Schedule(cfg.epochs, cfg.lr, cfg.lr_decay, cfg.lr_decay_every)
        history = optimise(net.param_groups(cfg.guide_weight_decay), step_loss, schedule, progress=progress,
                           description="scene training", unit="step", log_lines=True)
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    from .._version import __version__

    details = {"geosr_version": __version__, "psf": (psf or AREA).describe(), "windows": len(pairs),
               "batch_size": batch_size, "device": str(dev), "amp": amp, "seed": seed,
               "seconds": time.perf_counter() - t0, "loss_history": history}
    return SceneModel(dataclasses.asdict(cfg), scale, int(guide.shape[1]), source_mean, source_std, guide_mean,
                      guide_std, state, details)


def predict(model: SceneModel, pair, device=None, amp: bool | None = None) -> tuple[np.ndarray, dict]:
    """Run the scene network on one pair: the HR prediction (float64, source units) and details."""
    import torch

    from .fit import infer, mixed_precision, resolve_device, to_device
    from .mmsr import check_model_fits, margin_cells
    from .nn.mmsr_net import MMSRNet

    check_model_fits(model, pair.scale, pair.guide.shape[0])
    dev = resolve_device(device)
    amp = mixed_precision(dev, amp)
    cfg = model.config
    net = MMSRNet(model.guide_bands, cfg["channels"], cfg["source_neighbourhood"], cfg["guide_neighbourhood"])
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state.items()})
    net.to(dev)

    pair = pair.mirrored(margin_cells(cfg["source_neighbourhood"], cfg["guide_neighbourhood"], pair.scale))
    tensor = partial(to_device, device=dev)

    source_in = tensor((pair.source_filled - model.source_mean) / model.source_std)[None, None]
    guide = tensor(pair.guide_standardised(model.guide_mean, model.guide_std))[None]
    pred = pair.crop(infer(net, guide, source_in, dev, amp)[0, 0]).double().cpu().numpy()
    return pred * model.source_std + model.source_mean, {"mode": "scene", "device": str(dev), "amp": amp}
