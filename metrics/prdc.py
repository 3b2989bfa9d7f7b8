"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics"), with the reference
`prdc` package's semantics (clovaai/generative-evaluation-prdc, also dgm-eval's `prdc`):

- Euclidean distances; radius of real row i = distance to its k-th nearest real neighbour, self excluded
  (k = 5);
- membership is strict: fake j is in the ball of real i when d(i, j) < radius_i;
- density = 1 / (k M) * sum_j sum_i 1[d(i, j) < radius_i], over M fake rows (can exceed 1);
- coverage = share of real rows whose nearest fake row lies inside their ball.

Squared distances are compared against squared radii (the same order, so the same decisions). Everything
runs in row x column blocks (memory O(block^2)); distances are float32 with no float16 rounding.
precision/recall in prdc's form differ from ADM's (`metrics.precision_recall`, k=3, <=) only in k and at
exact ties, so they are computed there with `k` and `half=False`.
"""

from __future__ import annotations

import numpy as np
import torch

from .precision_recall import _squared_distances, manifold_radii, paired_rows

ArrayLike = np.ndarray | torch.Tensor
DC_K = 5  # prdc's and the paper's k


def density_coverage(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = DC_K,
    block_size: int = 10_000,
    device: str | torch.device | None = None,
) -> tuple[float, float]:
    """(density, coverage) of fake rows [M, d] against real rows [N, d] (N > k)."""
    r, f = paired_rows(real, fake, device)
    squared_radii = manifold_radii(r, k, half=False, block_size=block_size)
    balls_containing = 0.0  # sum over real i and fake j of 1[d(i, j) < radius_i]
    covered = torch.zeros(r.shape[0], dtype=torch.bool, device=r.device)
    for start in range(0, r.shape[0], block_size):
        radii = squared_radii[start : start + block_size, None]
        nearest_fake = torch.full_like(radii[:, 0], float("inf"))
        for c in range(0, f.shape[0], block_size):
            distances = _squared_distances(r[start : start + block_size], f[c : c + block_size], half=False)
            balls_containing += float((distances < radii).sum())
            nearest_fake = torch.minimum(nearest_fake, distances.min(dim=1).values)
        covered[start : start + block_size] = nearest_fake < radii[:, 0]
    density = balls_containing / (k * f.shape[0])
    return density, float(covered.double().mean())
