"""Tokenizer pre-training: a VAE trained on its own, the stage before the three recipes.

SiT and REPA train on this VAE frozen (as on SD-VAE); REPA-E starts from it and tunes it end to end (as it
starts from SD-VAE). The loss is L1 + mse_weight * MSE + perceptual_weight * d_perceptual + kl_weight * KL
(SD-VAE's adversarial term is left out). In the shapes world the perceptual distance is
`genbench.worlds.perceptual.ShapesPerceptual`, a second network of the world, never the evaluation network:
L1 alone keeps colours but blurs the 4-6 pixel shapes into blobs whose kind the classifier cannot tell.
Batches come from `ImageDataset` with the recipes' deterministic order (no flips), so a run is a function
of (data, steps, seed).

`reconstruction_fidelity` measures what a tokenizer keeps of the classes: the world classifier's top-1
accuracy on reconstructions (class, kind and colour separately) and PSNR.

`latents_stats` measures the per-channel mean and std of posterior samples, REPA-E's `latents-stats.pt`
({latents_scale = 1 / std, latents_bias = mean}, each [1, C, 1, 1]) that the latent BatchNorm starts from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genbench.models.vae import AutoencoderKL
from genbench.pixels import to_signed_range
from genbench.training.data import ImageDataset


def pretrain_vae(vae: AutoencoderKL, dataset: ImageDataset, steps: int, batch_size: int = 64,
                 lr: float = 1e-3, kl_weight: float = 1e-6, seed: int = 0,
                 log: Callable[[int, dict[str, float]], None] | None = None, mse_weight: float = 0.0,
                 perceptual: nn.Module | None = None, perceptual_weight: float = 1.0) -> AutoencoderKL:
    """Train `vae` in place for `steps` AdamW steps, constant lr after a cosine decay over the last 20%
    (a short run's final reconstructions are less noisy); returns it in eval mode. `perceptual(recon, x)`
    -> [N] distances, images in [-1, 1]."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    vae.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * _tail_decay(step, steps)
        index, _ = dataset.batch_indices(step, batch_size, seed)
        x = to_signed_range(dataset.images_at(index, torch.zeros(len(index), dtype=torch.bool)))
        posterior, _, recon = vae(x)
        l1 = F.l1_loss(recon, x)
        kl = posterior.kl().mean()
        loss = l1 + kl_weight * kl
        parts = {"l1": l1.item(), "kl": kl.item()}
        if mse_weight:
            mse = F.mse_loss(recon, x)
            loss = loss + mse_weight * mse
            parts["mse"] = mse.item()
        if perceptual is not None:
            distance = perceptual(recon, x).mean()
            loss = loss + perceptual_weight * distance
            parts["perceptual"] = distance.item()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if log is not None:
            log(step + 1, parts)
    return vae.eval()


def _tail_decay(step: int, steps: int, tail: float = 0.2) -> float:
    """1 until the last `tail` of the run, then a cosine to 0."""
    start = steps * (1 - tail)
    if step < start:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - start) / max(steps - start, 1)))


@torch.no_grad()
def reconstruction_fidelity(vae: AutoencoderKL, images: torch.Tensor, labels: torch.Tensor,
                            classifier: nn.Module, batch_size: int = 250) -> dict[str, float]:
    """World images uint8 [N, 3, H, W] with class labels -> the classifier's top-1 accuracy on the
    posterior-mean reconstructions (`class_acc`; `kind_acc` and `colour_acc` from the same prediction,
    label = kind * 5 + colour), the same on the originals (`class_acc_real`), and PSNR (8-bit)."""
    from genbench.metrics.image_quality import psnr
    from genbench.models.tokenizer_adapters import encode_mean
    from genbench.tokenizer_comparison import decode_uint8
    from genbench.worlds.shapes import COLORS

    vae.eval()
    recons, predicted, predicted_real = [], [], []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        recon = torch.from_numpy(decode_uint8(vae, encode_mean(vae, batch))).permute(0, 3, 1, 2)
        recons.append(recon)
        predicted.append(classifier(recon).argmax(1))
        predicted_real.append(classifier(batch).argmax(1))
    predicted, predicted_real = torch.cat(predicted), torch.cat(predicted_real)
    colours = len(COLORS)
    return {"class_acc": (predicted == labels).float().mean().item(),
            "kind_acc": (predicted // colours == labels // colours).float().mean().item(),
            "colour_acc": (predicted % colours == labels % colours).float().mean().item(),
            "class_acc_real": (predicted_real == labels).float().mean().item(),
            "psnr": psnr(images, torch.cat(recons))}


@torch.no_grad()
def latents_stats(vae: AutoencoderKL, dataset: ImageDataset, num: int = 4096, batch_size: int = 256,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-channel statistics of posterior samples of the first `num` images (float64 accumulation)."""
    torch.manual_seed(seed)
    total = count = total_sq = 0
    for start in range(0, min(num, len(dataset)), batch_size):
        index = torch.arange(start, min(start + batch_size, num, len(dataset)))
        z = vae.encode(to_signed_range(dataset.images_at(index, torch.zeros(len(index), dtype=torch.bool))))
        z = z.sample().double()
        total = total + z.sum(dim=(0, 2, 3))
        total_sq = total_sq + z.pow(2).sum(dim=(0, 2, 3))
        count += z.numel() // z.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return {"latents_scale": (1 / std).float().view(1, -1, 1, 1),
            "latents_bias": mean.float().view(1, -1, 1, 1)}


def pretrain_discriminator(discriminator: nn.Module, vae: AutoencoderKL, dataset: ImageDataset, steps: int,
                           batch_size: int = 64, lr: float = 1e-4, seed: int = 0) -> nn.Module:
    """Train the PatchGAN discriminator against the frozen pre-trained VAE's reconstructions (hinge loss,
    AdamW), so that REPA-E's GAN term starts from a discriminator that already tells reconstructions from
    images, as upstream's starts from the one trained with its VAE (--disc-pretrained-ckpt)."""
    from genbench.training.losses import HingeDiscriminatorLoss

    torch.manual_seed(seed)
    hinge = HingeDiscriminatorLoss()
    optimizer = torch.optim.AdamW(discriminator.parameters(), lr=lr, weight_decay=0.0)
    vae.eval()
    discriminator.train()
    for step in range(steps):
        index, _ = dataset.batch_indices(step, batch_size, seed + 1)
        x = to_signed_range(dataset.images_at(index, torch.zeros(len(index), dtype=torch.bool)))
        with torch.no_grad():
            recon = vae.decode(vae.encode(x).sample())
        loss = hinge(discriminator(x), discriminator(recon))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return discriminator.eval()
