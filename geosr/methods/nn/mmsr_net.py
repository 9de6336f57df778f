"""The MMSR network (Dong et al., ECCV 2022): two branches, mutual modulation, prediction head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .modulation import adaptive_filter


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


class ResBlock(nn.Sequential):
    """conv-ReLU-conv with an identity shortcut."""

    def __init__(self, channels: int, kernel: int):
        super().__init__(_conv(channels, channels, kernel), nn.ReLU(inplace=True), _conv(channels, channels, kernel))

    def forward(self, x):
        return x + super().forward(x)


# Convolutions in a branch: two, then two residual blocks of two.
_BRANCH_CONVS = 6


def reach(source_neighbourhood: int, guide_neighbourhood: int) -> int:
    """How many HR pixels from an output pixel the network reads its inputs, hence how far the
    zero padding at an image's edge reaches in.

    Source-to-guide filters source features (1x1 convolutions of the upsampled source) over the
    n-window, steered by guide features at the pixel; guide-to-source filters guide features
    (six 3x3 convolutions deep) over the m-window; the head is 1x1.
    """
    return max(source_neighbourhood // 2, _BRANCH_CONVS + guide_neighbourhood // 2)


def _branch(c_in: int, channels: int, kernel: int) -> nn.Sequential:
    """Two convolutions then two residual blocks (:data:`_BRANCH_CONVS` in all), as in both MMSR branches."""
    return nn.Sequential(
        _conv(c_in, channels, kernel), nn.ReLU(inplace=True),
        _conv(channels, channels, kernel), nn.ReLU(inplace=True),
        ResBlock(channels, kernel), ResBlock(channels, kernel),
    )


class MutualModulation(nn.Module):
    """Source-to-guide and guide-to-source adaptive filtering, then a 1x1 fusion."""

    def __init__(self, channels: int, source_neighbourhood: int, guide_neighbourhood: int):
        super().__init__()
        self.project_guide = _conv(channels, channels, 1)
        self.project_source = _conv(channels, channels, 1)
        self.fuse = _conv(2 * channels, channels, 1)
        self.source_neighbourhood = source_neighbourhood
        self.guide_neighbourhood = guide_neighbourhood

    def forward(self, f_guide, f_source):
        g = self.project_guide(f_guide)
        s = self.project_source(f_source)
        # Source-to-guide: source features re-weighted by their agreement with the guide pixel.
        s2g = adaptive_filter(query=g, values=s, size=self.source_neighbourhood)
        # Guide-to-source: guide features re-weighted by their agreement with the source pixel.
        g2s = adaptive_filter(query=s, values=g, size=self.guide_neighbourhood)
        return self.fuse(torch.cat([s2g, g2s], 1))


class MMSRNet(nn.Module):
    """Predicts the standardised HR source from the standardised guide and LR source."""

    def __init__(self, guide_bands: int, channels: int = 64, source_neighbourhood: int = 11,
                 guide_neighbourhood: int = 5, gradient_checkpointing: bool = False):
        super().__init__()
        self.guide_branch = _branch(guide_bands, channels, 3)
        self.source_branch = _branch(1, channels, 1)
        self.modulation = MutualModulation(channels, source_neighbourhood, guide_neighbourhood)
        self.head = nn.Sequential(ResBlock(channels, 1), ResBlock(channels, 1), ResBlock(channels, 1),
                                  _conv(channels, 1, 1))
        # Recompute activations in backward instead of storing them: for large tiles.
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(source, size=guide.shape[-2:], mode="bilinear", align_corners=False)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            fg = checkpoint(self.guide_branch, guide, use_reentrant=False)
            fs = checkpoint(self.source_branch, up, use_reentrant=False)
            fused = checkpoint(self.modulation, fg, fs, use_reentrant=False)
            return checkpoint(self.head, fused, use_reentrant=False)
        return self.head(self.modulation(self.guide_branch(guide), self.source_branch(up)))

    def param_groups(self, guide_weight_decay: float):
        """Adam groups: weight decay on the guide branch only, as in the paper."""
        rest = [p for n, p in self.named_parameters() if not n.startswith("guide_branch.")]
        return [{"params": list(self.guide_branch.parameters()), "weight_decay": guide_weight_decay},
                {"params": rest, "weight_decay": 0.0}]
