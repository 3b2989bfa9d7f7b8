"""Tokenizers (VAEs) side by side: reconstruction quality, latent statistics, a latent linear probe, speed.

Tokenizer specs:

- `demo:sit`, `demo:repa`, `demo:repae`: the VAE inside a shipped shapes-world checkpoint (sit and repa carry
  the pre-trained tiny VAE, repae the one REPA-E tuned end to end);
- `PRESET:PATH`: an official VAE file (REPA-E `e2e-*.pt` or a diffusers safetensors such as sd-vae-ft-ema)
  built as the VAE preset PRESET (`f8d4`, `f16d32`, `tiny-f4d4`, ...);
- `PATH`: a genbench checkpoint (`genbench train`), whose VAE is used.

One pass over the images per tokenizer encodes (posterior mean), decodes and quantises as the samplers do
(clamp(127.5 x + 128) to uint8), and measures:

- rFID: FID of the reconstructions against the originals' statistics with any registered extractor
  (`genbench.evaluate` against `build_reference` of the originals);
- PSNR and SSIM on 8-bit pixels (metrics.image_quality, scikit-image's definitions), mean over images;
- LPIPS (VGG16, v0.1 linear heads, inputs in [-1, 1]) when both weights files are available, else skipped
  with a note;
- latent statistics: per-channel mean and std of the posterior means, dimensionality C*h*w and the
  compression ratio 3*H*W / (C*h*w) (values per image);
- the latent linear probe and k-NN (genbench.probe: posterior means, flattened or pooled, standardised);
- encode and decode throughput (images/s of the VAE calls alone).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.metrics.image_quality import psnr_per_image, ssim_per_image
from genbench.models.vae import VAE_CONFIGS, AutoencoderKL
from genbench.probe import pooled_latents, probe_scores, split_indices
from genbench.reference import ReferenceStats
from genbench.sources import SampleSource, TensorSource
from genbench.weights import WeightsSpec, resolve_weights
from genbench.worlds.demo import model_path

# Official VAE files per preset, named in the error for a missing file.
PRESET_SOURCES = {"f8d4": ("sd-vae-ft-ema", "sd-vae-ft-mse", "e2e-sdvae"),
                  "f16d32": ("e2e-invae", "e2e-vavae")}


@dataclass
class Tokenizer:
    spec: str  # as given on the command line
    vae: AutoencoderKL
    description: str  # "<file> (<sha256 prefix>)"


def _described(path: Path) -> str:
    from genbench.io import sha256_file

    return f"{path.name} ({sha256_file(path)[:8]})"


def load_tokenizer(spec: str) -> Tokenizer:
    """The VAE of a tokenizer spec (module doc), in eval mode."""
    from genbench.models.official import OFFICIAL_SOURCES, load_model_checkpoint, load_official_vae

    preset, sep, rest = spec.partition(":")
    if sep and preset in VAE_CONFIGS:
        path = Path(rest)
        if not path.is_file():
            urls = ", ".join(OFFICIAL_SOURCES[name] for name in PRESET_SOURCES.get(preset, ()))
            raise GenbenchError(f"{path}: VAE weights for --vae {spec} not found; download the file "
                                f"{f'({urls}) ' if urls else ''}and give its path as {preset}:PATH")
        return Tokenizer(spec, load_official_vae(path, preset).eval(), f"{preset} {_described(path)}")
    path = model_path(spec)
    if not path.is_file():
        raise GenbenchError(f"--vae {spec}: no such checkpoint; give demo:sit|demo:repa|demo:repae, a "
                            "genbench checkpoint, or PRESET:PATH for an official VAE file (presets: "
                            f"{', '.join(VAE_CONFIGS)})")
    vae = load_model_checkpoint(path).vae
    if vae is None:
        raise GenbenchError(f"{path}: this checkpoint holds no VAE; give the VAE file as PRESET:PATH")
    return Tokenizer(spec, vae.eval(), _described(path))


@torch.no_grad()
def encode_mean(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> posterior means float32 [N, C, H/f, W/f]."""
    from genbench.training.recipes import to_vae_input

    return vae.encode(to_vae_input(images)).mean.float()


@torch.no_grad()
def decode_uint8(vae: AutoencoderKL, z: torch.Tensor) -> np.ndarray:
    """Latents [N, C, h, w] -> uint8 [N, H, W, 3], quantised as the samplers quantise."""
    from genbench.sampling.generate import to_uint8

    return to_uint8(vae.decode(z))


# --------------------------------------------------------------------------------------------------
#                                             LPIPS
# --------------------------------------------------------------------------------------------------

VGG16_WEIGHTS = WeightsSpec("VGG16 (torchvision, LPIPS trunk)", "vgg16-397923af.pth",
                            "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af")
