"""The LDM AutoencoderKL (Stable Diffusion VAE and REPA-E's VAEs), with LDM's module names.

Input images are in [-1, 1]. `encode(x) -> DiagonalGaussian`, `decode(z) -> x_hat`. Width, channel
multipliers, latent channels, resolution, attention resolutions and the GroupNorm group count are all
constructor arguments so that tiny test VAEs can be built (upstream hard-codes 128 channels, GroupNorm(32)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) from moments [N, 2C, h, w]; logvar clamped to [-30, 20] as upstream."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self.mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I) per sample, [N]: 1/2 sum_{C,h,w} (mean^2 + var - 1 - logvar)."""
        return 0.5 * torch.sum(self.mean.pow(2) + self.var - 1.0 - self.logvar, dim=[1, 2, 3])


#################################################################################
#                                  Building blocks                               #
#################################################################################

class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv3x3 twice with a residual; a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1-conv q, k, v and output projection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        normed = self.norm(x)
        q, k, v = (conv(normed).flatten(2).transpose(1, 2) for conv in (self.q, self.k, self.v))  # [N, hw, C]
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Asymmetric pad (right/bottom by 1) then a stride-2 3x3 conv, as LDM."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _stage(blocks: list[nn.Module], attns: list[nn.Module], resample: nn.Module | None,
           name: str) -> nn.Module:
    """One resolution level with LDM's attribute names: .block, .attn and .downsample / .upsample."""
    stage = nn.Module()
    stage.block = nn.ModuleList(blocks)
    stage.attn = nn.ModuleList(attns)
    if resample is not None:
        setattr(stage, name, resample)
    return stage


def _middle(channels: int, groups: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, groups)
    mid.attn_1 = AttnBlock(channels, groups)
    mid.block_2 = ResnetBlock(channels, channels, groups)
    return mid


def _run_stage(stage: nn.Module, h: torch.Tensor, resample: str) -> torch.Tensor:
    """One resolution level: ResNet blocks (each followed by its attention, if the level has any), then the
    level's `downsample` / `upsample`, if it has one."""
    for i, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    return getattr(stage, resample)(h) if hasattr(stage, resample) else h


def _run_middle(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


#################################################################################
#                                Encoder / Decoder                               #
#################################################################################

class Encoder(nn.Module):
    """[N, 3, R, R] -> moments [N, 2 z_channels, R / 2^(L-1), R / 2^(L-1)] with L = len(ch_mult)."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], z_channels: int, resolution: int,
                 num_res_blocks: int = 2, attn_resolutions: tuple[int, ...] = (), groups: int = 32):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in, res = ch, resolution
        for level, mult in enumerate(ch_mult):
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(block_in, ch * mult, groups))
                block_in = ch * mult
                if res in attn_resolutions:
                    attns.append(AttnBlock(block_in, groups))
            last = level == len(ch_mult) - 1
            self.down.append(_stage(blocks, attns, None if last else Downsample(block_in), "downsample"))
            res = res if last else res // 2
        self.mid = _middle(block_in, groups)
        self.norm_out = nn.GroupNorm(groups, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = _run_stage(stage, h, "downsample")
        h = _run_middle(self.mid, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """z [N, z_channels, r, r] -> [N, 3, r 2^(L-1), r 2^(L-1)]. `up[level]` is stored in encoder order
    (level 0 = full resolution) and run in reverse, as LDM."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], z_channels: int, resolution: int,
                 num_res_blocks: int = 2, attn_resolutions: tuple[int, ...] = (), groups: int = 32):
        super().__init__()
        block_in = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = _middle(block_in, groups)
        stages = []
        for level in reversed(range(len(ch_mult))):
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, ch * ch_mult[level], groups))
                block_in = ch * ch_mult[level]
                if res in attn_resolutions:
                    attns.append(AttnBlock(block_in, groups))
            stages.insert(0, _stage(blocks, attns, Upsample(block_in) if level else None, "upsample"))
            res = res * 2 if level else res
        self.up = nn.ModuleList(stages)
        self.norm_out = nn.GroupNorm(groups, block_in, eps=1e-6)
        self.conv_out = nn.Conv2d(block_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_middle(self.mid, self.conv_in(z))
        for stage in reversed(self.up):
            h = _run_stage(stage, h, "upsample")
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """LDM KL autoencoder. Images in [-1, 1]; `forward(x) -> (posterior, z sample, reconstruction)`."""

    def __init__(self, ch: int = 128, ch_mult: tuple[int, ...] = (1, 2, 4, 4), z_channels: int = 4,
                 resolution: int = 256, num_res_blocks: int = 2, attn_resolutions: tuple[int, ...] = (),
                 groups: int = 32):
        super().__init__()
        widths = [ch * m for m in ch_mult]
        if any(w % groups for w in [ch, *widths]):
            raise ValueError(f"VAE widths {widths} must be multiples of the GroupNorm group count {groups}")
        args = (ch, tuple(ch_mult), z_channels, resolution, num_res_blocks, tuple(attn_resolutions), groups)
        self.encoder = Encoder(*args)
        self.decoder = Decoder(*args)
        self.quant_conv = nn.Conv2d(2 * z_channels, 2 * z_channels, 1)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, 1)
        self.z_channels = z_channels
        self.downsample_factor = 2 ** (len(ch_mult) - 1)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """x [N, 3, H, W] in [-1, 1] -> posterior over z [N, z_channels, H/f, W/f]."""
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, z_channels, h, w] (unnormalised VAE latents) -> image [N, 3, h f, w f], nominally [-1, 1]."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor) -> tuple[DiagonalGaussian, torch.Tensor, torch.Tensor]:
        posterior = self.encode(x)
        z = posterior.sample()
        return posterior, z, self.decode(z)


