"""Conditional class accuracy (`class_acc`): the share of class-conditional samples in which a classifier's
top-1 class is the class the model was asked for (the label stored with the sample, ADM's `arr_1`).

Any extractor with class logits can be the classifier. Logits are read in the extractor's class order, except
Inception's 1008 (the 2015-12-05 TF graph's softmax nodes), which are first reduced to ImageNet's 1000
classes in ImageNet order through the graph's own label map (`inception_classes.py`): nodes 0 and 1001-1007
belong to no class and never win. genbench's `inception` logits are ADM's bias-free ones (used for IS); the
graph's classifier adds a bias, so a borderline image can get another top-1 class than the graph's own.
"""

from __future__ import annotations

import numpy as np
import torch

from .inception_classes import INCEPTION_LOGITS, INCEPTION_NODE_OF_CLASS


def imagenet_logits(logits: torch.Tensor) -> torch.Tensor:
    """Inception's [N, 1008] logits -> [N, 1000] in ImageNet class order (column c = class c's node)."""
    if logits.shape[1] != INCEPTION_LOGITS:
        raise ValueError(f"expected Inception's {INCEPTION_LOGITS} logits, got {logits.shape[1]}")
    return logits[:, torch.tensor(INCEPTION_NODE_OF_CLASS, device=logits.device)]


def class_logits(logits: torch.Tensor) -> torch.Tensor:
    """An extractor's logits in class order: Inception's 1008 reduced to ImageNet's 1000, others as given."""
    return imagenet_logits(logits) if logits.shape[1] == INCEPTION_LOGITS else logits


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor | np.ndarray) -> float:
    """Top-1 agreement of `logits` [N, K] (class order) with integer `labels` [N] in 0..K-1, in [0, 1].
    A tie counts for the lowest class index, as argmax does. Raises ValueError on labels that are not N
    integers in 0..K-1."""
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"class labels must be integers, got {labels.dtype}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"{logits.shape[0]} samples but class labels of shape {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("no samples to classify")
    classes = logits.shape[1]
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(f"class labels must lie in 0..{classes - 1} (the classifier's {classes} classes); "
                         f"found {low if low < 0 else high}")
    predicted = logits.argmax(dim=1).cpu()
    return float((predicted == labels.long().cpu()).double().mean())
