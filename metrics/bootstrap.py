"""Bootstrap confidence intervals for set metrics (FID and any other function of the sample rows).

The sample side is resampled with replacement (same size, seeded), the metric recomputed against the fixed
reference, and the interval is the percentile interval of the resampled values. Resampling duplicates rows,
which biases distances such as FD upward by O(d / N); the interval is therefore a spread, not an unbiased
estimate, and is reported beside the full-sample value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .frechet import frechet_distance
from .stats import FeatureStats

ArrayLike = np.ndarray | torch.Tensor
BOOTSTRAP_CONFIDENCE = 0.95


@dataclass(frozen=True)
class BootstrapInterval:
    value: float  # the metric on the full sample
    lower: float
    upper: float
    std: float  # standard deviation of the resampled values
    confidence: float
    resamples: int


def bootstrap_interval(
    rows: ArrayLike,
    statistic: Callable[[torch.Tensor], float],
    resamples: int = 100,
    confidence: float = BOOTSTRAP_CONFIDENCE,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile bootstrap interval of statistic(rows [N, d]) over resamples of the rows."""
    x = torch.as_tensor(rows).detach()
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"bootstrap needs feature rows [N, d] with N >= 2, got shape {tuple(x.shape)}")
    if resamples < 2 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 2 and 0 < confidence < 1, got {resamples} and {confidence}")
    generator = torch.Generator().manual_seed(seed)
    values = np.array(
        [
            statistic(x[torch.randint(0, x.shape[0], (x.shape[0],), generator=generator).to(x.device)])
            for _ in range(resamples)
        ]
    )
    alpha = (1 - confidence) / 2
    lower, upper = np.quantile(values, [alpha, 1 - alpha])
    return BootstrapInterval(
        float(statistic(x)), float(lower), float(upper), float(values.std(ddof=1)), confidence, resamples
    )


def gaussian_of(rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], covariance [d, d]) of rows [N, d] in float64, via FeatureStats like the pipeline."""
    stats = FeatureStats(rows.shape[1], device=rows.device)
    stats.update(rows)
    return stats.mean, stats.covariance


def frechet_to(mu_ref: ArrayLike, sigma_ref: ArrayLike) -> Callable[[torch.Tensor], float]:
    """statistic(rows) = FD between the Gaussian of the rows and the reference N(mu_ref, sigma_ref)."""

    def statistic(rows: torch.Tensor) -> float:
        mu, sigma = gaussian_of(rows)
        return frechet_distance(mu, sigma, mu_ref, sigma_ref)

    return statistic


def bootstrap_frechet(
    rows: ArrayLike,
    mu_ref: ArrayLike,
    sigma_ref: ArrayLike,
    resamples: int = 100,
    confidence: float = BOOTSTRAP_CONFIDENCE,
    seed: int = 0,
) -> BootstrapInterval:
    """Bootstrap interval of the FD of sample rows [N, d] to reference statistics (e.g. FID)."""
    return bootstrap_interval(rows, frechet_to(mu_ref, sigma_ref), resamples, confidence, seed)
