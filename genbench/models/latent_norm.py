"""Latent normalisation between a VAE and a SiT, as an explicit module.

Two kinds share one interface, `normalize(z_vae) -> z_sit` and `denormalize(z_sit) -> z_vae`:

- `LatentBatchNorm`: REPA-E's BatchNorm2d(C, eps=1e-4, momentum=0.1, affine=False). Its running statistics
  are initialised from a latents-stats file (`latents_scale`, `latents_bias`; mean = bias, var = scale^-2),
  train with the model (they are part of the EMA) and are inverted at sampling. As upstream, the inverse is
  z * sqrt(var) + mean with NO eps, so denormalize(normalize(z)) differs from z by the factor
  sqrt(var / (var + 1e-4)); we keep that asymmetry to reproduce upstream samples.
- `FixedScale`: the SD-VAE convention of REPA/SiT/DiT baselines, z * 0.18215 (no shift).
"""

from __future__ import annotations

import torch
from torch import nn

from genbench.distributed import all_reduce_sum, is_distributed

SD_VAE_SCALE = 0.18215


class LatentBatchNorm(nn.BatchNorm2d):
    """REPA-E's latent BatchNorm. State-dict keys are BatchNorm2d's (`running_mean`, `running_var`,
    `num_batches_tracked`); train mode normalises with batch statistics, eval mode with running ones.

    With `sync = True` under torch.distributed, training statistics are those of the global batch (SyncBN,
    as REPA-E under DDP); unlike nn.SyncBatchNorm this also works on CPU (gloo)."""

    def __init__(self, channels: int, eps: float = 1e-4, momentum: float = 0.1):
        super().__init__(channels, eps=eps, momentum=momentum, affine=False, track_running_stats=True)
        self.sync = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.sync and is_distributed()):
            return super().forward(z)
        return self._global_batch_norm(z)

    def _global_batch_norm(self, z: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> normalised with the mean / biased variance over all processes' batches
        (differentiable all-reduce of per-channel sums); running stats get the unbiased variance."""
        channels, x = z.shape[1], z.float()
        local = torch.cat([x.sum(dim=(0, 2, 3)), x.pow(2).sum(dim=(0, 2, 3)),
                           x.new_tensor([x.numel() / channels])])
        total = all_reduce_sum(local)
        count = total[-1]
        mean = total[:channels] / count
        var = total[channels: 2 * channels] / count - mean.pow(2)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(mean.detach(), alpha=self.momentum)
            unbiased = var.detach() * count / (count - 1)
            self.running_var.mul_(1 - self.momentum).add_(unbiased, alpha=self.momentum)
            self.num_batches_tracked.add_(1)
        shape = (1, channels, 1, 1)
        return ((x - mean.view(shape)) / (var.view(shape) + self.eps).sqrt()).to(z.dtype)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] VAE latents -> normalised latents (batch stats in train mode)."""
        return self(z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse with the running statistics and no eps (REPA-E's sampling code)."""
        var = self.running_var.view(1, -1, 1, 1).to(z.dtype)
        mean = self.running_mean.view(1, -1, 1, 1).to(z.dtype)
        return z * var.sqrt() + mean

    @torch.no_grad()
    def load_latents_stats(self, latents_scale: torch.Tensor, latents_bias: torch.Tensor) -> None:
        """Initialise running stats from REPA-E's `<vae>-latents-stats.pt` tensors (C values each)."""
        scale = latents_scale.detach().float().flatten()
        bias = latents_bias.detach().float().flatten()
        self.running_mean.copy_(bias)
        self.running_var.copy_(scale.pow(-2))

    def latents_stats(self) -> dict[str, torch.Tensor]:
        """The running stats in REPA-E's file format ({latents_scale, latents_bias}, each [1, C, 1, 1])."""
        return {"latents_scale": self.running_var.rsqrt().view(1, -1, 1, 1).clone(),
                "latents_bias": self.running_mean.view(1, -1, 1, 1).clone()}


class FixedScale(nn.Module):
    """Multiply latents by a constant (0.18215 for SD-VAE). Stateless: nothing in the state dict."""

    def __init__(self, scale: float = SD_VAE_SCALE):
        super().__init__()
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.scale


def build_latent_norm(kind: str, channels: int, scale: float = SD_VAE_SCALE) -> nn.Module:
    """`kind` is "batchnorm" (REPA-E), "scale" (SD-VAE constant) or "none" (scale 1)."""
    if kind == "batchnorm":
        return LatentBatchNorm(channels)
    if kind == "scale":
        return FixedScale(scale)
    if kind == "none":
        return FixedScale(1.0)
    raise ValueError(f"unknown latent_norm {kind!r}; use 'batchnorm', 'scale' or 'none'")
