"""Full-reference image quality on 8-bit pixels: PSNR and SSIM, batched in torch.

Both follow scikit-image (`peak_signal_noise_ratio`, and `structural_similarity` with gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis set):

- PSNR per image = 10 log10(255^2 / MSE) over all its pixels and channels, then averaged over images
  (LightningDiT's tokenizer protocol); identical images give +inf, as in skimage.
- SSIM: local statistics from an 11-tap Gaussian (sigma 1.5, truncate 3.5, normalised taps), K1 = 0.01,
  K2 = 0.03, population (co)variances. skimage filters with reflected borders and then crops (11 - 1) / 2
  pixels from every side before averaging; the cropped values never touch the border, so a 'valid'
  convolution gives the same map. Mean per channel, then over channels, then over images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage.gaussian_filter default, as skimage uses
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0


def _as_uint8_batch(name: str, images: ArrayLike) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float64 tensor of the same shape."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 pixels [N, C, H, W], got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be [N, C, H, W], got shape {tuple(x.shape)}")
    return x.to(torch.float64)


def _pair(originals: ArrayLike, reconstructions: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    x = _as_uint8_batch("originals", originals)
    y = _as_uint8_batch("reconstructions", reconstructions).to(x.device)
    if x.shape != y.shape:
        raise ValueError(f"originals {tuple(x.shape)} and reconstructions {tuple(y.shape)} differ in shape")
    return x, y


def psnr_per_image(originals: ArrayLike, reconstructions: ArrayLike) -> torch.Tensor:
    """[N] PSNR in dB of uint8 images [N, C, H, W] (data range 255)."""
    x, y = _pair(originals, reconstructions)
    mse = ((x - y) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def psnr(originals: ArrayLike, reconstructions: ArrayLike) -> float:
    """Mean over images of the per-image PSNR."""
    return float(psnr_per_image(originals, reconstructions).mean())


def _gaussian_taps(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[11] normalised Gaussian taps, radius int(truncate * sigma + 0.5) = 5, like scipy's gaussian_filter."""
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return taps / taps.sum()


def _filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of every channel: [B, C, H, W] -> [B, C, H - 10, W - 10]."""
    channels = x.shape[1]
    rows = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return F.conv2d(F.conv2d(x, rows, groups=channels), cols, groups=channels)


def ssim_per_image(
    originals: ArrayLike, reconstructions: ArrayLike, batch_size: int = 64
) -> torch.Tensor:
    """[N] SSIM of uint8 images [N, C, H, W], H and W at least 11."""
    x, y = _pair(originals, reconstructions)
    window = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1
    if min(x.shape[2:]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels, got {tuple(x.shape[2:])}")
    taps = _gaussian_taps(x.dtype, x.device)
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    scores = []
    for start in range(0, x.shape[0], batch_size):
        a, b = x[start : start + batch_size], y[start : start + batch_size]
        mu_a, mu_b = _filter(a, taps), _filter(b, taps)
        var_a = _filter(a * a, taps) - mu_a**2
        var_b = _filter(b * b, taps) - mu_b**2
        cov_ab = _filter(a * b, taps) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
        )
        scores.append(ssim_map.flatten(2).mean(dim=2).mean(dim=1))  # per channel, then over channels
    return torch.cat(scores)


def ssim(originals: ArrayLike, reconstructions: ArrayLike, batch_size: int = 64) -> float:
    """Mean over images of the per-image SSIM."""
    return float(ssim_per_image(originals, reconstructions, batch_size).mean())
