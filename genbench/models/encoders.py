"""Representation encoders that give REPA its target tokens.

Interface: an `nn.Module` with `name`, `z_dim` and `forward(images) -> tokens [N, T, z_dim]`, where images are
uint8 [N, 3, H, W] (or float in [0, 1]); the token grid T must equal the SiT's. Encoders are frozen and run
under no_grad by the recipes. `ENCODERS` maps a name to a builder `(resolution, weights) -> encoder`;
`register_encoder` lets other code (e.g. a miniature world's CNN) add its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genbench.errors import GenbenchError
from genbench.pixels import to_unit_range

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINOV2_B14_SOURCE = "https://huggingface.co/facebook/dinov2-base"


class Dinov2Encoder(nn.Module):
    """DINOv2 (transformers `Dinov2Model`), final-LayerNorm patch tokens without CLS, as REPA's
    `forward_features(x)['x_norm_patchtokens']`. Preprocessing as REPA's train.py: x/255, ImageNet
    normalisation, THEN bicubic resize to 224 * resolution / 256 (16 x 16 tokens at 256).

    transformers interpolates the position table per call; REPA resamples it once to 16 x 16 in torch.hub's
    model. Both are bicubic, but tokens can differ slightly from the hub model's.
    """

    def __init__(self, model: nn.Module, resolution: int, name: str = "dinov2-vit-b"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.z_dim = model.config.hidden_size
        self.input_size = 224 * resolution // 256
        if self.input_size < model.config.patch_size:
            raise GenbenchError(f"resolution {resolution}: too small for DINOv2 (needs >= 256 / 224 * 14)")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = (to_unit_range(images) - self.mean) / self.std
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bicubic", align_corners=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=self.preprocess(images)).last_hidden_state  # [N, 1 + T, D], post-LN
        return hidden[:, 1:]


def build_dinov2(resolution: int, weights: str | Path | None = None) -> Dinov2Encoder:
    """DINOv2 ViT-B/14 from a local Hugging Face directory (config.json + model.safetensors).

    `weights` or `$GENBENCH_CACHE/dinov2-base` (default cache ~/.cache/genbench); never downloads.
    """
    from transformers import Dinov2Model

    cache = Path(os.environ.get("GENBENCH_CACHE", Path.home() / ".cache" / "genbench"))
    path = Path(weights) if weights is not None else cache / "dinov2-base"
    if not (path / "config.json").is_file():
        raise GenbenchError(f"{path}: DINOv2 weights not found; download {DINOV2_B14_SOURCE} (config.json "
                            "and model.safetensors) into that folder or pass its path as the encoder weights")
    return Dinov2Encoder(Dinov2Model.from_pretrained(path, local_files_only=True), resolution)


class TinyEncoder(nn.Module):
    """Randomly initialised, frozen patch encoder for tests: a stride-s conv and LayerNorm giving
    `grid x grid` tokens of width z_dim (choose grid = SiT's token grid)."""

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


EncoderBuilder = Callable[..., nn.Module]
def build_shapes(resolution: int, weights: str | Path | None = None, grid: int = 4) -> nn.Module:
    """The `shapes` world's feature CNN as REPA target (its role of DINOv2 there): [N, grid^2, 96] tokens."""
    from genbench.extractors.shapes import build_shapes_encoder

    return build_shapes_encoder(resolution, weights, grid)


ENCODERS: dict[str, EncoderBuilder] = {
    "dinov2-vit-b": build_dinov2,
    "shapes": build_shapes,
    "tiny": lambda resolution, weights=None, grid=4, z_dim=16: TinyEncoder(resolution, grid, z_dim),
}


def register_encoder(name: str, builder: EncoderBuilder) -> None:
    """Add an encoder builder `(resolution, weights=None, **kwargs) -> encoder` under `name`."""
    ENCODERS[name] = builder


def build_encoder(name: str, resolution: int, weights: str | Path | None = None, **kwargs) -> nn.Module:
    if name not in ENCODERS:
        raise GenbenchError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)} or register one")
    return ENCODERS[name](resolution, weights=weights, **kwargs)
