"""What a metric declares, in one place: the features it reads, its typed options, and for each output column
its direction, display decimals and default `check` tolerance. `metrics.registry` holds the declarations;
evaluation, leaderboards, `check` and the CLI read them (docs/architecture.md, "how to add a metric")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np
import torch

from .bootstrap import BOOTSTRAP_CONFIDENCE
from .fd_infinity import FD_INFINITY_POINTS
from .inception_score import IS_SPLIT_SIZE
from .kid import KID_SEED, KID_SUBSETS
from .prdc import DC_K
from .precision_recall import PR_K


class Direction(Enum):
    """Which way a column gets better; `sign` is -1 (lower is better), +1 (higher) or None."""

    LOWER = "lower"
    HIGHER = "higher"
    NONE = "none"

    @property
    def sign(self) -> int | None:
        return {"lower": -1, "higher": 1}.get(self.value)


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: `value` in the metric's units, or a fraction of the baseline."""

    value: float
    relative: bool = False

    def allowed(self, baseline: float) -> float:
        return self.value * abs(baseline) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


# Unbounded columns (FID, IS, ...) may get 2% worse; bounded ones declare an absolute tolerance.
RELATIVE_TOLERANCE = Tolerance(0.02, relative=True)


@dataclass(frozen=True)
class Column:
    """A board or results column: which way is better, decimals shown on boards, `check`'s default
    tolerance (read only for columns with a direction)."""

    name: str
    direction: Direction = Direction.NONE
    decimals: int = 3
    tolerance: Tolerance = RELATIVE_TOLERANCE


@dataclass
class FeatureSide:
    """What a metric may read of one side (samples or reference), per extractor feature name, and the
    samples' class labels where a metric reads them."""

    gaussians: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (mean, covariance)
    rows: dict[str, torch.Tensor] = field(default_factory=dict)  # [N, d], sample order
    labels: torch.Tensor | None = None  # int64 [N], sample order (ADM's arr_1)

    def gaussian(self, feature: str) -> tuple[np.ndarray, np.ndarray]:
        if feature not in self.gaussians:
            raise ValueError(f"no mean/covariance for feature '{feature}'")
        return self.gaussians[feature]

    def features(self, feature: str) -> torch.Tensor:
        if feature not in self.rows:
            raise ValueError(f"no kept feature rows for feature '{feature}'")
        return self.rows[feature]

    def class_labels(self) -> torch.Tensor:
        if self.labels is None:
            raise ValueError("no class labels for these samples")
        return self.labels


@dataclass(frozen=True)
class MetricOptions:
    """Every metric and evaluation option, its default the metric module's constant. Recorded as the
    results' `metric_options`."""

    is_split_size: int = IS_SPLIT_SIZE
    pr_k: int = PR_K
    dc_k: int = DC_K
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int | None = None  # None: see metrics.kid.kid_subset_size
    seed: int = KID_SEED  # KID's subset draws
    cmmd_unbiased: bool = False
    bootstrap: int = 0  # resamples for confidence intervals of every metric; 0 = off
    bootstrap_confidence: float = BOOTSTRAP_CONFIDENCE
    bootstrap_seed: int = 0
    fd_infinity: bool = False  # FD extrapolated to infinitely many samples for every FD
    fd_infinity_points: int = FD_INFINITY_POINTS


# compute(samples, reference or None, options, device of k-NN work or None) -> {output column: value}
Compute = Callable[[FeatureSide, FeatureSide | None, MetricOptions, str | None], dict[str, float]]


def _two(options: MetricOptions) -> int:
    return 2


@dataclass(frozen=True)
class MetricSpec:
    """One metric. `feature`: the extractor output it reads; `uses`: its Gaussian statistics or its kept
    rows; `reference`: whether it reads a reference side; `extractor`: the extractor it reads (None: the
    run's); `labels`: whether it reads the samples' class labels; `min_samples(options)`: rows needed per
    side; `outputs`: the columns `function` returns, with their direction, decimals and tolerance."""

    name: str
    function: Compute
    outputs: tuple[Column, ...]
    feature: str
    uses: Literal["stats", "rows"]
    reference: bool = True
    extractor: str | None = None
    labels: bool = False
    min_samples: Callable[[MetricOptions], int] = _two

    def compute(self, sample: FeatureSide, reference: FeatureSide | None, options: MetricOptions,
                device: str | None = None) -> dict[str, float]:
        """The metric's values, keyed by exactly its declared output columns."""
        values = self.function(sample, reference if self.reference else None, options, device)
        declared = [column.name for column in self.outputs]
        if sorted(values) != sorted(declared):
            raise ValueError(f"metric '{self.name}' returned {sorted(values)}, but declares {declared}")
        return values