VAE_CONFIGS: dict[str, dict] = {
    # SD-VAE (sd-vae-ft-mse/ema) and REPA-E's E2E-SD-VAE: 4 x 32 x 32 latents at 256.
    "f8d4": dict(ch=128, ch_mult=(1, 2, 4, 4), z_channels=4, resolution=256, attn_resolutions=()),
    # IN-VAE / VA-VAE and REPA-E's E2E versions: 32 x 16 x 16 latents, attention at 16 (REPA-E default).
    "f16d32": dict(ch=128, ch_mult=(1, 1, 2, 2, 4), z_channels=32, resolution=256, attn_resolutions=(16,)),
    # Tiny test VAEs.
    "tiny-f4d4": dict(ch=8, ch_mult=(1, 2, 2), z_channels=4, resolution=32, attn_resolutions=(), groups=4,
                      num_res_blocks=1),
    "tiny-f8d4": dict(ch=8, ch_mult=(1, 1, 2, 2), z_channels=4, resolution=32, attn_resolutions=(8,),
                      groups=4, num_res_blocks=1),
}


class PixelSpace(nn.Module):
    """A parameter-free, exact "VAE" for pixel-space diffusion: z = pixel_unshuffle(x, f), [N, 3 f^2, H/f,
    W/f], and decode = pixel_shuffle, with a near-zero posterior variance, so that latent recipes train on
    pixels (the miniature text-to-image model of the shapes world, which the tiny VAE would blur)."""

    def __init__(self, factor: int = 4):
        super().__init__()
        self.downsample_factor = factor
        self.z_channels = 3 * factor * factor

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        mean = F.pixel_unshuffle(x, self.downsample_factor)
        return DiagonalGaussian(torch.cat([mean, torch.full_like(mean, -30.0)], dim=1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(z, self.downsample_factor)

    def forward(self, x: torch.Tensor) -> tuple[DiagonalGaussian, torch.Tensor, torch.Tensor]:
        posterior = self.encode(x)
        return posterior, posterior.mean, self.decode(posterior.mean)


PIXEL_PRESETS = {"pixels-f4": 4, "pixels-f8": 8}


def build_vae(name: str, **overrides) -> AutoencoderKL | PixelSpace:
    """Build a VAE from a preset ("f8d4", "f16d32", "tiny-f4d4", ...) with keyword overrides;
    "pixels-f4" / "pixels-f8" give the exact pixel-space autoencoder."""
    if name in PIXEL_PRESETS:
        return PixelSpace(PIXEL_PRESETS[name])
    if name not in VAE_CONFIGS:
        raise ValueError(f"unknown VAE preset {name!r}; choose from {sorted(VAE_CONFIGS)}")
    return AutoencoderKL(**{**VAE_CONFIGS[name], **overrides})
