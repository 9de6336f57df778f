"""CMSR: single-pair cross-modality super-resolution (Shacht et al., CVPR 2021).

Built on ZSSR's "zero-shot" idea: the pair itself supplies training examples one scale
down. A random crop of the LR source is the "HR father"; averaging it by ``scale`` and
upsampling back gives the "LR son"; the guide, averaged onto the source grid, is cropped
the same way. A network learns son (+ guide) -> father with an L1 loss, together with a
warp of the guide (affine + smooth field) that moves a weakly aligned guide onto the
source. It is then run on the real source with the full-resolution guide, warped by the
learned transform, over the 8 rotations/flips (ZSSR's geometric self-ensemble, median),
each back-projected.

Where geosr departs from the published code (TensorFlow, camillarhodes/CMSR), and why:
- The son is made by averaging (geosr's sensor model, as in the cycle loss and
  ``exact``), not by a bicubic kernel. It is upsampled back with the cubic that inference
  applies to the real source (GDAL's, a = -0.5; torch's bicubic is a = -0.75), over the
  whole source, so a crop's son keeps its real neighbours as the source does at inference.
- Augmentation is the 8 rotations/flips only (4 where the source is narrower than
  ``crop``, whose crops a quarter turn would not fit); the code's random affine/scale
  augmentation and its gradual (x2 then x4) schedule are left out, for CPU cost.
- The smooth deformation is a bicubically interpolated grid of displacements, not
  CPAB + thin-plate spline; both are smooth, low-dimensional warps learned by the loss.
- A fixed step schedule (lr / 10 at 70 % of the steps) replaces ZSSR's slope-based one,
  and the default network is narrower (32 channels, paper code 64) with fewer steps, to
  fit about a minute per 256 x 256 pair on 2 CPU cores.
- The inputs are standardised, and invalid source cells are left out of the loss.
- The warp's departure from a translation is penalised (``warp_penalty`` per LR px^2 of
  mean squared departure). Adam moves a weakly constrained parameter as fast as a well
  constrained one, so shear, scale and the smooth field drifted where the guide says
  little (up to 8.9 px on vegetation-height pair 2, 10 % worse than with the penalty); a
  translation costs nothing, so shifted guides are still followed.

When not to use it (benchmarks/RESULTS.md section 12; compare with bicubic on your data):
- Smooth DSMs whose relief at the output scale is much weaker than one scale up. CMSR
  learns how much detail to add one scale down, where it is larger, and over-sharpens:
  1.08x bicubic on the fieldimager drone DSM at x4 (source-only, without the guide, 2.0x).
- Fine structure that is absent one scale up: on two of the four fieldimager plot crops
  the detail at the output scale is 2.2-2.5x that one scale up, so there is nothing to
  learn it from (1.2x bicubic; narrow 66 x 17 sources, results vary with the seed).
- x8 on a source of about 32 x 32 pixels: its one crop is the whole source and the son
  4 x 4, so the network memorises one example (up to 1.5x bicubic), and the warp, learned
  on a guide 8x coarser than the output, drifts by 3-4 output pixels on an aligned pair.
mmsr fits the real LR cells instead of a pair one scale down (0.70x bicubic on the same
drone DSM, section 7).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..core.backprojection import back_project
from ..errors import InputError
from ..core.pair import Pair
from ..core.psf import degrade
from ..core.warp import upsample


@dataclass(frozen=True)
class CMSRConfig:
    channels: int = 32         # source branch width (8 layers)
    guide_channels: int = 16   # guide branch width (4 layers)
    steps: int = 600           # optimisation steps
    crop: int = 48             # father side in source pixels (rounded down to a multiple of scale)
    batch: int = 4             # fathers per step
    lr: float = 1e-3
    warp_lr_scale: float = 0.3  # the warp's learning rate relative to the networks'
    warp_grid: int = 4          # the smooth field's control grid (warp_grid x warp_grid)
    warp_penalty: float = 0.01  # weight of the warp's squared departure from a translation (LR px^2)
    self_ensemble: bool = True  # ZSSR's geometric self-ensemble: 8 rotations/flips at inference, median
    backprojection: int = 6     # back-projection iterations on each self-ensemble member


def config_for(**overrides) -> CMSRConfig:
    if "ensemble" in overrides:
        raise InputError("CMSR's 8 rotations/flips at inference are now the option self_ensemble (ZSSR's "
                         "geometric self-ensemble); ensemble=N is the quality layers' ensemble over seeds")
    fields = {f.name for f in dataclasses.fields(CMSRConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise InputError(f"unknown CMSR option(s) {sorted(unknown)}; valid ones are {sorted(fields)} "
                         "plus device, seed and progress")
    cfg = dataclasses.replace(CMSRConfig(), **{k: v for k, v in overrides.items() if v is not None})
    for name in ("channels", "guide_channels", "steps", "crop", "batch", "warp_grid"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "steps" else 1):
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    if not cfg.lr > 0 or not cfg.warp_lr_scale >= 0 or not cfg.warp_penalty >= 0 or cfg.backprojection < 0:
        raise InputError("lr must be > 0, warp_lr_scale >= 0, warp_penalty >= 0 and backprojection >= 0")
    return cfg


def run(pair: Pair, device=None, seed: int = 0, progress=None, **overrides) -> tuple[np.ndarray, dict]:
    """Fit CMSR on ``pair``; returns the HR prediction (float64, source units) and details."""
    import torch
    import torch.nn.functional as F

    from .fit import Schedule, optimise, deterministic_kernels, resolve_device, seeded_init, to_device
    from .nn.cmsr_net import CMSRNet

    cfg = config_for(**overrides)
    dev = resolve_device(device)
    s = pair.scale
    h, w = pair.source.shape
    if min(h, w) < 2 * s:
        raise InputError(f"cmsr needs a source of at least {2 * s} x {2 * s} pixels at scale {s} (it learns from "
                         f"the source one scale down); this one is {h} x {w}. Use method='mmsr'.")
    mean, std = pair.source_statistics
    tensor = partial(to_device, device=dev)

    lr_src = (pair.source_filled - mean) / std
    father_src = tensor(lr_src)[None, None]
    lr_valid = tensor(pair.source_valid)[None, None]
    guide_hr = tensor(pair.guide)[None]
    guide_lr = F.avg_pool2d(guide_hr, s)  # the guide at the father's (the source's) resolution
    crop_h, crop_w = (min(cfg.crop, h) // s) * s, (min(cfg.crop, w) // s) * s
    sons = {}  # phase (y % s, x % s) -> upsampled son of the whole source, made on first use

    def son_crop(y, x):
        phase = (y % s, x % s)
        if phase not in sons:
            sons[phase] = tensor(upsampled_son(lr_src, s, pair.psf, *phase))[None, None]
        return sons[phase][..., y - phase[0]:y - phase[0] + crop_h, x - phase[1]:x - phase[1] + crop_w]

    # A quarter turn would swap the sides of a non-square crop (a source narrower than ``crop``),
    # which then cannot be batched: such crops are only flipped and half-turned.
    turns = 4 if crop_h == crop_w else 2

    net = seeded_init(seed, lambda: CMSRNet(pair.guide.shape[0], cfg.channels, guide_channels=cfg.guide_channels,
                                            warp_grid=cfg.warp_grid)).to(dev)
    with deterministic_kernels(dev):
        gen = torch.Generator().manual_seed(seed)

        def step_loss(epoch):
            warped = net.warp(guide_lr)  # the whole LR guide, so the warp is one map for the scene
            fathers, ups, guides, valids = [], [], [], []
            for _ in range(cfg.batch):
                y = int(torch.randint(0, h - crop_h + 1, (1,), generator=gen))
                x = int(torch.randint(0, w - crop_w + 1, (1,), generator=gen))
                k = int(torch.randint(0, turns, (1,), generator=gen)) * (4 // turns)
                flip = bool(torch.randint(0, 2, (1,), generator=gen))
                win = (slice(None), slice(None), slice(y, y + crop_h), slice(x, x + crop_w))
                fathers.append(_augment(father_src[win], k, flip))
                ups.append(_augment(son_crop(y, x), k, flip))
                guides.append(_augment(warped[win], k, flip))
                valids.append(_augment(lr_valid[win], k, flip))
            father, up, guide, valid = (torch.cat(t) for t in (fathers, ups, guides, valids))
            diff = (net(up, guide) - father).abs()
            loss = (diff * valid).sum() / valid.sum().clamp_min(1)
            # A restoring force on the warp's non-rigid part, which drifts otherwise (module docstring).
            return loss + cfg.warp_penalty * net.warp.nonrigid_displacement(*guide_lr.shape[-2:])

        schedule = Schedule(cfg.steps, cfg.lr, 0.1, max(1, int(0.7 * cfg.steps)))
        history = optimise(net.param_groups(cfg.warp_lr_scale), step_loss, schedule, progress=progress,
                           description="cmsr")
        members = _infer(net, pair, cfg, turns, tensor((pair.bicubic_filled - mean) / std)[None, None], guide_hr)
        dx, dy, largest = net.warp.displacement_pixels(*pair.hr_shape)
    pred = np.median(members, axis=0)
    details = {"config": dataclasses.asdict(cfg), "device": str(dev), "seed": seed, "loss_history": history,
               "warp": {"mean_shift_px": [dx, dy], "largest_displacement_px": largest,
                        "affine": net.warp.affine.detach().cpu().numpy().tolist()}}
    return pred, details


def _infer(net, pair, cfg, turns, up, guide_hr) -> list:
    """The fitted network on the whole (standardised, upsampled) source ``up``, once per rotation and
    flip it was trained on with ``self_ensemble``: the members whose median is the prediction."""
    import torch

    mean, std = pair.source_statistics
    net.eval()
    with torch.no_grad():
        warped = net.warp(guide_hr)
        members = []
        for k in range(0, 4, 4 // turns) if cfg.self_ensemble else (0,):  # the turns it was trained on
            for flip in ((False, True) if cfg.self_ensemble else (False,)):
                out = net(_augment(up, k, flip), _augment(warped, k, flip))
                out = _unaugment(out, k, flip)[0, 0].double().cpu().numpy() * std + mean
                if cfg.backprojection:  # onto valid cells only: nearest-filled values are not data
                    out = back_project(out, pair.source, pair.source_valid, pair.scale, cfg.backprojection,
                                       psf=pair.psf).astype(np.float64)
                members.append(out)
    return members


def upsampled_son(source: np.ndarray, scale: int, psf, py: int = 0, px: int = 0) -> np.ndarray:
    """The source from (py, px) on, seen by the sensor one scale down and upsampled back as inference
    upsamples the real source (:attr:`Pair.bicubic_filled`: GDAL's cubic, a = -0.5, and its border rule).

    A father crop at (y, x), sides multiples of ``scale``, reads its input at (y - py, x - px) of
    phase (y % scale, x % scale): the crop's son upsampled with its real neighbours, as at
    inference, where GDAL's border rule (bilinear within two pixels of the edge) applies only at
    the raster's border. Upsampling each son crop alone would put that border rule on a third
    of a 48-pixel crop. Per phase, the result is the size of the source.
    """
    n_h, n_w = (source.shape[0] - py) // scale, (source.shape[1] - px) // scale
    father = source[py:py + n_h * scale, px:px + n_w * scale]
    return upsample(degrade(father, scale, psf), scale, "cubic")


def _augment(t, k, flip):
    t = t.flip(-1) if flip else t
    return t.rot90(k, (-2, -1))


def _unaugment(t, k, flip):
    t = t.rot90(-k, (-2, -1))
    return t.flip(-1) if flip else t
