"""Feature extractors behind one registry. An extractor maps uint8 images [N, 3, H, W] to named float32
feature rows in one forward pass and carries what provenance needs: `name`, `feature_dims`,
`weights_sha256`, `resize_mode`.

Names are `NAME` or `NAME:VARIANT` (e.g. `clip:ViT-B-32/laion2b_s34b_b79k`); builders get
`(weights, variant)` and refuse variants they do not have."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from genbench.errors import GenbenchError

ExtractorBuilder = Callable[[str | Path | None, str | None], nn.Module]


def _inception(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.inception import InceptionFeatures

    return InceptionFeatures.from_weights(weights)


def _shapes(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.shapes import ShapesFeatures

    return ShapesFeatures.from_weights(weights)


def _dinov2(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.dinov2 import Dinov2Features

    return Dinov2Features.from_weights(weights)


def _clip(weights: str | Path | None, variant: str | None) -> nn.Module:
    from genbench.extractors.clip import ClipFeatures

    return ClipFeatures.from_weights(weights, variant)


EXTRACTORS: dict[str, ExtractorBuilder] = {
    "inception": _inception,
    "shapes": _shapes,
    "dinov2": _dinov2,
    "clip": _clip,
}
HAS_VARIANTS = {"clip"}


def check_extractor_name(name: str) -> None:
    """Fail early (before any weights load) on names the registry cannot build."""
    base, _, variant = name.partition(":")
    if base not in EXTRACTORS:
        raise GenbenchError(f"unknown extractor '{name}'; known: {', '.join(sorted(EXTRACTORS))}")
    if variant and base not in HAS_VARIANTS:
        raise GenbenchError(f"extractor '{name}': '{base}' has no variants; use '{base}'")


def build_extractor(name: str, weights: str | Path | None = None) -> nn.Module:
    """The registered extractor `name`, loaded from `weights` (default: the verified cache file)."""
    check_extractor_name(name)
    base, _, variant = name.partition(":")
    return EXTRACTORS[base](weights, variant or None)
