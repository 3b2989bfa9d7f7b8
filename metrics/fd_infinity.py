"""FD extrapolated to infinitely many samples (Chong & Forsyth 2020, "Effectively Unbiased FID and
Inception Score and where to find them"), with dgm-eval's `compute_FD_infinity` semantics:

- FD_N is evaluated at `num_points` (15) sample counts N spaced evenly (truncated to int) from
  min(5000, max(N_total // 10, 2)) to N_total, each on N rows drawn without replacement from the samples;
- the bias of FD_N is linear in 1/N to first order, so a least-squares line FD_N = a + b / N is fitted and
  its intercept a is FD_infinity.

The reference side stays fixed (its full statistics). The draws are seeded here (dgm-eval's are unseeded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .bootstrap import frechet_to

ArrayLike = np.ndarray | torch.Tensor
FD_INFINITY_POINTS = 15  # dgm-eval's number of sample counts


@dataclass(frozen=True)
class FDInfinity:
    value: float  # intercept of the fit: FD at N -> infinity
    slope: float  # b in FD_N = a + b / N
    sizes: list[int]
    fds: list[float]


def subset_sizes(total: int, num_points: int = FD_INFINITY_POINTS) -> np.ndarray:
    """[num_points] int sample counts, dgm-eval's spacing."""
    return np.linspace(min(5000, max(total // 10, 2)), total, num_points).astype(np.int64)


def fd_infinity(
    rows: ArrayLike, mu_ref: ArrayLike, sigma_ref: ArrayLike, num_points: int = FD_INFINITY_POINTS,
    seed: int = 0,
) -> FDInfinity:
    """FD_infinity of sample rows [N, d] against reference statistics (mu [d], sigma [d, d])."""
    x = torch.as_tensor(rows).detach()
    if x.ndim != 2 or x.shape[0] < 20:
        raise ValueError(f"FD-infinity needs feature rows [N, d] with N >= 20, got shape {tuple(x.shape)}")
    if num_points < 2:
        raise ValueError(f"FD-infinity fits a line and needs num_points >= 2, got {num_points}")
    sizes = subset_sizes(x.shape[0], num_points)
    statistic = frechet_to(mu_ref, sigma_ref)
    generator = torch.Generator().manual_seed(seed)
    fds = [statistic(x[torch.randperm(x.shape[0], generator=generator)[:n].to(x.device)]) for n in sizes]
    slope, intercept = np.polyfit(1.0 / sizes, np.array(fds), deg=1)
    return FDInfinity(float(intercept), float(slope), sizes.tolist(), fds)
