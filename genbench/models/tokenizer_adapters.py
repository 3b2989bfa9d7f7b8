"""Image tokenizers behind one interface, and the registry of the ones people compare.

A `TokenizerAdapter` takes images in [-1, 1] and gives:

- `encode(x) -> z`: the tokenizer's own latents [N, C, h, w] (a KL VAE's posterior mean, DC-AE's latent,
  an RAE encoder's patch tokens on their grid), before any normalisation;
- `decode(z) -> x`: pixels in [-1, 1] (not clamped);
- `normalize(z)` / `denormalize(z)`: the latent normalisation the family prescribes for a generator
  (diffusers: (z - shift_factor) * scaling_factor, or (z - latents_mean) * scaling_factor / latents_std when
  the config carries per-channel statistics; REPA-E: the latent BatchNorm's statistics from a
  `-latents-stats.pt`; DC-AE: z * scaling_factor; RAE: per-element (z - mean) / sqrt(var + 1e-5));
- `latent_shape(height, width) -> (C, h, w)` and `description` (file and digest prefix).

Families: `GenbenchKL` (genbench's LDM AutoencoderKL presets and checkpoints), `DiffusersKL` (any diffusers
`AutoencoderKL`: SD 1.x/2.x, SDXL, SD3.5 and FLUX with 16 channels and a shift, REPA-E's `-hf` variants),
`DiffusersDC` (diffusers `AutoencoderDC`), `RAE` (genbench.models.rae). diffusers and transformers are
imported only when such a tokenizer is loaded.

Tokenizer specs (`load_tokenizer_adapter`): a registered NAME (`TOKENIZERS`; files fetched into
`$GENBENCH_CACHE/tokenizers/NAME/` through genbench.fetch, or put there by hand); NAME:DIR for a local copy of
a registered tokenizer's files in the same layout; `diffusers:PATH` for a diffusers folder (config.json +
weights) or a single weights file next to a config.json; genbench's own specs (`demo:NAME`, a genbench
checkpoint, `PRESET:PATH`) are resolved by genbench.tokenizer_comparison.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.io import sha256_file
from genbench.models.rae import RAEDecoderConfig


def _diffusers():
    try:
        import diffusers
    except ImportError as error:
        raise GenbenchError("this tokenizer needs diffusers; pip install 'diffusers>=0.33' "
                            "(or genbench[test])") from error
    return diffusers


class TokenizerAdapter(nn.Module):
    """One interface for every tokenizer family (module doc). Subclasses set `family`."""

    family = "?"

    def __init__(self, description: str):
        super().__init__()
        self.description = description

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z

    @torch.no_grad()
    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of one image of this size, from an encode of a blank image on the model's device."""
        device = next(self.parameters()).device
        return tuple(self.encode(torch.zeros(1, 3, height, width, device=device)).shape[1:])


class GenbenchKL(TokenizerAdapter):
    """genbench's LDM AutoencoderKL; `latent_norm` (a SiT's LatentBatchNorm / FixedScale) when known."""

    family = "genbench-kl"

    def __init__(self, vae: nn.Module, description: str, latent_norm: nn.Module | None = None):
        super().__init__(description)
        self.vae, self.latent_norm = vae.eval(), latent_norm.eval() if latent_norm is not None else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).mean

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return self.latent_norm.normalize(z) if self.latent_norm is not None else z

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return self.latent_norm.denormalize(z) if self.latent_norm is not None else z


def _channel_view(values, reference: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=reference.dtype, device=reference.device).view(1, -1, 1, 1)


class DiffusersKL(TokenizerAdapter):
    """A diffusers AutoencoderKL. Normalisation in order of precedence: a REPA-E latent BatchNorm
    (`latent_norm`, from a -latents-stats.pt), the config's latents_mean/latents_std, shift/scaling."""

    family = "diffusers-kl"

    def __init__(self, vae: nn.Module, description: str, latent_norm: nn.Module | None = None):
        super().__init__(description)
        self.vae, self.latent_norm = vae.eval(), latent_norm.eval() if latent_norm is not None else None
        config = vae.config
        self.scaling = float(config.scaling_factor)
        self.shift = float(config.shift_factor or 0.0)
        self.stats = (config.latents_mean, config.latents_std) if config.latents_mean is not None else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mean

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_norm is not None:
            return self.latent_norm.normalize(z)
        if self.stats is not None:
            mean, std = (_channel_view(v, z) for v in self.stats)
            return (z - mean) * self.scaling / std
        return (z - self.shift) * self.scaling

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_norm is not None:
            return self.latent_norm.denormalize(z)
        if self.stats is not None:
            mean, std = (_channel_view(v, z) for v in self.stats)
            return z * std / self.scaling + mean
        return z / self.scaling + self.shift


