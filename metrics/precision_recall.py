"""Improved precision and recall with the ADM evaluator's `ManifoldEstimator` semantics
(guided-diffusion evaluations/evaluator.py, after kynkaat/improved-precision-and-recall-metric):

- distances are squared Euclidean, max(|u|^2 - 2 u.v + |v|^2, 0);
- a point's radius is the k-th smallest distance to its own set counting itself (so the k-th nearest
  neighbour excluding self, k = 3);
- membership is inclusive, d <= radius;
- precision = share of fake rows inside the real manifold, recall = share of real rows inside the fake one.

ADM evaluates distances in float16 (inputs cast to half, result cast back), falling back to float32 for a
block whose half result is not finite. `half=True` (default) reproduces that rounding; `half=False` keeps
float32 throughout. Everything runs in row x column blocks, so memory is O(block^2), not O(N^2).
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _squared_distances(u: torch.Tensor, v: torch.Tensor, half: bool) -> torch.Tensor:
    """[n, m] squared distances in float32, rounded through float16 when `half` (ADM's DistanceBlock)."""

    def compute(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        norm_a = (a * a).sum(dim=1, keepdim=True)
        norm_b = (b * b).sum(dim=1, keepdim=True).T
        return (norm_a - 2 * a @ b.T + norm_b).clamp(min=0)

    if half:
        rounded = compute(u.half().float(), v.half().float()).half()
        if torch.isfinite(rounded).all():
            return rounded.float()
    return compute(u, v)


def manifold_radii(
    features: ArrayLike, k: int = 3, half: bool = True, block_size: int = 10_000
) -> torch.Tensor:
    """[N] distance from each row to its k-th nearest neighbour in the same set (self excluded)."""
    x = _as_rows("features", features)
    if x.shape[0] <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} feature rows, got {x.shape[0]}")
    radii = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], block_size):
        rows = x[start : start + block_size]
        distances = torch.cat(
            [_squared_distances(rows, x[c : c + block_size], half) for c in range(0, x.shape[0], block_size)],
            dim=1,
        )
        radii[start : start + block_size] = distances.kthvalue(k + 1, dim=1).values
    return radii


def _coverage(
    points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, half: bool, block_size: int
) -> torch.Tensor:
    """[len(points)] bool: inside at least one ball (centre, radius), distance <= radius."""
    inside = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for start in range(0, points.shape[0], block_size):
        rows = points[start : start + block_size]
        for c in range(0, centres.shape[0], block_size):
            distances = _squared_distances(rows, centres[c : c + block_size], half)
            inside[start : start + block_size] |= (distances <= radii[c : c + block_size]).any(dim=1)
    return inside


def precision_recall(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = 3,
    half: bool = True,
    block_size: int = 10_000,
    device: str | torch.device | None = None,
) -> tuple[float, float]:
    """(precision, recall) of fake rows [M, d] against real rows [N, d]."""
    r, f = paired_rows(real, fake, device)
    real_radii = manifold_radii(r, k, half, block_size)
    fake_radii = manifold_radii(f, k, half, block_size)
    precision = _coverage(f, r, real_radii, half, block_size).double().mean()
    recall = _coverage(r, f, fake_radii, half, block_size).double().mean()
    return float(precision), float(recall)


def paired_rows(
    real: ArrayLike, fake: ArrayLike, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float32 real [N, d] and fake [M, d] rows on one device."""
    r = _as_rows("real features", real, device)
    f = _as_rows("fake features", fake, r.device)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {r.shape[1]} vs {f.shape[1]}")
    return r, f


def _as_rows(name: str, value: ArrayLike, device: str | torch.device | None = None) -> torch.Tensor:
    x = torch.as_tensor(value).detach().to(device=device, dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return x
