"""Tokenizers side by side: reconstruction quality, latent statistics, a latent linear probe, speed.

Tokenizer specs (every family behind genbench.models.tokenizer_adapters.TokenizerAdapter):

- a registered name (`sd-vae-ft-ema`, `e2e-sdvae`, `flux-vae`, `dc-ae-f32c32-in-1.0`, `rae-dinov2-b`, ...;
  `genbench.models.tokenizer_adapters.TOKENIZERS`), fetched into the cache on first use, or NAME:DIR for a
  local copy of its files;
- `diffusers:PATH`: any diffusers AutoencoderKL / AutoencoderDC folder, or one weights file beside its
  config.json;
- `demo:sit`, `demo:repa`, `demo:repae`: the VAE inside a shipped shapes-world checkpoint (sit and repa carry
  the pre-trained tiny VAE, repae the one REPA-E tuned end to end), with its SiT's latent normalisation;
- `PRESET:PATH`: an official VAE file (REPA-E `e2e-*.pt` or a diffusers safetensors such as sd-vae-ft-ema)
  built as the VAE preset PRESET (`f8d4`, `f16d32`, `tiny-f4d4`, ...);
- `PATH`: a genbench checkpoint (`genbench train`), whose VAE is used.

One pass over the images per tokenizer encodes (a KL VAE's posterior mean, DC-AE's latent, an RAE's
encoder tokens), decodes and quantises as the samplers do (clamp(127.5 x + 128) to uint8), and measures:

- rFID: FID of the reconstructions against the originals' statistics with any registered extractor;
- PSNR and SSIM on 8-bit pixels (metrics.image_quality, scikit-image's definitions), mean over images;
- LPIPS (VGG16, v0.1 linear heads, inputs in [-1, 1]) when both weights files are available, else skipped
  with a note;
- latent statistics: per-channel mean and std of the latents (first 16 channels), the overall std after the
  family's normalisation (what a generator sees), the latent shape, dimensionality C*h*w and the
  compression ratio 3*H*W / (C*h*w) (values per image);
- the latent linear probe and k-NN (genbench.probe: latents, flattened or pooled, standardised);
- encode and decode throughput (images/s of the tokenizer calls alone).

The pass streams: reconstructions and probe rows go to memory maps in a work folder, per-chunk sums to small
JSON files, so memory does not grow with the number of images. Under `torchrun` each rank takes every
world_size-th chunk (the work folder must be shared); with `work_dir` given, a rerun skips the chunks already
done (resumable like `genbench sample`).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from genbench.distributed import barrier, broadcast_from_rank0, init_distributed, rank_and_world
from genbench.errors import GenbenchError
from genbench.extraction import extract, stream_features
from genbench.io import write_text_atomic
from genbench.metrics.image_quality import psnr_per_image, ssim_per_image
from genbench.models.tokenizer_adapters import (
    Tokenizer,
    TokenizerAdapter,
    described_file,
    encode_mean,
    load_tokenizer,
)
from genbench.pixels import to_signed_range, to_uint8
from genbench.probe import pooled_latents, probe_scores, split_indices
from genbench.reference import ReferenceStats
from genbench.sources import SampleSource, TensorSource, record_or_check_manifest
from genbench.weights import resolve_weights

STATS_CHANNELS = 16  # per-channel latent statistics columns for at most this many channels


@torch.no_grad()
def decode_uint8(model: nn.Module, z: torch.Tensor) -> np.ndarray:
    """Latents [N, C, h, w] -> uint8 [N, H, W, 3], quantised as the samplers quantise."""
    return to_uint8(model.decode(z))


# --------------------------------------------------------------------------------------------------
#                                             LPIPS
# --------------------------------------------------------------------------------------------------

VGG16_WEIGHTS = "vgg16-torchvision"  # registered files: torchvision's VGG16 (LPIPS trunk) and
LPIPS_LIN_WEIGHTS = "lpips-v0.1-vgg"  # LPIPS v0.1's linear heads
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
        from genbench.models.checkpoints import load_state_strict

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
        h = (to_signed_range(images) - self.shift) / self.scale
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
    """(LPIPS, description) from the given files, else the registered files (fetched on first use); (None,
    why) when they are not cached and genbench is offline. A file given explicitly that cannot be found or
    read is an error, not a skip."""
    from genbench.fetch import is_cached, offline, registered_file
    from genbench.sources import read_checkpoint

    missing = [registered_file(name) for name, given in ((VGG16_WEIGHTS, vgg), (LPIPS_LIN_WEIGHTS, lin))
               if given is None and not is_cached(registered_file(name))]
    if missing and offline():
        wanted = " and ".join(f"{file.url} to {file.cached}" for file in missing)
        return None, (f"LPIPS skipped: offline and the weights are not cached (download {wanted}, or pass "
                      "--lpips-vgg/--lpips-lin)")
    vgg_path, lin_path = resolve_weights(VGG16_WEIGHTS, vgg), resolve_weights(LPIPS_LIN_WEIGHTS, lin)
    description = f"LPIPS-VGG v0.1 ({described_file(vgg_path)}, {described_file(lin_path)})"
    return LPIPS(read_checkpoint(vgg_path), read_checkpoint(lin_path), str(vgg_path)), description


# --------------------------------------------------------------------------------------------------
#                                          Comparison
# --------------------------------------------------------------------------------------------------

CHUNK_IMAGES = 512  # images per resumable unit of work (one JSON of sums each)


@dataclass
class Reconstruction:
    """What one pass of a tokenizer over the images leaves: reconstructions, probe rows, sums, times."""

    images: np.ndarray  # uint8 [N, H, W, 3] (memory map)
    latents: np.ndarray | None  # float32 [N, D] for the probe (memory map), None without labels
    latent_shape: tuple[int, int, int]  # (C, h, w)
    channel_mean: np.ndarray  # [C]
    channel_std: np.ndarray  # [C]
    normalized_mean: float  # over every element of the family-normalised latents
    normalized_std: float
    psnr: float
    ssim: float
    lpips: float | None
    encode_seconds: float
    decode_seconds: float


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _open_map(path: Path, shape: tuple[int, ...], dtype, create: bool) -> np.ndarray:
    """A .npy memory map: created (rank 0) when missing or of another shape, else opened for writing."""
    if create and not (path.is_file() and np.load(path, mmap_mode="r").shape == shape):
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    return np.load(path, mmap_mode="r+")


def _batch_outputs(adapter: TokenizerAdapter, batch: torch.Tensor, device: str, lpips: LPIPS | None,
                   probe_pool: int) -> dict:
    """Encode, decode and score one batch -> {reconstructions: uint8 NHWC, latents: probe rows, sums}."""
    batch = batch.to(device)
    _synchronise(device)
    start = time.perf_counter()
    z = encode_mean(adapter, batch)
    _synchronise(device)
    middle = time.perf_counter()
    recon = decode_uint8(adapter, z)
    _synchronise(device)
    end = time.perf_counter()
    recon_nchw = torch.from_numpy(recon).permute(0, 3, 1, 2).to(device)
    z64, normalized = z.double(), adapter.normalize(z).double()
    sums = {"count": len(batch), "encode": middle - start, "decode": end - middle,
            "psnr": float(psnr_per_image(batch, recon_nchw).sum()),
            "ssim": float(ssim_per_image(batch, recon_nchw).sum()),
            "lpips": float(lpips.to(device)(batch, recon_nchw).sum()) if lpips is not None else 0.0,
            "shape": list(z.shape[1:]),
            "channel_sum": z64.sum(dim=(0, 2, 3)).cpu().tolist(),
            "channel_sq": z64.pow(2).sum(dim=(0, 2, 3)).cpu().tolist(),
            "norm_sum": float(normalized.sum()), "norm_sq": float(normalized.pow(2).sum()),
            "norm_count": normalized.numel()}
    return {"reconstructions": recon, "latents": pooled_latents(z, probe_pool).cpu(), "sums": sums}


def _merge(parts: list[dict]) -> dict:
    total = {key: 0.0 for key in ("count", "encode", "decode", "psnr", "ssim", "lpips", "norm_sum", "norm_sq",
                                  "norm_count")}
    channel_sum = channel_sq = 0.0
    for part in parts:
        for key in total:
            total[key] += part[key]
        channel_sum = channel_sum + np.asarray(part["channel_sum"])
        channel_sq = channel_sq + np.asarray(part["channel_sq"])
    return total | {"channel_sum": channel_sum, "channel_sq": channel_sq, "shape": parts[0]["shape"]}


def _std(total_sum, total_sq, count: float):
    mean = total_sum / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0) * count / max(count - 1, 1))


def _check_work_manifest(work_dir: Path, wanted: dict) -> None:
    """Record what a work folder holds, or check that a folder being resumed holds the same run (as
    `genbench sample` checks its manifest): other images, weights or settings are an error, not a mix."""
    record_or_check_manifest(work_dir / "manifest.json", wanted, "comparison manifest",
                             "this work folder holds another comparison",
                             "give another --work-dir or delete this one")


def reconstruct(tokenizer: Tokenizer, source: SampleSource, work_dir: Path, batch_size: int = 64,
                device: str = "cpu", probe_pool: int = 0, lpips: LPIPS | None = None,
                keep_latents: bool = True, chunk_images: int = CHUNK_IMAGES) -> Reconstruction:
    """Encode, decode and score every image once (module doc: streamed, split over ranks, resumable).
    `work_dir` holds reconstructions.npy, latents.npy and chunks/NNNNN.json."""
    rank, world_size = init_distributed(device)
    adapter = tokenizer.adapter.to(device)
    n, (height, width) = len(source), source.image_size
    (work_dir / "chunks").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        blank = encode_mean(adapter, torch.zeros(1, 3, height, width, dtype=torch.uint8, device=device))
        decoded = tuple(adapter.decode(blank).shape[-2:])
    if decoded != (height, width):
        raise GenbenchError(f"--vae {tokenizer.spec}: reconstructs {decoded[0]}x{decoded[1]} images from "
                            f"{height}x{width} ones ({source.description}); give images of the size it "
                            "was made for (e.g. 256x256 for the registered ImageNet tokenizers)")
    probe_dim = pooled_latents(blank, probe_pool).shape[1]
    _check_work_manifest(work_dir, {
        "tokenizer": tokenizer.description, "images": source.description, "count": n, "size": [height, width],
        "chunk_images": chunk_images, "probe_pool": probe_pool, "probe_rows": keep_latents,
        "lpips": lpips.source if lpips is not None else None})
    if rank == 0:
        _open_map(work_dir / "reconstructions.npy", (n, height, width, 3), np.uint8, create=True)
        if keep_latents:
            _open_map(work_dir / "latents.npy", (n, probe_dim), np.float32, create=True)
    barrier()
    images = _open_map(work_dir / "reconstructions.npy", (n, height, width, 3), np.uint8, create=False)
    latents = _open_map(work_dir / "latents.npy", (n, probe_dim), np.float32, create=False) if keep_latents \
        else None
    chunks = [range(start, min(start + chunk_images, n)) for start in range(0, n, chunk_images)]
    for number, chunk in enumerate(chunks):
        done = work_dir / "chunks" / f"{number:05d}.json"
        if number % world_size != rank or done.is_file():
            continue
        parts = []
        def outputs_of(batch: torch.Tensor, _: torch.Tensor) -> dict:
            return _batch_outputs(adapter, batch, device, lpips, probe_pool)

        batches = stream_features(source, outputs_of, batch_size, indices=chunk,
                                  producer=f"--vae {tokenizer.spec}", fix="check the tokenizer's weights")
        for outputs, index in batches:
            images[index.numpy()] = outputs["reconstructions"]
            if latents is not None:
                latents[index.numpy()] = outputs["latents"].numpy()
            parts.append(outputs["sums"])
        images.flush()
        if latents is not None:
            latents.flush()
        write_text_atomic(done, json.dumps(_merge(parts), default=lambda a: np.asarray(a).tolist()))
    barrier()
    missing = [i for i in range(len(chunks)) if not (work_dir / "chunks" / f"{i:05d}.json").is_file()]
    if missing:
        raise GenbenchError(f"{work_dir}: chunks {missing[:5]} of the other ranks are not there; under "
                            "torchrun across machines give --work-dir on a filesystem every machine shares")
    total = _merge([json.loads((work_dir / "chunks" / f"{i:05d}.json").read_text())
                    for i in range(len(chunks))])
    shape = tuple(int(v) for v in total["shape"])
    channel_mean, channel_std = _std(total["channel_sum"], total["channel_sq"], n * shape[1] * shape[2])
    norm_mean, norm_std = _std(total["norm_sum"], total["norm_sq"], total["norm_count"])
    lpips_mean = total["lpips"] / n if lpips is not None else None
    return Reconstruction(images, latents, shape, channel_mean, channel_std, float(norm_mean),
                          float(norm_std), total["psnr"] / n, total["ssim"] / n, lpips_mean, total["encode"],
                          total["decode"])


@dataclass
class CompareSettings:
    extractor: str = "inception"
    extractor_weights: str | Path | None = None
    batch_size: int = 64
    device: str = "cpu"
    probe_pool: int = 0
    test_fraction: float = 0.2
    seed: int = 0
    work_dir: Path | None = None  # kept between runs: resumable; None: a temporary folder
    chunk_images: int = CHUNK_IMAGES


def _latent_probe(recon: Reconstruction, labels: np.ndarray, settings: CompareSettings) -> dict[str, float]:
    train, test = split_indices(len(labels), settings.test_fraction, settings.seed)
    return probe_scores(recon.latents[train], labels[train], recon.latents[test], labels[test],
                        standardise_knn=True, seed=settings.seed, num_classes=int(labels.max()) + 1)


def _work_name(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[:100] or "tokenizer"


def tokenizer_row(tokenizer: Tokenizer, source: SampleSource, reference: ReferenceStats, extractor: nn.Module,
                  labels: np.ndarray | None, lpips: LPIPS | None, notes: list[str], settings: CompareSettings,
                  work_dir: Path) -> dict:
    """One board row: every column of the comparison for one tokenizer."""
    from genbench.evaluate import evaluate_by_name

    recon = reconstruct(tokenizer, source, work_dir / _work_name(tokenizer.spec), settings.batch_size,
                        settings.device, settings.probe_pool, lpips, keep_latents=labels is not None,
                        chunk_images=settings.chunk_images)
    recon_source = TensorSource(recon.images, f"{tokenizer.spec} reconstructions of {source.description}")
    values, _ = evaluate_by_name(recon_source, reference, ["fid"], extractor, settings.batch_size,
                                 settings.device)
    channels, h, w = recon.latent_shape
    height, width = source.image_size
    n = len(source)
    row = {"name": tokenizer.spec, "kind": "measured",
           "tokenizer": f"{tokenizer.adapter.family}: {tokenizer.description}",
           "rfid": values["fid"], "psnr": recon.psnr, "ssim": recon.ssim,
           "lpips": recon.lpips if recon.lpips is not None else float("nan")}
    if labels is not None and rank_and_world()[0] == 0:
        scores = _latent_probe(recon, labels, settings)
        row |= {"probe": scores["probe_top1"], "probe_top5": scores["probe_top5"],
                "knn_top1": scores["knn_top1"]}
    row |= {"resolution": height, "latent_channels": channels, "latent_h": h, "latent_w": w,
            "latent_dim": channels * h * w, "compression": 3 * height * width / (channels * h * w),
            "encode_ips": n / recon.encode_seconds, "decode_ips": n / recon.decode_seconds,
            "latent_norm_mean": recon.normalized_mean, "latent_norm_std": recon.normalized_std}
    for c in range(min(channels, STATS_CHANNELS)):
        row |= {f"z{c}_mean": float(recon.channel_mean[c]), f"z{c}_std": float(recon.channel_std[c])}
    row["notes"] = "; ".join(notes)
    return row


def original_statistics(source: SampleSource, extractor: nn.Module, batch_size: int, device: str
                        ) -> ReferenceStats:
    """The originals' Gaussian statistics only (no kept feature rows: memory flat in the image count)."""
    from genbench.reference import GAUSSIAN_KEYS

    features = [f for f in GAUSSIAN_KEYS if f in extractor.feature_dims]
    extracted = extract(source, extractor, features, [], batch_size, device)
    return ReferenceStats(path=None, gaussians=extracted.gaussians, rows={},
                          meta={"extractor": extractor.name, "weights_sha256": extractor.weights_sha256,
                                "resize_mode": extractor.resize_mode, "count": extracted.count,
                                "source": source.description})


