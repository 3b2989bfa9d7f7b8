"""Class labels for a sample set, a pure function of (num_samples, num_classes, seed), so every process and
every resumed run agrees on the label of each sample index."""

from __future__ import annotations

import torch

from genbench.errors import GenbenchError


def balanced_labels(num_samples: int, num_classes: int, seed: int) -> torch.Tensor:
    """Class-balanced labels [num_samples] long, shuffled by `seed` (REPA-E's current protocol).

    Each class appears exactly num_samples // num_classes times; when num_classes does not divide
    num_samples, the remainder r goes one extra sample each to classes 0..r-1 (so class counts differ by at
    most one, lower class ids first).
    """
    _check(num_samples, num_classes)
    labels = torch.arange(num_samples) % num_classes
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return labels[order]


def random_labels(num_samples: int, num_classes: int, seed: int) -> torch.Tensor:
    """Independent uniform labels [num_samples] long drawn with `seed` (DiT/REPA's original protocol)."""
    _check(num_samples, num_classes)
    return torch.randint(num_classes, (num_samples,), generator=torch.Generator().manual_seed(seed))


LABELINGS = {"balanced": balanced_labels, "random": random_labels}


def _check(num_samples: int, num_classes: int) -> None:
    if num_samples < 1 or num_classes < 1:
        raise GenbenchError(f"need at least one sample and one class (got --num {num_samples}, "
                            f"{num_classes} classes)")
