"""Pixel conventions in one place. Images travel as uint8 [N, 3, H, W] (sources, extractors, samplers'
output); networks read them in [0, 1] (feature networks) or [-1, 1] (VAEs, SiT pixels), and generated
[-1, 1] images are quantised back to uint8 as DiT and REPA do."""

from __future__ import annotations

import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]; float input is taken to be in [0, 1] already."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
