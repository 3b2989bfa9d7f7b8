"""CMMD ("Rethinking FID", Jayasumana et al. 2024): maximum mean discrepancy with a Gaussian RBF kernel on
CLIP embeddings, as the original google-research `cmmd` code computes it:

    CMMD = 1000 * (mean K(x, x') + mean K(y, y') - 2 mean K(x, y)),  K(a, b) = exp(-|a - b|^2 / (2 sigma^2))

with sigma = 10 and every mean over all pairs, diagonals included (the biased V-statistic). `unbiased=True`
drops the diagonals of K(x, x') and K(y, y') instead (the U-statistic, whose expectation is the population
MMD^2 and which can be negative). Embeddings are used as given (the original feeds L2-normalised CLIP
image embeddings). Kernel sums run in float64 over row x column blocks.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, gamma: float, block_size: int) -> float:
    """sum_ij exp(-gamma |a_i - b_j|^2) in float64, in row x column blocks computed in place in one
    buffer: memory O(block^2) whatever N is (temporaries per block let the peak grow with N)."""
    buffer = a.new_empty(min(block_size, a.shape[0]) * min(block_size, b.shape[0]))
    total = 0.0
    for start in range(0, a.shape[0], block_size):
        rows = a[start : start + block_size]
        row_norms = (rows * rows).sum(dim=1, keepdim=True)
        for c in range(0, b.shape[0], block_size):
            columns = b[c : c + block_size]
            squared = torch.mm(rows, columns.T, out=buffer[: len(rows) * len(columns)].view(len(rows), -1))
            # |r|^2 - 2 r.c + |c|^2, the same operations in the same order as written out
            squared.mul_(-2).add_(row_norms).add_((columns * columns).sum(dim=1)).clamp_(min=0)
            total += float(squared.mul_(-gamma).exp_().sum())
    return total


def _as_embeddings(name: str, value: ArrayLike) -> torch.Tensor:
    x = torch.as_tensor(value).detach().to("cpu", torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must be [N, d] with N >= 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def mmd_rbf(
    x: ArrayLike,
    y: ArrayLike,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
    unbiased: bool = False,
    block_size: int = 4096,
) -> float:
    """scale * MMD^2 between rows x [N, d] and y [M, d] under the RBF kernel of bandwidth sigma."""
    a, b = _as_embeddings("x embeddings", x), _as_embeddings("y embeddings", y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    gamma = 1.0 / (2.0 * sigma**2)
    n, m = a.shape[0], b.shape[0]
    k_xx, k_yy = _kernel_sum(a, a, gamma, block_size), _kernel_sum(b, b, gamma, block_size)
    k_xy = _kernel_sum(a, b, gamma, block_size) / (n * m)
    if unbiased:  # K(a, a) = 1 on the diagonal
        k_xx, k_yy = (k_xx - n) / (n * (n - 1)), (k_yy - m) / (m * (m - 1))
    else:
        k_xx, k_yy = k_xx / n**2, k_yy / m**2
    return scale * (k_xx + k_yy - 2.0 * k_xy)


def cmmd(sample_embeddings: ArrayLike, reference_embeddings: ArrayLike, unbiased: bool = False) -> float:
    """CMMD between CLIP embeddings [N, d] of samples and of reference images (sigma 10, scale 1000)."""
    return mmd_rbf(sample_embeddings, reference_embeddings, CMMD_SIGMA, CMMD_SCALE, unbiased)