class DiffusersDC(TokenizerAdapter):
    """A diffusers AutoencoderDC (deterministic latents; normalised by its scaling_factor)."""

    family = "diffusers-dc"

    def __init__(self, vae: nn.Module, description: str):
        super().__init__(description)
        self.vae, self.scaling = vae.eval(), float(vae.config.scaling_factor)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scaling

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.scaling


class RAE(TokenizerAdapter):
    """A representation autoencoder (genbench.models.rae.RepresentationAutoencoder)."""

    family = "rae"

    def __init__(self, model: nn.Module, description: str):
        super().__init__(description)
        self.model = model.eval()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.normalize(z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.denormalize(z)


# --------------------------------------------------------------------------------------------------
#                                        Loading from files
# --------------------------------------------------------------------------------------------------


def _described(path: Path) -> str:
    from genbench.io import sha256_file

    if path.is_dir():
        weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
        return f"{path.name}/ ({', '.join(f'{p.name} {sha256_file(p)[:8]}' for p in weights)})"
    return f"{path.name} ({sha256_file(path)[:8]})"


def _latent_batchnorm(stats_path: Path | None, channels: int) -> nn.Module | None:
    if stats_path is None:
        return None
    from genbench.models.latent_norm import LatentBatchNorm
    from genbench.models.official import read_latents_stats

    norm = LatentBatchNorm(channels)
    norm.load_latents_stats(*read_latents_stats(stats_path))
    return norm.eval()


def _config_of(path: Path) -> tuple[dict, Path]:
    folder = path if path.is_dir() else path.parent
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise GenbenchError(f"{path}: no config.json beside it; give a diffusers folder (config.json + "
                            "diffusion_pytorch_model.safetensors) or put the model's config.json next to "
                            "the file")
    try:
        return json.loads(config_path.read_text()), config_path
    except ValueError as error:
        raise GenbenchError(f"{config_path}: not JSON ({error})") from error


def _stats_beside(path: Path) -> Path | None:
    """A REPA-E `*latents-stats.pt` in the folder (or beside the file), if there is exactly one."""
    folder = path if path.is_dir() else path.parent
    found = sorted(folder.glob("*latents-stats.pt"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise GenbenchError(f"{folder}: several *latents-stats.pt files ({names}); keep the one that belongs "
                            "to these weights")
    return found[0] if found else None


def load_diffusers_tokenizer(path: str | Path, latents_stats: str | Path | None = None) -> TokenizerAdapter:
    """A diffusers AutoencoderKL or AutoencoderDC from a folder, or from one weights file (diffusers key
    names, or LDM/original ones converted by diffusers' own single-file converter) beside a config.json.
    `latents_stats`: a REPA-E -latents-stats.pt whose BatchNorm statistics normalise the latents (default:
    the one `*latents-stats.pt` in the folder, if any)."""
    from genbench.sources import read_checkpoint

    path = Path(path)
    if not path.exists():
        raise GenbenchError(f"{path}: no such file or folder (diffusers tokenizer)")
    config, config_path = _config_of(path)
    class_name = config.get("_class_name", "AutoencoderKL")
    if class_name not in ("AutoencoderKL", "AutoencoderDC"):
        raise GenbenchError(f"{config_path}: _class_name {class_name!r}; genbench reads diffusers "
                            "AutoencoderKL and AutoencoderDC tokenizers")
    model_class = getattr(_diffusers(), class_name)
    try:
        if path.is_dir():
            vae = model_class.from_pretrained(str(path), local_files_only=True)
        else:
            vae = model_class.from_config(config)
            state = read_checkpoint(path)
            if class_name == "AutoencoderKL" and any(k.startswith("encoder.down.") for k in state):
                from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

                state = convert_ldm_vae_checkpoint(state, vae.config)
            from genbench.models.checkpoints import load_state_strict

            load_state_strict(vae, state, path)
    except (OSError, ValueError) as error:
        raise GenbenchError(f"{path}: cannot load a diffusers {class_name} ({error})") from error
    if class_name == "AutoencoderDC":
        return DiffusersDC(vae, f"diffusers AutoencoderDC {_described(path)}")
    stats = Path(latents_stats) if latents_stats is not None else _stats_beside(path)
    norm = _latent_batchnorm(stats, vae.config.latent_channels)
    described = f"diffusers AutoencoderKL {_described(path)}" + (f" + {_described(stats)}" if stats else "")
    return DiffusersKL(vae, described, norm)


def load_rae_tokenizer(kind: str, encoder_dir: str | Path, decoder_path: str | Path, stats_path: str | Path,
                       input_size: int, decoder: str | RAEDecoderConfig = "ViT-XL", noise_tau: float = 0.0
                       ) -> RAE:
    """An RAE from the release's files: a saved transformers encoder folder, the decoder model.pt and the
    latent statistics stat.pt. `decoder`: a name of rae.DECODER_CONFIGS or a config."""
    from genbench.models.rae import (
        DECODER_CONFIGS,
        build_rae,
        load_encoder_model,
        processor_mean_std,
        read_latent_stats,
    )
    from genbench.sources import read_checkpoint

    encoder_dir, decoder_path, stats_path = Path(encoder_dir), Path(decoder_path), Path(stats_path)
    mean, std = processor_mean_std(encoder_dir)
    decoder_config = DECODER_CONFIGS[decoder] if isinstance(decoder, str) else decoder
    model = build_rae(kind, load_encoder_model(kind, encoder_dir), input_size, decoder_config,
                      read_checkpoint(decoder_path), decoder_path, read_latent_stats(stats_path), mean, std,
                      noise_tau)
    description = f"RAE {kind} {_described(decoder_path)} + {_described(stats_path)}"
    return RAE(model, description)


# --------------------------------------------------------------------------------------------------
#                                       Registered tokenizers
# --------------------------------------------------------------------------------------------------

HF = "https://huggingface.co"
RAE_HUB = f"{HF}/nyu-visionx/RAE-collections/resolve/main"


@dataclass(frozen=True)
class TokenizerFile:
    """One file of a registered tokenizer: `path` inside its folder, the publisher's `url`, the SHA-256
    (None: none published; the digest of the first copy is recorded and checked afterwards)."""

    path: str
    url: str
    sha256: str | None = None


@dataclass(frozen=True)
class RegisteredTokenizer:
    name: str
    family: str  # "diffusers" (AutoencoderKL / AutoencoderDC folder), "genbench-kl" or "rae"
    files: tuple[TokenizerFile, ...]
    source: str  # where the weights are published
    options: dict = field(default_factory=dict)


def _hub_folder(repo: str, subfolder: str = "", weights: str = "diffusion_pytorch_model.safetensors"
                ) -> tuple[TokenizerFile, ...]:
    prefix = f"{HF}/{repo}/resolve/main/{subfolder + '/' if subfolder else ''}"
    return tuple(TokenizerFile(name, prefix + name) for name in ("config.json", weights))


def _diffusers_entry(name: str, repo: str, subfolder: str = "", note: str = "") -> RegisteredTokenizer:
    return RegisteredTokenizer(name, "diffusers", _hub_folder(repo, subfolder),
                               f"{HF}/{repo}{' (' + subfolder + '/)' if subfolder else ''}{note}")


def _rae_entry(name: str, kind: str, encoder_repo: str, decoder: str, stats: str, input_size: int,
               weights: str = "model.safetensors") -> RegisteredTokenizer:
    encoder = tuple(TokenizerFile(f"encoder/{file}", f"{HF}/{encoder_repo}/resolve/main/{file}")
                    for file in ("config.json", "preprocessor_config.json", weights))
    files = encoder + (TokenizerFile("decoder.pt", f"{RAE_HUB}/{decoder}"),
                       TokenizerFile("stat.pt", f"{RAE_HUB}/{stats}"))
    return RegisteredTokenizer(name, "rae", files, f"{HF}/nyu-visionx/RAE-collections + {HF}/{encoder_repo}",
                               {"kind": kind, "input_size": input_size, "decoder": "ViT-XL"})


_REPAE = f"{HF}/REPA-E"
TOKENIZERS: dict[str, RegisteredTokenizer] = {entry.name: entry for entry in (
    _diffusers_entry("sd-vae-ft-ema", "stabilityai/sd-vae-ft-ema"),
    _diffusers_entry("sd-vae-ft-mse", "stabilityai/sd-vae-ft-mse"),
    _diffusers_entry("sdxl-vae", "stabilityai/sdxl-vae"),
    _diffusers_entry("sd3.5-vae", "stabilityai/stable-diffusion-3.5-large", "vae", " (gated: accept the "
                     "licence on the Hub and download by hand)"),
    _diffusers_entry("flux-vae", "black-forest-labs/FLUX.1-schnell", "vae"),
    # REPA-E: the original LDM-format E2E-VAE with its latent BatchNorm statistics (what REPA-E's SiTs use),
    # and the Oct 2025 diffusers-format family.
    RegisteredTokenizer("e2e-sdvae", "genbench-kl", (
        TokenizerFile("e2e-sdvae-400k.pt", f"{_REPAE}/e2e-sdvae/resolve/main/e2e-sdvae-400k.pt"),
        TokenizerFile("e2e-sdvae-400k-latents-stats.pt",
                      f"{_REPAE}/e2e-sdvae/resolve/main/e2e-sdvae-400k-latents-stats.pt")),
        f"{_REPAE}/e2e-sdvae (file names as REPA-E's README spells e2e-vavae-400k.pt; not checked against "
        "the Hub listing)", {"preset": "f8d4"}),
    RegisteredTokenizer("e2e-vavae", "genbench-kl", (
        TokenizerFile("e2e-vavae-400k.pt", f"{_REPAE}/e2e-vavae/resolve/main/e2e-vavae-400k.pt"),
        TokenizerFile("e2e-vavae-400k-latents-stats.pt",
                      f"{_REPAE}/e2e-vavae/resolve/main/e2e-vavae-400k-latents-stats.pt")),
        f"{_REPAE}/e2e-vavae (REPA-E README: e2e-vavae-400k.pt)", {"preset": "f16d32"}),
    _diffusers_entry("e2e-sdvae-hf", "REPA-E/e2e-sdvae-hf"),
    _diffusers_entry("e2e-vavae-hf", "REPA-E/e2e-vavae-hf"),
    _diffusers_entry("e2e-flux-vae", "REPA-E/e2e-flux-vae"),
    _diffusers_entry("e2e-sd3.5-vae", "REPA-E/e2e-sd3.5-vae"),
    _diffusers_entry("dc-ae-f32c32-in-1.0", "mit-han-lab/dc-ae-f32c32-in-1.0-diffusers"),
    _diffusers_entry("dc-ae-f64c128-in-1.0", "mit-han-lab/dc-ae-f64c128-in-1.0-diffusers"),
    # RAE (bytetriper/RAE configs/stage1/pretrained/*.yaml): encoder, input size, ViT-XL decoder, stats.
    _rae_entry("rae-dinov2-b", "dinov2", "facebook/dinov2-with-registers-base",
               "decoders/dinov2/wReg_base/ViTXL_n08/model.pt", "stats/dinov2/wReg_base/imagenet1k/stat.pt",
               224),
    _rae_entry("rae-siglip2-b", "siglip2", "google/siglip2-base-patch16-256",
               "decoders/siglip2/base_p16_i256/ViTXL_n08/model.pt",
               "stats/siglip2/base_p16_i256/ImageNet1k/stat.pt", 256),
    _rae_entry("rae-mae-b", "mae", "facebook/vit-mae-base", "decoders/mae/base_p16/ViTXL_n08/model.pt",
               "stats/mae/base_p16/ImageNet1k/stat.pt", 256),
)}


def tokenizer_folder(name: str) -> Path:
    """$GENBENCH_CACHE/tokenizers/NAME: where a registered tokenizer's files live."""
    from genbench.fetch import cache_dir

    return cache_dir() / "tokenizers" / name


def fetch_tokenizer_files(entry: RegisteredTokenizer) -> Path:
    """The registered tokenizer's folder with every file present: downloaded through genbench.fetch (size and
    digest checked, first digest recorded) when the fetcher is available, else found in the cache or named
    in the error with its URL and target path."""
    folder = tokenizer_folder(entry.name)
    try:
        from genbench.fetch import RemoteFile, fetch
    except ImportError:
        missing = [f for f in entry.files if not (folder / f.path).is_file()]
        if missing:
            wanted = "; ".join(f"{f.url} -> {folder / f.path}" for f in missing)
            raise GenbenchError(f"{entry.name}: tokenizer files missing; download {wanted} (or give "
                                f"--vae {entry.name}:DIR with those files)") from None
        return folder
    for file in entry.files:
        relative = f"tokenizers/{entry.name}/{file.path}"
        record_name = f"tokenizer-{entry.name}-{file.path.replace('/', '-')}"
        try:
            fetch(RemoteFile(record_name, file.url, relative, file.sha256, source=entry.source))
        except GenbenchError as error:
            missing = [f for f in entry.files if not (folder / f.path).is_file()]
            wanted = "; ".join(f"{f.url} -> {folder / f.path}" for f in missing)
            raise GenbenchError(f"{entry.name}: {error}. Files still missing: {wanted} (or give --vae "
                                f"{entry.name}:DIR with those files)") from error
    return folder


def build_registered(entry: RegisteredTokenizer, folder: Path) -> TokenizerAdapter:
    """Load a registered tokenizer from a folder holding its files (the cache folder or NAME:DIR)."""
    missing = [f.path for f in entry.files if not (folder / f.path).is_file()]
    if missing:
        raise GenbenchError(f"{folder}: {entry.name} needs {', '.join(missing)} there ({entry.source})")
    if entry.family == "diffusers":
        return load_diffusers_tokenizer(folder)
    if entry.family == "rae":
        options = entry.options
        return load_rae_tokenizer(options["kind"], folder / "encoder", folder / "decoder.pt",
                                  folder / "stat.pt", options["input_size"], options["decoder"])
    from genbench.models.official import load_official_vae

    weights, stats = (folder / f.path for f in entry.files)
    vae = load_official_vae(weights, entry.options["preset"])
    description = f"{entry.options['preset']} {_described(weights)} + {_described(stats)}"
    return GenbenchKL(vae, description, _latent_batchnorm(stats, vae.z_channels))


def load_registered_tokenizer(spec: str) -> TokenizerAdapter | None:
    """NAME (fetched/cached) or NAME:DIR for a registered tokenizer; `diffusers:PATH`; None for any other
    spec (genbench's own, resolved by genbench.tokenizer_comparison)."""
    name, sep, rest = spec.partition(":")
    if name == "diffusers" and sep:
        return load_diffusers_tokenizer(rest)
    if name not in TOKENIZERS:
        return None
    entry = TOKENIZERS[name]
    return build_registered(entry, Path(rest) if sep else fetch_tokenizer_files(entry))


# --------------------------------------------------------------------------------------------------
# Tokenizers by spec: what `tokenizers compare --vae` and `probe --features vae:` load
# --------------------------------------------------------------------------------------------------

# Official VAE files per preset, named in the error for a missing file.
PRESET_SOURCES = {"f8d4": ("sd-vae-ft-ema", "sd-vae-ft-mse", "e2e-sdvae"),
                  "f16d32": ("e2e-invae", "e2e-vavae")}


@dataclass
class Tokenizer:
    spec: str  # as given on the command line
    adapter: TokenizerAdapter
    description: str  # "<file> (<sha256 prefix>)"

    @property
    def vae(self) -> TokenizerAdapter:
        """The adapter (the name predates adapters: probe's vae: features read it)."""
        return self.adapter


def described_file(path: Path) -> str:
    return f"{path.name} ({sha256_file(path)[:8]})"


def load_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer of a spec (module doc), in eval mode."""
    from genbench.models.official import (
        OFFICIAL_SOURCES,
        load_model,
        load_official_vae,
        model_path,
        registered_model,
    )
    from genbench.models.vae import VAE_CONFIGS

    adapter = load_registered_tokenizer(spec)
    if adapter is not None:
        return Tokenizer(spec, adapter.eval(), adapter.description)
    preset, sep, rest = spec.partition(":")
    if sep and preset in VAE_CONFIGS:
        path = Path(rest)
        if not path.is_file():
            urls = ", ".join(OFFICIAL_SOURCES[name] for name in PRESET_SOURCES.get(preset, ()))
            raise GenbenchError(f"{path}: VAE weights for --vae {spec} not found; download the file "
                                f"{f'({urls}) ' if urls else ''}and give its path as {preset}:PATH")
        description = f"{preset} {described_file(path)}"
        return Tokenizer(spec, GenbenchKL(load_official_vae(path, preset), description), description)
    if registered_model(spec) is None and not model_path(spec).is_file():
        raise GenbenchError(f"--vae {spec}: no such checkpoint; give a registered tokenizer (genbench."
                            "models.tokenizer_adapters.TOKENIZERS), diffusers:PATH, "
                            "demo:sit|demo:repa|demo:repae, a genbench checkpoint, an official model name "
                            "(`genbench models list`: its VAE and latent statistics), or PRESET:PATH for an "
                            f"official VAE file (presets: {', '.join(VAE_CONFIGS)})")
    loaded = load_model(spec)  # a genbench checkpoint, demo name or official model (files fetched)
    path = loaded.path
    if loaded.vae is None:
        raise GenbenchError(f"{path}: this checkpoint holds no VAE; give the VAE file as PRESET:PATH")
    description = described_file(path)
    adapter = GenbenchKL(loaded.vae, description, getattr(loaded.sit, "latent_norm", None))
    return Tokenizer(spec, adapter, description)


@torch.no_grad()
def encode_mean(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> latents float32 [N, C, h, w]: an adapter's encode, or a genbench VAE's
    posterior mean."""
    from genbench.pixels import to_signed_range

    x = to_signed_range(images)
    if isinstance(model, TokenizerAdapter):
        return model.encode(x).float()
    return model.encode(x).mean.float()
