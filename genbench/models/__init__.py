"""Reference models for REPA-E and its baselines: SiT (+ REPA projector), the LDM VAE, latent normalisation
and loaders for official and genbench checkpoints (REPA's target encoders: genbench.backbones)."""

from genbench.models.checkpoints import LoadedModel, load_model_checkpoint
from genbench.models.latent_norm import FixedScale, LatentBatchNorm, build_latent_norm
from genbench.models.official import (
    OFFICIAL_MODELS,
    load_official_model,
    load_official_sit,
    load_official_vae,
)
from genbench.models.sit import SIT_CONFIGS, SiT, build_sit
from genbench.models.vae import VAE_CONFIGS, AutoencoderKL, DiagonalGaussian, build_vae

__all__ = [
    "FixedScale", "LatentBatchNorm", "build_latent_norm",
    "OFFICIAL_MODELS", "LoadedModel", "load_model_checkpoint", "load_official_model", "load_official_sit",
    "load_official_vae",
    "SIT_CONFIGS", "SiT", "build_sit",
    "VAE_CONFIGS", "AutoencoderKL", "DiagonalGaussian", "build_vae",
]
