"""Glue for one evaluation: sample source -> extractor -> statistics -> metrics -> (metrics, provenance).

Each requested feature set is extracted once, in one pass over the samples, for all requested metrics.
Under `torchrun`, every rank extracts a contiguous slice of the samples and the statistics (and kept
feature rows, in sample order) are reduced across ranks, so the numbers equal a single-process run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from genbench.errors import GenbenchError
from genbench.reference import GAUSSIAN_KEYS, ReferenceStats
from genbench.sources import SampleSource
from metrics.registry import METRICS, FeatureSide, Metric, Options
from metrics.stats import FeatureStats

FULL_SAMPLE_COUNT = 50_000  # the protocol size behind published FIDs (ADM, DiT, SiT, REPA, REPA-E)

ProgressCallback = Callable[[int], None]


@dataclass
class ExtractedFeatures:
    """Per feature name: float64 statistics, and the kept rows (sample order) where a metric needs them."""

    stats: dict[str, FeatureStats] = field(default_factory=dict)
    rows: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------------
#                                        Distributed set-up
# --------------------------------------------------------------------------------------------------


def local_device(device: str) -> str:
    """"auto" picks cuda when available; under torchrun each process takes cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def init_distributed(device: str) -> tuple[int, int]:
    """Join the process group that `torchrun` describes in the environment; (rank, world_size)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_slice(count: int, rank: int, world_size: int) -> range:
    """The contiguous slice of sample indices that `rank` extracts."""
    per_rank = -(-count // world_size)
    return range(min(rank * per_rank, count), min((rank + 1) * per_rank, count))


def _gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """All ranks' kept rows, put back into sample order."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return rows[torch.argsort(index)]
    gathered: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (rows.cpu(), index.cpu()))
    all_rows = torch.cat([r for r, _ in gathered])  # type: ignore[misc]
    all_index = torch.cat([i for _, i in gathered])  # type: ignore[misc]
    return all_rows[torch.argsort(all_index)]


# --------------------------------------------------------------------------------------------------
#                                           Extraction
# --------------------------------------------------------------------------------------------------


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
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in rows_for}
    kept_index: list[torch.Tensor] = []
    start = time.perf_counter()
    extractor.eval().to(device)
    with torch.inference_mode():
        for images, index in source.batches(batch_size, indices=indices, num_workers=num_workers):
            features = extractor(images.to(device))
            for name, feats in features.items():
                if not torch.isfinite(feats).all():
                    raise GenbenchError(
                        f"{source.description}: the {extractor.name} extractor produced non-finite "
                        f"'{name}' features for samples {int(index[0])}..{int(index[-1])}; check the "
                        "weights file and the images"
                    )
                if name in out.stats:
                    out.stats[name].update(feats)
                if name in kept:
                    kept[name].append(feats.float().cpu())
            kept_index.append(index.cpu())
            if progress is not None:
                progress(len(index))
    for stats in out.stats.values():
        stats.all_reduce()
    index_all = torch.cat(kept_index) if kept_index else torch.zeros(0, dtype=torch.long)
    for name, chunks in kept.items():
        rows = torch.cat(chunks) if chunks else torch.zeros(0, extractor.feature_dims[name])
        out.rows[name] = _gather_rows(rows, index_all)
    out.count = len(source)
    out.seconds = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------------------------------
#                                            Metrics
# --------------------------------------------------------------------------------------------------


