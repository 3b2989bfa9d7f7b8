"""The `shapes` world's feature network: a small CNN trained to classify `shapes` images
(scripts/train_shapes_features.py). It gives FID-style metrics a meaningful feature space in that world, as
Inception does on ImageNet, and REPA/REPA-E their alignment target tokens, as DINOv2 does on ImageNet.

Features (one pass): `pool` 192 (global average of the last stage), `logits` 20 (the classes of
genbench.worlds.shapes), `spatial` 256 (the first 4 channels of the 8 x 8 middle map, HWC order, the
analogue of Inception's Mixed_6d slice for sFID). Inputs must be 32 x 32 (resize_mode "none").
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from genbench.errors import GenbenchError
from genbench.pixels import to_unit_range
from genbench.weights import verify_sha256

WEIGHTS_PATH = Path(__file__).resolve().parents[1] / "worlds" / "weights" / "shapes_features.safetensors"
WEIGHTS_SHA256 = "a367f09899475efb036f922d05334eaa00294e0c2552466cfc4457127a181ee5"
RESOLUTION = 32
SPATIAL_CHANNELS = 4


def conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class ShapesNet(nn.Module):
    """32 x 32 -> 16 -> 8 -> 4 CNN. `features(x)` maps uint8 (or [0, 1] float) [N, 3, 32, 32] to
    `middle` [N, 96, 8, 8] (BatchNorm output of the 8 x 8 stage, before its ReLU), `pool` [N, 192] and
    `logits` [N, num_classes]."""

    def __init__(self, num_classes: int = 20, widths: tuple[int, int, int, int] = (24, 48, 96, 192)):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = conv_bn(3, w0)
        self.stage1 = nn.Sequential(conv_bn(w0, w1, 2), nn.ReLU(), conv_bn(w1, w1))
        self.stage2 = nn.Sequential(conv_bn(w1, w2, 2), nn.ReLU(), conv_bn(w2, w2))
        self.stage3 = conv_bn(w2, w3, 2)
        self.head = nn.Linear(w3, num_classes)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = to_unit_range(images) * 2 - 1
        x = F.relu(self.stem(x))
        x = F.relu(self.stage1(x))
        middle = self.stage2(x)
        pool = F.relu(self.stage3(F.relu(middle))).mean(dim=(2, 3))
        return {"middle": middle, "pool": pool, "logits": self.head(pool)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)["logits"]


class ShapesFeatures(nn.Module):
    """Extractor `shapes`: forward(uint8 [N, 3, 32, 32]) -> {"pool", "logits", "spatial"} float32 rows."""

    name = "shapes"
    resize_mode = "none"

    def __init__(self, net: ShapesNet, weights_sha256: str):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.weights_sha256 = weights_sha256
        middle = net.stage2[-1][0].out_channels
        self.token_dim = middle
        self.feature_dims = {"pool": net.head.in_features, "logits": net.head.out_features,
                             "spatial": SPATIAL_CHANNELS * (RESOLUTION // 4) ** 2}

    @classmethod
    def from_weights(cls, weights: str | Path | None = None) -> ShapesFeatures:
        """Load the shipped weights (SHA-256 checked against WEIGHTS_SHA256) or a given file (any hash,
        recorded as the extractor's weights_sha256)."""
        path = Path(weights) if weights is not None else WEIGHTS_PATH
        if not path.is_file():
            raise GenbenchError(f"{path}: shapes feature weights not found; rebuild them with "
                                "scripts/train_shapes_features.py --out PATH, or pass --weights PATH")
        sha256 = verify_sha256(path, WEIGHTS_SHA256 if weights is None else None)
        return cls(load_shapes_net(path), sha256)

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (RESOLUTION, RESOLUTION):
            raise GenbenchError(
                f"shapes extractor: images of shape {tuple(images.shape)}; it reads [N, 3, {RESOLUTION}, "
                f"{RESOLUTION}] (the shapes world's size; resize_mode 'none'); resize the samples first")

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check(images)
        out = self.net.features(images)
        spatial = out["middle"][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)  # HWC, as ADM's sFID
        return {"pool": out["pool"], "logits": out["logits"], "spatial": spatial}

    @torch.no_grad()
    def tokens(self, images: torch.Tensor, grid: int = 4) -> torch.Tensor:
        """REPA target tokens: the 8 x 8 middle map average-pooled to grid x grid. [N, grid^2, 96]."""
        self._check(images)
        middle = self.net.features(images)["middle"]
        return F.adaptive_avg_pool2d(middle, grid).flatten(2).transpose(1, 2)


class ShapesEncoder(nn.Module):
    """The same network as a REPA target (genbench.backbones' interface): forward(images) -> tokens
    [N, grid^2, z_dim]; choose grid = the SiT's token grid."""

    def __init__(self, features: ShapesFeatures, grid: int):
        super().__init__()
        self.features, self.grid = features, grid
        self.name, self.z_dim = "shapes", features.token_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features.tokens(images, self.grid)


def build_shapes_encoder(resolution: int, weights: str | Path | None = None, grid: int = 4) -> ShapesEncoder:
    """The REPA target view of backbone `shapes` (genbench.backbones)."""
    if resolution != RESOLUTION:
        raise GenbenchError(f"shapes encoder: resolution {resolution}; the shapes network reads {RESOLUTION}")
    return ShapesEncoder(ShapesFeatures.from_weights(weights), grid)


def load_shapes_net(path: str | Path) -> ShapesNet:
    """A ShapesNet from a safetensors file of scripts/train_shapes_features.py (config in its metadata)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            config = json.loads((handle.metadata() or {})["genbench"])["config"]
        net = ShapesNet(config["num_classes"], tuple(config["widths"]))
        net.load_state_dict(load_file(str(path)))
    except (OSError, RuntimeError, ValueError, KeyError, SafetensorError) as error:
        raise GenbenchError(f"{path}: not a shapes feature network ({error}); rebuild it with "
                            "scripts/train_shapes_features.py") from error
    return net.eval()
