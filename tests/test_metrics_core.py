"""Core metrics against independent implementations: scipy sqrtm, np.cov, numpy brute force, torch-fidelity"""

import numpy as np
import pytest
import scipy.linalg
import torch
from genbench.metrics.frechet import frechet_distance
from genbench.metrics.inception_score import inception_score
from genbench.metrics.kid import kernel_inception_distance
from genbench.metrics.precision_recall import manifold_radii, precision_recall
from genbench.metrics.stats import FeatureStats
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric


def scipy_frechet(mu1, s1, mu2, s2):
    """The ADM / pytorch-fid formula with scipy's general sqrtm (real part, as they keep it)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def gaussian_stats(rng, n, d, shift=0.0):
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.1 + shift
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("n", [2048, 300], ids=["full-rank", "rank-deficient"])
def test_frechet_matches_scipy_sqrtm(n):
    rng = np.random.default_rng(0)
    mu1, s1 = gaussian_stats(rng, n, 512)
    mu2, s2 = gaussian_stats(rng, n, 512, shift=0.05)
    ours, reference = frechet_distance(mu1, s1, mu2, s2), scipy_frechet(mu1, s1, mu2, s2)
    assert np.isfinite(ours)
    assert ours == pytest.approx(reference, rel=1e-6)


@pytest.mark.slow
def test_frechet_matches_scipy_sqrtm_on_2048d_with_fewer_samples_than_dims():
    """The hard case at Inception's size: N < d, so both covariances are singular (scipy sqrtm takes ~1 min
    here; scripts/bench_frechet.py covers the full-rank 2048-d case too)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2048, 600)), rng.standard_normal((2048, 700)) + 0.01
    s1, s2 = a @ a.T / 600, b @ b.T / 700
    mu1, mu2 = rng.standard_normal(2048), rng.standard_normal(2048)
    ours, reference = frechet_distance(mu1, s1, mu2, s2), scipy_frechet(mu1, s1, mu2, s2)
    assert np.isfinite(ours)
    assert ours == pytest.approx(reference, rel=1e-6)


def test_frechet_of_identical_gaussians_is_zero_and_mean_shift_is_exact():
    rng = np.random.default_rng(1)
    mu, sigma = gaussian_stats(rng, 300, 64)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    shift = np.full(64, 0.5)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(64 * 0.25, rel=1e-8)


def test_frechet_rejects_non_finite_and_mismatched_input():
    mu, sigma = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, sigma * np.nan, mu, sigma)
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(mu, sigma, np.zeros(4), np.eye(4))


def test_feature_stats_equal_numpy_cov_across_merged_shards():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 32)) * 3 + 7
    whole, a, b = FeatureStats(32), FeatureStats(32), FeatureStats(32)
    for chunk in np.array_split(x, 7):
        whole.update(torch.from_numpy(chunk).float())
    a.update(x[:400].astype(np.float32))
    b.update(x[400:].astype(np.float32))
    merged = FeatureStats.from_state_dict(a.state_dict()).merge(b)
    x32 = x.astype(np.float32).astype(np.float64)  # the rows as the accumulator saw them
    for stats in (whole, merged):
        assert stats.count == 1000
        np.testing.assert_allclose(stats.mean, x32.mean(0), rtol=0, atol=1e-10)
        np.testing.assert_allclose(stats.covariance, np.cov(x32, rowvar=False), rtol=0, atol=1e-10)


