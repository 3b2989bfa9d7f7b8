"""DINOv2 ViT-L/14 features as EDM2 computes FD-DINOv2 (NVlabs/edm2 calculate_metrics.py, DINOv2Detector,
itself modelled on dgm-eval):

- uint8 images -> float32 in [0, 255] -> bicubic resize to 224 x 224 with antialias (torch, EDM2's default
  `resize_mode='torch'`; no clamp of the bicubic overshoot) -> x / 255 -> ImageNet mean/std;
- `pool` [N, 1024]: the CLS token after the final LayerNorm (torch hub's `model(x)`, whose head is the
  identity; transformers' `pooler_output`).

The network is transformers' `Dinov2Model`. Weights: facebook/dinov2-large's `model.safetensors`, found like
Inception's (cache file or --weights). A `config.json` beside the weights file (the Hugging Face folder
layout) gives the architecture; without one it is ViT-L/14. At 224 the 37 x 37 position table is resampled
to 16 x 16 per call; torch hub's model resamples with a slightly different bicubic call, so features can
differ from EDM2's in the last digits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genbench.errors import GenbenchError
from genbench.io import sha256_file
from genbench.models.encoders import IMAGENET_MEAN, IMAGENET_STD
from genbench.weights import resolve_weights

DINOV2_WEIGHTS = "dinov2-large"  # registered file: facebook/dinov2-large's model.safetensors
VIT_L14 = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14,
           "image_size": 518, "mlp_ratio": 4, "layerscale_value": 1.0}
INPUT_SIZE = 224
WEIGHTS_NAME = "model.safetensors"


def weights_file(weights: str | Path | None) -> Path:
    """--weights may name the safetensors file or its Hugging Face folder."""
    if weights is not None and Path(weights).is_dir():
        weights = Path(weights) / WEIGHTS_NAME
    path = resolve_weights(DINOV2_WEIGHTS, weights)
    if path.name != WEIGHTS_NAME:  # transformers finds the weights of a folder by this name
        raise GenbenchError(f"{path}: name the DINOv2 weights file {WEIGHTS_NAME} (a Hugging Face folder)")
    return path


def load_dinov2(path: Path) -> nn.Module:
    """Dinov2Model from `path` (safetensors; transformers maps the published key names onto its modules),
    architecture from config.json beside it or ViT-L/14."""
    from transformers import Dinov2Config, Dinov2Model

    config_path = path.parent / "config.json"
    try:
        if config_path.is_file():
            config = Dinov2Config.from_json_file(config_path)
        else:
            config = Dinov2Config(**VIT_L14)
        model, info = Dinov2Model.from_pretrained(path.parent, config=config, local_files_only=True,
                                                  output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise GenbenchError(f"{path}: not DINOv2 weights for this architecture ({error})") from error
    problems = [*info["missing_keys"], *info["unexpected_keys"], *info["mismatched_keys"]]
    if problems:
        raise GenbenchError(
            f"{path}: not DINOv2 weights for this architecture ({len(problems)} missing, unexpected or "
            f"misshapen keys, e.g. {problems[0]}); use facebook/dinov2-large (registered file "
            f"{DINOV2_WEIGHTS})"
        )
    return model


class Dinov2Features(nn.Module):
    """Extractor `dinov2`: forward(uint8 [N, 3, H, W]) -> {"pool": float32 [N, hidden]} (CLS token)."""

    name = "dinov2"
    resize_mode = f"torch-bicubic-antialias-{INPUT_SIZE}"

    def __init__(self, model: nn.Module, weights_sha256: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.weights_sha256 = weights_sha256
        self.feature_dims = {"pool": model.config.hidden_size}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_weights(cls, weights: str | Path | None = None) -> Dinov2Features:
        path = weights_file(weights)
        return cls(load_dinov2(path), sha256_file(path))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> normalised float32 [N, 3, 224, 224], in EDM2's order of operations."""
        x = F.interpolate(images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True)
        return (x / 255 - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise GenbenchError(
                f"DINOv2 expects uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        output = self.model(pixel_values=self.preprocess(images))
        return {"pool": output.pooler_output.float()}
