"""Density/coverage, CMMD, CLIP score, bootstrap intervals and FD-infinity, each against an independent
brute-force numpy computation or a value known analytically."""

import numpy as np
import pytest
import torch
from genbench.metrics.bootstrap import bootstrap_frechet, bootstrap_interval
from genbench.metrics.clip_score import clip_score, clip_score_per_pair
from genbench.metrics.fd_infinity import fd_infinity, subset_sizes
from genbench.metrics.frechet import frechet_distance
from genbench.metrics.mmd import cmmd, mmd_rbf
from genbench.metrics.prdc import density_coverage
from genbench.metrics.registry import METRICS
from genbench.metrics.spec import FeatureSide, MetricOptions


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances by explicit differences (no norm expansion)."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


def _density_coverage_brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    radii = np.sort(_distances(real, real), axis=1)[:, k]  # column 0 is the row itself
    inside = _distances(real, fake) < radii[:, None]  # [N real, M fake]
    density = inside.sum() / (k * len(fake))
    coverage = (_distances(real, fake).min(axis=1) < radii).mean()
    return density, coverage


def test_density_coverage_match_brute_force_in_blocks():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((157, 6)).astype(np.float32)
    fake = (0.8 * rng.standard_normal((131, 6)) + 0.3).astype(np.float32)
    expected = _density_coverage_brute_force(real.astype(np.float64), fake.astype(np.float64), k=5)
    assert 0.2 < expected[0] < 1.5 and 0.2 < expected[1] < 0.99
    for block_size in (10_000, 32):
        density, coverage = density_coverage(real, fake, k=5, block_size=block_size)
        assert density == pytest.approx(expected[0], abs=1e-9)
        assert coverage == pytest.approx(expected[1], abs=1e-9)


def test_density_coverage_of_identical_sets_and_far_sets():
    real = np.random.default_rng(1).standard_normal((80, 4))
    density, coverage = density_coverage(real, real + 100.0)
    assert (density, coverage) == (0.0, 0.0)
    # Each real row lies at distance 0 from its own copy: strictly inside its own ball.
    assert density_coverage(real, real)[1] == 1.0


def _cmmd_brute_force(x: np.ndarray, y: np.ndarray, sigma: float, scale: float, unbiased: bool) -> float:
    def kernel(a, b):
        return np.exp(-(_distances(a, b) ** 2) / (2 * sigma**2))

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    if unbiased:
        n, m = len(x), len(y)
        xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
        yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        return scale * (xx + yy - 2 * k_xy.mean())
    return scale * (k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())


def test_cmmd_matches_brute_force():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((70, 16))
    y = rng.standard_normal((55, 16)) * 1.3 + 0.5
    x, y = 8 * x / np.linalg.norm(x, axis=1, keepdims=True), 8 * y / np.linalg.norm(y, axis=1, keepdims=True)
    expected = _cmmd_brute_force(x, y, 10.0, 1000.0, unbiased=False)
    assert expected > 1.0
    assert cmmd(x, y) == pytest.approx(expected, rel=1e-10)
    assert mmd_rbf(x, y, block_size=16) == pytest.approx(expected, rel=1e-10)
    unbiased = _cmmd_brute_force(x, y, 10.0, 1000.0, unbiased=True)
    assert cmmd(x, y, unbiased=True) == pytest.approx(unbiased, rel=1e-10)
    assert mmd_rbf(x, y, sigma=3.0, scale=1.0) == pytest.approx(_cmmd_brute_force(x, y, 3.0, 1.0, False))
    assert cmmd(x, x) == pytest.approx(0.0, abs=1e-9)


def test_clip_score_matches_formula():
    rng = np.random.default_rng(3)
    images, texts = rng.standard_normal((40, 12)), rng.standard_normal((40, 12))
    texts[:20] = images[:20] + 0.5 * texts[:20]  # half the pairs agree, so both branches of the max occur
    cosine = (images * texts).sum(1) / np.linalg.norm(images, axis=1) / np.linalg.norm(texts, axis=1)
    expected = 100 * np.maximum(cosine, 0)
    assert (cosine < 0).any() and (cosine > 0.5).any()
    np.testing.assert_allclose(clip_score_per_pair(images, texts).numpy(), expected, atol=1e-10)
    assert clip_score(torch.from_numpy(images), torch.from_numpy(texts)) == pytest.approx(expected.mean())
    with pytest.raises(ValueError, match="paired row by row"):
        clip_score(images, texts[:10])


