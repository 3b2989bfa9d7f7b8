"""Probes of frozen features: a linear probe (multinomial logistic regression) and a weighted k-NN classifier.

Linear probe (the CLIP paper's protocol, fitted in torch): features standardised with training statistics;
full-batch L-BFGS in float64 from zero weights (the problem is strictly convex, so the result does not
depend on initialisation or batching) on the objective of sklearn's LogisticRegression,

    sum_i cross_entropy_i + ||W||^2 / (2 C)      (bias unpenalised),

with C chosen from a small sweep by top-1 accuracy on a seeded held-out share of the training rows, then
refitted on all training rows. Reports top-1 and top-5 accuracy on the test rows.

k-NN (DINO's eval_knn): L2-normalised features, cosine similarity to every training row, the k = 20 most
similar vote for their class with weight exp(cos / T), T = 0.07; classes ranked by total vote.
Top-5 counts a hit among the first min(5, number of classes) ranked classes, so with under 5 classes it is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class ProbeResult:
    top1: float
    top5: float
    c: float  # inverse L2 strength chosen on the validation rows
    validation_top1: dict[float, float]  # per C of the sweep


def _features(name: str, value: ArrayLike) -> torch.Tensor:
    x = torch.as_tensor(value).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return x


def _labels(name: str, value: ArrayLike, count: int) -> torch.Tensor:
    y = torch.as_tensor(value).detach().to("cpu")
    if y.shape != (count,) or y.is_floating_point() or (count and int(y.min()) < 0):
        raise ValueError(f"{name} must be {count} non-negative integer class ids, got shape {tuple(y.shape)}")
    return y.long()


def _class_count(num_classes: int | None, *labels: torch.Tensor) -> int:
    largest = max(int(y.max()) for y in labels)
    if num_classes is not None and largest >= num_classes:
        raise ValueError(f"labels go up to {largest} but num_classes is {num_classes}")
    return num_classes or largest + 1


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every set by the training mean and std (constant features left at zero)."""
    mean, std = train.mean(dim=0), train.std(dim=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [(x - mean) / std for x in (train, *others)]


def fit_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float, max_iter: int = 500,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [K, d] and bias [K] minimising sum CE + ||W||^2 / (2 C), float64, full-batch L-BFGS, from
    zeros or from `start` (the objective is convex: the start changes the iterations, not the optimum)."""
    x = x.to(torch.float64)
    if start is None:
        start = torch.zeros(num_classes, x.shape[1]), torch.zeros(num_classes)
    weight = start[0].to(torch.float64).clone().requires_grad_(True)
    bias = start[1].to(torch.float64).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-9,
        tolerance_change=1e-14, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        # Divided by N so the scale of the loss (and L-BFGS tolerances) does not grow with the data.
        loss = F.cross_entropy(x @ weight.T + bias, y) + (weight**2).sum() / (2 * c * x.shape[0])
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _topk_hits(scores: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(top-1, top-5) accuracy of class scores [N, K] against labels [N]."""
    ranked = scores.argsort(dim=1, descending=True, stable=True)[:, : min(5, scores.shape[1])]
    hits = ranked == y[:, None]
    return float(hits[:, 0].double().mean()), float(hits.any(dim=1).double().mean())


def linear_probe(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    cs: tuple[float, ...] = DEFAULT_CS,
    validation_fraction: float = 0.2,
    seed: int = 0,
    num_classes: int | None = None,
) -> ProbeResult:
    """Linear-probe accuracy: fit on train [N, d] (C swept on a held-out share), score test [M, d]."""
    train_x, test_x = _features("train features", train_features), _features("test features", test_features)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train and test features differ in dimension: {train_x.shape[1]} vs {test_x.shape[1]}"
        )
    train_y = _labels("train labels", train_labels, train_x.shape[0])
    test_y = _labels("test labels", test_labels, test_x.shape[0])
    k = _class_count(num_classes, train_y, test_y)
    held_out = int(round(validation_fraction * train_x.shape[0]))
    if not cs or held_out < 1 or held_out >= train_x.shape[0]:
        raise ValueError(
            f"need a non-empty C sweep and 0 < validation rows < {train_x.shape[0]}, got {held_out}"
        )

    order = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))
    val_rows, fit_rows = order[:held_out], order[held_out:]
    fit_x, val_x = standardise(train_x[fit_rows], train_x[val_rows])
    validation_top1, solutions, previous = {}, {}, None
    for c in sorted(cs):  # warm starts along the path: each C starts from the next stronger one's optimum
        previous = solutions[c] = fit_logistic_regression(fit_x, train_y[fit_rows], k, c, start=previous)
        validation_top1[c] = _topk_hits(val_x @ previous[0].T + previous[1], train_y[val_rows])[0]
    best_c = max(cs, key=lambda c: validation_top1[c])  # first best: the strongest regularisation on ties

    all_x, scaled_test = standardise(train_x, test_x)
    weight, bias = fit_logistic_regression(all_x, train_y, k, best_c, start=solutions[best_c])
    top1, top5 = _topk_hits(scaled_test @ weight.T + bias, test_y)
    return ProbeResult(top1, top5, best_c, validation_top1)


def knn_accuracy(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    block_size: int = 1024,
) -> tuple[float, float]:
    """(top-1, top-5) accuracy of the temperature-weighted cosine k-NN classifier (DINO eval_knn)."""
    train_x = F.normalize(_features("train features", train_features), dim=1)
    test_x = F.normalize(_features("test features", test_features), dim=1)
    train_y = _labels("train labels", train_labels, train_x.shape[0])
    test_y = _labels("test labels", test_labels, test_x.shape[0])
    if not 0 < k <= train_x.shape[0]:
        raise ValueError(f"k-NN needs 0 < k <= {train_x.shape[0]} training rows, got k={k}")
    classes = _class_count(num_classes, train_y, test_y)
    top1 = top5 = 0.0
    for start in range(0, test_x.shape[0], block_size):
        similarity, neighbours = (test_x[start : start + block_size] @ train_x.T).topk(k, dim=1)
        votes = torch.zeros(similarity.shape[0], classes, dtype=torch.float64)
        votes.scatter_add_(1, train_y[neighbours], (similarity / temperature).exp())
        hit1, hit5 = _topk_hits(votes, test_y[start : start + block_size])
        top1 += hit1 * similarity.shape[0]
        top5 += hit5 * similarity.shape[0]
    return top1 / test_x.shape[0], top5 / test_x.shape[0]
