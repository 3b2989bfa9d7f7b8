"""Inception Score with the ADM evaluator's semantics (guided-diffusion evaluations/evaluator.py):
softmax over the 1008 bias-free logits, consecutive splits of `split_size` samples in file order (the last,
possibly shorter, split counts as its own split), exp(mean KL(p(y|x) || p(y))) per split, mean over splits.
ADM works in float32; we use float64 (differences are ~1e-6 relative). On the same softmax rows in float64,
`inception_score_from_probabilities` equals the evaluator's loop to ~1e-15 (tests/test_adm_parity.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

IS_SPLIT_SIZE = 5000  # the ADM evaluator's split size


def _split_scores(
    rows: torch.Tensor, split_size: int, to_log_p: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
) -> tuple[float, float]:
    """(mean, std) over consecutive splits of exp(mean_x KL(p(y|x) || mean_x p(y|x))); `to_log_p` maps a
    split of `rows` to its float64 log-probabilities (one split at a time: memory O(split_size), not O(N))."""
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"expected rows of shape [N, classes] with N > 0, got {tuple(rows.shape)}")
    scores = []
    for start in range(0, rows.shape[0], split_size):
        part = to_log_p(rows[start : start + split_size])
        log_marginal = part.exp().mean(dim=0).log()
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(
    logits: torch.Tensor | np.ndarray, split_size: int = IS_SPLIT_SIZE
) -> tuple[float, float]:
    """logits [N, classes] in sample order -> (mean, std) of the per-split scores."""
    x = torch.as_tensor(logits)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected logits of shape [N, classes] with N > 0, got {tuple(x.shape)}")
    return _split_scores(x, split_size, lambda part: part.to(torch.float64).log_softmax(dim=1))


def inception_score_from_probabilities(
    probabilities: torch.Tensor | np.ndarray, split_size: int = IS_SPLIT_SIZE
) -> tuple[float, float]:
    """Softmax rows [N, classes] (each summing to 1) in sample order -> (mean, std), in float64: the
    evaluator's `compute_inception_score` after its softmax graph."""
    p = torch.as_tensor(probabilities).to(torch.float64)
    if p.ndim != 2 or p.shape[0] == 0 or not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"expected finite non-negative probabilities [N, classes], got {tuple(p.shape)}")
    return _split_scores(p.log(), split_size)
