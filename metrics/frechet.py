"""Fréchet distance between two Gaussians, exact in float64 and safe on singular covariances.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2). S1 S2 is similar to the symmetric PSD matrix
F^T S2 F for any factor S1 = F F^T (Cholesky when S1 is positive definite, else F = sqrt(S1) from eigh),
so tr sqrt(S1 S2) = sum sqrt(eigvalsh(F^T S2 F)): symmetric solves instead of `scipy.linalg.sqrtm` of a
non-symmetric product (slow, and complex or NaN when N < d). Negative eigenvalues are round-off and are
clamped to 0, so the result is real and finite.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_float64(name: str, value: ArrayLike, ndim: int) -> torch.Tensor:
    tensor = torch.as_tensor(value).detach().to("cpu", torch.float64)
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values; the features or statistics are corrupt")
    return tensor


def trace_sqrt_product(sigma1: ArrayLike, sigma2: ArrayLike) -> float:
    """tr sqrt(sigma1 @ sigma2) for symmetric PSD sigma1, sigma2 [d, d], in float64."""
    s1 = _as_float64("sigma1", sigma1, 2)
    s2 = _as_float64("sigma2", sigma2, 2)
    s1 = (s1 + s1.T) / 2  # np.cov output is symmetric only up to round-off
    s2 = (s2 + s2.T) / 2
    factor, info = torch.linalg.cholesky_ex(s1)
    if info == 0:  # positive definite: S1 = L L^T, and L^T S2 L is similar to S1 S2 (~10x cheaper than eigh)
        middle = factor.T @ s2 @ factor
    else:  # singular (N <= d): the PSD square root R = V sqrt(max(L, 0)) V^T instead
        eigenvalues, eigenvectors = torch.linalg.eigh(s1)
        root = (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T
        middle = root @ s2 @ root
    return float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2). mu: [d], sigma: [d, d]."""
    m1, m2 = _as_float64("mu1", mu1, 1), _as_float64("mu2", mu2, 1)
    s1, s2 = _as_float64("sigma1", sigma1, 2), _as_float64("sigma2", sigma2, 2)
    d = m1.shape[0]
    if m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"mismatched dimensions: mu1 {tuple(m1.shape)}, sigma1 {tuple(s1.shape)}, "
            f"mu2 {tuple(m2.shape)}, sigma2 {tuple(s2.shape)}"
        )
    mean_term = float(((m1 - m2) ** 2).sum())
    return mean_term + float(s1.trace() + s2.trace()) - 2.0 * trace_sqrt_product(s1, s2)
