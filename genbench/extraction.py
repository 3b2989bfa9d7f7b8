"""The one extraction loop: a sample source, batch by batch, through a feature function.

`stream_features` is what eval (`extract`: float64 statistics and kept rows), the linear probe
(`genbench.probe.extract_features`) and the tokenizer comparison (`genbench.tokenizer_comparison.
reconstruct`) share: batching, this rank's slice of the samples, inference mode, progress, and one check
that every floating output is finite, with one message naming the samples. Under `torchrun` each rank
extracts a contiguous slice; `extract` reduces statistics and gathers rows so the numbers equal a
single-process run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from genbench.distributed import gather_rows, init_distributed, rank_slice
from genbench.errors import GenbenchError
from genbench.metrics.stats import FeatureStats
from genbench.sources import SampleSource

FeatureFn = Callable[[torch.Tensor, torch.Tensor], dict[str, Any]]
ProgressCallback = Callable[[int], None]


def stream_features(source: SampleSource, features: FeatureFn, batch_size: int = 64, *,
                    indices: Sequence[int] | None = None, num_workers: int = 0,
                    progress: ProgressCallback | None = None, producer: str = "the feature network",
                    fix: str = "check the weights file and the images"
                    ) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
    """Yield `(features(images uint8 [N, 3, H, W], index int64 [N]), index)` for each batch of `source`
    (all of it, or `indices`), under inference mode. Floating tensors among the outputs must be finite: else
    a GenbenchError names the samples, what produced them (`producer`) and the `fix`."""
    for images, index in source.batches(batch_size, indices=indices, num_workers=num_workers):
        with torch.inference_mode():
            outputs = features(images, index)
        for name, value in outputs.items():
            floating = isinstance(value, torch.Tensor) and value.is_floating_point()
            if floating and not torch.isfinite(value).all():
                raise GenbenchError(f"{source.description}: {producer} produced non-finite '{name}' features "
                                    f"for samples {int(index[0])}..{int(index[-1])}; {fix}")
        yield outputs, index
        if progress is not None:
            progress(len(index))


@dataclass
class ExtractedFeatures:
    """Per feature name: float64 statistics, and the kept rows (sample order) where a metric needs them."""

    stats: dict[str, FeatureStats] = field(default_factory=dict)
    rows: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0
    seconds: float = 0.0

    @property
    def gaussians(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{feature: (mean, covariance)}, as FeatureSide and ReferenceStats hold them."""
        return {feature: (stats.mean, stats.covariance) for feature, stats in self.stats.items()}


def extract(
    source: SampleSource,
    extractor: torch.nn.Module,
    stats_for: Sequence[str],
    rows_for: Sequence[str],
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> ExtractedFeatures:
    """One pass over `source`: float64 statistics for `stats_for`, kept rows for `rows_for`."""
    rank, world_size = init_distributed(device)
    indices = rank_slice(len(source), rank, world_size)
    out = ExtractedFeatures(stats={name: FeatureStats(extractor.feature_dims[name]) for name in stats_for})
    # Rows go straight to their place: one copy in memory, never a list of batches plus its concatenation.
    kept = {name: torch.empty(len(indices), extractor.feature_dims[name]) for name in rows_for}
    start = time.perf_counter()
    extractor.eval().to(device)
    batches = stream_features(source, lambda images, index: extractor(images.to(device)), batch_size,
                              indices=indices, num_workers=num_workers, progress=progress,
                              producer=f"the {extractor.name} extractor")
    for features, index in batches:
        for name, feats in features.items():
            if name in out.stats:
                out.stats[name].update(feats)
            if name in kept:
                kept[name][index - indices.start] = feats.float().cpu()
    for stats in out.stats.values():
        stats.all_reduce()
    for name, rows in kept.items():
        out.rows[name] = gather_rows(rows, torch.arange(indices.start, indices.stop))
    out.count = len(source)
    out.seconds = time.perf_counter() - start
    return out
