"""genbench's own checkpoint format (official layouts and their key maps live in genbench/models/official.py).

A run directory (`genbench train --out`) holds `config.json`, the resolved training config written before the
first step, and `checkpoints/<step:07d>.pt`, each {"model", "ema", "vae", "discriminator", "optimizers",
"config" (that JSON as text), "step", "rng", "data"}. `export_slim_checkpoint` keeps what sampling reads,
{"ema", "vae", "config", "step"} (the shipped `genbench/worlds/weights/demo-*.pt`). The config's "sit" and
"vae" entries ({"name" | "preset": registry name, **builder overrides}) build the networks. Every file is
read weights-only (`genbench.sources.read_checkpoint`) and written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.io import atomic_write
from genbench.models.sit import SiT, build_sit
from genbench.models.vae import AutoencoderKL, build_vae
from genbench.sources import parse_json, read_checkpoint

SLIM_KEYS = ("ema", "vae", "config", "step")


@dataclass
class LoadedModel:
    """A checkpoint ready to sample from: SiT (EMA weights, eval mode), its VAE or None, the JSON config,
    and the checkpoint file it came from (when loaded by `load_model`)."""

    sit: SiT
    vae: AutoencoderKL | None
    config: dict
    path: Path | None = None


def checkpoint_config(checkpoint: dict, path: str | Path) -> dict:
    """The JSON config a `genbench train` checkpoint carries under "config", as a dict."""
    fix = "the checkpoint is damaged or not written by `genbench train`"
    text = checkpoint.get("config")
    if not isinstance(text, str):
        raise GenbenchError(f"{path}: 'config' is {type(text).__name__ if text is not None else 'missing'}, "
                            f"not the JSON text genbench train writes; {fix}")
    return parse_json(text, f"{path} (config)", dict, fix)


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """`load_state_dict(strict=True)` with a readable GenbenchError naming the file."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GenbenchError(f"{source}: holds a {type(state).__name__} where a state dict of tensors "
                            "belongs; the checkpoint is damaged or of another kind")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise GenbenchError(f"{source}: weights do not match the model config ({str(error)[:400]}); "
                            "check the --model/--vae preset matches the checkpoint") from error


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
    """Load a `genbench train` checkpoint (full or slim) for sampling."""
    checkpoint = read_checkpoint(path)
    if "config" not in checkpoint:
        raise GenbenchError(f"{path}: not a genbench training checkpoint (no 'config'); for official "
                            "checkpoints use load_official_sit with a config name")
    config = checkpoint_config(checkpoint, path)
    try:
        sit, vae = build_sit_from_config(config), build_vae_from_config(config)
    except GenbenchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise GenbenchError(f"{path}: its config cannot build a model ({type(error).__name__}: {error}); the "
                            "checkpoint is damaged or from an incompatible genbench") from error
    load_state_strict(sit, checkpoint.get("ema" if use_ema else "model"), path)
    if vae is not None:
        load_state_strict(vae, checkpoint.get("vae"), path)
        vae.eval()
    return LoadedModel(sit.eval(), vae, config)


def read_training_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """A full training checkpoint to resume from: (its state, its config as a dict)."""
    state = read_checkpoint(path)
    if "config" not in state or not isinstance(state.get("optimizers"), dict):
        raise GenbenchError(f"{path}: not a genbench training checkpoint; start without --resume")
    return state, checkpoint_config(state, path)


def write_checkpoint(state: dict, path: str | Path) -> Path:
    """torch.save `state` to `path` atomically; returns `path`."""
    # The temporary file must not end in .pt, or latest_checkpoint could pick a half-written one.
    with atomic_write(path, suffix=".tmp") as tmp:
        torch.save(state, tmp)
    return Path(path)


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """The checkpoint of global step `step` in run directory `out_dir`."""
    return Path(out_dir) / "checkpoints" / f"{step:07d}.pt"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The run's last checkpoint, or None before the first."""
    checkpoints = sorted((Path(out_dir) / "checkpoints").glob("*.pt"))
    return checkpoints[-1] if checkpoints else None


def export_slim_checkpoint(run_dir: str | Path, path: str | Path) -> Path:
    """The last checkpoint of a run reduced to what sampling reads (SLIM_KEYS), written atomically; returns
    `path`."""
    last = latest_checkpoint(run_dir)
    if last is None:
        raise GenbenchError(f"{run_dir}: no checkpoints/*.pt to export; train first")
    state = read_checkpoint(last)
    return write_checkpoint({key: state[key] for key in SLIM_KEYS}, path)
