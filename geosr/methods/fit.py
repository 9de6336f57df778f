"""The self-supervised optimisation shared by the learned methods: device, seed, schedule, loss.

One "epoch" is one optimisation step over the whole pair, as in the MMSR paper.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import torch

from ..errors import InputError


def resolve_device(device=None) -> torch.device:
    """None picks CUDA when available, else the CPU. A device this machine does not have is an
    :class:`~geosr.errors.InputError` that names the ones it has."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    here = "cpu" + (f", cuda (cuda:0..cuda:{torch.cuda.device_count() - 1})" if torch.cuda.is_available() else "") \
        + (", mps" if torch.backends.mps.is_available() else "")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}; this machine has: {here} (--device, device=; "
                         "leave it out to use CUDA when available, else the CPU)") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(dev.type, False):
        raise InputError(f"device {device!r} was asked for but this machine has no {dev.type.upper()} device "
                         f"torch can use; it has: {here}. Use --device cpu (device='cpu'), or leave it out.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def to_device(array, device: torch.device) -> torch.Tensor:
    """A float32 tensor of ``array`` on ``device``."""
    import numpy as np

    return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(device)


_INIT_LOCK = threading.Lock()
_KERNELS_LOCK = threading.Lock()
_kernel_users = 0
_kernel_flags = None


def seeded_init(seed: int, make):
    """``make()`` (a network, built on the CPU) with torch's generator seeded with ``seed``: the
    same seed gives the same initial weights. torch has one generator per process and a dask
    worker fits several tiles at once on its threads, so seeding and drawing happen under one
    lock; the caller's random state is restored. Training draws only from its own generators."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return make()


@contextlib.contextmanager
def deterministic_kernels(device: torch.device):
    """On CUDA, deterministic cuDNN kernels for the block, so a seed gives one output. The flags
    are process-wide and fits overlap on threads: the first fit in saves the caller's flags, the
    last one out restores them."""
    global _kernel_users, _kernel_flags
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    with _KERNELS_LOCK:
        if _kernel_users == 0:
            _kernel_flags = (cudnn.deterministic, cudnn.benchmark)
            cudnn.deterministic, cudnn.benchmark = True, False
        _kernel_users += 1
    try:
        yield
    finally:
        with _KERNELS_LOCK:
            _kernel_users -= 1
            if _kernel_users == 0:
                cudnn.deterministic, cudnn.benchmark = _kernel_flags


@dataclass(frozen=True)
class Schedule:
    """Adam with a step decay: lr *= decay after every ``decay_every`` epochs (the paper's)."""

    epochs: int
    lr: float
    decay: float
    decay_every: int

    def lr_at(self, epoch: int) -> float:
        return self.lr * self.decay ** ((epoch + 1) // self.decay_every)


def infer(net, guide: torch.Tensor, source: torch.Tensor, device: torch.device, amp: bool) -> torch.Tensor:
    """The network's prediction without gradients. On the CPU in channels-last memory format, which
    oneDNN ran 1.8-2.3x faster for the MMSR network's forward pass, to within float32 rounding
    (benchmarks/RESULTS.md section 19); training stays contiguous, whose backward was slower so."""
    net.eval()
    if device.type == "cpu":
        last = torch.channels_last
        net, guide, source = net.to(memory_format=last), guide.to(memory_format=last), source.to(memory_format=last)
    with torch.no_grad(), autocast(device, amp):
        return net(guide, source)


def masked_cycle_l1(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, scale: int,
                    psf=None) -> torch.Tensor:
    """Mean |degrade(prediction) - target| over valid LR pixels: the cycle-consistency loss.

    ``psf`` (:mod:`geosr.core.psf`) is the sensor model; None is the paper's avg-pool.
    """
    from ..core.psf import AREA, degrade_torch

    diff = (degrade_torch(prediction, scale, psf or AREA) - target).abs()
    return (diff * valid).sum() / valid.sum().clamp_min(1)


def optimise(param_groups, step_loss, schedule: Schedule, progress=None, description: str = "fit",
             unit: str = "epoch", log_lines: bool = False) -> list[float]:
    """Adam over ``schedule``; ``step_loss(epoch)`` returns the loss tensor of one step.

    Returns the loss of every step. A param group's ``lr_scale`` (default 1) multiplies the
    scheduled learning rate for that group. ``progress`` None: a bar on terminals and in
    notebooks, and where ``log_lines`` (one long optimisation, not one of many tiles' fits)
    plain lines in a log (:func:`geosr.runtime.progress.counter`).
    """
    from ..runtime.progress import counter

    opt = torch.optim.Adam(param_groups, lr=schedule.lr)
    history = []
    bar = counter(schedule.epochs, description, unit, disable=None if progress is None else not progress,
                  lines=log_lines, leave=False)
    for epoch in range(schedule.epochs):
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(epoch) * group.get("lr_scale", 1.0)
        opt.zero_grad(set_to_none=True)
        loss = step_loss(epoch)
        loss.backward()
        opt.step()
        history.append(loss.item())
        if epoch % 10 == 0:
            bar.set_postfix(loss=f"{history[-1]:.4f}")
        bar.update(1)
    bar.close()
    return history


def mixed_precision(device: torch.device, amp: bool | None) -> bool:
    """Whether a run uses bfloat16 mixed precision: only on CUDA, and only if asked for.

    Off unless asked for (``amp=True``, ``--amp``): its effect on accuracy has not been
    measured on a GPU yet (benchmarks/RESULTS.md section 6), and a DEM's centimetres sit
    near bfloat16's 3 significant digits.
    """
    return bool(amp) and device.type == "cuda"


def autocast(device: torch.device, enabled: bool | None):
    """bfloat16 autocast where :func:`mixed_precision` says so; a no-op otherwise."""
    if mixed_precision(device, enabled):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
