"""The shapes world's perceptual distance: LPIPS's recipe on a second network of the world.

LPIPS compares unit-normalised activations of a fixed classifier (VGG on ImageNet) layer by layer. In the
shapes world the evaluation network (`genbench.extractors.shapes_features`, weights
shapes_features.safetensors) must not be the one a tokenizer or REPA-E's VAE is trained against, or the
metrics it gives would reward fitting that one network. This module uses a second ShapesNet
(`shapes_perceptual.safetensors`): other widths (16, 32, 64, 128 instead of 24, 48, 96, 192), another seed and
another training stream (`scripts/train_shapes_features.py --seed 7 --widths 16,32,64,128`). As LPIPS without
its learned linear heads (the "baseline" variant): d(x, y) = sum_l mean_hw || n(f_l(x)) - n(f_l(y)) ||^2 over
the ReLU outputs of the four stages, n = unit norm over channels.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genbench.extractors.shapes_features import ShapesNet, load_shapes_net
from genbench.weights import verify_sha256

PERCEPTUAL_PATH = Path(__file__).resolve().parent / "weights" / "shapes_perceptual.safetensors"
PERCEPTUAL_SHA256 = "0c930ea2321801ba02ef2108c156655b55c864b2e5ec9b20dce8001aec664068"


class ShapesPerceptual(nn.Module):
    """forward(x, y) with images in [-1, 1], [N, 3, 32, 32] -> per-image distance [N] (differentiable)."""

    def __init__(self, net: ShapesNet):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> ShapesPerceptual:
        return super().train(False)  # BatchNorm stays on its running statistics

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        h0 = F.relu(net.stem(x))
        h1 = F.relu(net.stage1(h0))
        h2 = F.relu(net.stage2(h1))
        h3 = F.relu(net.stage3(h2))
        return [h0, h1, h2, h3]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        distance = x.new_zeros(x.shape[0])
        for fx, fy in zip(self.taps(x.float()), self.taps(y.float()), strict=True):
            diff = F.normalize(fx, dim=1, eps=1e-10) - F.normalize(fy, dim=1, eps=1e-10)
            distance = distance + diff.pow(2).sum(dim=1).mean(dim=(1, 2))
        return distance


def load_shapes_perceptual(path: str | Path | None = None) -> ShapesPerceptual:
    """The shipped second network (SHA-256 checked) or a given ShapesNet file."""
    path = Path(path) if path is not None else PERCEPTUAL_PATH
    verify_sha256(path, PERCEPTUAL_SHA256 if path == PERCEPTUAL_PATH else None)
    return ShapesPerceptual(load_shapes_net(path))
