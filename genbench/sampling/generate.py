"""Generate a sample set reproducibly, in resumable shards, on any number of processes.

Every sample is a function of its index alone: its label comes from `labels.py` (a function of the seed),
and its initial noise and SDE noise from its own generator seeded by (seed, index). The set of images is
therefore the same whatever the batch size or the number of processes (up to the model's own batch-size
dependence in low-order float bits, which rounding to uint8 almost always absorbs).

Layout of `out_dir`: `manifest.json` (the settings, checked on resume) and `shard-XXXXX.npz` files, shard k
holding indices [k * shard_size, (k + 1) * shard_size) as `images` uint8 [n, H, W, 3], `labels` [n] and
`indices` [n]. Each shard is written atomically, so a shard file that exists is complete; re-running skips
those, and nothing is duplicated or lost. Process `rank` of `world_size` takes shards rank, rank +
world_size, ... `assemble` then streams the shards into one ADM `.npz` (`arr_0` NHWC uint8, `arr_1` labels).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genbench.distributed import rank_and_world
from genbench.errors import GenbenchError
from genbench.io import atomic_write
from genbench.pixels import to_uint8
from genbench.records import ModelProvenance
from genbench.sampling.labels import LABELINGS
from genbench.sampling.samplers import SAMPLERS, euler_maruyama_sde, euler_ode
from genbench.sources import read_json, read_npz, record_or_check_manifest
from genbench.validate import check_number

MANIFEST = "manifest.json"
Decoder = Callable[[torch.Tensor], torch.Tensor]  # latents [N, C, h, w] -> images [N, 3, H, W] in [-1, 1]


@dataclass(frozen=True)
class SampleSettings:
    """Everything that determines the sample set (batch size and process count do not)."""

    num_samples: int
    latent_shape: tuple[int, int, int]  # (C, h, w) of the model's latents
    num_classes: int = 1000
    sampler: str = "sde"  # "sde" (Euler-Maruyama) | "ode" (Euler, or Heun with heun=True)
    num_steps: int = 250
    cfg_scale: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    heun: bool = False
    cfg_channels: int | None = None  # None: all channels (REPA); 3: SiT's official first-3-channel CFG
    labels: str = "balanced"  # "balanced" | "random"
    seed: int = 0
    precision: str = "fp32"  # "fp32" | "bf16" (autocast around the model)
    shard_size: int = 1000
    model: ModelProvenance | None = None  # the sampled checkpoint, recorded for provenance

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            choices = " or ".join(sorted(SAMPLERS, reverse=True))
            raise GenbenchError(f"--sampler {self.sampler}: choose {choices}")
        if self.labels not in LABELINGS:
            raise GenbenchError(f"labels {self.labels!r}: choose from {sorted(LABELINGS)}")
        if self.precision not in ("fp32", "bf16"):
            raise GenbenchError(f"precision {self.precision!r}: choose fp32 or bf16")
        low, high = self.guidance_interval
        if not 0.0 <= low <= high <= 1.0:
            raise GenbenchError(f"--guidance-interval {low} {high}: need 0 <= LOW <= HIGH <= 1")
        if self.num_samples < 1 or self.shard_size < 1 or self.num_steps < 1:
            raise GenbenchError("--num, --steps and the shard size must be at least 1")
        check_number("--cfg-scale", self.cfg_scale)  # NaN would silently turn guidance off
        if self.cfg_channels is not None:
            check_number("--cfg-channels", self.cfg_channels, 1, self.latent_shape[0], integer=True)

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, as read back

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_indices(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_samples))


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample `index`, decorrelated from neighbouring indices and seeds."""
    digest = hashlib.sha256(f"genbench-sample:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sample_generators(seed: int, indices: list[int] | range,
                      device: torch.device | str) -> list[torch.Generator]:
    return [torch.Generator(device).manual_seed(sample_seed(seed, i)) for i in indices]


def per_sample_randn(generators: list[torch.Generator], shape: tuple[int, ...],
                     device: torch.device | str) -> torch.Tensor:
    """[len(generators), *shape] standard normals, row i drawn from generators[i] only."""
    return torch.stack([torch.randn(shape, generator=g, device=device) for g in generators])


def vae_decoder(sit: nn.Module, vae: nn.Module) -> Decoder:
    """Decode the SiT's normalised latents: vae.decode(sit.latent_norm.denormalize(x0))."""
    @torch.no_grad()
    def decode(latents: torch.Tensor) -> torch.Tensor:
        return vae.decode(sit.latent_norm.denormalize(latents))
    return decode


@torch.no_grad()
def sample_batch(model: nn.Module, settings: SampleSettings, indices: list[int], labels: torch.Tensor,
                 device: torch.device | str) -> torch.Tensor:
    """Latents [n, C, h, w] float32 for the given sample indices and their labels."""
    generators = sample_generators(settings.seed, indices, device)
    z = per_sample_randn(generators, settings.latent_shape, device)
    y = labels.to(device)
    common = dict(num_steps=settings.num_steps, cfg_scale=settings.cfg_scale,
                  guidance_interval=tuple(settings.guidance_interval), cfg_channels=settings.cfg_channels,
                  null_label=settings.num_classes)
    device_type = torch.device(device).type
    autocast = torch.autocast(device_type, dtype=torch.bfloat16) if settings.precision == "bf16" else \
        contextlib.nullcontext()
    with autocast:
        if settings.sampler == "ode":
            x0 = euler_ode(model, z, y, heun=settings.heun, **common)
        else:
            def noise(x: torch.Tensor) -> torch.Tensor:
                return per_sample_randn(generators, tuple(x.shape[1:]), device)
            x0 = euler_maruyama_sde(model, z, y, noise=noise, **common)
    return x0.float()