LPIPS_LIN_WEIGHTS = WeightsSpec(
    "LPIPS v0.1 VGG linear heads", "lpips-v0.1-vgg.pth",
    "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
    "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
LPIPS_TAPS = (3, 8, 15, 22, 29)  # torchvision vgg16.features indices of relu1_2, relu2_2, ..., relu5_3
LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # LPIPS v0.1's input scaling of [-1, 1] images
LPIPS_SCALE = (0.458, 0.448, 0.450)


def vgg16_trunk() -> nn.Sequential:
    """torchvision's vgg16().features up to relu5_3 (same indices, so its state-dict keys load as is)."""
    layers: list[nn.Module] = []
    channels = 3
    for width in VGG16_CONFIG:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS-VGG v0.1: per tap, channel-unit-normalised features, squared difference, a learned non-negative
    1x1 weighting, spatial mean; summed over the five taps. uint8 [N, 3, H, W] x 2 -> [N]."""

    def __init__(self, trunk_state: dict[str, torch.Tensor], lin_state: dict[str, torch.Tensor], source: str):
        super().__init__()
        from genbench.models.official import load_state_strict

        self.trunk = vgg16_trunk()
        trunk = {key.removeprefix("features."): value for key, value in trunk_state.items()
                 if key.startswith("features.") and int(key.split(".")[1]) < len(self.trunk)}
        load_state_strict(self.trunk, trunk, source)
        self.heads = []
        for i in range(len(LPIPS_TAPS)):
            weights = [v for k, v in lin_state.items() if k.startswith(f"lin{i}.") and k.endswith(".weight")]
            if len(weights) != 1:
                raise GenbenchError(f"{source}: no LPIPS head lin{i} (expected lin{i}.model.1.weight)")
            self.register_buffer(f"head{i}", weights[0].float().flatten())
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.source = source
        self.eval().requires_grad_(False)

    def _taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        h = ((images.float() / 127.5 - 1.0) - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.trunk):
            h = layer(h)
            if index in LPIPS_TAPS:
                taps.append(h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    @torch.no_grad()
    def forward(self, originals: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        distance = torch.zeros(originals.shape[0], device=originals.device)
        for i, (a, b) in enumerate(zip(self._taps(originals), self._taps(reconstructions), strict=True)):
            weight = getattr(self, f"head{i}").view(1, -1, 1, 1)
            distance += ((a - b).pow(2) * weight).sum(dim=1).mean(dim=(1, 2))
        return distance


def load_lpips(vgg: str | Path | None = None, lin: str | Path | None = None) -> tuple[LPIPS | None, str]:
    """(LPIPS, description) from the given files, else the verified cache files; (None, why) when the cache
    lacks them. A file given explicitly that cannot be found or read is an error, not a skip."""
    from genbench.models.official import read_state_file
    from genbench.weights import cache_dir

    missing = [spec for spec, given in ((VGG16_WEIGHTS, vgg), (LPIPS_LIN_WEIGHTS, lin))
               if given is None and not (cache_dir() / spec.filename).is_file()]
    if missing:
        wanted = " and ".join(f"{spec.url} as {spec.filename}" for spec in missing)
        return None, (f"LPIPS skipped: weights not in {cache_dir()} (download {wanted}, or pass "
                      "--lpips-vgg/--lpips-lin)")
    vgg_path, lin_path = resolve_weights(VGG16_WEIGHTS, vgg), resolve_weights(LPIPS_LIN_WEIGHTS, lin)
    description = f"LPIPS-VGG v0.1 ({_described(vgg_path)}, {_described(lin_path)})"
    return LPIPS(read_state_file(vgg_path), read_state_file(lin_path), str(vgg_path)), description


# --------------------------------------------------------------------------------------------------
#                                          Comparison
# --------------------------------------------------------------------------------------------------


@dataclass
class Reconstruction:
    """What one pass of a tokenizer over the images leaves: reconstructions, pooled latents, sums, times."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    latents: np.ndarray  # float32 [N, D] for the probe
    latent_shape: tuple[int, int, int]  # (C, h, w)
    channel_mean: np.ndarray  # [C]
    channel_std: np.ndarray  # [C]
    psnr: float
    ssim: float
    lpips: float | None
    encode_seconds: float
    decode_seconds: float


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def reconstruct(tokenizer: Tokenizer, source: SampleSource, work_dir: Path, batch_size: int = 64,
                device: str = "cpu", probe_pool: int = 0, lpips: LPIPS | None = None) -> Reconstruction:
    """Encode, decode and score every image once; reconstructions stream into a memory map in `work_dir`."""
    vae = tokenizer.vae.to(device)
    n, (height, width) = len(source), source.image_size
    images = np.lib.format.open_memmap(work_dir / "reconstructions.npy", mode="w+", dtype=np.uint8,
                                       shape=(n, height, width, 3))
    latents: np.ndarray | None = None
    sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "encode": 0.0, "decode": 0.0}
    channel_sum = channel_sq = 0.0
    for batch, index in source.batches(batch_size):
        batch = batch.to(device)
        _synchronise(device)
        start = time.perf_counter()
        z = encode_mean(vae, batch)
        _synchronise(device)
        middle = time.perf_counter()
        recon = decode_uint8(vae, z)
        sums["encode"] += middle - start
        sums["decode"] += time.perf_counter() - middle
        images[index.numpy()] = recon
        recon_nchw = torch.from_numpy(recon).permute(0, 3, 1, 2).to(device)
        sums["psnr"] += float(psnr_per_image(batch, recon_nchw).sum())
        sums["ssim"] += float(ssim_per_image(batch, recon_nchw).sum())
        if lpips is not None:
            sums["lpips"] += float(lpips.to(device)(batch, recon_nchw).sum())
        rows = pooled_latents(z, probe_pool).cpu().numpy()
        if latents is None:
            latents = np.zeros((n, rows.shape[1]), np.float32)
        latents[index.numpy()] = rows
        z64 = z.double()
        channel_sum = channel_sum + z64.sum(dim=(0, 2, 3)).cpu().numpy()
        channel_sq = channel_sq + z64.pow(2).sum(dim=(0, 2, 3)).cpu().numpy()
    count = n * z.shape[2] * z.shape[3]
    mean = channel_sum / count
    std = np.sqrt(np.maximum(channel_sq / count - mean**2, 0.0) * count / max(count - 1, 1))
    images.flush()
    return Reconstruction(images, latents, tuple(z.shape[1:]), mean, std, sums["psnr"] / n, sums["ssim"] / n,
                          sums["lpips"] / n if lpips is not None else None, sums["encode"], sums["decode"])


