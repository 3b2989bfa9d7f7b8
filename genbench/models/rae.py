"""Representation autoencoders (RAE; Zheng, Ma, Tong, Xie, arXiv 2510.11690; bytetriper/RAE).

An RAE keeps a pretrained representation encoder frozen (DINOv2 with registers, SigLIP-2 or MAE) and trains
only a ViT decoder that maps the encoder's patch tokens back to pixels. As the release does:

- encoder input: images in [0, 1], resized (bicubic) to the encoder's input size when they differ, then
  normalised with the encoder's own image mean/std; the encoder's final LayerNorm runs without its affine
  weights; the prefix tokens (DINOv2: CLS + 4 registers, MAE: CLS, SigLIP: none) are dropped and the
  remaining tokens reshaped to a [C, h, w] latent (C = the encoder width, 768 for the B models);
- latent normalisation: per-element statistics over [C, h, w] (`stat.pt` = {"mean", "var"}), applied as
  (z - mean) / sqrt(var + 1e-5) and inverted exactly;
- decoder: a linear embedding of each token to the decoder width, a learned CLS token prepended, fixed 2-D
  sin-cos position embeddings, pre-LayerNorm ViT blocks (eps 1e-12, exact GELU), a final LayerNorm and a
  linear head to p*p*3 pixels per token; the CLS output is dropped, patches are laid out (channels last
  within a patch) into the image, and the encoder's image normalisation is undone;
- decoder noise: the released decoders were trained with latent noise (tau = 0.8, `ViTXL_n08`); noise is
  added only in training mode, never when encoding for evaluation (the release's stage-1 configs set
  `noise_tau: 0`).

`RAEDecoder` is genbench's own module; `decoder_state_from_official` maps the official decoder file's key
names (transformers' ViT-MAE decoder layer names) onto it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genbench.errors import GenbenchError

RAE_STATS_EPS = 1e-5


# --------------------------------------------------------------------------------------------------
#                                             Decoder
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RAEDecoderConfig:
    """Width, depth, heads and MLP width of the ViT decoder (the release's configs/decoder/ViT{B,L,XL})."""

    hidden_size: int
    depth: int
    num_heads: int
    mlp_size: int
    patch_size: int = 16
    layer_norm_eps: float = 1e-12


DECODER_CONFIGS = {
    "ViT-B": RAEDecoderConfig(768, 12, 12, 3072),
    "ViT-L": RAEDecoderConfig(1024, 24, 16, 4096),
    "ViT-XL": RAEDecoderConfig(1152, 28, 16, 4096),
}


def sincos_position_embedding(dim: int, grid: int) -> torch.Tensor:
    """[grid*grid + 1, dim] fixed 2-D sin-cos embedding (MAE's), a zero row first for the CLS token. Half
    the channels encode the row coordinate, half the column; each half is [sin | cos] of pos * omega."""
    if dim % 4:
        raise ValueError(f"position embedding width {dim} must be a multiple of 4")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    cols, rows = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))

    def one_axis(pos: np.ndarray) -> np.ndarray:
        angles = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    # MAE's meshgrid puts the column coordinate first in its grid stack, so the first half is the columns.
    table = np.concatenate([one_axis(cols), one_axis(rows)], axis=1)
    return torch.from_numpy(np.concatenate([np.zeros((1, dim)), table], axis=0)).float()


class DecoderAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, self.heads, width // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return self.proj(out.transpose(1, 2).reshape(n, length, width))


class DecoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(norm1(x)), then + mlp(norm2(x))."""

    def __init__(self, config: RAEDecoderConfig):
        super().__init__()
        width = config.hidden_size
        self.norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.attn = DecoderAttention(width, config.num_heads)
        self.norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(width, config.mlp_size)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(config.mlp_size, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RAEDecoder(nn.Module):
    """Tokens [N, L, latent_dim] (L = grid^2) -> image [N, 3, grid*p, grid*p] in the encoder's normalised
    pixel space. A token grid of another size is resized bilinearly to `grid` first (as the release)."""

    def __init__(self, latent_dim: int, config: RAEDecoderConfig, grid: int):
        super().__init__()
        self.config, self.grid = config, grid
        self.embed = nn.Linear(latent_dim, config.hidden_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.register_buffer("pos_embed", sincos_position_embedding(config.hidden_size, grid)[None])
        self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.head = nn.Linear(config.hidden_size, config.patch_size**2 * 3)

    def _to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, channels = tokens.shape
        if length == self.grid**2:
            return tokens
        side = math.isqrt(length)
        image = tokens.transpose(1, 2).reshape(n, channels, side, side)
        image = F.interpolate(image, size=(self.grid, self.grid), mode="bilinear", align_corners=False)
        return image.flatten(2).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), self._to_grid(x)], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        patches = self.head(self.norm(x))[:, 1:]
        return unpatchify(patches, self.grid, self.config.patch_size)


def unpatchify(patches: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """[N, grid^2, p*p*3] (row-major patches, channels last within a patch) -> [N, 3, grid*p, grid*p]."""
    n = patches.shape[0]
    x = patches.reshape(n, grid, grid, patch, patch, 3)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(n, 3, grid * patch, grid * patch)


# Official decoder key names (transformers' ViTMAELayer inside the release's GeneralDecoder) -> ours.
_DECODER_KEYS = (
    (r"^decoder_embed\.", "embed."),
    (r"^trainable_cls_token$", "cls_token"),
    (r"^decoder_pos_embed$", "pos_embed"),
    (r"^decoder_layers\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^decoder_layers\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^decoder_layers\.(\d+)\.attention\.attention\.query\.", r"blocks.\1.attn.q."),
    (r"^decoder_layers\.(\d+)\.attention\.attention\.key\.", r"blocks.\1.attn.k."),
    (r"^decoder_layers\.(\d+)\.attention\.attention\.value\.", r"blocks.\1.attn.v."),
    (r"^decoder_layers\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^decoder_layers\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^decoder_layers\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^decoder_norm\.", "norm."),
    (r"^decoder_pred\.", "head."),
)


def decoder_state_from_official(state: dict[str, torch.Tensor], source: str | Path
                                ) -> dict[str, torch.Tensor]:
    """The release's decoder `model.pt` (bare, or under "model"/"ema"/"decoder"; DDP/compile prefixes
    stripped) -> RAEDecoder keys. An unknown key is an error naming the file, not a silent drop."""
    from genbench.models.official import strip_wrappers

    for wrapper in ("ema", "model", "decoder"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    mapped = {}
    for key, value in strip_wrappers(state).items():
        key = key.removeprefix("decoder.") if key.startswith("decoder.decoder_") else key
        for pattern, replacement in _DECODER_KEYS:
            new, count = re.subn(pattern, replacement, key)
            if count:
                mapped[new] = value
                break
        else:
            raise GenbenchError(f"{source}: unexpected key {key!r} in an RAE decoder file; give the "
                                "release's decoder model.pt (models/decoders/.../model.pt)")
    return mapped


# --------------------------------------------------------------------------------------------------
#                                         Frozen encoders
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderKind:
    """How the release runs one family of representation encoders (src/stage1/encoders/*.py)."""

    model_class: str  # transformers class
    final_norm: str  # the final LayerNorm (run without its affine weights), at any depth of the model
    prefix_tokens: str  # "registers" (CLS + config.num_register_tokens), "cls" (1) or "none"
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ENCODER_KINDS = {
    "dinov2": EncoderKind("Dinov2WithRegistersModel", "layernorm", "registers", IMAGENET_MEAN, IMAGENET_STD),
    "siglip2": EncoderKind("SiglipVisionModel", "post_layernorm", "none", (0.5,) * 3, (0.5,) * 3),
    "mae": EncoderKind("ViTMAEModel", "layernorm", "cls", IMAGENET_MEAN, IMAGENET_STD),
}


class RepresentationEncoder(nn.Module):
    """A frozen transformers vision model -> patch tokens [N, L, C], as the release runs it."""

    def __init__(self, kind: str, model: nn.Module, input_size: int,
                 image_mean: tuple[float, ...] | None = None, image_std: tuple[float, ...] | None = None):
        super().__init__()
        if kind not in ENCODER_KINDS:
            raise GenbenchError(f"unknown RAE encoder {kind!r}; choose from {sorted(ENCODER_KINDS)}")
        spec = ENCODER_KINDS[kind]
        self.kind, self.model, self.input_size = kind, model, input_size
        config = model.config
        self.patch_size, self.width = config.patch_size, config.hidden_size
        if spec.prefix_tokens == "registers":
            self.prefix = 1 + config.num_register_tokens
        else:
            self.prefix = 1 if spec.prefix_tokens == "cls" else 0
        if kind == "mae":
            config.mask_ratio = 0.0  # keep every patch; the noise below keeps their order
        # transformers 4 nests SigLIP's modules under .vision_model, 5 does not: find the norm by its name.
        norm = next(module for name, module in model.named_modules()
                    if name.split(".")[-1] == spec.final_norm)
        # The release drops the final LayerNorm's affine weights; weight 1 and bias 0 is the same map.
        with torch.no_grad():
            norm.weight.fill_(1.0)
            norm.bias.zero_()
        self.register_buffer("mean", torch.tensor(image_mean or spec.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(image_std or spec.image_std).view(1, 3, 1, 1))
        self.requires_grad_(False)

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    def normalise(self, x01: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the encoder's input (resized bicubically when the size differs)."""
        if x01.shape[-2:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            x01 = F.interpolate(x01, size=size, mode="bicubic", align_corners=False)
        return (x01 - self.mean) / self.std

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        pixels = self.normalise(x01)
        if self.kind == "mae":
            order = torch.arange(self.grid**2, device=pixels.device, dtype=pixels.dtype)
            out = self.model(pixels, noise=order.expand(pixels.shape[0], -1), interpolate_pos_encoding=True)
        elif self.kind == "siglip2":
            out = self.model(pixels, interpolate_pos_encoding=True)
        else:
            out = self.model(pixels)
        return out.last_hidden_state[:, self.prefix:]


def load_encoder_model(kind: str, folder: str | Path) -> nn.Module:
    """A transformers model saved in `folder` (config.json + weights), read locally only."""
    try:
        import transformers
    except ImportError as error:
        raise GenbenchError("RAE tokenizers need transformers; pip install transformers") from error

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise GenbenchError(f"{folder}: no config.json; give the encoder as a saved Hugging Face folder "
                            f"({ENCODER_KINDS[kind].model_class}.save_pretrained)")
    model_class = getattr(transformers, ENCODER_KINDS[kind].model_class)
    try:
        return model_class.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError) as error:
        raise GenbenchError(f"{folder}: cannot load a {model_class.__name__} ({error})") from error


def processor_mean_std(folder: str | Path) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """image_mean / image_std from a saved preprocessor_config.json, else (None, None)."""
    path = Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        return None, None
    config = json.loads(path.read_text())
    mean, std = config.get("image_mean"), config.get("image_std")
    return (tuple(mean) if mean else None), (tuple(std) if std else None)


# --------------------------------------------------------------------------------------------------
#                                           The autoencoder
# --------------------------------------------------------------------------------------------------


class RepresentationAutoencoder(nn.Module):
    """Frozen encoder + ViT decoder + latent statistics. Images in [-1, 1] on both ends (genbench's
    convention; the release works in [0, 1]); latents [N, C, h, w] unnormalised until `normalize`."""

    def __init__(self, encoder: RepresentationEncoder, decoder: RAEDecoder,
                 latent_mean: torch.Tensor | None = None, latent_var: torch.Tensor | None = None,
                 noise_tau: float = 0.0):
        super().__init__()
        self.encoder, self.decoder, self.noise_tau = encoder, decoder, noise_tau
        self.register_buffer("latent_mean", latent_mean.float() if latent_mean is not None else None)
        self.register_buffer("latent_var", latent_var.float() if latent_var is not None else None)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder((x + 1) / 2)
        if self.training and self.noise_tau > 0:  # decoder-training augmentation only (module doc)
            sigma = self.noise_tau * torch.rand(tokens.shape[0], 1, 1, device=tokens.device)
            tokens = tokens + sigma * torch.randn_like(tokens)
        n, length, channels = tokens.shape
        side = math.isqrt(length)
        return tokens.transpose(1, 2).reshape(n, channels, side, side)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        tokens = z.flatten(2).transpose(1, 2)
        x01 = self.decoder(tokens) * self.encoder.std + self.encoder.mean
        return x01 * 2 - 1

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_mean is not None:
            z = z - self.latent_mean
        return z / torch.sqrt(self.latent_var + RAE_STATS_EPS) if self.latent_var is not None else z

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_var is not None:
            z = z * torch.sqrt(self.latent_var + RAE_STATS_EPS)
        return z + self.latent_mean if self.latent_mean is not None else z


def read_latent_stats(path: str | Path) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The release's stat.pt -> (mean, var), each [C, h, w] (either may be absent)."""
    from genbench.sources import read_checkpoint

    stats = read_checkpoint(path)
    if not isinstance(stats, dict) or not ({"mean", "var"} & set(stats)):
        raise GenbenchError(f"{path}: not an RAE statistics file (needs 'mean' and/or 'var' tensors)")
    return stats.get("mean"), stats.get("var")


def build_rae(kind: str, encoder_model: nn.Module, input_size: int, decoder_config: RAEDecoderConfig,
              decoder_state: dict[str, torch.Tensor] | None = None, source: str | Path = "<decoder>",
              stats: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
              image_mean: tuple[float, ...] | None = None, image_std: tuple[float, ...] | None = None,
              noise_tau: float = 0.0) -> RepresentationAutoencoder:
    """Assemble an RAE; `decoder_state` in the release's key names is loaded strictly."""
    from genbench.models.checkpoints import load_state_strict

    encoder = RepresentationEncoder(kind, encoder_model, input_size, image_mean, image_std)
    decoder = RAEDecoder(encoder.width, decoder_config, encoder.grid)
    if decoder_state is not None:
        state = decoder_state_from_official(decoder_state, source)
        state.setdefault("pos_embed", decoder.pos_embed)  # fixed; older files may leave it out
        load_state_strict(decoder, state, source)
    return RepresentationAutoencoder(encoder, decoder, *stats, noise_tau=noise_tau).eval()