def compare_tokenizers(specs: Sequence[str], source: SampleSource, labels: np.ndarray | None = None,
                       lpips: LPIPS | None = None, lpips_note: str = "",
                       settings: CompareSettings | None = None) -> pd.DataFrame | None:
    """One row per tokenizer (module doc); the originals' reference statistics are extracted once. Under
    torchrun every rank does its share of the work and rank 0 alone returns the table (others None)."""
    import genbench
    from genbench.backbones import build_extractor

    settings = settings or CompareSettings()
    tokenizers = [load_tokenizer(spec) for spec in specs]  # every spec fails before any work starts
    if labels is not None and len(labels) != len(source):
        raise GenbenchError(f"{source.description}: {len(source)} images but {len(labels)} labels")
    extractor = build_extractor(settings.extractor, settings.extractor_weights)
    reference = original_statistics(source, extractor, settings.batch_size, settings.device)
    notes = [lpips_note] if lpips_note else []
    if labels is None:
        notes.append("probe skipped: no labels (give --labels or an .npz with arr_1)")
    notes.append(f"rFID with the {extractor.name} extractor on {len(source)} images")
    notes.append("latents: posterior mean (KL VAEs), not a sample; pixels quantised as "
                 "round(127.5 x + 127.5)")
    notes.append(f"throughput per process on {settings.device}, batch {settings.batch_size}")
    source_text = f"{source.description} (genbench {genbench.__version__}, tokenizers compare)"
    with tempfile.TemporaryDirectory(prefix="genbench-tokenizers-") as scratch:
        # the ranks of one machine share rank 0's temporary folder
        work_dir = Path(settings.work_dir if settings.work_dir is not None else broadcast_from_rank0(scratch))
        rows = [tokenizer_row(t, source, reference, extractor, labels, lpips, notes, settings, work_dir)
                | {"source": source_text} for t in tokenizers]
        barrier()  # no rank removes a shared temporary folder while another still reads it
    return pd.DataFrame(rows) if rank_and_world()[0] == 0 else None
