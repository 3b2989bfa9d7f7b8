"""Kernel Inception Distance as torch-fidelity 0.4 computes it (metric_kid.py): polynomial kernel
(x.y / d + 1)^3, unbiased MMD^2 on `num_subsets` pairs of random subsets of `subset_size` rows drawn
without replacement by `np.random.RandomState(seed)` (fake subset first, then real), mean and std.

Without an explicit `subset_size`, subsets hold min(1000, fake rows, real rows), as clean-fid does
(`kernel_distance`): torch-fidelity's 1000 whenever both sides have it, and a smaller run still gives a
number (which is only comparable with others at the same subset size) instead of an error."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
KID_SUBSET_SIZE = 1000  # torch-fidelity's and clean-fid's subset size
KID_SUBSETS = 100
KID_SEED = 2020  # torch-fidelity's default seed


def kid_subset_size(num_fake: int, num_real: int, requested: int | None = None) -> int:
    """The subset size KID uses: `requested`, or min(KID_SUBSET_SIZE, num_fake, num_real)."""
    return requested if requested is not None else min(KID_SUBSET_SIZE, num_fake, num_real)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between equal-size row sets x, y [m, d] with kernel (x.y / d + coef0)^degree."""
    gamma = 1.0 / x.shape[1]
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    m = x.shape[0]
    # torch-fidelity's reduction order (row sums minus diagonal, then total): float32 round-off matches.
    within_x = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    within_y = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return float((within_x + within_y) / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m))


def kernel_inception_distance(
    fake: ArrayLike, real: ArrayLike, num_subsets: int = KID_SUBSETS, subset_size: int | None = None,
    seed: int = KID_SEED,
) -> tuple[float, float]:
    """(mean, std) of the subset MMD^2 estimates. fake [M, d], real [N, d], both >= subset_size rows
    (default: see `kid_subset_size`)."""
    f = torch.as_tensor(fake).detach().cpu().float().numpy()
    r = torch.as_tensor(real).detach().cpu().float().numpy()
    if f.ndim != 2 or r.ndim != 2 or f.shape[1] != r.shape[1]:
        raise ValueError(f"KID needs [N, d] features of equal d, got {f.shape} and {r.shape}")
    subset_size = kid_subset_size(len(f), len(r), subset_size)
    if min(len(f), len(r)) < subset_size:
        raise ValueError(
            f"KID subsets of {subset_size} need at least that many rows on each side, got {len(f)} fake "
            f"and {len(r)} real; use more samples or a smaller subset size"
        )
    rng = np.random.RandomState(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        f_subset = f[rng.choice(len(f), subset_size, replace=False)]
        r_subset = r[rng.choice(len(r), subset_size, replace=False)]
        estimates[i] = polynomial_mmd2(f_subset, r_subset)
    return float(estimates.mean()), float(estimates.std())
