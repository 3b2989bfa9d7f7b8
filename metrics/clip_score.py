"""CLIP score (Hessel et al. 2021, as torchmetrics' CLIPScore): 100 * max(cos(image, text), 0) per
image-prompt pair, and its mean. Embeddings come from any CLIP model; they are L2-normalised here."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def clip_score_per_pair(image_embeddings: ArrayLike, text_embeddings: ArrayLike) -> torch.Tensor:
    """[N] scores of pairs (image_embeddings[i], text_embeddings[i]), each [N, d]."""
    images = torch.as_tensor(image_embeddings).detach().to(torch.float64)
    texts = torch.as_tensor(text_embeddings).detach().to(images.device, torch.float64)
    if images.ndim != 2 or images.shape != texts.shape:
        raise ValueError(
            f"image and text embeddings must both be [N, d] and paired row by row, got "
            f"{tuple(images.shape)} and {tuple(texts.shape)}"
        )
    if not (torch.isfinite(images).all() and torch.isfinite(texts).all()):
        raise ValueError("image or text embeddings contain NaN or infinite values")
    cosine = torch.nn.functional.cosine_similarity(images, texts, dim=1, eps=1e-12)
    return 100.0 * cosine.clamp(min=0)


def clip_score(image_embeddings: ArrayLike, text_embeddings: ArrayLike) -> float:
    """Mean CLIP score over the pairs."""
    return float(clip_score_per_pair(image_embeddings, text_embeddings).mean())
