"""A run's time, estimated before it starts from a few timed steps of its own networks on this machine.

What an MMSR fit costs depends on the network and the tensors' sizes, not on their values, so a
few optimisation steps and one forward pass on random inputs of a tile's size (and of the scene
training's batch) time this machine, this device and these settings. The estimate multiplies
them by the run's epochs, steps and tiles; reading, warping, blending and writing are left out.
"""
from __future__ import annotations

import time

TIMED_STEPS = 3


def seconds(spec, guide_bands: int, tile_pixels: list[int]) -> tuple[float, str] | None:
    """(seconds, how) for a planned MMSR ``spec`` over tiles of ``tile_pixels`` HR pixels each (halo
    included), or None for another method. Fits run one at a time, as on the threaded scheduler."""
    if spec.method != "mmsr":
        return None
    from ..methods import scene as scene_
    from ..methods.mmsr import config_for

    side = int(max(tile_pixels) ** 0.5)
    area = sum(tile_pixels) / side**2  # the tiles in units of a full tile
    device = spec.options.get("device")
    total, parts = 0.0, []
    if spec.mode in ("scene", "hybrid"):
        train = spec.train_options()
        model = spec.scene_model
        cfg = scene_.network_config(train.get("preset"), train.get("epochs"))
        if model is not None and hasattr(model, "config"):
            cfg = config_for(None, **{k: model.config[k] for k in ("channels", "source_neighbourhood",
                                                                   "guide_neighbourhood")})
        if model is None:
            batch = spec.batch_size or scene_.BATCH
            step = _step_seconds(cfg, guide_bands, scene_.WINDOW, batch, spec.scale, device)
            total += step * cfg.epochs
            parts.append(f"{cfg.epochs} training steps x {step:.3g} s")
        tile_cfg = cfg
        if spec.mode == "hybrid":
            epochs = spec.tile_options()["epochs"]
            step = _step_seconds(cfg, guide_bands, side, 1, spec.scale, device)
            total += step * epochs * area
            parts.append(f"{epochs} epochs x {step:.3g} s on each of {len(tile_pixels)} tiles")
    else:
        tile_cfg = config_for(spec.options.get("preset"), epochs=spec.options.get("epochs"))
        step = _step_seconds(tile_cfg, guide_bands, side, 1, spec.scale, device)
        total += step * tile_cfg.epochs * area
        parts.append(f"{tile_cfg.epochs} epochs x {step:.3g} s on each of {len(tile_pixels)} tiles")
    forward = _forward_seconds(tile_cfg, guide_bands, side, spec.scale, device)
    total += forward * area
    parts.append(f"a forward pass of {forward:.3g} s a tile")
    return total, " + ".join(parts) + f" (timed on {TIMED_STEPS} steps of random inputs of the same sizes)"


def _network(cfg, guide_bands, device):
    from ..methods.fit import resolve_device
    from ..methods.nn.mmsr_net import MMSRNet

    dev = resolve_device(device)
    return MMSRNet(guide_bands, cfg.channels, cfg.source_neighbourhood, cfg.guide_neighbourhood).to(dev), dev


def _inputs(guide_bands, side, batch, scale, dev):
    import torch

    lr = max(1, side // scale)
    g = torch.randn(batch, guide_bands, lr * scale, lr * scale, device=dev)
    return g, torch.randn(batch, 1, lr, lr, device=dev)


def _step_seconds(cfg, guide_bands, side, batch, scale, device) -> float:
    """Seconds of one optimisation step (forward, cycle loss, backward, Adam) at this size."""
    import torch

    from ..methods.fit import masked_cycle_l1

    net, dev = _network(cfg, guide_bands, device)
    g, s = _inputs(guide_bands, side, batch, scale, dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    def step():
        opt.zero_grad(set_to_none=True)
        masked_cycle_l1(net(g, s), s, torch.ones_like(s), scale).backward()
        opt.step()

    return _timed(step, dev)


def _forward_seconds(cfg, guide_bands, side, scale, device) -> float:
    from ..methods.fit import infer

    net, dev = _network(cfg, guide_bands, device)
    g, s = _inputs(guide_bands, side, 1, scale, dev)
    return _timed(lambda: infer(net, g, s, dev, False), dev)


def _timed(call, dev) -> float:
    """Mean seconds of :data:`TIMED_STEPS` calls after one warm-up call (kernel choice, allocation)."""
    import torch

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    call()
    sync()
    t = time.perf_counter()
    for _ in range(TIMED_STEPS):
        call()
    sync()
    return (time.perf_counter() - t) / TIMED_STEPS
