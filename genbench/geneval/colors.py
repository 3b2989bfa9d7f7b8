"""Colour classifiers for GenEval's colour clauses: (image, objects of one class, class name) -> colour names.

`ClipColorClassifier` is GenEval's: open_clip ViT-L-14 with OpenAI weights (QuickGELU), each object pasted
through its mask onto a #999 background and cropped to its box, zero-shot over 10 colours x 3 templates.
`PaletteColorClassifier` names the median pixel colour of each object by the nearest colour of a palette
(for synthetic worlds whose colours are known exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from genbench.geneval.detectors import Detection
from genbench.geneval.prompts import COLORS
from genbench.weights import resolve_weights

ColorClassifier = Callable[[Image.Image, list[Detection], str], list[str]]

TEMPLATES = ("a photo of a {c} {object}", "a photo of a {c}-colored {object}", "a photo of a {c} object")
CLIP_ARCH = "ViT-L-14-quickgelu"  # GenEval's open_clip 2.20 built ViT-L-14 "openai" with QuickGELU
CLIP_WEIGHTS = "open_clip-ViT-L-14-openai"  # registered file: OpenAI's weights in open_clip's safetensors


def object_crop(image: Image.Image, obj: Detection, background: str = "#999",
                crop: bool = True) -> Image.Image:
    """The object pasted through its mask (if any) over a plain background, cropped to its box."""
    image = image.convert("RGB")
    if obj.mask is not None:
        if obj.mask.shape != (image.height, image.width):
            raise ValueError(f"mask {obj.mask.shape} does not match image {(image.height, image.width)}")
        image = Image.composite(image, Image.new("RGB", image.size, background), Image.fromarray(obj.mask))
    return image.crop(tuple(obj.box)) if crop else image


class ClipColorClassifier:
    """Zero-shot colour of each object with a CLIP model (open_clip interface: encode_image/encode_text)."""

    def __init__(self, model, preprocess, tokenizer, device: str = "cpu", background: str = "#999",
                 crop: bool = True, colors: tuple[str, ...] = COLORS):
        self.model = model.eval().to(device)
        self.preprocess, self.tokenizer = preprocess, tokenizer
        self.device, self.background, self.crop, self.colors = device, background, crop, colors
        self._text: dict[str, torch.Tensor] = {}  # class name -> [D, n_colors] classifier weights

    @torch.no_grad()
    def text_classifier(self, classname: str) -> torch.Tensor:
        """Per colour: normalised embeddings of the 3 templates, averaged, renormalised. [D, n_colors]."""
        if classname not in self._text:
            weights = []
            for color in self.colors:
                texts = [t.format(c=color, object=classname) for t in TEMPLATES]
                embedding = F.normalize(self.model.encode_text(self.tokenizer(texts).to(self.device)), dim=-1)
                weights.append(F.normalize(embedding.mean(dim=0), dim=-1))
            self._text[classname] = torch.stack(weights, dim=1)
        return self._text[classname]

    @torch.no_grad()
    def __call__(self, image: Image.Image, objects: list[Detection], classname: str) -> list[str]:
        if not objects:
            return []
        crops = [self.preprocess(object_crop(image, o, self.background, self.crop)) for o in objects]
        features = F.normalize(self.model.encode_image(torch.stack(crops).to(self.device)), dim=-1)
        return [self.colors[i] for i in (features @ self.text_classifier(classname)).argmax(dim=1).tolist()]


def load_clip_color_classifier(weights: str | Path | None = None, device: str = "cpu",
                               arch: str = CLIP_ARCH) -> ClipColorClassifier:
    """open_clip `arch` (ViT-L-14 QuickGELU) with OpenAI's weights from `weights` or
    the registered file open_clip-ViT-L-14-openai, fetched into the cache on first use."""
    import open_clip

    path = resolve_weights(CLIP_WEIGHTS, weights)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(path), device=device)
    return ClipColorClassifier(model, preprocess, open_clip.get_tokenizer(arch), device)


def nearest_color(rgb, palette: dict[str, tuple[int, int, int]]) -> str:
    """Name of the palette colour closest (Euclidean RGB) to `rgb`."""
    names = list(palette)
    table = np.asarray([palette[n] for n in names], dtype=np.float64)
    distances = np.linalg.norm(table - np.asarray(rgb, dtype=np.float64), axis=1)
    return names[int(distances.argmin())]


class PaletteColorClassifier:
    """Median RGB of each object's mask pixels (box pixels without a mask), named by the nearest palette
    colour. For worlds whose object colours are known palette entries."""

    def __init__(self, palette: dict[str, tuple[int, int, int]]):
        self.palette = palette

    def __call__(self, image: Image.Image, objects: list[Detection], classname: str) -> list[str]:
        pixels = np.asarray(image.convert("RGB"))
        colors = []
        for obj in objects:
            if obj.mask is not None:
                region = pixels[obj.mask]
            else:
                x1, y1, x2, y2 = (int(round(v)) for v in obj.box)
                region = pixels[y1:y2, x1:x2].reshape(-1, 3)
            colors.append(nearest_color(np.median(region, axis=0), self.palette))
        return colors
