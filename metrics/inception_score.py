"""Inception Score with the ADM evaluator's semantics (guided-diffusion evaluations/evaluator.py):
softmax over the 1008 bias-free logits, consecutive splits of `split_size` samples in file order (the last,
possibly shorter, split counts as its own split), exp(mean KL(p(y|x) || p(y))) per split, mean over splits.
ADM works in float32; we use float64 (differences are ~1e-6 relative)."""

from __future__ import annotations

import numpy as np
import torch


def inception_score(logits: torch.Tensor | np.ndarray, split_size: int = 5000) -> tuple[float, float]:
    """logits [N, classes] in sample order -> (mean, std) of the per-split scores."""
    x = torch.as_tensor(logits).to(torch.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected logits of shape [N, classes] with N > 0, got {tuple(x.shape)}")
    log_p = x.log_softmax(dim=1)
    scores = []
    for start in range(0, x.shape[0], split_size):
        part = log_p[start : start + split_size]
        log_marginal = part.exp().mean(dim=0).log()
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))
