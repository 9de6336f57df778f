"""The CMSR network (Shacht et al., CVPR 2021) and its learnable warp of the guide.

Two plain CNNs whose outputs are summed onto the upsampled source (a global residual):
the source branch refines the upsampled source, the guide branch adds detail from the
guide. The guide is first warped by a learnable affine map followed by a smooth
displacement field (a coarse grid of displacements, interpolated bicubically), so a
guide that is only roughly aligned can be moved onto the source during training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _plain_cnn(c_in: int, channels: int, layers: int, last_kernel: int = 3) -> nn.Sequential:
    mods: list[nn.Module] = []
    c = c_in
    for _ in range(layers - 1):
        mods += [nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(inplace=True)]
        c = channels
    mods.append(nn.Conv2d(c, 1, last_kernel, padding=last_kernel // 2))
    return nn.Sequential(*mods)


class GuideWarp(nn.Module):
    """Affine, then a smooth displacement field, in normalised coordinates ([-1, 1], align_corners=False).

    Normalised coordinates are the same at every resolution of a pixel-area aligned grid,
    so a warp learned on the guide at the source's resolution applies unchanged to the
    full-resolution guide.
    """

    def __init__(self, grid: int = 4):
        super().__init__()
        self.affine = nn.Parameter(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        self.field = nn.Parameter(torch.zeros(1, 2, grid, grid))

    def sampling_grid(self, shape) -> torch.Tensor:
        n, _, h, w = shape
        base = F.affine_grid(self.affine[None].expand(n, 2, 3), (n, 1, h, w), align_corners=False)
        dense = F.interpolate(self.field, size=(h, w), mode="bicubic", align_corners=True)
        return base + dense.permute(0, 2, 3, 1)

    def forward(self, guide: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(guide, self.sampling_grid(guide.shape), mode="bilinear", padding_mode="border",
                             align_corners=False)

    def displacement(self, h: int, w: int) -> torch.Tensor:
        """(h, w, 2) in pixels of an (h, w) grid: where the guide is sampled minus where the pixel is, i.e.
        how far the guide's content was found displaced (geosr.core.align's convention)."""
        g = self.sampling_grid((1, 1, h, w))[0]
        ident = F.affine_grid(torch.eye(2, 3, device=g.device)[None], (1, 1, h, w), align_corners=False)[0]
        return (g - ident) * torch.tensor([w / 2, h / 2], device=g.device)

    def nonrigid_displacement(self, h: int, w: int) -> torch.Tensor:
        """Mean squared departure of the warp from a translation, in pixels of an (h, w) grid (differentiable)."""
        d = self.displacement(h, w)
        d = d - d.mean((0, 1))
        return (d * d).sum(-1).mean()

    def displacement_pixels(self, h: int, w: int) -> tuple[float, float, float]:
        """(mean dx, mean dy, largest |d|) of :meth:`displacement`."""
        with torch.no_grad():
            d = self.displacement(h, w)
            return float(d[..., 0].mean()), float(d[..., 1].mean()), float(d.norm(dim=-1).max())


class CMSRNet(nn.Module):
    """out = up + source_cnn(up) + guide_cnn(warp(guide)); ``up`` is the upsampled source."""

    def __init__(self, guide_bands: int, channels: int = 32, source_layers: int = 8, guide_channels: int = 16,
                 guide_layers: int = 4, warp_grid: int = 4):
        super().__init__()
        self.source_branch = _plain_cnn(1, channels, source_layers)
        self.guide_branch = _plain_cnn(guide_bands, guide_channels, guide_layers, last_kernel=1)
        self.warp = GuideWarp(warp_grid)

    def forward(self, up: torch.Tensor, warped_guide: torch.Tensor) -> torch.Tensor:
        return up + self.source_branch(up) + self.guide_branch(warped_guide)

    def param_groups(self, warp_lr_scale: float):
        """The warp learns at its own rate relative to the networks."""
        rest = [p for n, p in self.named_parameters() if not n.startswith("warp.")]
        return [{"params": rest}, {"params": list(self.warp.parameters()), "lr_scale": warp_lr_scale}]
