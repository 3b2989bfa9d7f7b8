"""The metric registry: each metric names the extractor feature it reads, whether it needs Gaussian
statistics or the kept feature rows, and which extractor it reads when it has its own (FD-DINOv2 reads
`dinov2`, CMMD `clip`; the others read the run's extractor), so an evaluation runs each extractor once and
extracts each feature set once for all metrics. `class_acc` also reads the samples' class labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .class_accuracy import class_accuracy, class_logits
from .frechet import frechet_distance
from .inception_score import inception_score
from .kid import KID_SEED, KID_SUBSETS, kernel_inception_distance
from .mmd import cmmd
from .prdc import density_coverage
from .precision_recall import precision_recall


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


Options = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """name: registry key; feature: extractor output read; uses: "stats" or "rows" on each side it reads;
    reference: whether a reference side is needed; min_samples(options): rows needed per side;
    extractor: the extractor it reads (None: the run's extractor); labels: whether it reads the samples'
    class labels."""

    name: str
    feature: str
    uses: str
    reference: bool
    compute: Callable[[FeatureSide, FeatureSide | None, Options], dict[str, float]]
    min_samples: Callable[[Options], int] = lambda options: 2
    extractor: str | None = None
    labels: bool = False


def _fid(sample: FeatureSide, ref: FeatureSide | None, options: Options, feature: str, key: str) -> dict:
    assert ref is not None
    mu1, sigma1 = sample.gaussian(feature)
    mu2, sigma2 = ref.gaussian(feature)
    return {key: frechet_distance(mu1, sigma1, mu2, sigma2)}


def _is(sample: FeatureSide, ref: FeatureSide | None, options: Options) -> dict:
    mean, std = inception_score(sample.features("logits"), split_size=options.get("is_split_size", 5000))
    return {"is": mean, "is_std": std}


def _pr(sample: FeatureSide, ref: FeatureSide | None, options: Options) -> dict:
    assert ref is not None
    precision, recall = precision_recall(
        ref.features("pool"), sample.features("pool"), k=options.get("pr_k", 3),
        device=options.get("device"),
    )
    return {"precision": precision, "recall": recall}


def _kid(sample: FeatureSide, ref: FeatureSide | None, options: Options) -> dict:
    assert ref is not None
    mean, std = kernel_inception_distance(
        sample.features("pool"), ref.features("pool"),
        num_subsets=options.get("kid_subsets", KID_SUBSETS), subset_size=options.get("kid_subset_size"),
        seed=options.get("seed", KID_SEED),
    )
    return {"kid": mean, "kid_std": std}


def _cmmd(sample: FeatureSide, ref: FeatureSide | None, options: Options) -> dict:
    assert ref is not None
    unbiased = options.get("cmmd_unbiased", False)
    return {"cmmd": cmmd(sample.features("pool"), ref.features("pool"), unbiased=unbiased)}


def _density_coverage(sample: FeatureSide, ref: FeatureSide | None, options: Options) -> dict:
    assert ref is not None
    density, coverage = density_coverage(
        ref.features("pool"), sample.features("pool"), k=options.get("dc_k", 5), device=options.get("device")
    )
    return {"density": density, "coverage": coverage}


def _class_acc(sample: FeatureSide, ref: FeatureSide | None, options: Options) -> dict:
    return {"class_acc": class_accuracy(class_logits(sample.features("logits")), sample.class_labels())}


METRICS: dict[str, Metric] = {
    "fid": Metric("fid", "pool", "stats", True, lambda s, r, o: _fid(s, r, o, "pool", "fid")),
    "fd": Metric("fd", "pool", "stats", True, lambda s, r, o: _fid(s, r, o, "pool", "fd")),
    "fd_dinov2": Metric(  # EDM2's FD-DINOv2
        "fd_dinov2", "pool", "stats", True, lambda s, r, o: _fid(s, r, o, "pool", "fd_dinov2"),
        extractor="dinov2",
    ),
    "sfid": Metric("sfid", "spatial", "stats", True, lambda s, r, o: _fid(s, r, o, "spatial", "sfid")),
    "is": Metric("is", "logits", "rows", False, _is, lambda o: 1),
    "pr": Metric("pr", "pool", "rows", True, _pr, lambda o: o.get("pr_k", 3) + 1),
    "kid": Metric("kid", "pool", "rows", True, _kid, lambda o: o.get("kid_subset_size") or 2),
    "cmmd": Metric("cmmd", "pool", "rows", True, _cmmd, extractor="clip"),
    "density_coverage": Metric(
        "density_coverage", "pool", "rows", True, _density_coverage, lambda o: o.get("dc_k", 5) + 1
    ),
    "class_acc": Metric("class_acc", "logits", "rows", False, _class_acc, lambda o: 1, labels=True),
}
