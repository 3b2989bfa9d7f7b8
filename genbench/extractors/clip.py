"""CLIP image (and text) embeddings from open_clip, for CMMD ("Rethinking FID") and CLIP score.

- Model: `clip` is ViT-L-14-336 with OpenAI's weights (QuickGELU, as they were trained), the CMMD paper's
  embedding; `clip:MODEL/TAG` is any open_clip model and pretrained tag (`open_clip.list_pretrained()`).
- Images: centre crop to a square, bicubic resize with antialias to the model's input size (336), x / 255,
  CLIP mean/std. CMMD's original resizes with PIL then JAX (antialiased); torch's antialiased bicubic is
  the same filter up to rounding.
- `pool` [N, D]: the projected image embedding, L2-normalised (CMMD's input). `encode_text(prompts)` gives
  the matching normalised text embeddings for CLIP score.

Weights: the open_clip safetensors file of the model and tag (Hugging Face, `open_clip_model.safetensors`),
found like Inception's (cache file or --weights). --weights may instead name a folder with
`open_clip_config.json` and `open_clip_model.safetensors` (open_clip's `local-dir:` layout), whose config
then gives the architecture.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genbench.errors import GenbenchError
from genbench.fetch import RemoteFile, load_registry, registered_file
from genbench.io import sha256_file
from genbench.weights import resolve_weights

DEFAULT_MODEL = "ViT-L-14-336/openai"
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


def weights_spec(model: str, tag: str) -> RemoteFile:
    """The weights file of `model` with pretrained `tag`: the registered file `open_clip-MODEL-TAG` where
    the registry lists it (the CMMD and CLIP-score defaults), else where open_clip publishes it (its Hugging
    Face safetensors), fetched and digest-recorded like any registered file."""
    import open_clip

    name = f"open_clip-{model}-{tag}"
    if name in load_registry()["files"]:
        return registered_file(name)

    pretrained = open_clip.get_pretrained_cfg(model, tag)
    if not pretrained:
        raise GenbenchError(f"clip:{model}/{tag}: open_clip knows no such model and pretrained tag; see "
                            "open_clip.list_pretrained() for the pairs")
    hub = pretrained.get("hf_hub", "")
    url = pretrained["url"]
    if hub:
        url = f"https://huggingface.co/{hub.rstrip('/')}/resolve/main/{WEIGHTS_FILE}"
    return RemoteFile(name=name, url=url, path=f"{name}.safetensors", sha256=None,
                      source=f"open_clip pretrained config {model}/{tag}")


def parse_model(variant: str | None) -> tuple[str, str]:
    """"ViT-B-32/laion2b_s34b_b79k" -> (model, tag); None -> the CMMD default."""
    model, _, tag = (variant or DEFAULT_MODEL).partition("/")
    if not model or not tag:
        raise GenbenchError(f"clip:{variant}: name an open_clip model and pretrained tag, e.g. "
                            f"clip:{DEFAULT_MODEL}")
    return model, tag


def load_clip(variant: str | None, weights: str | Path | None) -> tuple[nn.Module, Path]:
    """(open_clip model in eval mode, the weights file it was loaded from)."""
    import open_clip

    if weights is not None and Path(weights).is_dir():  # open_clip's local-dir layout: config + weights
        folder = Path(weights)
        path = folder / WEIGHTS_FILE
        if not (folder / CONFIG_FILE).is_file() or not path.is_file():
            raise GenbenchError(f"{folder}: a CLIP weights folder holds {CONFIG_FILE} and {WEIGHTS_FILE}")
        model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    else:
        name, tag = parse_model(variant)
        path = resolve_weights(weights_spec(name, tag), weights)
        pretrained = open_clip.get_pretrained_cfg(name, tag)
        model = open_clip.create_model(
            name, pretrained=None, force_quick_gelu=bool(pretrained.get("quick_gelu", False)),
            force_preprocess_cfg={k: pretrained[k] for k in ("mean", "std") if k in pretrained},
        )
    try:
        open_clip.load_checkpoint(model, str(path), weights_only=True)
    except (RuntimeError, OSError, KeyError, ValueError) as error:
        raise GenbenchError(f"{path}: not open_clip weights for this model ({error})") from error
    return model.eval().requires_grad_(False), path


class ClipFeatures(nn.Module):
    """Extractor `clip[:MODEL/TAG]`: forward(uint8 [N, 3, H, W]) -> {"pool": float32 [N, D]}, unit rows."""

    def __init__(self, model: nn.Module, name: str, weights_sha256: str, tokenizer_name: str):
        super().__init__()
        self.model = model
        self.name = name
        self.weights_sha256 = weights_sha256
        self.tokenizer_name = tokenizer_name
        import open_clip

        preprocess = open_clip.get_model_preprocess_cfg(model)
        size = preprocess["size"]
        self.input_size = int(size if isinstance(size, int) else size[0])
        self.resize_mode = f"center-crop-torch-bicubic-antialias-{self.input_size}"
        self.feature_dims = {"pool": int(model.visual.output_dim)}
        self.register_buffer("mean", torch.tensor(preprocess["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocess["std"]).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, variant: str | None = None) -> ClipFeatures:
        model, path = load_clip(variant, weights)
        folder = Path(weights) if weights is not None and Path(weights).is_dir() else None
        tokenizer_name = f"local-dir:{folder}" if folder else parse_model(variant)[0]
        name = "clip" if variant is None else f"clip:{variant}"
        return cls(model, name, sha256_file(path), tokenizer_name)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> normalised float32 [N, 3, S, S] (centre square, then resize)."""
        height, width = images.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = images[..., top : top + side, left : left + side].float()
        size = (self.input_size, self.input_size)  # at the same size the bicubic filter is the identity
        x = F.interpolate(square, size=size, mode="bicubic", antialias=True)
        return (x / 255 - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise GenbenchError(f"CLIP expects uint8 images [N, 3, H, W], got {images.dtype} "
                                f"{tuple(images.shape)}")
        return {"pool": self.model.encode_image(self.preprocess(images), normalize=True).float()}

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """[N] prompts -> L2-normalised text embeddings float32 [N, D]."""
        import open_clip

        tokens = open_clip.get_tokenizer(self.tokenizer_name)(prompts).to(self.mean.device)
        return self.model.encode_text(tokens, normalize=True).float()
