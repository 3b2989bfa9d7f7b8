"""Tokenizer pre-training: a VAE trained on its own, the stage before the three recipes.

SiT and REPA train on this VAE frozen (as on SD-VAE); REPA-E starts from it and tunes it end to end (as it
starts from SD-VAE). The loss is L1 + kl_weight * KL (SD-VAE's adversarial and perceptual terms are left
out: at 32 x 32 the L1 alone reconstructs the shapes world well). Batches come from `ImageDataset` with the
recipes' deterministic order, so a run is a function of (data, steps, seed).

`latents_stats` measures the per-channel mean and std of posterior samples, REPA-E's `latents-stats.pt`
({latents_scale = 1 / std, latents_bias = mean}, each [1, C, 1, 1]) that the latent BatchNorm starts from.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from genbench.models.vae import AutoencoderKL
from genbench.training.data import ImageDataset
from genbench.training.recipes import to_vae_input


def pretrain_vae(vae: AutoencoderKL, dataset: ImageDataset, steps: int, batch_size: int = 64,
                 lr: float = 1e-3, kl_weight: float = 1e-6, seed: int = 0,
                 log: Callable[[int, dict[str, float]], None] | None = None) -> AutoencoderKL:
    """Train `vae` in place for `steps` AdamW steps (cosine-free constant lr); returns it in eval mode."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    vae.train()
    for step in range(steps):
        index, flip = dataset.batch_indices(step, batch_size, seed)
        x = to_vae_input(dataset.images_at(index, flip))
        posterior, _, recon = vae(x)
        l1 = F.l1_loss(recon, x)
        kl = posterior.kl().mean()
        loss = l1 + kl_weight * kl
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if log is not None:
            log(step + 1, {"l1": l1.item(), "kl": kl.item()})
    return vae.eval()


@torch.no_grad()
def latents_stats(vae: AutoencoderKL, dataset: ImageDataset, num: int = 4096, batch_size: int = 256,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-channel statistics of posterior samples of the first `num` images (float64 accumulation)."""
    torch.manual_seed(seed)
    total = count = total_sq = 0
    for start in range(0, min(num, len(dataset)), batch_size):
        index = torch.arange(start, min(start + batch_size, num, len(dataset)))
        z = vae.encode(to_vae_input(dataset.images_at(index, torch.zeros(len(index), dtype=torch.bool))))
        z = z.sample().double()
        total = total + z.sum(dim=(0, 2, 3))
        total_sq = total_sq + z.pow(2).sum(dim=(0, 2, 3))
        count += z.numel() // z.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return {"latents_scale": (1 / std).float().view(1, -1, 1, 1),
            "latents_bias": mean.float().view(1, -1, 1, 1)}
