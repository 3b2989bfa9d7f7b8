"""Glue for one evaluation: sample source -> extractor -> statistics -> metrics -> (metrics, provenance).

Each requested feature set is extracted once, in one pass over the samples, for all requested metrics.
Under `torchrun`, every rank extracts a contiguous slice of the samples and the statistics (and kept
feature rows, in sample order) are reduced across ranks, so the numbers equal a single-process run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from genbench.backbones import check_extractor_name
from genbench.distributed import rank_and_world
from genbench.errors import GenbenchError
from genbench.extraction import ProgressCallback, extract
from genbench.metrics.bootstrap import gaussian_of
from genbench.metrics.fd_infinity import fd_infinity, subset_sizes
from genbench.metrics.kid import KID_SUBSET_SIZE, kid_subset_size
from genbench.metrics.registry import METRICS
from genbench.metrics.spec import FeatureSide, MetricOptions, MetricSpec
from genbench.reference import GAUSSIAN_KEYS, ReferenceStats
from genbench.sources import SampleSource

FULL_SAMPLE_COUNT = 50_000  # the protocol size behind published FIDs (ADM, DiT, SiT, REPA, REPA-E)


# --------------------------------------------------------------------------------------------------
#                                            Metrics
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricRequest:
    """One requested metric: `extractor` is what it reads (its own, as `fd_dinov2`'s dinov2; the one named
    with `@`, as in `pr@dinov2`; else the run's), `runs_on` the extractor that actually computes it
    (another one where `--extractor-for` stands it in), `key_suffix` names an `@` extractor in the result
    keys (`precision_dinov2`)."""

    metric: MetricSpec
    extractor: str
    runs_on: str
    key_suffix: str = ""

    def compute(self, sample: FeatureSide, reference: FeatureSide | None, options: MetricOptions,
                device: str | None) -> dict[str, float]:
        values = self.metric.compute(sample, reference, options, device)
        return {f"{key}{self.key_suffix}": value for key, value in values.items()}


def plan_metrics(
    names: Sequence[str], main_extractor: str, stand_ins: dict[str, str] | None = None
) -> list[MetricRequest]:
    """`fid`, `fd_dinov2`, `pr@dinov2`, ... -> requests; `stand_ins` maps an extractor name to the one that
    computes in its place. Unknown metrics and extractors fail here, before anything is loaded; the run's own
    `main_extractor` may be a module outside the registry (the caller checks or builds it)."""
    stand_ins = stand_ins or {}
    requests = []
    for name in names:
        base, _, named = name.partition("@")
        if base not in METRICS:
            raise GenbenchError(f"unknown metric '{base}'; known: {', '.join(sorted(METRICS))} (any of them "
                                "on another extractor as NAME@EXTRACTOR, e.g. pr@dinov2)")
        metric = METRICS[base]
        default = metric.extractor or main_extractor
        extractor = named or default
        runs_on = stand_ins.get(extractor, extractor)
        if runs_on != main_extractor:
            check_extractor_name(runs_on)
        suffix = f"_{named}" if named and named != default else ""
        requests.append(MetricRequest(metric, extractor, runs_on, suffix))
    return requests


def check_sample_counts(
    metrics: Sequence[MetricSpec], count: int, options: MetricOptions, side: str
) -> None:
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
        gaussians=extracted.gaussians,
        rows={"pool": extracted.rows["pool"].numpy()},
        meta={
            "extractor": extractor.name,
            "weights_sha256": extractor.weights_sha256,
            "resize_mode": extractor.resize_mode,
            "count": extracted.count,
            "source": source.description,
        },
    )


def _reference_side(
    references: Sequence[ReferenceStats],
    extractor: torch.nn.Module,
    requests: Sequence[MetricRequest],
    options: MetricOptions,
    batch_size: int,
    device: str,
    num_workers: int,
    progress: ProgressCallback | None,
) -> tuple[FeatureSide, dict[str, Any], float]:
    """The reference side for one extractor: statistics made with it (a file whose meta names it), completed
    from reference images (arr_0) where the file lacks what the metrics read, or computed wholly from the
    images of a reference made with another extractor. -> (side, provenance record, seconds)."""
    matching = [r for r in references if r.meta.get("extractor") == extractor.name]
    with_images = [r for r in references if r.has_images]
    if not matching and not with_images:
        given = ", ".join(f"{r.path} ({r.meta.get('extractor')})" for r in references)
        raise GenbenchError(
            f"no reference statistics for the '{extractor.name}' extractor (given: {given}); build them with "
            f"`genbench ref build --extractor {extractor.name}` and add them with another --ref, or give a "
            "reference with images (arr_0)"
        )
    reference = matching[0] if matching else with_images[0]
    side = reference.side() if matching else FeatureSide()
    if matching:
        reference.check_compatible(extractor)
    needs = [r for r in requests if r.metric.reference]
    # features the metrics read on the reference side that the file does not carry
    stats_missing = sorted({r.metric.feature for r in needs if r.metric.uses == "stats"}
                           - set(side.gaussians))
    rows_missing = sorted({r.metric.feature for r in needs if r.metric.uses == "rows"} - set(side.rows))
    seconds = 0.0
    if stats_missing and not reference.has_images:
        metric = next(r.metric.name for r in needs if r.metric.feature in stats_missing)
        raise GenbenchError(
            f"{reference.path}: has no statistics for '{stats_missing[0]}' features, which '{metric}' needs; "
            "rebuild it with `genbench ref build`"
        )
    if stats_missing or rows_missing:  # e.g. an ADM reference batch: pool rows come from its arr_0 images
        extracted = extract(reference.images(), extractor, stats_missing, rows_missing, batch_size, device,
                            num_workers, progress)
        side.gaussians.update(extracted.gaussians)
        side.rows.update(extracted.rows)
        seconds = extracted.seconds
    for request in needs:
        if request.metric.uses == "rows":
            check_sample_counts([request.metric], len(side.features(request.metric.feature)), options,
                                str(reference.path))
    record = {
        "path": str(reference.path),
        "count": reference.count,
        **{k: reference.meta.get(k) for k in ("source", "weights_sha256") if k in reference.meta},
    }
    if not matching:
        record["features_from_images"] = True
    return side, record, seconds


def bootstrap_intervals(
    requests: Sequence[MetricRequest],
    samples: dict[str, FeatureSide],
    references: dict[str, FeatureSide],
    values: dict[str, float],
    options: MetricOptions,
    device: str | None,
) -> dict[str, float]:
    """Bootstrap intervals of every computed metric (`values`) over `options.bootstrap` resamples of the
    samples: rows drawn with replacement as `metrics.bootstrap.bootstrap_interval` draws them, the same draws
    for every extractor, the reference fixed. Duplicated rows bias a resample's FD, CMMD and k-NN metrics
    (FD by O(d / N): at small N the plain percentile interval can miss the measured value), so the
    percentile interval is shifted by the bootstrap's bias estimate, mean(resampled) - value: it keeps the
    resampled spread around the measured value. Keys `{key}_ci_low` / `{key}_ci_high` (not for the `_std`
    companions)."""
    resamples, confidence = options.bootstrap, options.bootstrap_confidence
    count = next(iter(samples.values())).rows[requests[0].metric.feature].shape[0]
    generator = torch.Generator().manual_seed(options.bootstrap_seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        index = torch.randint(0, count, (count,), generator=generator)
        for name, side in samples.items():
            rows = {feature: feats[index.to(feats.device)] for feature, feats in side.rows.items()}
            labels = side.labels[index] if side.labels is not None else None
            resampled = FeatureSide({f: gaussian_of(r) for f, r in rows.items()}, rows, labels)
            for request in (r for r in requests if r.runs_on == name):
                for key, value in request.compute(resampled, references.get(name), options, device).items():
                    draws.setdefault(key, []).append(value)
    alpha = (1 - confidence) / 2
    intervals = {}
    for key, resampled in draws.items():
        if not key.endswith("_std"):
            bias = float(np.mean(resampled)) - values[key]
            low, high = np.quantile(np.array(resampled), [alpha, 1 - alpha]) - bias
            intervals.update({f"{key}_ci_low": float(low), f"{key}_ci_high": float(high)})
    return intervals


def fd_infinities(
    computed: Sequence[tuple[MetricRequest, list[str]]],
    samples: dict[str, FeatureSide],
    references: dict[str, FeatureSide],
    options: MetricOptions,
) -> dict[str, float]:
    """`{key}_infinity` for every Fréchet distance computed (the metrics on statistics, one key each): FD
    extrapolated to infinitely many samples (metrics.fd_infinity)."""
    values = {}
    for request, (key,) in ((r, k) for r, k in computed if r.metric.uses == "stats"):
        feature = request.metric.feature
        mu, sigma = references[request.runs_on].gaussian(feature)
        rows = samples[request.runs_on].features(feature)
        smallest = int(subset_sizes(rows.shape[0])[0])
        if smallest <= rows.shape[1]:
            raise GenbenchError(
                f"--fd-infinity: {key} would be fitted from subsets of {smallest} samples, not more than its "
                f"{rows.shape[1]} feature dimensions (singular covariances); use at least "
                f"{10 * (rows.shape[1] + 1)} samples or drop --fd-infinity"
            )
        result = fd_infinity(rows, mu, sigma, num_points=options.fd_infinity_points,
                             seed=options.bootstrap_seed)
        values[f"{key}_infinity"] = result.value
    return values


@dataclass
class _Sides:
    """Per extractor name: the samples' and the reference's features, and the provenance record."""

    samples: dict[str, FeatureSide] = field(default_factory=dict)
    references: dict[str, FeatureSide] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    sample_seconds: float = 0.0
    reference_seconds: float = 0.0


def _extract_sides(source: SampleSource, references: Sequence[ReferenceStats],
                   requests: Sequence[MetricRequest], extractors: Mapping[str, torch.nn.Module],
                   options: MetricOptions, labels: torch.Tensor | None, batch_size: int, device: str,
                   num_workers: int, progress: ProgressCallback | None) -> _Sides:
    """Each extractor the requests run on, once over the samples (and the reference where a metric reads
    one)."""
    sides = _Sides()
    keep_stats_rows = bool(options.bootstrap) or options.fd_infinity
    for name in dict.fromkeys(r.runs_on for r in requests):  # in request order, each extractor once
        module, group = extractors[name], [r for r in requests if r.runs_on == name]
        stats_for = sorted({r.metric.feature for r in group if r.metric.uses == "stats"})
        rows_for = sorted({r.metric.feature for r in group if r.metric.uses == "rows" or keep_stats_rows})
        extracted = extract(source, module, stats_for, rows_for, batch_size, device, num_workers, progress)
        sides.samples[name] = FeatureSide(extracted.gaussians, extracted.rows, labels)
        sides.sample_seconds += extracted.seconds
        record = {"name": module.name, "weights_sha256": module.weights_sha256,
                  "resize_mode": module.resize_mode, "keys": []}
        if any(r.metric.reference for r in group):
            sides.references[name], record["reference"], seconds = _reference_side(
                references, module, group, options, batch_size, device, num_workers, progress)
            sides.reference_seconds += seconds
        sides.records[name] = record
    return sides


def _compute(requests: Sequence[MetricRequest], sides: _Sides, options: MetricOptions, device: str
             ) -> tuple[dict[str, float], list[tuple[MetricRequest, list[str]]]]:
    """(values, [(request, its keys)]): every request, then FD-infinity and bootstrap intervals if asked."""
    values: dict[str, float] = {}
    computed: list[tuple[MetricRequest, list[str]]] = []
    for request in requests:
        name = request.runs_on
        result = request.compute(sides.samples[name], sides.references.get(name), options, device)
        twice = ", ".join(result.keys() & values.keys())
        if twice:
            raise GenbenchError(f"'{request.metric.name}' gives {twice} twice; request each result once")
        values.update(result)
        computed.append((request, list(result)))
        sides.records[name]["keys"] += list(result)
    if options.fd_infinity:
        values.update(fd_infinities(computed, sides.samples, sides.references, options))
    if options.bootstrap:
        values.update(bootstrap_intervals(requests, sides.samples, sides.references, dict(values), options,
                                          device))
    return values, computed


def _notes(source: SampleSource, requests: Sequence[MetricRequest],
           computed: list[tuple[MetricRequest, list[str]]], sides: _Sides, options: MetricOptions,
           provenance: dict[str, Any]) -> list[str]:
    """What a reader must know to compare these numbers: stand-in extractors, KID's subset size, few samples
    (records the stand-ins and the KID subset size used in `provenance`)."""
    notes = []
    stand_ins = {r.extractor: r.runs_on for r in requests if r.extractor != r.runs_on}
    if stand_ins:
        provenance["stand_ins"] = stand_ins
        for wanted, actual in stand_ins.items():
            sides.records[actual].setdefault("stands_in_for", []).append(wanted)
        keys = [k for request, keys in computed if request.extractor != request.runs_on for k in keys]
        notes.append(
            f"{', '.join(keys)} computed with stand-in extractors "
            f"({', '.join(f'{a} for {w}' for w, a in stand_ins.items())}): not comparable with numbers "
            "from the real ones"
        )
    for request in requests:
        if request.metric.name == "kid" and options.kid_subset_size is None:
            used = kid_subset_size(len(sides.samples[request.runs_on].features("pool")),
                                   len(sides.references[request.runs_on].features("pool")))
            provenance["metric_options"]["kid_subset_size"] = used
            if used < KID_SUBSET_SIZE:
                notes.append(f"KID on subsets of {used} rows (fewer than {KID_SUBSET_SIZE} on one side): "
                             "compare only at equal subset sizes")
    if len(source) < FULL_SAMPLE_COUNT and any(r.metric.uses == "stats" for r in requests):
        notes.append(
            f"{len(source)} samples: FID is biased upwards below the {FULL_SAMPLE_COUNT:,} "
            "samples of published numbers; compare only at equal counts"
        )
    return notes


def evaluate(
    source: SampleSource,
    references: Sequence[ReferenceStats],
    requests: Sequence[MetricRequest],
    extractors: Mapping[str, torch.nn.Module],
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    options: MetricOptions | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run each extractor the metrics need once over the samples and compute them -> (metrics, provenance).

    `requests` come from `plan_metrics`; `extractors` holds a module for each request's `runs_on` (one
    extractor: `{extractor.name: extractor}`). Each extractor uses the reference file made with it (or
    reference images). `options.bootstrap` (resamples) adds confidence intervals, `options.fd_infinity`
    FD-infinity for every Fréchet distance.
    """
    options = options or MetricOptions()
    missing = sorted({r.runs_on for r in requests} - set(extractors))
    if missing:
        names = ", ".join(r.metric.name for r in requests if r.runs_on in missing)
        raise GenbenchError(f"metrics {names} read the {', '.join(missing)} extractor(s), which this "
                            "evaluation was not given")
    check_sample_counts([r.metric for r in requests], len(source), options, source.description)
    # the samples' class labels (class_acc), read and checked before any extraction
    labels = torch.from_numpy(source.class_labels()) if any(r.metric.labels for r in requests) else None
    sides = _extract_sides(source, references, requests, extractors, options, labels, batch_size, device,
                           num_workers, progress)
    start = time.perf_counter()
    try:
        values, computed = _compute(requests, sides, options, device)
    except ValueError as error:
        raise GenbenchError(f"{source.description}: {error}") from error

    first = extractors[requests[0].runs_on]
    provenance: dict[str, Any] = {
        "extractor": first.name,
        "weights_sha256": first.weights_sha256,
        "resize_mode": first.resize_mode,
        "extractors": sides.records,
        "samples": {"path": source.description, "count": len(source), "image_size": list(source.image_size)},
        "reference": sides.records[requests[0].runs_on].get("reference", {}),
        "metric_options": dataclasses.asdict(options),
        "device": device,
        "world_size": rank_and_world()[1],
        "timings": {
            "extract_samples_s": round(sides.sample_seconds, 3),
            "extract_reference_s": round(sides.reference_seconds, 3),
            "metrics_s": round(time.perf_counter() - start, 3),
        },
    }
    notes = _notes(source, requests, computed, sides, options, provenance)
    if notes:
        provenance["note"] = "; ".join(notes)
    return values, provenance


def evaluate_by_name(
    source: SampleSource,
    reference: ReferenceStats,
    metric_names: Sequence[str],
    extractor: torch.nn.Module,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
    options: MetricOptions | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """`evaluate` with one reference file and one extractor, the metrics by name (`fid`, `pr@dinov2`)."""
    requests = plan_metrics(metric_names, extractor.name)
    return evaluate(source, [reference], requests, {extractor.name: extractor}, batch_size, device,
                    num_workers, options, progress)
