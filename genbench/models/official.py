"""Loading official checkpoints (and genbench's own) into genbench's models, by explicit key maps.

Formats handled (all read with `torch.load(weights_only=True)` or safetensors):

- REPA-E `sit-repae-*` / REPA own-training checkpoints: {"model", "ema", ...}; the EMA is used. Keys as
  genbench's SiT except `projectors.0.*` -> `projector.*` and REPA-E's latent BatchNorm `bn.*` ->
  `latent_norm.*`.
- REPA's released SiT-XL/2 (`last.pt`): a bare SiT state dict with `projectors.0.*`.
- SiT's `SiT-XL-2-256.pt`: a bare DiT-style state dict with a learned-sigma output (2C channels); build the
  SiT with `learn_sigma=True`, z_dim=0.
- REPA-E `e2e-*.pt` VAEs: a bare LDM AutoencoderKL state dict (our names, identity map); the latent stats
  live next to it in `<name>-latents-stats.pt`.
- diffusers `AutoencoderKL` safetensors (`sd-vae-ft-*`, REPA-E `-hf` variants): renamed module by module.
- A checkpoint may carry `module.` (DDP) or `_orig_mod.` (torch.compile) prefixes; they are stripped.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.models.sit import SiT, build_sit
from genbench.models.vae import AutoencoderKL, build_vae

# Where the official files come from (for error messages and docs; genbench never downloads them).
OFFICIAL_SOURCES = {
    "sit-repae-sdvae": "https://huggingface.co/REPA-E/sit-repae-sdvae",
    "sit-repae-invae": "https://huggingface.co/REPA-E/sit-repae-invae",
    "sit-repae-vavae": "https://huggingface.co/REPA-E/sit-repae-vavae",
    "e2e-sdvae": "https://huggingface.co/REPA-E/e2e-sdvae",
    "e2e-invae": "https://huggingface.co/REPA-E/e2e-invae",
    "e2e-vavae": "https://huggingface.co/REPA-E/e2e-vavae",
    "repa-sit-xl-2": "https://github.com/sihyun-yu/REPA (README: Dropbox link to last.pt)",
    "sit-xl-2-256": "https://www.dl.dropboxusercontent.com/scl/fi/as9oeomcbub47de5g4be0/SiT-XL-2-256.pt",
    "sd-vae-ft-ema": "https://huggingface.co/stabilityai/sd-vae-ft-ema",
    "sd-vae-ft-mse": "https://huggingface.co/stabilityai/sd-vae-ft-mse",
}


def read_state_file(path: str | Path) -> dict:
    """Read a .safetensors or torch file safely (weights_only). Raises GenbenchError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise GenbenchError(f"{path}: checkpoint not found; download it (see genbench.models.official."
                            "OFFICIAL_SOURCES) or fix the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        # REPA and REPA-E store their argparse Namespace under "args"; it is a plain attribute bag, so it
        # is allow-listed for the weights-only unpickler (nothing else is).
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, pickle with arbitrary objects, ...
        raise GenbenchError(f"{path}: cannot be read as a weights-only checkpoint ({error}); "
                            "re-download it or convert it to safetensors") from error


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP `module.` and torch.compile `_orig_mod.` prefixes."""
    return {re.sub(r"^(module\.|_orig_mod\.)+", "", key): value for key, value in state.items()}


#################################################################################
#                                    SiT maps                                    #
#################################################################################

def sit_state_from_official(checkpoint: dict, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """REPA / REPA-E / SiT state dict (bare, or {model, ema, ...}) -> genbench SiT keys."""
    if "model" in checkpoint or "ema" in checkpoint:
        checkpoint = checkpoint["ema" if use_ema and "ema" in checkpoint else "model"]
    renamed = {}
    for key, value in strip_wrappers(checkpoint).items():
        key = re.sub(r"^projectors\.0\.", "projector.", key)
        key = re.sub(r"^bn\.", "latent_norm.", key)
        renamed[key] = value
    return renamed


#################################################################################
#                                    VAE maps                                    #
#################################################################################

_DIFFUSERS_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
                   "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}


def _diffusers_key(key: str, num_levels: int) -> str:
    """One diffusers AutoencoderKL key -> LDM name. Decoder `up_blocks` run from the lowest resolution
    (index 0) while LDM's `up` list is indexed by level (0 = full resolution), hence the reversal."""
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m.group(1)) + 1}", key)
    key = key.replace("mid_block.attentions.0", "mid.attn_1")
    key = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", key)
    key = re.sub(r"down_blocks\.(\d+)\.attentions\.", r"down.\1.attn.", key)
    key = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", key)
    level = lambda m: str(num_levels - 1 - int(m.group(1)))  # noqa: E731
    key = re.sub(r"up_blocks\.(\d+)\.resnets\.", lambda m: f"up.{level(m)}.block.", key)
    key = re.sub(r"up_blocks\.(\d+)\.attentions\.", lambda m: f"up.{level(m)}.attn.", key)
    key = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{level(m)}.upsample.", key)
    for theirs, ours in _DIFFUSERS_ATTN.items():
        key = re.sub(rf"(attn(?:_1|\.\d+))\.{re.escape(theirs)}\.", rf"\1.{ours}.", key)
    return key