def requested_metrics(names: Sequence[str]) -> list[Metric]:
    """Registry lookup with a readable error for unknown names."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise GenbenchError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(sorted(METRICS))}")
    return [METRICS[n] for n in names]


def check_sample_counts(metrics: Sequence[Metric], count: int, options: Options, side: str) -> None:
    for metric in metrics:
        needed = metric.min_samples(options)
        if count < needed:
            raise GenbenchError(
                f"{side}: {count} images, but '{metric.name}' needs at least {needed}; use more "
                f"images or drop the metric with --metrics"
            )


def build_reference(
    source: SampleSource,
    extractor: torch.nn.Module,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    progress: ProgressCallback | None = None,
) -> ReferenceStats:
    """Statistics of every Gaussian feature the extractor has, plus the kept pool rows for k-NN metrics."""
    gaussian_features = [f for f in GAUSSIAN_KEYS if f in extractor.feature_dims]
    extracted = extract(
        source, extractor, gaussian_features, ["pool"], batch_size, device, num_workers, progress
    )
    return ReferenceStats(
        path=None,
        gaussians={f: (s.mean, s.covariance) for f, s in extracted.stats.items()},
        rows={"pool": extracted.rows["pool"].numpy()},
        meta={
            "extractor": extractor.name,
            "weights_sha256": extractor.weights_sha256,
            "resize_mode": extractor.resize_mode,
            "count": extracted.count,
            "source": source.description,
        },
    )


def evaluate(
    source: SampleSource,
    reference: ReferenceStats,
    metric_names: Sequence[str],
    extractor: torch.nn.Module,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    options: Options | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Extract what `metric_names` need (each feature once) and compute them -> (metrics, provenance)."""
    options = {"device": device, **(options or {})}
    metrics = requested_metrics(metric_names)
    reference.check_compatible(extractor)
    check_sample_counts(metrics, len(source), options, source.description)
    stats_for = sorted({m.feature for m in metrics if m.uses == "stats"})
    rows_for = sorted({m.feature for m in metrics if m.uses == "rows"})
    extracted = extract(source, extractor, stats_for, rows_for, batch_size, device, num_workers, progress)
    sample = FeatureSide({f: (s.mean, s.covariance) for f, s in extracted.stats.items()}, extracted.rows)

    ref_side = reference.side()
    ref_rows_needed = sorted(
        {m.feature for m in metrics if m.uses == "rows" and m.reference} - set(ref_side.rows)
    )
    ref_seconds = 0.0
    if ref_rows_needed:  # e.g. an ADM reference batch: pool rows come from its arr_0 images
        ref_images = reference.images()
        ref_extracted = extract(
            ref_images, extractor, [], ref_rows_needed, batch_size, device, num_workers, progress
        )
        ref_side.rows.update(ref_extracted.rows)
        ref_seconds = ref_extracted.seconds
    for metric in metrics:
        if metric.reference and metric.uses == "rows":
            check_sample_counts(
                [metric], len(ref_side.features(metric.feature)), options, str(reference.path)
            )
        if metric.reference and metric.uses == "stats" and metric.feature not in ref_side.gaussians:
            raise GenbenchError(
                f"{reference.path}: has no statistics for '{metric.feature}' features, which "
                f"'{metric.name}' needs; rebuild it with `genbench ref build`"
            )

    start = time.perf_counter()
    values: dict[str, float] = {}
    for metric in metrics:
        try:
            values.update(metric.compute(sample, ref_side if metric.reference else None, options))
        except ValueError as error:
            raise GenbenchError(f"{metric.name}: {error}") from error
    provenance = {
        "extractor": extractor.name,
        "weights_sha256": extractor.weights_sha256,
        "resize_mode": extractor.resize_mode,
        "samples": {"path": source.description, "count": len(source), "image_size": list(source.image_size)},
        "reference": {
            "path": str(reference.path),
            "count": reference.count,
            **{k: reference.meta.get(k) for k in ("source", "weights_sha256") if k in reference.meta},
        },
        "metric_options": {k: v for k, v in options.items() if k != "device"},
        "device": device,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "timings": {
            "extract_samples_s": round(extracted.seconds, 3),
            "extract_reference_s": round(ref_seconds, 3),
            "metrics_s": round(time.perf_counter() - start, 3),
        },
    }
    if len(source) < FULL_SAMPLE_COUNT and any(m.name in ("fid", "sfid") for m in metrics):
        provenance["note"] = (
            f"{len(source)} samples: FID is biased upwards below the {FULL_SAMPLE_COUNT:,} "
            "samples of published numbers; compare only at equal counts"
        )
    return values, provenance
