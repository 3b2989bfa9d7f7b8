"""The `tiny` REPA target: a randomly initialised, frozen patch encoder for tests and the tiny training
presets (it stands in for DINOv2 where no weights should be read)."""

from __future__ import annotations

import torch
from torch import nn

from genbench.pixels import to_unit_range


class TinyEncoder(nn.Module):
    """A stride-s conv and LayerNorm giving `grid x grid` tokens of width z_dim (choose grid = the SiT's
    token grid): forward(uint8 [N, 3, H, W] or float in [0, 1]) -> [N, grid^2, z_dim]."""

    def __init__(self, resolution: int, grid: int, z_dim: int = 16, seed: int = 0):
        super().__init__()
        if resolution % grid:
            raise ValueError(f"resolution {resolution} is not a multiple of the token grid {grid}")
        self.name, self.z_dim = "tiny", z_dim
        generator = torch.Generator().manual_seed(seed)
        stride = resolution // grid
        self.proj = nn.Conv2d(3, z_dim, stride, stride=stride)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=generator) / stride)
            self.proj.bias.zero_()
        self.norm = nn.LayerNorm(z_dim, elementwise_affine=False)
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(to_unit_range(images) * 2 - 1).flatten(2).transpose(1, 2))
