"""The cross-domain adaptive filter at the heart of MMSR's mutual modulation.

For every pixel p the filter replaces ``values(p)`` by a softmax-weighted sum of
``values`` over a ``size x size`` neighbourhood, the weights being the dot products
between ``query(p)`` (the other modality's features) and each neighbour:

    a_o(p) = softmax_o(<query(p), values(p + o)>)
    out(p) = sum_o a_o(p) * values(p + o)

Neighbours outside the image are zeros, as in the published code (its ``F.unfold``
zero-pads), so they still take softmax mass with logit 0.

The published code unfolds ``values`` into a C x size^2 x H x W tensor (12 GB forward
and backward at C=64, 320x320, size 11). Here the same result is computed in strips of
rows that fit in cache, inside custom autograd Functions whose backward recomputes what
it needs, so memory is O(size^2 H W + C H W). Two ways, the same numbers:

- on the CPU from 7 x 7 windows, by batched matrix products (:class:`_BandedFilter`): a row of ``bw`` pixels
  against the ``bw + size - 1`` values its windows cover is one small matmul per window
  row, whose band holds the logits; the weights, laid on a band, multiply the same values
  for the weighted sums.
  The band wastes ``(bw + size - 1) / size`` of the products, but matmuls run at the
  CPU's arithmetic speed where the per-offset sums are bound by memory;
- on GPUs, and for smaller windows, one offset at a time (:class:`_OffsetFilter`):
  on a GPU over the whole image, a few hundred large elementwise kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Offset by offset: elements (C * rows * W) per strip. One strip covers the whole image on
# GPUs, to keep the number of kernel launches small; on the CPU about 2 MB of float32.
_CPU_STRIP_ELEMENTS = 2**19
_GPU_STRIP_ELEMENTS = 2**26
# Banded: pixels a matmul row, and elements of a strip's windows, (rows + size - 1) x W/bw x
# (bw + size - 1) x C, which measured fastest on the CPU (benchmarks/modulation.py). At 3 x 3
# windows the band's waste outweighs the matmuls' speed. At 5 x 5 (the default presets') the band
# was 1.5x faster, but a run's bands differed from their single-band runs in the last bits once in
# three test-suite runs, which the offset-by-offset sums never did (RESULTS section 20), so the
# banded filter is kept to wider windows until that is understood.
_BAND_WIDTH = 16
_BAND_STRIP_ELEMENTS = 2**20
_BAND_MIN_SIZE = 7


def _strip_rows(t: torch.Tensor) -> int:
    _, c, h, w = t.shape
    budget = _GPU_STRIP_ELEMENTS if t.is_cuda else _CPU_STRIP_ELEMENTS
    return max(1, min(h, budget // max(1, c * w)))


def _offsets(size: int):
    return [divmod(o, size) for o in range(size * size)]


class _OffsetFilter(torch.autograd.Function):
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


def _channels_last(t: torch.Tensor, width: int, pad: int = 0) -> torch.Tensor:
    """(B, C, H, W) -> (B, H + 2 pad, width + 2 pad, C), zeros around and right of W."""
    return F.pad(t, (pad, width - t.shape[-1] + pad, pad, pad)).permute(0, 2, 3, 1).contiguous()


def _windows(padded: torch.Tensor, y0: int, y1: int, size: int, bw: int) -> torch.Tensor:
    """The values under rows y0:y1's windows, (rows + size - 1, W/bw, bw + size - 1, C): the
    overlapping runs of columns that each block of ``bw`` pixels reads, copied together."""
    rows = padded[y0:y1 + size - 1]
    c = rows.shape[-1]
    blocks = (rows.shape[1] - size + 1) // bw
    return rows.as_strided((rows.shape[0], blocks, bw + size - 1, c), (rows.stride(0), bw * c, c, 1)).contiguous()


def _band(m: torch.Tensor, bw: int, size: int, transposed: bool, offset: int = 0) -> torch.Tensor:
    """A view (n, bw, size) of the band of the matrices ``m`` (n, rows, L): element (i, o) is
    ``m[:, i + o, offset + i]`` if ``transposed`` else ``m[:, i, offset + i + o]``."""
    step = m.shape[2]
    return m.as_strided((m.shape[0], bw, size), (m.stride(0), step + 1, step if transposed else 1),
                        m.storage_offset() + offset)


def _banded_rows(c: int, w: int, size: int, bw: int) -> int:
    """Rows in a strip, so that its windows hold about ``_BAND_STRIP_ELEMENTS`` elements."""
    return max(1, _BAND_STRIP_ELEMENTS // (-(-w // bw) * (bw + size - 1) * c))


def _correlate(win: torch.Tensor, x: torch.Tensor, size: int, bw: int, out: torch.Tensor) -> None:
    """Into ``out`` (rows, W, size, size): each pixel's dot products of ``x`` (rows, W, C) with the
    values under its window, as the transposed band of (windows x ``x``), one window row at a time."""
    m, wp, c = x.shape
    n, span = m * wp // bw, bw + size - 1
    xt = x.reshape(n, bw, c).transpose(1, 2).contiguous()
    prod = x.new_empty(n, span, bw)
    for dy in range(size):
        torch.bmm(win[dy:dy + m].view(n, span, c), xt, out=prod)
        out[:, :, dy].view(n, bw, size).copy_(_band(prod, bw, size, transposed=True))


def _weighted_sum(win: torch.Tensor, weights: torch.Tensor, size: int, bw: int, out: torch.Tensor) -> None:
    """Adds to ``out`` (rows, W, C) each pixel's sum of the values under its window, weighted by
    ``weights`` (rows, W, size, size): (weights laid on a band) x windows, one window row at a time."""
    m, wp, c = out.shape
    n, span = m * wp // bw, bw + size - 1
    spread = out.new_zeros(n, bw, span)
    on_band = _band(spread, bw, size, transposed=False)
    blocks = out.view(n, bw, c)
    for dy in range(size):
        on_band.copy_(weights[:, :, dy].reshape(n, bw, size))
        blocks.baddbmm_(spread, win[dy:dy + m].view(n, span, c))


class _BandedFilter(torch.autograd.Function):
    # Works in (B, H, W, C) with W padded to whole blocks; a strip's blocks are the batch of
    # its matmuls, n = rows x W/bw of them, one matmul per window row dy.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, query, values, size, bw):
        b, c, h, w = values.shape
        wp = -(-w // bw) * bw
        q = _channels_last(query, wp)
        padded = _channels_last(values, wp, size // 2)
        weights = q.new_empty(b, h, wp, size, size)
        out = q.new_zeros(b, h, wp, c)
        rows = _banded_rows(c, w, size, bw)
        for i in range(b):
            for y0 in range(0, h, rows):
                y1 = min(h, y0 + rows)
                win = _windows(padded[i], y0, y1, size, bw)
                a = weights[i, y0:y1]
                _correlate(win, q[i, y0:y1], size, bw, out=a)
                flat = a.view(y1 - y0, wp, size * size)
                flat.copy_(torch.softmax(flat, -1))
                _weighted_sum(win, a, size, bw, out=out[i, y0:y1])
        ctx.save_for_backward(q, padded, weights)
        ctx.shape = (size, bw, w)
        return out[:, :, :w].permute(0, 3, 1, 2)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out):
        q, padded, weights = ctx.saved_tensors
        size, bw, w = ctx.shape
        b, h, wp, c = q.shape
        r, span = size // 2, bw + size - 1
        g = _channels_last(grad_out, wp)
        grad_q = torch.zeros_like(q)
        # bw spare columns on the right, so the windows' last columns fold back with one view.
        grad_padded = q.new_zeros(b, h + 2 * r, wp + 2 * r + bw, c)
        rows = _banded_rows(c, w, size, bw)
        for i in range(b):
            for y0 in range(0, h, rows):
                y1 = min(h, y0 + rows)
                m, n = y1 - y0, (y1 - y0) * wp // bw
                win = _windows(padded[i], y0, y1, size, bw)
                a = weights[i, y0:y1]
                # d loss / d weights (as the logits, with the upstream gradient for the query),
                # then through the softmax to the logits.
                dl = q.new_empty(m, wp, size, size)
                _correlate(win, g[i, y0:y1], size, bw, out=dl)
                af, dlf = a.reshape(m, wp, size * size), dl.view(m, wp, size * size)
                dlf.sub_((af * dlf).sum(-1, keepdim=True)).mul_(af)
                # The query's gradient: the values weighted by dl. The windows' gradient:
                # (weights | dl on transposed bands) x (upstream | query), then folded back.
                _weighted_sum(win, dl, size, bw, out=grad_q[i, y0:y1])
                both = q.new_zeros(n, span, 2 * bw)
                a_back = _band(both, bw, size, transposed=True)
                dl_back = _band(both, bw, size, transposed=True, offset=bw)
                upstream_and_query = torch.cat([g[i, y0:y1].reshape(n, bw, c), q[i, y0:y1].reshape(n, bw, c)], 1)
                grad_win = q.new_zeros(m + size - 1, wp // bw, span, c)
                for dy in range(size):
                    a_back.copy_(a[:, :, dy].reshape(n, bw, size))
                    dl_back.copy_(dl[:, :, dy].reshape(n, bw, size))
                    grad_win[dy:dy + m].view(n, span, c).baddbmm_(both, upstream_and_query)
                gp = grad_padded[i, y0:y1 + size - 1]
                for c0 in range(0, span, bw):
                    c1 = min(span, c0 + bw)
                    gp[:, c0:c0 + wp].view(m + size - 1, wp // bw, bw, c)[:, :, :c1 - c0] += grad_win[:, :, c0:c1]
        return (grad_q[:, :, :w].permute(0, 3, 1, 2), grad_padded[:, r:r + h, r:r + w].permute(0, 3, 1, 2),
                None, None)


def adaptive_filter(query: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """Filter ``values`` (B, C, H, W) with per-pixel kernels steered by ``query`` (same shape)."""
    _check(query, values, size)
    if query.is_cuda or size < _BAND_MIN_SIZE:
        return _OffsetFilter.apply(query, values, size)
    return _BandedFilter.apply(query, values, size, _BAND_WIDTH)


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
