"""Reference models for REPA-E and its baselines: SiT (+ REPA projector), the LDM VAE, latent normalisation,
representation encoders and loaders for official and genbench checkpoints."""

from genbench.models.checkpoints import LoadedModel, load_model_checkpoint
from genbench.models.encoders import ENCODERS, build_encoder, register_encoder
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
    "ENCODERS", "build_encoder", "register_encoder",
    "FixedScale", "LatentBatchNorm", "build_latent_norm",
    "OFFICIAL_MODELS", "LoadedModel", "load_model_checkpoint", "load_official_model", "load_official_sit",
    "load_official_vae",
    "SIT_CONFIGS", "SiT", "build_sit",
    "VAE_CONFIGS", "AutoencoderKL", "DiagonalGaussian", "build_vae",
]