def vae_state_from_diffusers(state: dict[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL state dict -> LDM AutoencoderKL keys. Attention projections are Linear
    ([C, C]) in diffusers and 1x1 convs ([C, C, 1, 1]) in LDM."""
    mapped = {}
    for key, value in strip_wrappers(state).items():
        new = _diffusers_key(key, num_levels)
        if re.search(r"attn(_1|\.\d+)\.(q|k|v|proj_out)\.weight$", new) and value.dim() == 2:
            value = value[:, :, None, None]
        mapped[new] = value
    return mapped


def vae_state_from_official(state: dict[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """Either format -> LDM keys: diffusers if it has `down_blocks`, else REPA-E's LDM names as they are."""
    state = strip_wrappers(state)
    if any(".down_blocks." in key or ".up_blocks." in key for key in state):
        return vae_state_from_diffusers(state, num_levels)
    return state


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """`load_state_dict(strict=True)` with a readable GenbenchError naming the file."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise GenbenchError(f"{source}: weights do not match the model config ({str(error)[:400]}); "
                            "check the --model/--vae preset matches the checkpoint") from error


def load_official_sit(path: str | Path, config: str, use_ema: bool = True, **overrides) -> SiT:
    """Build `build_sit(config, **overrides)` and load an official SiT checkpoint into it, strictly."""
    model = build_sit(config, **overrides)
    load_state_strict(model, sit_state_from_official(read_state_file(path), use_ema), path)
    return model


def load_official_vae(path: str | Path, preset: str, **overrides) -> AutoencoderKL:
    """Build `build_vae(preset, **overrides)` and load a REPA-E .pt or diffusers safetensors VAE, strictly."""
    vae = build_vae(preset, **overrides)
    state = read_state_file(path)
    load_state_strict(vae, vae_state_from_official(state, len(vae.encoder.down)), path)
    return vae


def read_latents_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """REPA-E `<vae>-latents-stats.pt` -> (latents_scale, latents_bias), each [1, C, 1, 1]."""
    stats = read_state_file(path)
    if not {"latents_scale", "latents_bias"} <= set(stats):
        raise GenbenchError(f"{path}: not a latents-stats file (needs latents_scale and latents_bias)")
    return stats["latents_scale"], stats["latents_bias"]


#################################################################################
#                          genbench training checkpoints                         #
#################################################################################

@dataclass
class LoadedModel:
    """A checkpoint ready to sample from: SiT (EMA weights, eval mode), its VAE or None, the JSON config."""

    sit: SiT
    vae: AutoencoderKL | None
    config: dict


# Official models: how to build the SiT (registry name + overrides) and which VAE preset decodes its latents.
OFFICIAL_MODELS: dict[str, dict] = {
    "sit-repae-sdvae": {"sit": {"name": "SiT-XL/2", "z_dim": 768, "latent_norm": "batchnorm"}, "vae": "f8d4"},
    "sit-repae-invae": {"sit": {"name": "SiT-XL/1", "in_channels": 32, "input_size": 16, "z_dim": 768,
                                "latent_norm": "batchnorm"}, "vae": "f16d32"},
    "sit-repae-vavae": {"sit": {"name": "SiT-XL/1", "in_channels": 32, "input_size": 16, "z_dim": 768,
                                "latent_norm": "batchnorm"}, "vae": "f16d32"},
    "repa-sit-xl-2": {"sit": {"name": "SiT-XL/2", "z_dim": 768, "latent_norm": "scale"}, "vae": "f8d4"},
    "sit-xl-2-256": {"sit": {"name": "SiT-XL/2", "z_dim": 0, "learn_sigma": True, "latent_norm": "scale"},
                     "vae": "f8d4"},
}


def load_official_model(name: str, sit_path: str | Path, vae_path: str | Path | None = None,
                        latents_stats: str | Path | None = None, sit_overrides: dict | None = None,
                        vae_overrides: dict | None = None) -> LoadedModel:
    """An official SiT checkpoint plus its VAE, ready to sample (EMA weights, eval mode).

    The VAE comes from `vae_path` (REPA-E .pt or diffusers safetensors) or, for REPA-E checkpoints that
    carry one, from their "vae" entry. For REPA-E the latent BatchNorm statistics come from the checkpoint's
    EMA (`bn.*`) or, if given, from `latents_stats` (<vae>-latents-stats.pt), which then take precedence.
    """
    if name not in OFFICIAL_MODELS:
        raise GenbenchError(f"unknown official model {name!r}; choose from {sorted(OFFICIAL_MODELS)}")
    spec = OFFICIAL_MODELS[name]
    sit_config = {**spec["sit"], **(sit_overrides or {})}
    checkpoint = read_state_file(sit_path)
    sit = build_sit(sit_config.pop("name"), **sit_config)
    state = sit_state_from_official(checkpoint)
    if sit_config.get("latent_norm") == "batchnorm" and "latent_norm.running_mean" not in state:
        state |= {f"latent_norm.{k}": v for k, v in sit.latent_norm.state_dict().items()}
        if latents_stats is None:
            raise GenbenchError(f"{sit_path}: holds no latent BatchNorm statistics; pass the VAE's "
                                "-latents-stats.pt file")
    load_state_strict(sit, state, sit_path)
    if latents_stats is not None:
        sit.latent_norm.load_latents_stats(*read_latents_stats(latents_stats))
    vae = build_vae(spec["vae"], **(vae_overrides or {}))
    if vae_path is not None:
        vae_state, vae_source = read_state_file(vae_path), vae_path
    elif isinstance(checkpoint.get("vae"), dict) and checkpoint["vae"]:
        vae_state, vae_source = checkpoint["vae"], sit_path
    else:
        raise GenbenchError(f"{sit_path}: carries no VAE; pass the VAE file ({spec['vae']}), e.g. "
                            f"{OFFICIAL_SOURCES.get('e2e-sdvae')} or {OFFICIAL_SOURCES['sd-vae-ft-ema']}")
    load_state_strict(vae, vae_state_from_official(vae_state, len(vae.encoder.down)), vae_source)
    config = {"official": name, "sit": {**spec["sit"], **(sit_overrides or {})},
              "vae": {"preset": spec["vae"], **(vae_overrides or {})}}
    return LoadedModel(sit.eval(), vae.eval(), config)


def build_sit_from_config(config: dict) -> SiT:
    """config["sit"] = {"name": registry name, **overrides} -> fresh SiT."""
    sit_config = dict(config["sit"])
    return build_sit(sit_config.pop("name"), **sit_config)


def build_vae_from_config(config: dict) -> AutoencoderKL | None:
    """config["vae"] = {"preset": name, **overrides} or None -> fresh VAE."""
    if not config.get("vae"):
        return None
    vae_config = dict(config["vae"])
    return build_vae(vae_config.pop("preset"), **vae_config)


def load_model_checkpoint(path: str | Path, use_ema: bool = True) -> LoadedModel:
    """Load a `genbench train` checkpoint ({model, ema, vae, config, ...}) for sampling."""
    checkpoint = read_state_file(path)
    if "config" not in checkpoint:
        raise GenbenchError(f"{path}: not a genbench training checkpoint (no 'config'); for official "
                            "checkpoints use load_official_sit with a config name")
    config = json.loads(checkpoint["config"])
    sit = build_sit_from_config(config)
    load_state_strict(sit, checkpoint["ema" if use_ema else "model"], path)
    vae = build_vae_from_config(config)
    if vae is not None:
        load_state_strict(vae, checkpoint["vae"], path)
        vae.eval()
    return LoadedModel(sit.eval(), vae, config)
