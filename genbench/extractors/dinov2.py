"""DINOv2 (transformers' `Dinov2Model`), loaded by one function (`load_dinov2`) for its two views:

- extractor `dinov2` (ViT-L/14), features as EDM2 computes FD-DINOv2 (NVlabs/edm2 calculate_metrics.py,
  DINOv2Detector, itself modelled on dgm-eval): uint8 images -> float32 in [0, 255] -> bicubic resize to
  224 x 224 with antialias (torch, EDM2's default `resize_mode='torch'`; no clamp of the bicubic overshoot)
  -> x / 255 -> ImageNet mean/std; `pool` [N, 1024]: the CLS token after the final LayerNorm (torch hub's
  `model(x)`, whose head is the identity; transformers' `pooler_output`);
- REPA target `dinov2-vit-b` (ViT-B/14), as REPA's train.py: x / 255, ImageNet mean/std, THEN bicubic resize
  to 224 * resolution / 256 (16 x 16 tokens at 256); tokens [N, T, 768]: the final-LayerNorm patch tokens
  without CLS (the hub model's `forward_features(x)['x_norm_patchtokens']`).

Weights: the registered files `dinov2-large` and `dinov2-base` (the publishers' `model.safetensors`), fetched
into the cache on first use, or a given file or Hugging Face folder. A `config.json` beside the weights file
gives the architecture; without one it is the registered file's (ViT-L/14, ViT-B/14). transformers
resamples the 37 x 37 position table to the input's grid per call; torch hub's model resamples with a
slightly different bicubic call (REPA's once, to 16 x 16), so features can differ from EDM2's and tokens
from REPA's in the last digits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genbench.errors import GenbenchError
from genbench.fetch import registered_file
from genbench.io import sha256_file
from genbench.pixels import to_unit_range
from genbench.weights import resolve_weights

DINOV2_WEIGHTS = "dinov2-large"  # registered file: facebook/dinov2-large's model.safetensors (FD-DINOv2)
DINOV2_B14_WEIGHTS = "dinov2-base"  # registered file: facebook/dinov2-base's model.safetensors (REPA)
VIT_L14 = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14,
           "image_size": 518, "mlp_ratio": 4, "layerscale_value": 1.0}
VIT_B14 = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 14,
           "image_size": 518, "mlp_ratio": 4, "layerscale_value": 1.0}
ARCHITECTURES = {DINOV2_WEIGHTS: VIT_L14, DINOV2_B14_WEIGHTS: VIT_B14}  # used without a config.json
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
WEIGHTS_NAME = "model.safetensors"


def weights_file(registered: str, weights: str | Path | None) -> Path:
    """The weights file of registered file `registered`, or `weights`: the safetensors file or its Hugging
    Face folder."""
    if weights is not None:
        weights = Path(weights) / WEIGHTS_NAME if Path(weights).is_dir() else Path(weights)
        if not weights.is_file():
            raise GenbenchError(f"{weights}: DINOv2 weights not found; download "
                                f"{registered_file(registered).url} (and config.json) into a folder and "
                                "give the folder or the file")
    path = resolve_weights(registered, weights)
    if path.name != WEIGHTS_NAME:  # transformers finds the weights of a folder by this name
        raise GenbenchError(f"{path}: name the DINOv2 weights file {WEIGHTS_NAME} (a Hugging Face folder)")
    return path


def load_dinov2(registered: str, weights: str | Path | None) -> tuple[nn.Module, Path]:
    """(Dinov2Model, its weights file) from `weights` or the registered file `registered`
    (safetensors; transformers maps the published key names onto its modules); architecture from
    config.json beside the file or the registered file's."""
    from transformers import Dinov2Config, Dinov2Model

    path = weights_file(registered, weights)
    config_path = path.parent / "config.json"
    try:
        if config_path.is_file():
            config = Dinov2Config.from_json_file(config_path)
        else:
            config = Dinov2Config(**ARCHITECTURES[registered])
        model, info = Dinov2Model.from_pretrained(path.parent, config=config, local_files_only=True,
                                                  output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise GenbenchError(f"{path}: not DINOv2 weights for this architecture ({error})") from error
    problems = [*info["missing_keys"], *info["unexpected_keys"], *info["mismatched_keys"]]
    if problems:
        raise GenbenchError(
            f"{path}: not DINOv2 weights for this architecture ({len(problems)} missing, unexpected or "
            f"misshapen keys, e.g. {problems[0]}); use {registered_file(registered).url} (registered file "
            f"{registered})"
        )
    return model, path


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
        model, path = load_dinov2(DINOV2_WEIGHTS, weights)
        return cls(model, sha256_file(path))

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


class Dinov2Encoder(nn.Module):
    """REPA target `dinov2-vit-b`: forward(uint8 [N, 3, H, W] or float in [0, 1]) -> final-LayerNorm patch
    tokens [N, T, hidden] without CLS (see the module docstring for REPA's preprocessing)."""

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

    @classmethod
    def from_weights(cls, resolution: int, weights: str | Path | None = None) -> Dinov2Encoder:
        """ViT-B/14 from `weights` (file or Hugging Face folder) or the registered file `dinov2-base`."""
        model, _ = load_dinov2(DINOV2_B14_WEIGHTS, weights)
        return cls(model, resolution)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> normalised float32 [N, 3, S, S], S = 224 * resolution / 256, in REPA's order."""
        x = (to_unit_range(images) - self.mean) / self.std
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bicubic", align_corners=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=self.preprocess(images)).last_hidden_state  # [N, 1 + T, D], post-LN
        return hidden[:, 1:]