def check_manifest(out_dir: Path, settings: SampleSettings) -> None:
    """Write the manifest, or check that an existing one (a run being resumed) has the same settings."""
    record_or_check_manifest(out_dir / MANIFEST, settings.to_json(), "sampling manifest",
                             "these samples were made with other settings",
                             "resume with the same settings or choose a new output directory",
                             upgrade=lambda found: _upgrade_manifest(found, out_dir / MANIFEST))


def _upgrade_manifest(found: dict, path: Path) -> dict:
    """A manifest written before ModelProvenance (the model as text) in today's form, so that an
    interrupted run of an older genbench still resumes."""
    if isinstance(found.get("model"), str):
        return found | {"model": ModelProvenance.from_json(found["model"], f"{path}: model").to_json()}
    return found


def shard_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"shard-{shard:05d}.npz"


def generate(model: nn.Module, decode_fn: Decoder, settings: SampleSettings, out_dir: str | Path,
             batch_size: int = 64, device: torch.device | str = "cpu", rank: int | None = None,
             world_size: int | None = None, advance: Callable[[int], None] | None = None) -> list[Path]:
    """Sample this process's missing shards into `out_dir`; returns the shard files written now.

    rank / world_size default to torch.distributed's when it is initialised, else 0 / 1.
    `advance(n)` is called after each batch (a progress bar).
    """
    if batch_size < 1:
        raise GenbenchError(f"--batch-size {batch_size}: must be at least 1")
    group_rank, group_world = rank_and_world()
    rank = group_rank if rank is None else rank
    world_size = group_world if world_size is None else world_size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_manifest(out_dir, settings)
    labels = LABELINGS[settings.labels](settings.num_samples, settings.num_classes, settings.seed)
    written = []
    for shard in range(rank, settings.num_shards, world_size):
        path = shard_path(out_dir, shard)
        if path.exists():
            continue
        indices = list(settings.shard_indices(shard))
        images = []
        for start in range(0, len(indices), batch_size):
            batch = indices[start: start + batch_size]
            latents = sample_batch(model, settings, batch, labels[batch], device)
            images.append(to_uint8(decode_fn(latents)))
            if advance is not None:
                advance(len(batch))
        with atomic_write(path) as tmp:
            np.savez(tmp, images=np.concatenate(images), labels=labels[indices].numpy(),
                     indices=np.asarray(indices, dtype=np.int64))
        written.append(path)
    return written


def read_manifest(out_dir: Path) -> SampleSettings:
    path = out_dir / MANIFEST
    if not path.exists():
        raise GenbenchError(f"{path}: missing; {out_dir} is not a genbench sample directory")
    values = read_json(path, "sampling manifest", dict, f"delete {out_dir} and sample again")
    try:
        values["latent_shape"] = tuple(values["latent_shape"])
        values["guidance_interval"] = tuple(values["guidance_interval"])
        if values.get("model") is not None:
            values["model"] = ModelProvenance.from_json(values["model"], f"{path}: model")
        return SampleSettings(**values)
    except (KeyError, TypeError, ValueError) as error:
        raise GenbenchError(f"{path}: not a sampling manifest genbench wrote ({type(error).__name__}: "
                            f"{error}); delete {out_dir} and sample again") from error


def _read_shard(out_dir: Path, shard: int) -> dict[str, np.ndarray]:
    fix = "delete it and re-run the same sampling command to write it again"
    data = read_npz(shard_path(out_dir, shard), "sample shard", ["images", "labels", "indices"], fix=fix)
    if data["images"].dtype != np.uint8 or data["images"].ndim != 4:
        raise GenbenchError(f"{shard_path(out_dir, shard)}: images are {data['images'].dtype} "
                            f"{data['images'].shape}, not uint8 [n, H, W, 3]; {fix}")
    return data


def assemble(out_dir: str | Path, out_npz: str | Path) -> Path:
    """Stream all shards, in index order, into an ADM `.npz` (`arr_0` uint8 [N, H, W, 3], `arr_1` labels [N]).

    Memory stays at one shard: the arrays are written straight into the (uncompressed) zip, as np.savez would.
    """
    out_dir, out_npz = Path(out_dir), Path(out_npz)
    settings = read_manifest(out_dir)
    missing = [k for k in range(settings.num_shards) if not shard_path(out_dir, k).exists()]
    if missing:
        raise GenbenchError(f"{out_dir}: {len(missing)} of {settings.num_shards} shards missing (first: "
                            f"{shard_path(out_dir, missing[0]).name}); re-run the same sampling command to "
                            "finish them")
    height, width = _read_shard(out_dir, 0)["images"].shape[1:3]
    shape = (settings.num_samples, height, width, 3)
    labels = np.empty(settings.num_samples, dtype=np.int64)
    with atomic_write(out_npz, suffix=".npz") as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
        with archive.open("arr_0.npy", "w", force_zip64=True) as stream:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                      "shape": shape}
            np.lib.format.write_array_header_1_0(stream, header)
            for shard in range(settings.num_shards):
                data = _read_shard(out_dir, shard)
                indices = settings.shard_indices(shard)
                if not np.array_equal(data["indices"], np.asarray(indices)) or \
                        data["images"].shape[1:] != shape[1:]:
                    raise GenbenchError(f"{shard_path(out_dir, shard)}: does not hold indices "
                                        f"{indices.start}..{indices.stop - 1} at {height}x{width}; "
                                        "delete it and re-run sampling")
                stream.write(np.ascontiguousarray(data["images"]).tobytes())
                labels[indices.start: indices.stop] = data["labels"]
        with archive.open("arr_1.npy", "w", force_zip64=True) as stream:
            np.lib.format.write_array(stream, labels)
    return out_npz
