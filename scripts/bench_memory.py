"""Peak memory of every metric at 10,000 vs 50,000 sample rows: it must not grow with N beyond the rows.

Each (metric, N) runs in a fresh process on random float32 feature rows: N sample rows and `--reference`
reference rows of `--dim` columns (Inception pool3: 2048; logits 1008 for IS). The process measures its
resident memory once the inputs exist, resets the kernel's high-water mark (/proc/self/clear_refs), runs the
metric through the registry (`genbench.metrics.registry.METRICS`, as `genbench eval` does) and reports the
peak above that baseline: the metric's own working memory. The inputs themselves (N x dim x 4 bytes) are
not counted; they are what the caller holds anyway.

    python scripts/bench_memory.py                        # every metric, 10k vs 50k, 2048-d
    python scripts/bench_memory.py --metrics is,kid,fid --counts 2000 4000 --dim 256   # quick

The k-NN metrics (pr, density_coverage) and cmmd cost O(N^2 d) flops: at 50,000 x 2048 that is tens of
TFLOP, minutes on a GPU and hours on a small CPU; `--dim` lowers the cost (their working memory is set by
the row x column blocks, 10,000^2 floats, not by d).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

METRIC_NAMES = ("stats", "fid", "is", "kid", "pr", "density_coverage", "cmmd")
LOGITS_DIM = 1008


def status_mb(field: str) -> float:
    """A /proc/self/status memory field (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def run_metric(name: str, count: int, reference: int, dim: int, seed: int = 0) -> dict:
    """Build the inputs, then run metric `name` on them; -> {"baseline_mb", "peak_mb", "seconds", "value"}."""
    from genbench.metrics.registry import METRICS
    from genbench.metrics.spec import FeatureSide, MetricOptions
    from genbench.metrics.stats import FeatureStats

    generator = torch.Generator().manual_seed(seed)
    width = LOGITS_DIM if name == "is" else dim
    sample_rows = torch.randn(count, width, generator=generator).abs_()
    reference_rows = torch.randn(reference, width, generator=generator).abs_()
    reference_side = FeatureSide({}, {"pool": reference_rows})
    if name == "fid":  # statistics are computed before the metric runs; time the metric on them alone
        sample_stats, reference_stats = FeatureStats(dim), FeatureStats(dim)
        sample_stats.update(sample_rows)
        reference_stats.update(reference_rows)
        sample_side = FeatureSide({"pool": (sample_stats.mean, sample_stats.covariance)})
        reference_side = FeatureSide({"pool": (reference_stats.mean, reference_stats.covariance)})
    else:
        sample_side = FeatureSide({}, {"pool": sample_rows, "logits": sample_rows})
    baseline = status_mb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    if name == "stats":  # the float64 accumulator as extraction.extract feeds it, batch by batch
        stats = FeatureStats(dim)
        for batch in sample_rows.split(256):
            stats.update(batch)
        value = {"trace": float(np.trace(stats.covariance))}
    else:
        value = METRICS[name].compute(sample_side, reference_side, MetricOptions(), "cpu")
    seconds = time.perf_counter() - start
    return {"baseline_mb": baseline, "peak_mb": status_mb("VmHWM"), "seconds": seconds, "value": value}


def measure(name: str, count: int, reference: int, dim: int) -> dict:
    """run_metric in a fresh process (a peak is per address space)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, str(count), str(reference), str(dim)],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "child failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", default=",".join(METRIC_NAMES),
                        help=f"comma-separated, from {', '.join(METRIC_NAMES)}")
    parser.add_argument("--counts", type=int, nargs=2, default=(10_000, 50_000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--reference", type=int, default=10_000, help="reference rows (P/R, KID, ...)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.child:
        name, count, reference, dim = args.child[0], *map(int, args.child[1:])
        print(json.dumps(run_metric(name, count, reference, dim)))
        return []
    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    unknown = sorted(set(names) - set(METRIC_NAMES))
    if unknown:
        raise SystemExit(f"unknown metrics {unknown}; choose from {', '.join(METRIC_NAMES)}")
    small, large = args.counts
    print(f"| metric | dim | extra peak MB at {small:,} | at {large:,} | ratio | input MB at {large:,} "
          f"| seconds at {large:,} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name in names:
        dim = LOGITS_DIM if name == "is" else args.dim
        try:
            result = {n: measure(name, n, args.reference, args.dim) for n in (small, large)}
        except RuntimeError as error:
            print(f"| {name} | {dim} | failed: {error} | | | | |", flush=True)
            rows.append({"metric": name, "error": str(error)})
            continue
        extra = {n: r["peak_mb"] - r["baseline_mb"] for n, r in result.items()}
        row = {"metric": name, "dim": dim, "counts": [small, large], "reference": args.reference,
               "extra_peak_mb": [extra[small], extra[large]], "seconds": [result[small]["seconds"],
                                                                            result[large]["seconds"]],
               "input_mb_large": (large + args.reference) * dim * 4 / 2**20}
        rows.append(row)
        print(f"| {name} | {dim} | {extra[small]:.0f} | {extra[large]:.0f} | "
              f"x{extra[large] / max(extra[small], 1.0):.2f} | {row['input_mb_large']:.0f} | "
              f"{result[large]['seconds']:.1f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
