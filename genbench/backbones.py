"""One registry of the networks genbench runs on images (backbones), each offered through its views:

- **extractor** (metrics; `build_extractor(name, weights)`): an `nn.Module` with `name`, `feature_dims`
  {feature: D}, `weights_sha256`, `resize_mode` and `forward(uint8 [N, 3, H, W]) -> {feature: float32
  [N, D]}`, all of the backbone's declared `features` in one pass;
- **REPA target** (training; `build_encoder(name, resolution, weights, **options)`): an `nn.Module` with
  `name`, `z_dim` and `forward(images) -> tokens [N, T, z_dim]` for uint8 [N, 3, H, W] (or float in
  [0, 1]), frozen (the recipes run it under no_grad); T must equal the SiT's token grid.

Each network's module (genbench/extractors/) loads its weights through one function, whichever view asks,
and a registered file comes through the one fetcher (`genbench.weights.resolve_weights`). Extractor names
may carry a variant, `NAME:VARIANT` (`clip:ViT-B-32/laion2b_s34b_b79k`), for a backbone that declares
`variants`; its extractor builder gets `(weights, variant or None)` and refuses variants it does not have.
`register_backbone` adds one (tests/test_add_a_backbone.py adds a toy one in the test alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from genbench.errors import GenbenchError

ExtractorBuilder = Callable[[str | Path | None, str | None], nn.Module]  # (weights, variant) -> extractor
TargetBuilder = Callable[..., nn.Module]  # (resolution, weights=None, **options) -> REPA target encoder
EXTRACTOR_ATTRIBUTES = ("name", "feature_dims", "weights_sha256", "resize_mode")
TARGET_ATTRIBUTES = ("name", "z_dim")


@dataclass(frozen=True)
class BackboneSpec:
    """A network and its views. `features`: the names its extractor returns (its `feature_dims` keys),
    checked on every build; `variants`: extractor names NAME:VARIANT are accepted."""

    name: str
    features: tuple[str, ...] = ()
    extractor: ExtractorBuilder | None = None
    repa_target: TargetBuilder | None = None
    variants: bool = False

    def __post_init__(self) -> None:
        if self.extractor is None and self.repa_target is None:
            raise ValueError(f"backbone '{self.name}': give it an extractor or a REPA target view")
        if (self.extractor is None) != (not self.features):
            raise ValueError(f"backbone '{self.name}': an extractor view and its features go together")
        if self.variants and self.extractor is None:
            raise ValueError(f"backbone '{self.name}': variants are extractor names; it has no extractor")
        if ":" in self.name:
            raise ValueError(f"backbone '{self.name}': ':' separates a variant; not allowed in a name")


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add `spec` under its name (a name is registered once; delete `BACKBONES[name]` to undo)."""
    if spec.name in BACKBONES:
        raise ValueError(f"backbone '{spec.name}' is registered already")
    BACKBONES[spec.name] = spec
    return spec


def extractor_names() -> list[str]:
    return sorted(name for name, spec in BACKBONES.items() if spec.extractor is not None)


def encoder_names() -> list[str]:
    return sorted(name for name, spec in BACKBONES.items() if spec.repa_target is not None)


def check_extractor_name(name: str) -> BackboneSpec:
    """The backbone of extractor `name` (NAME or NAME:VARIANT); fails early, before any weights load, on
    names the registry cannot build."""
    base, _, variant = name.partition(":")
    spec = BACKBONES.get(base)
    if spec is None or spec.extractor is None:
        raise GenbenchError(f"unknown extractor '{name}'; known: {', '.join(extractor_names())}")
    if variant and not spec.variants:
        raise GenbenchError(f"extractor '{name}': '{base}' has no variants; use '{base}'")
    return spec


def _check_view(module: nn.Module, attributes: tuple[str, ...], what: str) -> None:
    """The checked base of the views: a registration error shows at build time, not as a wrong record."""
    missing = [attribute for attribute in attributes if not hasattr(module, attribute)]
    if missing:
        raise TypeError(f"{what}: the built module lacks {', '.join(missing)} (see genbench.backbones)")