@dataclass
class CompareSettings:
    extractor: str = "inception"
    extractor_weights: str | Path | None = None
    batch_size: int = 64
    device: str = "cpu"
    probe_pool: int = 0
    test_fraction: float = 0.2
    seed: int = 0


def _latent_probe(recon: Reconstruction, labels: np.ndarray, settings: CompareSettings) -> dict[str, float]:
    train, test = split_indices(len(labels), settings.test_fraction, settings.seed)
    return probe_scores(recon.latents[train], labels[train], recon.latents[test], labels[test],
                        standardise_knn=True, seed=settings.seed, num_classes=int(labels.max()) + 1)


def tokenizer_row(tokenizer: Tokenizer, source: SampleSource, reference: ReferenceStats, extractor: nn.Module,
                  labels: np.ndarray | None, lpips: LPIPS | None, notes: list[str],
                  settings: CompareSettings) -> dict:
    """One board row: every column of the comparison for one tokenizer."""
    from genbench.evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="genbench-tokenizer-") as work_dir:
        recon = reconstruct(tokenizer, source, Path(work_dir), settings.batch_size, settings.device,
                            settings.probe_pool, lpips)
        recon_source = TensorSource(recon.images, f"{tokenizer.spec} reconstructions of {source.description}")
        values, _ = evaluate(recon_source, reference, ["fid"], extractor, settings.batch_size,
                             settings.device)
    channels, h, w = recon.latent_shape
    height, width = source.image_size
    n = len(source)
    row = {"name": tokenizer.spec, "kind": "measured", "tokenizer": tokenizer.description,
           "rfid": values["fid"], "psnr": recon.psnr, "ssim": recon.ssim,
           "lpips": recon.lpips if recon.lpips is not None else float("nan")}
    if labels is not None:
        scores = _latent_probe(recon, labels, settings)
        row |= {"probe": scores["probe_top1"], "probe_top5": scores["probe_top5"],
                "knn_top1": scores["knn_top1"]}
    row |= {"latent_channels": channels, "latent_dim": channels * h * w,
            "compression": 3 * height * width / (channels * h * w),
            "encode_ips": n / recon.encode_seconds, "decode_ips": n / recon.decode_seconds}
    for c in range(channels):
        row |= {f"z{c}_mean": float(recon.channel_mean[c]), f"z{c}_std": float(recon.channel_std[c])}
    row["notes"] = "; ".join(notes)
    return row


def compare_tokenizers(specs: Sequence[str], source: SampleSource, labels: np.ndarray | None = None,
                       lpips: LPIPS | None = None, lpips_note: str = "",
                       settings: CompareSettings | None = None) -> pd.DataFrame:
    """One row per tokenizer (module doc); the originals' reference statistics are extracted once."""
    import genbench
    from genbench.evaluate import build_reference
    from genbench.extractors import build_extractor

    settings = settings or CompareSettings()
    tokenizers = [load_tokenizer(spec) for spec in specs]  # every spec fails before any work starts
    if labels is not None and len(labels) != len(source):
        raise GenbenchError(f"{source.description}: {len(source)} images but {len(labels)} labels")
    extractor = build_extractor(settings.extractor, settings.extractor_weights)
    reference = build_reference(source, extractor, settings.batch_size, settings.device)
    notes = [lpips_note] if lpips_note else []
    if labels is None:
        notes.append("probe skipped: no labels (give --labels or an .npz with arr_1)")
    notes.append(f"rFID with the {extractor.name} extractor on {len(source)} images")
    notes.append(f"throughput on {settings.device}, batch {settings.batch_size}")
    source_text = f"{source.description} (genbench {genbench.__version__}, tokenizers compare)"
    rows = [tokenizer_row(t, source, reference, extractor, labels, lpips, notes, settings)
            | {"source": source_text} for t in tokenizers]
    return pd.DataFrame(rows)