def _shifted_gaussian(count: int, dim: int, shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dim)) + shift


def test_bootstrap_interval_covers_the_full_sample_value_and_shrinks_with_more_samples():
    dim, mu_ref, sigma_ref = 4, np.zeros(4), np.eye(4)
    small = bootstrap_frechet(_shifted_gaussian(200, dim, 0.5, 4), mu_ref, sigma_ref, resamples=60, seed=0)
    large = bootstrap_frechet(_shifted_gaussian(3200, dim, 0.5, 5), mu_ref, sigma_ref, resamples=60, seed=0)
    for interval in (small, large):
        assert interval.lower < interval.value < interval.upper
        assert interval.value == pytest.approx(1.0, abs=0.4)  # true FD = |shift|^2 * dim = 1
    # Spread ~ 1/sqrt(N): 16x the samples should give about a quarter of the width.
    assert (large.upper - large.lower) < 0.5 * (small.upper - small.lower)
    assert large.std < 0.5 * small.std
    assert bootstrap_frechet(_shifted_gaussian(200, dim, 0.5, 4), mu_ref, sigma_ref, 60, seed=0) == small


def test_bootstrap_interval_of_the_mean_matches_normal_theory():
    rows = np.random.default_rng(6).standard_normal((400, 1)) * 2.0
    interval = bootstrap_interval(rows, lambda x: float(x.mean()), resamples=400, seed=1)
    assert interval.std == pytest.approx(2.0 / np.sqrt(400), rel=0.15)  # standard error of the mean
    assert interval.upper - interval.lower == pytest.approx(2 * 1.96 * interval.std, rel=0.15)


def test_fd_infinity_sizes_follow_dgm_eval():
    assert subset_sizes(2000).tolist() == np.linspace(200, 2000, 15).astype(np.int32).tolist()
    assert subset_sizes(100_000)[0] == 5000 and subset_sizes(100_000)[-1] == 100_000


def test_fd_infinity_is_closer_to_the_true_fd_than_the_full_sample():
    # Same covariance, shifted mean: the population FD is |shift|^2 * dim exactly; FD_N is biased upward by
    # about dim / N + dim^2 / (4 N), much more than its noise at this size.
    dim, shift, count = 32, 0.1, 2000
    truth = shift**2 * dim
    rows = _shifted_gaussian(count, dim, shift, seed=7)
    full = frechet_distance(rows.mean(0), np.cov(rows, rowvar=False), np.zeros(dim), np.eye(dim))
    result = fd_infinity(rows, np.zeros(dim), np.eye(dim), seed=0)
    assert result.sizes[-1] == count and result.fds[-1] == pytest.approx(full, rel=1e-9)
    assert full - truth > 0.1  # the bias the extrapolation has to remove
    assert abs(result.value - truth) < 0.5 * abs(full - truth)
    assert result.slope > 0  # FD_N falls as N grows


def test_registry_entries_compute_the_same_numbers():
    rng = np.random.default_rng(8)
    sample = FeatureSide(rows={"pool": torch.from_numpy(rng.standard_normal((60, 5)))})
    ref = FeatureSide(rows={"pool": torch.from_numpy(rng.standard_normal((70, 5)) + 0.2)})
    options = MetricOptions(dc_k=4)
    expected_cmmd = {"cmmd": cmmd(sample.rows["pool"], ref.rows["pool"])}
    assert METRICS["cmmd"].compute(sample, ref, MetricOptions()) == expected_cmmd
    density, coverage = density_coverage(ref.rows["pool"], sample.rows["pool"], k=4)
    expected = {"density": density, "coverage": coverage}
    assert METRICS["density_coverage"].compute(sample, ref, options) == expected
    assert METRICS["density_coverage"].min_samples(options) == 5
