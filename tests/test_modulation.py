"""Both ways of computing the adaptive filter must equal the published unfold formulation exactly."""
import pytest
import torch

import geosr.methods.nn.modulation as mod
from geosr.methods.nn.modulation import adaptive_filter, adaptive_filter_unfold

# The CPU's banded matmuls (adaptive_filter's way here from 7 x 7 windows) and the offset-by-offset
# sums (the GPU's way, and the CPU's for smaller windows), both run on the CPU.
WAYS = {"banded": lambda q, v, size: mod._BandedFilter.apply(q, v, size, mod._BAND_WIDTH),
        "offset": lambda q, v, size: mod._OffsetFilter.apply(q, v, size)}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("size", [1, 3, 5, 11])
@pytest.mark.parametrize("shape", [(2, 4, 7, 9), (1, 3, 13, 6), (1, 2, 4, 3), (2, 5, 40, 33)])
def test_equals_unfold_in_values_and_gradients(way, size, shape):
    g = torch.Generator().manual_seed(size * 100 + shape[-1])
    q = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(shape, generator=g, dtype=torch.float64)

    ref = adaptive_filter_unfold(q, v, size)
    out = WAYS[way](q, v, size)
    ref_grads = torch.autograd.grad(ref, (q, v), upstream)
    grads = torch.autograd.grad(out, (q, v), upstream)

    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_borders_take_zero_padded_neighbours():
    # At a corner of a 1x1 image with a 3x3 window, 8 of 9 neighbours are zero padding:
    # logits are (0 x8, q*v), so the output is v * e^(qv) / (8 + e^(qv)).
    q = torch.tensor([[[[2.0]]]], dtype=torch.float64)
    v = torch.tensor([[[[1.5]]]], dtype=torch.float64)
    e = torch.exp(torch.tensor(3.0, dtype=torch.float64))
    assert adaptive_filter(q, v, 3).item() == pytest.approx((1.5 * e / (8 + e)).item(), rel=1e-12)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 3, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 3, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: adaptive_filter(a, b, 5), (q, v))


def test_float32_matches_unfold():
    g = torch.Generator().manual_seed(1)
    q, v = torch.randn(2, 1, 64, 30, 31, generator=g).unbind(0)
    torch.testing.assert_close(adaptive_filter(q, v, 11), adaptive_filter_unfold(q, v, 11), rtol=1e-5, atol=1e-5)


def test_rejects_even_window_and_mismatched_shapes():
    q = torch.zeros(1, 2, 5, 5)
    with pytest.raises(ValueError, match="odd"):
        adaptive_filter(q, q, 4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        adaptive_filter(q, torch.zeros(1, 2, 5, 4), 3)


@pytest.mark.parametrize("budget", [1, 40, 200])
def test_strips_give_the_same_values_and_gradients(monkeypatch, budget):
    # Large images are processed in strips of rows; force several (down to one row) on a small one.
    monkeypatch.setattr(mod, "_CPU_STRIP_ELEMENTS", budget)
    g = torch.Generator().manual_seed(budget)
    q = torch.randn(1, 4, 23, 9, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 4, 23, 9, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(1, 4, 23, 9, generator=g, dtype=torch.float64)
    assert mod._strip_rows(q) < 23
    for size in (3, 11):
        out = WAYS["offset"](q, v, size)
        ref = adaptive_filter_unfold(q, v, size)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        for a, b in zip(torch.autograd.grad(out, (q, v), upstream), torch.autograd.grad(ref, (q, v), upstream)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("budget", [1, 10**6])
@pytest.mark.parametrize("block", [1, 3, 4, 16])
def test_banded_strips_and_blocks_give_the_same_values_and_gradients(monkeypatch, budget, block):
    # Strips of one row or several, blocks narrower than the window (their windows' gradients fold
    # back over several blocks) and wider than the image, on a batch of two.
    g = torch.Generator().manual_seed(block)
    q, v, upstream = torch.randn(3, 2, 4, 13, 10, generator=g, dtype=torch.float64).unbind(0)
    q.requires_grad_(), v.requires_grad_()
    monkeypatch.setattr(mod, "_BAND_STRIP_ELEMENTS", budget)
    for size in (3, 7):
        assert (mod._banded_rows(4, 10, size, block) < 13) == (budget == 1)
        out = mod._BandedFilter.apply(q, v, size, block)
        grads = torch.autograd.grad(out, (q, v), upstream)
        ref = adaptive_filter_unfold(q, v, size)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        for a, b in zip(grads, torch.autograd.grad(ref, (q, v), upstream)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_mutual_modulation_is_wired_as_published():
    # Source-to-guide filters the source features over n x n, weighted by the guide pixel;
    # guide-to-source filters the guide features over m x m, weighted by the source pixel.
    from geosr.methods.nn.mmsr_net import MutualModulation

    torch.manual_seed(0)
    mod = MutualModulation(channels=6, source_neighbourhood=7, guide_neighbourhood=3).double()
    fg = torch.randn(1, 6, 12, 10, dtype=torch.float64)
    fs = torch.randn(1, 6, 12, 10, dtype=torch.float64)
    g, s = mod.project_guide(fg), mod.project_source(fs)
    s2g = adaptive_filter_unfold(query=g, values=s, size=7)
    g2s = adaptive_filter_unfold(query=s, values=g, size=3)
    expected = mod.fuse(torch.cat([s2g, g2s], 1))
    torch.testing.assert_close(mod(fg, fs), expected, rtol=0, atol=1e-12)
