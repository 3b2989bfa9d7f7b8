"""Pixel conventions in one place. Images travel as uint8 [N, 3, H, W] (sources, extractors, samplers'
output); networks read them in [0, 1] (feature networks) or [-1, 1] (VAEs, SiT pixels), and generated
[-1, 1] images are quantised back to uint8 as DiT and REPA do."""

from __future__ import annotations

import numpy as np
import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]; float input is taken to be in [0, 1] already."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float in [-1, 1] (x / 127.5 - 1), what VAEs and pixel-space SiTs read."""
    return images.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3] as DiT/REPA: clamp(127.5 x + 128, 0, 255), truncated."""
    quantised = torch.clamp(127.5 * images.float() + 128.0, 0, 255).to(torch.uint8)
    return quantised.permute(0, 2, 3, 1).cpu().numpy()