def build_extractor(name: str, weights: str | Path | None = None) -> nn.Module:
    """The extractor view of backbone `name`, loaded from `weights` (default: the verified cache file)."""
    spec = check_extractor_name(name)
    extractor = spec.extractor(weights, name.partition(":")[2] or None)
    _check_view(extractor, EXTRACTOR_ATTRIBUTES, f"extractor '{name}'")
    if set(extractor.feature_dims) != set(spec.features):
        raise TypeError(f"extractor '{name}': returns features {sorted(extractor.feature_dims)}, but its "
                        f"backbone declares {sorted(spec.features)}")
    return extractor


def build_encoder(name: str, resolution: int, weights: str | Path | None = None, **options) -> nn.Module:
    """The REPA target view of backbone `name` at image `resolution`; `options` are the builder's own
    (e.g. `grid`, the token grid), as a training config's `encoder` entry gives them."""
    spec = BACKBONES.get(name)
    if spec is None or spec.repa_target is None:
        raise GenbenchError(f"unknown encoder {name!r}; choose from {encoder_names()} or register a backbone")
    encoder = spec.repa_target(resolution, weights=weights, **options)
    _check_view(encoder, TARGET_ATTRIBUTES, f"encoder '{name}'")
    return encoder


# ----------------------------------------------------------------------------- the registered backbones
# The network modules are imported when a view is built: Inception's pulls torch-fidelity, DINOv2's
# transformers and CLIP's open_clip, none of which a run that does not use them should pay for.

def _inception(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.inception import InceptionFeatures

    return InceptionFeatures.from_weights(weights)


def _shapes(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.shapes_features import ShapesFeatures

    return ShapesFeatures.from_weights(weights)


def _shapes_target(resolution: int, weights: str | Path | None = None, grid: int = 4) -> nn.Module:
    from genbench.extractors.shapes_features import build_shapes_encoder

    return build_shapes_encoder(resolution, weights, grid)


def _dinov2(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.dinov2 import Dinov2Features

    return Dinov2Features.from_weights(weights)


def _dinov2_b14_target(resolution: int, weights: str | Path | None = None) -> nn.Module:
    from genbench.extractors.dinov2 import Dinov2Encoder

    return Dinov2Encoder.from_weights(resolution, weights)


def _clip(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.clip import ClipFeatures

    return ClipFeatures.from_weights(weights, variant)


def _tiny_target(resolution: int, weights: str | Path | None = None, grid: int = 4,
                 z_dim: int = 16) -> nn.Module:
    from genbench.extractors.tiny import TinyEncoder

    if weights is not None:
        raise GenbenchError(f"encoder 'tiny': {weights}: the tiny encoder is random and reads no weights")
    return TinyEncoder(resolution, grid, z_dim)


# Inception-v3 as the ADM evaluator runs it (FID, sFID, IS, P/R, KID).
register_backbone(BackboneSpec("inception", ("pool", "logits", "spatial"), extractor=_inception))
# The shapes world's CNN: its metrics' features, and its REPA target (the role DINOv2 has on ImageNet).
register_backbone(BackboneSpec("shapes", ("pool", "logits", "spatial"), extractor=_shapes,
                               repa_target=_shapes_target))
# DINOv2 ViT-L/14, FD-DINOv2 as EDM2 computes it; and ViT-B/14, REPA's alignment target. One loader.
register_backbone(BackboneSpec("dinov2", ("pool",), extractor=_dinov2))
register_backbone(BackboneSpec("dinov2-vit-b", repa_target=_dinov2_b14_target))
# CLIP (open_clip) image embeddings: CMMD and CLIP score; any open_clip model as clip:MODEL/TAG.
register_backbone(BackboneSpec("clip", ("pool",), extractor=_clip, variants=True))
# A random patch encoder for tests and the tiny training presets.
register_backbone(BackboneSpec("tiny", repa_target=_tiny_target))
