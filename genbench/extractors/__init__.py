"""Feature extractors behind one registry. An extractor maps uint8 images [N, 3, H, W] to named float32
feature rows in one forward pass and carries what provenance needs: `name`, `feature_dims`,
`weights_sha256`, `resize_mode`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from genbench.errors import GenbenchError

ExtractorBuilder = Callable[[str | Path | None], nn.Module]


def _inception(weights: str | Path | None) -> nn.Module:
    from genbench.extractors.inception import InceptionFeatures

    return InceptionFeatures.from_weights(weights)


def _shapes(weights: str | Path | None) -> nn.Module:
    from genbench.extractors.shapes import ShapesFeatures

    return ShapesFeatures.from_weights(weights)


EXTRACTORS: dict[str, ExtractorBuilder] = {
    "inception": _inception,
    "shapes": _shapes,
}


def build_extractor(name: str, weights: str | Path | None = None) -> nn.Module:
    """The registered extractor `name`, loaded from `weights` (default: the verified cache file)."""
    if name not in EXTRACTORS:
        raise GenbenchError(f"unknown extractor '{name}'; known: {', '.join(sorted(EXTRACTORS))}")
    return EXTRACTORS[name](weights)
