"""Benchmark: genbench's `frechet_distance` vs the ADM / pytorch-fid formula with `scipy.linalg.sqrtm`,
on 2048-d covariances (Inception pool3 size), full rank and rank deficient (fewer samples than dims).

    python scripts/bench_frechet.py [--dim 2048] [--repeats 1]

Prints both values, their relative difference and the speed ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
from genbench.metrics.frechet import frechet_distance


def scipy_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)  # disp= is gone in SciPy 1.18; the real part as ADM keeps it
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def covariance(rng: np.random.Generator, dim: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    features = np.abs(rng.standard_normal((samples, dim)) @ rng.standard_normal((dim, dim)) / np.sqrt(dim))
    return features.mean(0), np.cov(features, rowvar=False)


def timed(fn, inputs: tuple, repeats: int) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn(*inputs)
        best = min(best, time.perf_counter() - start)
    return value, best


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for label, samples in (("full rank", 2 * args.dim), ("rank deficient", args.dim // 4)):
        mu1, s1 = covariance(rng, args.dim, samples)
        mu2, s2 = covariance(rng, args.dim, samples)
        inputs = (mu1, s1, mu2, s2)
        ours, t_ours = timed(frechet_distance, inputs, args.repeats)
        peer, t_peer = timed(scipy_frechet, inputs, args.repeats)
        print(f"{label:>15} d={args.dim} n={samples}: genbench {ours:.10f} ({t_ours:.2f} s)  "
              f"scipy sqrtm {peer:.10f} ({t_peer:.2f} s)  rel diff {abs(ours - peer) / abs(peer):.1e}  "
              f"speed-up x{t_peer / t_ours:.1f}")
        rows.append({"case": label, "genbench": ours, "scipy": peer, "speedup": t_peer / t_ours})
    return rows


if __name__ == "__main__":
    main()
