"""Sampling: REPA-convention ODE/SDE samplers with interval CFG, class labels, and reproducible sharded
generation into an ADM .npz."""

from genbench.sampling.generate import SampleSettings, assemble, generate, vae_decoder
from genbench.sampling.labels import LABELINGS, balanced_labels, random_labels
from genbench.sampling.samplers import SAMPLERS, euler_maruyama_sde, euler_ode

__all__ = [
    "SampleSettings", "assemble", "generate", "vae_decoder",
    "LABELINGS", "balanced_labels", "random_labels",
    "SAMPLERS", "euler_maruyama_sde", "euler_ode",
]
