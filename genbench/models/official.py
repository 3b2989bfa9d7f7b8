"""Loading official checkpoints into genbench's models, by explicit key maps, and `load_model`, the one
`--model` loader (genbench's own checkpoint format: genbench/models/checkpoints.py).

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

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genbench.errors import GenbenchError
from genbench.models.checkpoints import LoadedModel, load_model_checkpoint, load_state_strict
from genbench.models.sit import SiT, build_sit
from genbench.models.vae import AutoencoderKL, build_vae
from genbench.sources import read_checkpoint
from genbench.worlds.demo import demo_recipe, resolve_demo_model

# The publishers' pages of the official files, for error messages. The files themselves are registered in
# reference_stats/registry.json ("files", "models") and fetched by genbench.fetch.
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


def load_official_sit(path: str | Path, config: str, use_ema: bool = True, **overrides) -> SiT:
    """Build `build_sit(config, **overrides)` and load an official SiT checkpoint into it, strictly."""
    model = build_sit(config, **overrides)
    load_state_strict(model, sit_state_from_official(read_checkpoint(path), use_ema), path)
    return model


def load_official_vae(path: str | Path, preset: str, **overrides) -> AutoencoderKL:
    """Build `build_vae(preset, **overrides)` and load a REPA-E .pt or diffusers safetensors VAE, strictly."""
    vae = build_vae(preset, **overrides)
    state = read_checkpoint(path)
    load_state_strict(vae, vae_state_from_official(state, len(vae.encoder.down)), path)
    return vae


def read_latents_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """REPA-E `<vae>-latents-stats.pt` -> (latents_scale, latents_bias), each [1, C, 1, 1]."""
    stats = read_checkpoint(path)
    if not {"latents_scale", "latents_bias"} <= set(stats):
        raise GenbenchError(f"{path}: not a latents-stats file (needs latents_scale and latents_bias)")
    return stats["latents_scale"], stats["latents_bias"]


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
    checkpoint = read_checkpoint(sit_path)
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
        vae_state, vae_source = read_checkpoint(vae_path), vae_path
    elif isinstance(checkpoint.get("vae"), dict) and checkpoint["vae"]:
        vae_state, vae_source = checkpoint["vae"], sit_path
    else:
        raise GenbenchError(f"{sit_path}: carries no VAE; pass the VAE file ({spec['vae']}), e.g. "
                            f"{OFFICIAL_SOURCES.get('e2e-sdvae')} or {OFFICIAL_SOURCES['sd-vae-ft-ema']}, "
                            "or sample the model by its registered name (`genbench models list`)")
    load_state_strict(vae, vae_state_from_official(vae_state, len(vae.encoder.down)), vae_source)
    config = {"official": name, "sit": {**spec["sit"], **(sit_overrides or {})},
              "vae": {"preset": spec["vae"], **(vae_overrides or {})}}
    return LoadedModel(sit.eval(), vae.eval(), config)


#################################################################################
#                        Official models by name (registry)                      #
#################################################################################

SAMPLING_KEYS = {"sampler": str, "steps": int, "cfg_scale": float, "guidance_interval": list,
                 "cfg_channels": int, "heun": bool}


@dataclass(frozen=True)
class RegisteredModel:
    """An official model of the registry's "models" section (reference_stats/registry.json): how to build
    it (`architecture`, a key of OFFICIAL_MODELS, plus overrides), which registered files hold its weights,
    and the sampling settings its paper reports numbers with."""

    name: str
    architecture: str
    checkpoint: str
    vae: str | None = None
    latents_stats: str | None = None
    recipe: str = ""
    tokenizer: str = ""
    params: str = ""
    resolution: int | None = None
    sampling: dict = field(default_factory=dict)
    sit_overrides: dict = field(default_factory=dict)
    vae_overrides: dict = field(default_factory=dict)
    reported: str = ""
    source: str = ""

    @property
    def file_names(self) -> list[str]:
        """Registered files of the model: checkpoint, then VAE and latent statistics where separate."""
        return [n for n in (self.checkpoint, self.vae, self.latents_stats) if n is not None]


def _registered_model(name: str, entry: Any, where: Path) -> RegisteredModel:
    fields = {f.name for f in dataclasses.fields(RegisteredModel)} - {"name"}
    if not isinstance(entry, dict) or not isinstance(entry.get("checkpoint"), str) \
            or entry.get("architecture") not in OFFICIAL_MODELS or set(entry) - fields - {"about"}:
        raise GenbenchError(f"{where}: model '{name}' needs 'checkpoint' (a registered file) and "
                            f"'architecture' (one of {', '.join(OFFICIAL_MODELS)}); allowed keys: "
                            f"{', '.join(sorted(fields))}")
    sampling = entry.get("sampling") or {}
    wrong = [k for k, v in sampling.items() if k not in SAMPLING_KEYS
             or not isinstance(v, SAMPLING_KEYS[k] if SAMPLING_KEYS[k] is not float else (int, float))]
    if wrong:
        raise GenbenchError(f"{where}: model '{name}' has unknown or mistyped sampling settings {wrong}; "
                            f"known: {', '.join(SAMPLING_KEYS)}")
    return RegisteredModel(name=name, **{k: v for k, v in entry.items() if k in fields})


def registered_models() -> dict[str, RegisteredModel]:
    """Every official model of the registry, by name."""
    from genbench.fetch import load_registry, registry_path

    where = registry_path()
    return {name: _registered_model(name, entry, where) for name, entry in load_registry()["models"].items()}


def registered_model(name: str) -> RegisteredModel | None:
    """The registered official model called `name`, or None when `name` is not one."""
    from genbench.fetch import load_registry, registry_path

    entry = load_registry()["models"].get(str(name))
    return None if entry is None else _registered_model(str(name), entry, registry_path())


def fetch_model_files(model: RegisteredModel) -> dict[str, Path | None]:
    """{"checkpoint", "vae", "latents_stats"} -> files in the cache, fetched and verified on first use."""
    from genbench.fetch import fetch

    return {role: None if name is None else fetch(name)
            for role, name in (("checkpoint", model.checkpoint), ("vae", model.vae),
                               ("latents_stats", model.latents_stats))}


def model_path(model: str | Path) -> Path:
    """A checkpoint path as given, the verified shipped file of a demo name (demo, demo:sit, ...), or the
    checkpoint of a registered official model (`genbench models list`), fetched and verified on first use."""
    if demo_recipe(str(model)) is not None:
        return resolve_demo_model(str(model))
    path = Path(model)
    if not path.exists():
        registered = registered_model(str(model))
        if registered is not None:
            from genbench.fetch import fetch

            return fetch(registered.checkpoint)
    return path


def load_model(model: str | Path, official: str | None = None, vae: str | Path | None = None,
               latents_stats: str | Path | None = None) -> LoadedModel:
    """The one loader behind every `--model`: a registered official model by name (its files fetched, the
    `vae`/`latents_stats` files replacing the registry's when given), a demo name, a genbench training
    checkpoint, or an official checkpoint file with `official` naming its architecture."""
    registered = registered_model(str(model)) if official is None and not Path(model).exists() else None
    if registered is not None:
        files = fetch_model_files(registered)
        loaded = load_official_model(
            registered.architecture, files["checkpoint"], vae or files["vae"],
            latents_stats or files["latents_stats"], registered.sit_overrides, registered.vae_overrides)
        loaded.config["registered"] = registered.name
        return dataclasses.replace(loaded, path=files["checkpoint"])
    path = model_path(model)
    if not path.is_file():
        raise GenbenchError(f"{path}: checkpoint not found; give a genbench checkpoint, demo[:sit|:repa|"
                            ":repae] or an official model name (`genbench models list`)")
    if official is not None:
        return dataclasses.replace(load_official_model(official, path, vae, latents_stats), path=path)
    if vae is not None or latents_stats is not None:
        raise GenbenchError("--vae/--latents-stats apply to official checkpoints; add --official NAME or "
                            "give a registered model name")
    return dataclasses.replace(load_model_checkpoint(path), path=path)


# What `genbench sample` uses where neither an option nor a registered model's paper settings say otherwise.
GENERIC_SAMPLING = {"sampler": "sde", "steps": 250, "cfg_scale": 1.0, "guidance_interval": (0.0, 1.0),
                    "cfg_channels": None, "heun": False}


def sampling_settings(model: str | Path, **given: Any) -> dict[str, Any]:
    """Sampling settings for `model`: each option given (not None) wins, then the registered model's paper
    settings (`genbench models list`), then GENERIC_SAMPLING. Keys as GENERIC_SAMPLING."""
    unknown = set(given) - set(GENERIC_SAMPLING)
    if unknown:
        raise ValueError(f"unknown sampling settings {sorted(unknown)}")
    registered = registered_model(str(model)) if not Path(model).exists() else None
    paper = registered.sampling if registered is not None else {}
    settings = {**GENERIC_SAMPLING, **paper, **{k: v for k, v in given.items() if v is not None}}
    settings["guidance_interval"] = tuple(float(x) for x in settings["guidance_interval"])
    return settings
