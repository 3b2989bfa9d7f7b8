"""Streaming feature statistics: count, sum and sum of outer products in float64 (as EDM2 accumulates),
mergeable across shards and reducible across `torch.distributed` ranks."""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


class FeatureStats:
    """Running mean and covariance of d-dimensional feature rows."""

    def __init__(self, dim: int, device: torch.device | str = "cpu"):
        self.dim = dim
        self.count = 0
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        """Add a batch of rows [N, dim]."""
        x = torch.as_tensor(features).to(self.sum.device, torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features of shape [N, {self.dim}], got {tuple(x.shape)}")
        self.count += x.shape[0]
        self.sum += x.sum(dim=0)
        self.sum_outer += x.T @ x

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's rows to this one (shards, ranks). Returns self."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        self.count += other.count
        self.sum += other.sum.to(self.sum.device)
        self.sum_outer += other.sum_outer.to(self.sum.device)
        return self

    def all_reduce(self) -> None:
        """Sum the statistics of all ranks in place (no-op outside torch.distributed)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        count = torch.tensor([float(self.count)], dtype=torch.float64, device=self.sum.device)
        for tensor in (count, self.sum, self.sum_outer):
            dist.all_reduce(tensor)
        self.count = int(count.item())

    @property
    def mean(self) -> np.ndarray:
        """[dim] float64."""
        self._require(1)
        return (self.sum / self.count).cpu().numpy()

    @property
    def covariance(self) -> np.ndarray:
        """[dim, dim] float64, unbiased (ddof=1) like np.cov(rowvar=False)."""
        self._require(2)
        mean = self.sum / self.count
        cov = (self.sum_outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return cov.cpu().numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": torch.tensor(self.count), "sum": self.sum.cpu(), "sum_outer": self.sum_outer.cpu()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> FeatureStats:
        stats = cls(int(state["sum"].shape[0]))
        stats.count = int(state["count"])
        stats.sum = state["sum"].to(torch.float64).clone()
        stats.sum_outer = state["sum_outer"].to(torch.float64).clone()
        return stats

    def _require(self, count: int) -> None:
        if self.count < count:
            raise ValueError(f"need at least {count} feature rows for these statistics, have {self.count}")
