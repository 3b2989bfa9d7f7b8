"""A model (registered name, genbench checkpoint, official file, demo) -> an ADM .npz of its samples.

The one path behind `genbench sample` and `genbench eval --model`: settings left None in the request are a
registered model's paper settings, else the samplers' defaults (`official.sampling_settings`); shards are
resumable and split over torchrun ranks (`generate`), and rank 0 assembles the .npz.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genbench.distributed import barrier, rank_and_world
from genbench.errors import GenbenchError
from genbench.io import sha256_file
from genbench.models.official import load_model, sampling_settings
from genbench.records import ModelProvenance
from genbench.sampling.generate import SampleSettings, assemble, generate, read_manifest, vae_decoder


@dataclass(frozen=True)
class SampleRequest:
    """What to sample: the model and the sampling settings (None: the model's paper settings or the
    defaults; see the module docstring)."""

    model: Path
    num: int
    official: str | None = None
    vae: Path | None = None
    latents_stats: Path | None = None
    sampler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    guidance_interval: tuple[float, float] | None = None
    heun: bool = False
    cfg_channels: int | None = None
    balanced: bool = True
    seed: int = 0
    shard_size: int = 1000
    bf16: bool = False


def sample_model(request: SampleRequest, out: Path, work_dir: Path | None = None, batch_size: int = 64,
                 device: str = "cpu", advance: Callable[[int], None] | None = None) -> SampleSettings:
    """Sample `request.model` into shards in `work_dir` (default OUT.shards; finished shards are kept), then
    assemble `out` on rank 0. Returns the settings recorded in the shards' manifest."""
    rank, world_size = rank_and_world()
    chosen = sampling_settings(request.model, sampler=request.sampler, steps=request.steps,
                               cfg_scale=request.cfg_scale, heun=request.heun or None,
                               guidance_interval=request.guidance_interval, cfg_channels=request.cfg_channels)
    loaded = load_model(request.model, request.official, request.vae, request.latents_stats)
    if loaded.vae is None:
        raise GenbenchError(f"{loaded.path}: its config names no VAE to decode with; sample an official "
                            "model by name or with --official NAME --vae FILE")
    sit = loaded.sit.to(device)
    size = sit.grid_size * sit.patch_size
    settings = SampleSettings(
        num_samples=request.num, latent_shape=(sit.in_channels, size, size), num_classes=sit.num_classes,
        sampler=chosen["sampler"], num_steps=chosen["steps"], cfg_scale=chosen["cfg_scale"],
        guidance_interval=chosen["guidance_interval"], heun=chosen["heun"],
        cfg_channels=chosen["cfg_channels"],
        labels="balanced" if request.balanced else "random", seed=request.seed,
        precision="bf16" if request.bf16 else "fp32", shard_size=request.shard_size,
        model=ModelProvenance(loaded.path.name, sha256_file(loaded.path),
                              loaded.config.get("registered", request.official)))
    work_dir = work_dir or out.with_suffix(".shards")
    generate(sit, vae_decoder(sit, loaded.vae.to(device)), settings, work_dir, batch_size=batch_size,
             device=device, rank=rank, world_size=world_size, advance=advance)
    barrier()
    if rank == 0:
        assemble(work_dir, out)
    return read_manifest(work_dir)
