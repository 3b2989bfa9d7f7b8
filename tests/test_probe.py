"""Linear probe and k-NN probe: planted class signal (Bayes optimum), shuffled labels (chance),
sklearn's LogisticRegression on the same objective, and a brute-force DINO k-NN."""

import math

import numpy as np
import pytest
import torch
from genbench.metrics.linear_probe import fit_logistic_regression, knn_accuracy, linear_probe, standardise
from sklearn.linear_model import LogisticRegression


def _gaussian_classes(means: np.ndarray, mix: np.ndarray, per_class: int, seed: int):
    """Rows mu_k + z @ mix.T (shared covariance mix mix^T), labels k; shuffled order."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(means)), per_class)
    rows = means[labels] + rng.standard_normal((len(labels), means.shape[1])) @ mix.T
    order = rng.permutation(len(labels))
    return rows[order], labels[order]


def _planted(num_classes: int, dim: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = separation * rng.standard_normal((num_classes, dim)) / math.sqrt(dim)
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    mix = rotation * np.linspace(0.5, 2.0, dim)  # correlated features with unequal scales
    return means, mix


def test_two_class_probe_reaches_the_bayes_optimum():
    means, mix = _planted(2, 8, 1.0)
    precision = np.linalg.inv(mix @ mix.T)
    delta = means[1] - means[0]
    bayes = 0.5 * (1 + math.erf(math.sqrt(delta @ precision @ delta) / 2 / math.sqrt(2)))  # Phi(delta/2)
    assert 0.75 < bayes < 0.95  # a problem where the probe can be visibly wrong in either direction
    train_x, train_y = _gaussian_classes(means, mix, 1000, seed=1)
    test_x, test_y = _gaussian_classes(means, mix, 10_000, seed=2)
    result = linear_probe(train_x, train_y, test_x, test_y, cs=(0.01, 1.0), seed=0)
    # Test-set standard error 0.003; finite-sample excess error of an 8-d linear rule fitted on 2000 rows
    # is well under 0.01 (Bayes 0.840 here).
    assert result.top1 == pytest.approx(bayes, abs=0.015)
    assert result.top5 == 1.0  # two classes


def test_many_class_probe_matches_the_bayes_classifier_on_the_same_points():
    means, mix = _planted(10, 16, 2.0, seed=3)
    train_x, train_y = _gaussian_classes(means, mix, 200, seed=4)
    test_x, test_y = _gaussian_classes(means, mix, 500, seed=5)
    precision = np.linalg.inv(mix @ mix.T)
    # Equal priors, shared covariance: the Bayes rule is linear, argmax mu_k' P x - mu_k' P mu_k / 2.
    scores = test_x @ precision @ means.T - 0.5 * np.einsum("kd,de,ke->k", means, precision, means)
    bayes = float((scores.argmax(axis=1) == test_y).mean())
    assert 0.5 < bayes < 0.95
    result = linear_probe(train_x, train_y, test_x, test_y, cs=(0.01, 0.1, 1.0), seed=0)
    assert result.top1 == pytest.approx(bayes, abs=0.03)
    assert result.top5 > result.top1 + 0.03
    assert set(result.validation_top1) == {0.01, 0.1, 1.0}
    assert result.validation_top1[result.c] == max(result.validation_top1.values())


def test_probe_on_shuffled_labels_falls_to_chance():
    # Labels shuffled on both splits, so test labels are independent of everything the probe sees.
    means, mix = _planted(10, 16, 2.0, seed=3)
    train_x, train_y = _gaussian_classes(means, mix, 200, seed=6)
    test_x, test_y = _gaussian_classes(means, mix, 400, seed=7)
    shuffled = np.random.default_rng(8).permutation(train_y)
    test_y = np.random.default_rng(9).permutation(test_y)
    result = linear_probe(train_x, shuffled, test_x, test_y, cs=(0.01, 1.0), seed=0)
    assert result.top1 == pytest.approx(0.1, abs=0.03)  # 4000 test rows: standard error 0.005
    assert result.top5 == pytest.approx(0.5, abs=0.05)
    knn_top1, _ = knn_accuracy(train_x, shuffled, test_x, test_y)
    assert knn_top1 == pytest.approx(0.1, abs=0.03)


def test_probe_is_deterministic_for_a_seed():
    means, mix = _planted(4, 6, 3.0)
    train_x, train_y = _gaussian_classes(means, mix, 60, seed=9)
    test_x, test_y = _gaussian_classes(means, mix, 60, seed=10)
    first = linear_probe(train_x, train_y, test_x, test_y, cs=(0.1, 1.0), seed=5)
    assert first == linear_probe(train_x, train_y, test_x, test_y, cs=(0.1, 1.0), seed=5)


def test_logistic_regression_matches_sklearn():
    means, mix = _planted(3, 5, 3.0, seed=11)
    x, y = _gaussian_classes(means, mix, 100, seed=12)
    (scaled,) = standardise(torch.from_numpy(x))
    for c in (0.05, 1.0):
        weight, bias = fit_logistic_regression(scaled, torch.from_numpy(y), 3, c)
        reference = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(scaled.numpy(), y)
        np.testing.assert_allclose(weight.numpy(), reference.coef_, atol=1e-5)
        probabilities = torch.softmax(scaled @ weight.T + bias, dim=1).numpy()
        np.testing.assert_allclose(probabilities, reference.predict_proba(scaled.numpy()), atol=1e-6)


def _knn_brute_force(train_x, train_y, test_x, test_y, k, temperature, num_classes):
    """Per test row: cosine to all train rows, k largest vote exp(cos/T), classes ranked by vote."""
    train_n = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    test_n = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    top1 = top5 = 0
    for row, label in zip(test_n, test_y, strict=True):
        cosine = train_n @ row
        nearest = np.argsort(-cosine, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[train_y[j]] += np.exp(cosine[j] / temperature)
        ranked = np.argsort(-votes, kind="stable")
        top1 += ranked[0] == label
        top5 += label in ranked[:5]
    return top1 / len(test_y), top5 / len(test_y)


def test_knn_matches_brute_force():
    rng = np.random.default_rng(13)
    means = 1.5 * rng.standard_normal((8, 12))  # some signal so top-1 is not at chance
    train_y, test_y = rng.integers(0, 8, 300), rng.integers(0, 8, 97)
    train_x = means[train_y] + rng.standard_normal((300, 12))
    test_x = means[test_y] + rng.standard_normal((97, 12))
    expected = _knn_brute_force(train_x, train_y, test_x, test_y, 20, 0.07, 8)
    assert expected[0] > 0.25
    assert knn_accuracy(train_x, train_y, test_x, test_y, block_size=16) == pytest.approx(expected, abs=1e-12)


def test_bad_probe_inputs_are_rejected():
    x, y = np.zeros((10, 3)), np.zeros(10, dtype=np.int64)
    with pytest.raises(ValueError, match="differ in dimension"):
        linear_probe(x, y, np.zeros((4, 2)), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="integer class ids"):
        linear_probe(x, y.astype(float), x, y)
    with pytest.raises(ValueError, match="num_classes is 1"):
        linear_probe(x, y + 1, x, y, num_classes=1)
    with pytest.raises(ValueError, match="0 < k"):
        knn_accuracy(x, y, x, y, k=20)
