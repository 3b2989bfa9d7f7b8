"""Reference models for REPA-E and its baselines: SiT (+ REPA projector), the LDM VAE, latent normalisation,
representation encoders and loaders for the official checkpoints."""

from genbench.models.latent_norm import FixedScale, LatentBatchNorm, build_latent_norm
from genbench.models.sit import SIT_CONFIGS, SiT, build_sit

__all__ = ["SIT_CONFIGS", "SiT", "build_sit", "FixedScale", "LatentBatchNorm", "build_latent_norm"]
