"""The cross-domain adaptive filter at the heart of MMSR's mutual modulation.

For every pixel p the filter replaces ``values(p)`` by a softmax-weighted sum of
``values`` over a ``size x size`` neighbourhood, the weights being the dot products
between ``query(p)`` (the other modality's features) and each neighbour:

    a_o(p) = softmax_o(<query(p), values(p + o)>)
    out(p) = sum_o a_o(p) * values(p + o)

Neighbours outside the image are zeros, as in the published code (its ``F.unfold``
zero-pads), so they still take softmax mass with logit 0.

The published code unfolds ``values`` into a C x size^2 x H x W tensor (12 GB forward
and backward at C=64, 320x320, size 11). Here the same result is accumulated one
offset at a time, in strips of rows that fit in cache, inside a custom autograd
Function whose backward recomputes what it needs. Memory is O(size^2 H W + C H W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Elements (C * rows * W) per strip: about 2 MB of float32, which measured fastest on
# CPU (benchmarks/modulation.py). On GPUs one strip covers the whole image to keep the
# number of kernel launches small.
_CPU_STRIP_ELEMENTS = 2**19
_GPU_STRIP_ELEMENTS = 2**26


def _strip_rows(t: torch.Tensor) -> int:
    _, c, h, w = t.shape
    budget = _GPU_STRIP_ELEMENTS if t.is_cuda else _CPU_STRIP_ELEMENTS
    return max(1, min(h, budget // max(1, c * w)))


def _offsets(size: int):
    return [divmod(o, size) for o in range(size * size)]


class _AdaptiveFilter(torch.autograd.Function):
    # Under mixed precision the filter still runs in float32: its softmax over k^2 logits
    # and its long sums lose too much in bfloat16; the convolutions around it need not.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, query, values, size):
        _, _, h, w = values.shape
        r = size // 2
        padded = F.pad(values, (r, r, r, r))
        weights = query.new_empty(query.shape[0], size * size, h, w)
        out = torch.zeros_like(values)
        rows = _strip_rows(values)
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            q, a, o_ = query[:, :, y0:y1], weights[:, :, y0:y1], out[:, :, y0:y1]
            for o, (dy, dx) in enumerate(_offsets(size)):
                torch.sum(q * padded[:, :, y0 + dy:y1 + dy, dx:dx + w], 1, out=a[:, o])
            a.copy_(torch.softmax(a, 1))
            for o, (dy, dx) in enumerate(_offsets(size)):
                o_.addcmul_(padded[:, :, y0 + dy:y1 + dy, dx:dx + w], a[:, o:o + 1])
        ctx.save_for_backward(query, padded, weights)
        ctx.size = size
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        query, padded, weights = ctx.saved_tensors
        size = ctx.size
        _, _, h, w = query.shape
        r = size // 2
        grad_out = grad_out.contiguous()
        grad_query = torch.zeros_like(query)
        grad_padded = torch.zeros_like(padded)
        rows = _strip_rows(query)
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            g, q, a = grad_out[:, :, y0:y1], query[:, :, y0:y1], weights[:, :, y0:y1]
            # d loss / d weights, then through the softmax to the logits.
            dl = torch.empty_like(a)
            for o, (dy, dx) in enumerate(_offsets(size)):
                torch.sum(g * padded[:, :, y0 + dy:y1 + dy, dx:dx + w], 1, out=dl[:, o])
            dl.sub_((a * dl).sum(1, keepdim=True)).mul_(a)
            gq = grad_query[:, :, y0:y1]
            for o, (dy, dx) in enumerate(_offsets(size)):
                gq.addcmul_(padded[:, :, y0 + dy:y1 + dy, dx:dx + w], dl[:, o:o + 1])
                gv = grad_padded[:, :, y0 + dy:y1 + dy, dx:dx + w]
                gv.addcmul_(g, a[:, o:o + 1])
                gv.addcmul_(q, dl[:, o:o + 1])
        return grad_query, grad_padded[:, :, r:r + h, r:r + w], None


def adaptive_filter(query: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """Filter ``values`` (B, C, H, W) with per-pixel kernels steered by ``query`` (same shape)."""
    _check(query, values, size)
    return _AdaptiveFilter.apply(query, values, size)


def adaptive_filter_unfold(query: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """The published formulation (C x size^2 x H x W unfold): the reference for tests and benchmarks."""
    _check(query, values, size)
    b, c, h, w = values.shape
    unfolded = F.unfold(values, size, padding=size // 2).view(b, c, size * size, h, w)
    weights = (unfolded * query.unsqueeze(2)).sum(1).softmax(1)
    return (unfolded * weights.unsqueeze(1)).sum(2)


def _check(query, values, size):
    if query.shape != values.shape or query.dim() != 4:
        raise ValueError(f"query and values must both be (B, C, H, W); got {tuple(query.shape)} and {tuple(values.shape)}")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"neighbourhood size must be a positive odd integer, got {size}")