def numpy_inception_score(logits, split_size):
    """ADM's loop, written independently in numpy float64."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for i in range(0, len(p), split_size):
        part = p[i : i + split_size]
        kl = (part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1).mean()
        scores.append(np.exp(kl))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_adm_loop_including_partial_last_split():
    logits = np.random.default_rng(3).standard_normal((250, 1008)) * 4
    ours = inception_score(logits, split_size=100)  # splits of 100, 100, 50
    np.testing.assert_allclose(ours, numpy_inception_score(logits, 100), rtol=1e-10)


def test_inception_score_matches_torch_fidelity_without_shuffle():
    logits = torch.randn(200, 1008) * 3
    reference = isc_features_to_metric(logits, splits=4, shuffle=False)
    mean, std = inception_score(logits, split_size=50)
    assert mean == pytest.approx(reference["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(reference["inception_score_std"], rel=1e-8)


def brute_force_precision_recall(real, fake, k):
    def sqdist(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    real_radii = np.sort(sqdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(sqdist(fake, fake), axis=1)[:, k]
    precision = (sqdist(fake, real) <= real_radii[None, :]).any(1).mean()
    recall = (sqdist(real, fake) <= fake_radii[None, :]).any(1).mean()
    return precision, recall


@pytest.mark.parametrize("block_size", [10_000, 17])
def test_precision_recall_equals_brute_force(block_size):
    rng = np.random.default_rng(4)
    real = rng.standard_normal((120, 8)).astype(np.float32)
    fake = (rng.standard_normal((90, 8)) * 1.3 + 0.4).astype(np.float32)
    ours = precision_recall(real, fake, k=3, half=False, block_size=block_size)
    expected = brute_force_precision_recall(real.astype(np.float64), fake.astype(np.float64), 3)
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    assert 0 < ours[0] < 1 and 0 < ours[1] < 1  # the fixture exercises both sides of the boundary


def test_precision_recall_membership_is_inclusive_at_the_radius():
    # Integer grid: distances are exact, and a fake point sits exactly on a real point's radius.
    real = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [10, 0]], dtype=np.float32)
    radii = manifold_radii(real, k=3, half=False)
    assert radii.tolist() == [9.0, 4.0, 4.0, 9.0, 81.0]
    fake = np.array([[3, 3], [20, 0], [30, 0], [40, 0]], dtype=np.float32)  # (3,3) is at d^2 = 9 of (3,0)
    precision, _ = precision_recall(real, fake, k=3, half=False)
    assert precision == pytest.approx(1 / 4)


def test_half_precision_distances_emulate_adm_and_stay_close():
    rng = np.random.default_rng(5)
    real = np.abs(rng.standard_normal((200, 64))).astype(np.float32)
    fake = np.abs(rng.standard_normal((200, 64)) * 1.1).astype(np.float32)
    exact = precision_recall(real, fake, half=False)
    half = precision_recall(real, fake, half=True)
    # Reference: numpy with ADM's float16 round trip of inputs and outputs.
    r16, f16 = real.astype(np.float16).astype(np.float32), fake.astype(np.float16).astype(np.float32)

    def d16(a, b):
        d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None]
        return np.maximum(d, 0).astype(np.float16).astype(np.float32)

    rr, ff = np.sort(d16(r16, r16), 1)[:, 3], np.sort(d16(f16, f16), 1)[:, 3]
    expected = ((d16(f16, r16) <= rr[None]).any(1).mean(), (d16(r16, f16) <= ff[None]).any(1).mean())
    np.testing.assert_allclose(half, expected, atol=1 / 200 + 1e-12)  # one borderline row of slack
    np.testing.assert_allclose(half, exact, atol=0.05)


def test_kid_equals_torch_fidelity_on_same_features_and_seed():
    rng = np.random.default_rng(6)
    fake = torch.from_numpy(rng.standard_normal((300, 16)).astype(np.float32))
    real = torch.from_numpy((rng.standard_normal((260, 16)) + 0.3).astype(np.float32))
    reference = kid_features_to_metric(
        fake, real, kid_subsets=10, kid_subset_size=100, rng_seed=7, verbose=False, kid_kernel="poly",
        kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )
    mean, std = kernel_inception_distance(fake, real, num_subsets=10, subset_size=100, seed=7)
    assert mean == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-6, abs=1e-9)
    assert std == pytest.approx(reference["kernel_inception_distance_std"], rel=1e-5, abs=1e-9)
    assert mean > 0.01  # a real shift is detected


def test_kid_default_subset_is_clean_fids_min_of_1000_and_both_sides():
    rng = np.random.default_rng(8)
    fake, real = rng.standard_normal((40, 8)), rng.standard_normal((30, 8)) + 0.2
    assert kernel_inception_distance(fake, real, num_subsets=5) == kernel_inception_distance(
        fake, real, num_subsets=5, subset_size=30)
    big, other = rng.standard_normal((1200, 8)), rng.standard_normal((1100, 8))
    assert kernel_inception_distance(big, other, num_subsets=2) == kernel_inception_distance(
        big, other, num_subsets=2, subset_size=1000)


def test_kid_needs_enough_rows():
    with pytest.raises(ValueError, match="at least"):
        kernel_inception_distance(np.zeros((10, 4)), np.zeros((50, 4)), subset_size=20)
