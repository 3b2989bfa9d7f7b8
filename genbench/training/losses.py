"""Training losses of SiT / REPA / REPA-E, one small class each (REPA loss.py, REPA-E loss/losses.py).

Time convention (REPA): t = 0 is data, t = 1 is noise; x_t = (1 - t) x + t eps; velocity target eps - x.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from genbench.models.vae import DiagonalGaussian


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dimension: [N, ...] -> [N]."""
    return x.flatten(1).mean(dim=1)


class LinearInterpolant:
    """Linear path with uniform t ~ U(0, 1): x_t = (1 - t) x + t eps, target v = eps - x."""

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw t [N] and eps [N, C, H, W] for a batch x (on x's device)."""
        t = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return t, eps

    @staticmethod
    def interpolate(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (x_t, velocity target), both [N, C, H, W]."""
        t = t.view(-1, *([1] * (x.dim() - 1)))
        return (1 - t) * x + t * eps, eps - x


class DenoisingLoss:
    """Per-sample mean squared velocity error, averaged over the batch: mean_n mean_flat((v - target)^2)."""

    def __call__(self, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mean_flat((v.float() - target.float()) ** 2).mean()


class ProjectionLoss:
    """REPA alignment: -cos(projected token, encoder token), averaged over tokens and batch. [N, T, D] x 2."""

    def __call__(self, projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if projected.shape != target.shape:
            raise ValueError(f"projected tokens {tuple(projected.shape)} and encoder tokens "
                             f"{tuple(target.shape)} differ; match the SiT grid and z_dim to the encoder")
        cos = (F.normalize(projected.float(), dim=-1) * F.normalize(target.float(), dim=-1)).sum(dim=-1)
        return -cos.mean()


#################################################################################
#                       VAE regularisation (REPA-E's L_REG)                      #
#################################################################################

class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix / taming): conv4x4 s2 + LeakyReLU, then `n_layers - 1` conv s2 + BN +
    LeakyReLU with doubling width (capped at 8 ndf), one s1 conv + BN, and a 1-channel s1 conv.
    [N, 3, H, W] in [-1, 1] -> logits [N, 1, h, w]. Init N(0, 0.02) convs, N(1, 0.02) BN scales."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        self.ndf, self.n_layers = ndf, n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2, True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class HingeDiscriminatorLoss:
    """D loss = 1/2 (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))."""

    def __call__(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def build_lpips() -> nn.Module | None:
    """LPIPS-VGG from the `lpips` package when it and its VGG16 trunk weights (torchvision's, from the torch
    hub cache) are available; otherwise None with a warning, and the VAE loss omits the perceptual term."""
    try:
        import lpips

        return lpips.LPIPS(net="vgg", verbose=False).eval().requires_grad_(False)
    except Exception as error:  # not installed, or the VGG weights cannot be fetched offline
        warnings.warn(f"LPIPS unavailable ({type(error).__name__}: {error}); the VAE regularisation runs "
                      "without its LPIPS term (pip install lpips and put torchvision's vgg16 weights in the "
                      "torch hub cache to enable it)", stacklevel=2)
        return None


class VAERegularizationLoss(nn.Module):
    """REPA-E's L_REG: L1 + w_p LPIPS + w_kl KL + w_gan (-mean D(x_hat)); GAN term on from step 0 with no
    adaptive weight. KL is the per-sample sum over latent elements, averaged over the batch.

    LPIPS input range: [-1, 1], as upstream. Its loss/losses.py comment says [0, 1], but its LPIPS
    ScalingLayer (shift -0.030/-0.088/-0.188, scale 0.458/0.448/0.450, loss/lpips.py) is the original one
    for [-1, 1] input, and it receives preprocess_imgs_vae's x / 127.5 - 1; the `lpips` package used here
    has the same ScalingLayer and takes the same [-1, 1] images.
    """

    def __init__(self, perceptual: nn.Module | None, perceptual_weight: float = 1.0, kl_weight: float = 1e-6,
                 gan_weight: float = 0.1):
        super().__init__()
        self.perceptual = perceptual
        self.perceptual_weight, self.kl_weight, self.gan_weight = perceptual_weight, kl_weight, gan_weight

    def forward(self, x: torch.Tensor, recon: torch.Tensor, posterior: DiagonalGaussian,
                discriminator: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        """x, recon [N, 3, H, W] in [-1, 1] -> (total loss, its parts as floats)."""
        l1 = F.l1_loss(recon.float(), x.float())
        kl = posterior.kl().float().mean()
        gan = -discriminator(recon).float().mean()
        total = l1 + self.kl_weight * kl + self.gan_weight * gan
        parts = {"l1": l1.item(), "kl": kl.item(), "gan": gan.item()}
        if self.perceptual is not None:
            perceptual = self.perceptual(recon.float(), x.float()).mean()
            total = total + self.perceptual_weight * perceptual
            parts["lpips"] = perceptual.item()
        return total, parts
