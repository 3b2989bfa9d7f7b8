"""The training recipes, registered in RECIPES: `sit` (vanilla SiT on a frozen VAE), `repa` (+ REPA
alignment) and `repae` (end-to-end VAE + SiT, REPA-E's train_repae.py); `register_recipe` adds one.

A run is a `TrainConfig` (preset or --config file, then flags) that `resolve` completes against the data
before anything is built; `build_models` builds the networks from the resolved config without changing it.
One `Trainer` holds every module, optimiser and the step; `train_step()` runs one iteration of the recipe
and `save` / `Trainer.resume` write and read a checkpoint (genbench/models/checkpoints.py) from which
training continues exactly (the batch stream is a function of the step, and the global RNG state is saved).

REPA-E per step, in this order: encoder tokens of the clean images; VAE forward; VAE update with
L_REG + 1.5 REPA loss through the frozen SiT in eval mode (stopping after the projector); discriminator
update; SiT update on z.detach() (the diffusion loss never reaches the VAE) with diffusion + 0.5 REPA, the
latent BatchNorm on batch statistics; EMA of SiT parameters and buffers. t and eps are shared by both passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from genbench.backbones import build_encoder
from genbench.distributed import gather_objects, init_distributed
from genbench.errors import GenbenchError
from genbench.io import write_text_atomic
from genbench.models.checkpoints import (
    build_sit_from_config,
    build_vae_from_config,
    checkpoint_path,
    latest_checkpoint,
    load_state_strict,
    read_training_checkpoint,
    write_checkpoint,
)
from genbench.models.official import load_official_vae, read_latents_stats, strip_wrappers
from genbench.models.sit import SiT
from genbench.models.vae import DiagonalGaussian
from genbench.pixels import to_signed_range
from genbench.sources import read_checkpoint
from genbench.training.data import ImageDataset, dataset_fingerprint
from genbench.training.ema import make_ema, update_ema
from genbench.training.losses import (
    DenoisingLoss,
    HingeDiscriminatorLoss,
    LinearInterpolant,
    NLayerDiscriminator,
    ProjectionLoss,
    VAERegularizationLoss,
    build_lpips,
)


@dataclass(frozen=True)
class RecipeSpec:
    """A training recipe: `step(trainer, batch) -> logs` runs one iteration (the trainer then updates the
    EMA and the step count); `encoder`: it needs REPA's alignment target; `trains_vae`: it tunes the VAE end
    to end (VAE and discriminator optimisers, no latent cache); `latent_norm`: its default ("batchnorm" |
    "scale" | "none") where the config leaves it None. Registered in RECIPES by `register_recipe`."""

    name: str
    step: Callable[[Trainer, Batch], dict[str, float]]
    encoder: bool = False
    trains_vae: bool = False
    latent_norm: str = "scale"


RECIPES: dict[str, RecipeSpec] = {}  # sit, repa, repae: registered below Trainer, whose steps they name


def register_recipe(spec: RecipeSpec) -> RecipeSpec:
    """Add a recipe to RECIPES; its name must be new."""
    if spec.name in RECIPES:
        raise ValueError(f"recipe '{spec.name}' is registered already")
    RECIPES[spec.name] = spec
    return spec


def recipe_spec(name: str, source: str = "config") -> RecipeSpec:
    """The registered recipe called `name`; a GenbenchError naming the registered ones otherwise."""
    if name not in RECIPES:
        raise GenbenchError(f"{source}: recipe {name!r}; use one of {tuple(RECIPES)}")
    return RECIPES[name]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; saved (JSON) with the run and in every checkpoint. Defaults are REPA-E's
    ImageNet-256 recipe. Fields left None, "the recipe's" or "the data's", are filled in by `resolve`; the
    trainer only runs resolved configs, so what a run saved is what it ran. "sit", "vae" and "encoder" are
    the JSON parts of the networks ({"name" | "preset": registry name, **builder options})."""

    recipe: str = "repae"
    sit: dict = field(default_factory=lambda: {"name": "SiT-XL/2"})  # registry name + overrides
    vae: dict | None = field(default_factory=lambda: {"preset": "f8d4"})
    vae_weights: str | None = None  # REPA-E .pt or diffusers safetensors; None = random init
    latents_stats: str | None = None  # REPA-E <vae>-latents-stats.pt for the latent BatchNorm
    latent_norm: str | None = None  # "batchnorm" | "scale" | "none"; None: the recipe's (RecipeSpec)
    latent_scale: float = 0.18215
    encoder: dict | None = field(default_factory=lambda: {"name": "dinov2-vit-b"})  # name, weights, kwargs
    resolution: int = 256
    num_classes: int | None = 1000  # None = from the data
    class_dropout_prob: float = 0.1
    batch_size: int = 256
    steps: int = 400_000
    lr: float = 1e-4  # SiT optimiser (upstream --learning-rate)
    vae_lr: float = 1e-4  # REPA-E's VAE optimiser (upstream --vae-learning-rate)
    disc_lr: float = 1e-4  # REPA-E's discriminator optimiser (upstream --disc-learning-rate)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    proj_coeff: float = 0.5  # REPA weight in the SiT loss
    vae_align_proj_coeff: float = 1.5  # REPA weight in the REPA-E VAE loss
    perceptual_weight: float = 1.0
    kl_weight: float = 1e-6
    gan_weight: float = 0.1
    lpips: bool = True  # try LPIPS; skipped with a warning when unavailable
    # A world network's LPIPS-style distance in place of LPIPS-VGG: "shapes" (the shapes world's second
    # network, genbench.worlds.perceptual; never its evaluation network) or a ShapesNet safetensors file.
    perceptual_net: str | None = None
    # Deviation from upstream, off by default: the VAE pass normalises latents with the batch's statistics
    # (upstream: the SiT in eval mode, BatchNorm on running statistics, through which a growing latent
    # scale lowers the alignment loss). The running statistics are not updated by that pass.
    vae_pass_batch_stats: bool = False
    # The discriminator: taming's PatchGAN; ndf 64 / 3 layers is upstream's (the paper presets), the tiny
    # presets use ndf 8 / 2 layers. disc_weights: a pre-trained one (upstream --disc-pretrained-ckpt).
    disc_ndf: int = 64
    disc_layers: int = 3
    disc_weights: str | None = None
    hflip: bool = False  # random horizontal flips of training images; upstream trains without
    mixed_precision: str = "no"  # "no" | "bf16"
    compile: bool = False
    cache_latents: bool = False  # frozen-VAE recipes: encode every image (and its flip with hflip) once
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 50_000

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        """A config from JSON-like values (a preset, a --config file), checked; a GenbenchError naming
        `source` for an unknown option or recipe or a combination the recipe cannot run."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise GenbenchError(f"{source}: unknown training options {unknown}; valid ones: {sorted(names)}")
        config = cls(**{**values, "betas": tuple(values.get("betas", cls.betas))})
        recipe = recipe_spec(config.recipe, source)
        if recipe.encoder and config.encoder is None:
            raise GenbenchError(f"{source}: recipe {config.recipe} needs an 'encoder'")
        if config.disc_weights and not recipe.trains_vae:
            raise GenbenchError(f"{source}: disc_weights is for the repae recipe; drop it or use repae")
        if config.mixed_precision not in ("no", "bf16"):
            raise GenbenchError(f"{source}: mixed_precision must be 'no' or 'bf16'")
        return config

    @classmethod
    def from_checkpoint(cls, values: dict, source: str) -> TrainConfig:
        """A config saved in a checkpoint. Checkpoints written before vae_lr, disc_lr and hflip existed
        trained the VAE and discriminator at `lr` and flipped images at random; resuming keeps that."""
        legacy = {"vae_lr": values.get("lr", cls.lr), "disc_lr": values.get("lr", cls.lr), "hflip": True}
        return cls.from_dict({**legacy, **values}, source)

    def to_json(self, indent: int | None = None) -> str:
        """The JSON form checkpoints and the run's config.json hold (from_dict / from_checkpoint read it)."""
        return json.dumps(dataclasses.asdict(self), indent=indent)


PRESETS: dict[str, dict] = {
    # REPA-E paper: SiT-XL/2 + E2E SD-VAE (f8d4), 400K steps.
    "repae-sit-xl-2-f8d4": {"recipe": "repae", "sit": {"name": "SiT-XL/2"}, "vae": {"preset": "f8d4"}},
    # REPA-E f16d32 (IN-VAE / VA-VAE): SiT-XL/1.
    "repae-sit-xl-1-f16d32": {"recipe": "repae", "sit": {"name": "SiT-XL/1"}, "vae": {"preset": "f16d32"}},
    # REPA on frozen SD-VAE, 0.18215 scaling.
    "repa-sit-xl-2": {"recipe": "repa", "sit": {"name": "SiT-XL/2"}, "vae": {"preset": "f8d4"},
                      "latent_norm": "scale"},
    "sit-xl-2": {"recipe": "sit", "sit": {"name": "SiT-XL/2"}, "vae": {"preset": "f8d4"}, "encoder": None,
                 "latent_norm": "scale"},
}
_TINY = {"sit": {"name": "SiT-T/2"}, "vae": {"preset": "tiny-f4d4"}, "encoder": {"name": "tiny", "grid": 4},
         "resolution": 32, "num_classes": None, "batch_size": 8, "steps": 50, "lpips": False, "disc_ndf": 8,
         "disc_layers": 2, "log_every": 10, "checkpoint_every": 25, "ema_decay": 0.999}
PRESETS |= {
    "tiny-repae": {**_TINY, "recipe": "repae"},
    "tiny-repa": {**_TINY, "recipe": "repa", "latent_norm": "none"},
    "tiny-sit": {**_TINY, "recipe": "sit", "encoder": None, "latent_norm": "none"},
}
# The shapes world's miniature text-to-image model (genbench.geneval.t2i, scripts/train_geneval_t2i.sh): a
# caption-conditioned SiT (TextSiT, joint attention over image and text tokens, x-prediction) on 64 px
# pixels (pixel_unshuffle by 4, patch 2: 64 tokens); its classes are the 336 captions of the shapes grammar
# (caption set "shapes"), the null caption its CFG condition.
PRESETS["t2i-shapes"] = {
    "recipe": "sit", "sit": {"name": "TextSiT-M/2", "text_attention": "joint", "prediction": "x"},
    "vae": {"preset": "pixels-f4"}, "encoder": None, "latent_norm": "none", "resolution": 64,
    "num_classes": 336, "class_dropout_prob": 0.1, "batch_size": 16, "lr": 6e-4, "steps": 2200,
    "ema_decay": 0.998, "lpips": False, "cache_latents": True, "log_every": 50, "checkpoint_every": 250}


class SiTObjective(nn.Module):
    """Latent normalisation, interpolation and the SiT pass, as one module so that DDP / torch.compile can
    wrap it: (z [N, C, h, w] VAE latents, t [N], eps, y) -> (v, target, projected tokens or None)."""

    def __init__(self, sit: SiT):
        super().__init__()
        self.sit = sit

    def forward(self, z: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, y: torch.Tensor,
                align_only: bool = False) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        x_t, target = LinearInterpolant.interpolate(self.sit.latent_norm(z), eps, t)
        if self.sit.projector is None:
            return self.sit(x_t, t, y), target, None
        v, projected = self.sit.forward_features(x_t, t, y, align_only=align_only)
        return v, target, projected


def _build_encoder(config: TrainConfig) -> nn.Module:
    options = {k: v for k, v in config.encoder.items() if k != "name"}
    return build_encoder(config.encoder["name"], config.resolution, **options)


def _latent_geometry(vae: dict) -> tuple[int, int]:
    """(downsample factor, latent channels) of a VAE config, read off a build on the meta device (shapes
    only: no memory, no weights, no random draws)."""
    with torch.device("meta"):
        built = build_vae_from_config({"vae": vae})
    return built.downsample_factor, built.z_channels


def resolve(config: TrainConfig, dataset: ImageDataset) -> TrainConfig:
    """`config` with everything that depends on the recipe, the data or the networks filled in: num_classes
    (the data's), latent_norm (the recipe's), encoder (None for recipes without one), cache_latents (off
    for recipes that train the VAE) and the SiT's input_size, in_channels, num_classes, class_dropout_prob,
    latent_norm, latent_scale and z_dim. A resolved config resolves to itself.

    The SiT's z_dim is the encoder's token width; encoders declare it only once built, so the encoder is
    built here when the config does not record z_dim yet (before the trainer seeds its random draws)."""
    recipe = recipe_spec(config.recipe)
    if config.vae is None:
        raise GenbenchError("config: a VAE is required (latent SiT); set 'vae'")
    num_classes = dataset.num_classes if config.num_classes is None else config.num_classes
    latent_norm = recipe.latent_norm if config.latent_norm is None else config.latent_norm
    if config.latents_stats and latent_norm != "batchnorm":
        raise GenbenchError(f"{config.latents_stats}: latents stats need latent_norm 'batchnorm'")
    encoder = config.encoder if recipe.encoder else None
    if encoder is None:
        z_dim = 0
    else:
        z_dim = config.sit.get("z_dim") or _build_encoder(dataclasses.replace(config, encoder=encoder)).z_dim
    factor, channels = _latent_geometry(config.vae)
    sit = {**config.sit, "input_size": config.resolution // factor, "in_channels": channels,
           "num_classes": num_classes, "class_dropout_prob": config.class_dropout_prob,
           "latent_norm": latent_norm, "latent_scale": config.latent_scale, "z_dim": z_dim}
    return dataclasses.replace(config, sit=sit, num_classes=num_classes, latent_norm=latent_norm,
                               encoder=encoder, cache_latents=config.cache_latents and not recipe.trains_vae)


@dataclass
class Networks:
    """A run's networks as `build_models` makes them, on the CPU."""

    vae: nn.Module
    encoder: nn.Module | None
    sit: SiT
    discriminator: NLayerDiscriminator | None


def build_models(config: TrainConfig, pretrained: bool = True) -> Networks:
    """The networks of a resolved config, which is only read. They are built in one fixed order (VAE,
    encoder, SiT, discriminator), which fixes their random initialisation for a seed. `pretrained=False`
    skips the weight files the config names (vae_weights, latents_stats, disc_weights): a resumed run
    loads every weight from its checkpoint."""
    if config.vae_weights and pretrained:
        vae = load_official_vae(config.vae_weights, config.vae["preset"],
                                **{k: v for k, v in config.vae.items() if k != "preset"})
    else:
        vae = build_vae_from_config({"vae": config.vae})
    encoder = _build_encoder(config) if config.encoder is not None else None
    sit = build_sit_from_config({"sit": config.sit})
    if config.latents_stats and pretrained:
        sit.latent_norm.load_latents_stats(*read_latents_stats(config.latents_stats))
    _check_encoder_fits(config, encoder, sit)
    discriminator = None
    if recipe_spec(config.recipe).trains_vae:
        discriminator = NLayerDiscriminator(3, config.disc_ndf, config.disc_layers)
        if config.disc_weights and pretrained:
            load_pretrained_discriminator(discriminator, config.disc_weights)
    return Networks(vae, encoder, sit, discriminator)


def _check_encoder_fits(config: TrainConfig, encoder: nn.Module | None, sit: SiT) -> None:
    """The encoder's tokens must match the SiT's token grid and its projector's width (z_dim)."""
    if encoder is None:
        return
    probe = torch.zeros(1, 3, config.resolution, config.resolution, dtype=torch.uint8)
    _, tokens, width = encoder(probe).shape
    if tokens != sit.grid_size ** 2:
        raise GenbenchError(f"encoder {config.encoder['name']} gives {tokens} tokens but the SiT "
                            f"has {sit.grid_size ** 2}; change the SiT patch or the encoder grid")
    if width != config.sit["z_dim"]:
        raise GenbenchError(f"encoder {config.encoder['name']} gives tokens of width {width} but the SiT's "
                            f"z_dim is {config.sit['z_dim']}; drop z_dim from 'sit' (it is the encoder's)")


class Batch(NamedTuple):
    """This process's share of one global batch: uint8 images [N, 3, H, W], labels [N], the images' dataset
    index [N] and whether each is flipped [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    flip: torch.Tensor


class Trainer:
    """One training run of a resolved `config` (it is resolved here against the dataset if it is not).
    `on_update(name)` (tests) is called after each backward, before the step.

    `pretrained=False` (resume) builds the modules without reading the weight files the config names
    (vae_weights, latents_stats, disc_weights): the checkpoint holds every weight."""

    def __init__(self, config: TrainConfig, dataset: ImageDataset, device: str | torch.device = "cpu",
                 pretrained: bool = True):
        self.rank, self.world = init_distributed()
        self.pretrained = pretrained
        self.config, self.dataset, self.device = resolve(config, dataset), dataset, torch.device(device)
        self.recipe = RECIPES[self.config.recipe]
        self.step = 0
        self.on_update: Callable[[str], None] | None = None
        if self.config.batch_size % self.world:
            raise GenbenchError(f"batch_size {self.config.batch_size} is not divisible by {self.world} "
                                "processes")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        torch.manual_seed(self.config.seed + self.rank)
        self._build_models()
        self._build_optimisation()
        self.latent_cache = self._cache_latents() if self.config.cache_latents else None

    # ----------------------------------------------------------------- building
    def _build_models(self) -> None:
        networks = build_models(self.config, self.pretrained)
        self.vae, self.encoder, self.sit = networks.vae, networks.encoder, networks.sit
        self.discriminator = networks.discriminator
        self.sit.to(self.device)
        self.vae.to(self.device)
        self.encoder = self.encoder.to(self.device) if self.encoder is not None else None
        self.ema = make_ema(self.sit)
        if self.world > 1 and hasattr(self.sit.latent_norm, "sync"):
            self.sit.latent_norm.sync = True  # SyncBN over the global batch, as REPA-E under DDP
        self.objective = SiTObjective(self.sit)
        if self.recipe.trains_vae:
            self.discriminator.to(self.device)
            self.vae_loss = VAERegularizationLoss(self._perceptual(), self.config.perceptual_weight,
                                                  self.config.kl_weight, self.config.gan_weight)
            self.vae_loss.to(self.device)
        else:
            self.vae.eval().requires_grad_(False)

    def _perceptual(self) -> nn.Module | None:
        """REPA-E's perceptual term: a world network (perceptual_net), else LPIPS-VGG when lpips is on."""
        config = self.config
        if config.perceptual_net is not None:
            from genbench.worlds.perceptual import load_shapes_perceptual

            shipped = config.perceptual_net == "shapes"
            return load_shapes_perceptual(None if shipped else config.perceptual_net)
        return build_lpips() if config.lpips else None

    def _wrap(self, module: nn.Module) -> nn.Module:
        """DDP under torchrun, torch.compile when asked; the plain module otherwise."""
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=ids)
        return torch.compile(module) if self.config.compile else module

    def _build_optimisation(self) -> None:
        config = self.config

        def adamw(module: nn.Module, lr: float) -> torch.optim.AdamW:
            return torch.optim.AdamW(module.parameters(), lr=lr, betas=config.betas,
                                     weight_decay=config.weight_decay)

        self.optimizers = {"sit": adamw(self.sit, config.lr)}
        self.objective_train = self._wrap(self.objective)
        if self.recipe.trains_vae:
            self.optimizers |= {"vae": adamw(self.vae, config.vae_lr),
                                "discriminator": adamw(self.discriminator, config.disc_lr)}
            self.vae_train = self._wrap(self.vae)
            self.discriminator_train = self._wrap(self.discriminator)
        self.interpolant, self.denoising_loss = LinearInterpolant(), DenoisingLoss()
        self.projection_loss, self.hinge_loss = ProjectionLoss(), HingeDiscriminatorLoss()

    @torch.no_grad()
    def _cache_latents(self) -> torch.Tensor:
        """Posterior moments of every image (and its flip when hflip): [N, 1 or 2 (flip), 2C, h, w] on CPU."""
        flips = (False, True) if self.config.hflip else (False,)
        moments = []
        for start in range(0, len(self.dataset), self.config.batch_size):
            index = torch.arange(start, min(start + self.config.batch_size, len(self.dataset)))
            per_flip = []
            for flip in flips:
                images = self.dataset.images_at(index, torch.full((len(index),), flip))
                posterior = self.vae.encode(to_signed_range(images).to(self.device))
                per_flip.append(torch.cat([posterior.mean, posterior.logvar], dim=1).cpu())
            moments.append(torch.stack(per_flip, dim=1))
        return torch.cat(moments)

    # ----------------------------------------------------------------- training
    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.mixed_precision == "bf16")

    def next_batch(self) -> Batch:
        """This process's share of the global batch of `self.step`."""
        index, flip = self.dataset.batch_indices(self.step, self.config.batch_size, self.config.seed,
                                                 self.config.hflip)
        share = slice(self.rank * len(index) // self.world, (self.rank + 1) * len(index) // self.world)
        index, flip = index[share], flip[share]
        images = self.dataset.images_at(index, flip).to(self.device)
        return Batch(images, self.dataset.labels[index].to(self.device), index, flip)

    def update(self, name: str, loss: torch.Tensor, module: nn.Module) -> float:
        """Backward, clip to grad_clip, step, clear grads. Returns the pre-clip gradient norm."""
        loss.backward()
        if self.on_update is not None:
            self.on_update(name)
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        self.optimizers[name].step()
        self.optimizers[name].zero_grad(set_to_none=True)
        return norm.item()

    def sit_loss(self, v: torch.Tensor, target: torch.Tensor, projected: torch.Tensor | None,
                 tokens: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The SiT's loss: denoising, plus proj_coeff times REPA's alignment when there are tokens."""
        denoise = self.denoising_loss(v, target)
        if projected is None:
            return denoise, {"denoise": denoise.item()}
        proj = self.projection_loss(projected, tokens)
        return denoise + self.config.proj_coeff * proj, {"denoise": denoise.item(), "proj": proj.item()}

    def train_step(self) -> dict[str, float]:
        """One iteration of the recipe; returns its losses and gradient norms."""
        logs = self.recipe.step(self, self.next_batch())
        update_ema(self.ema, self.sit, self.config.ema_decay)
        self.step += 1
        return logs

    def encoder_tokens(self, images: torch.Tensor) -> torch.Tensor | None:
        """REPA's target tokens of the batch's images (None without an encoder)."""
        if self.encoder is None:
            return None
        with torch.no_grad(), self.autocast():
            return self.encoder(images).float()

    def frozen_latents(self, batch: Batch) -> torch.Tensor:
        """A draw of the frozen VAE's latents of the batch (from the latent cache when there is one)."""
        with torch.no_grad(), self.autocast():
            if self.latent_cache is not None:
                moments = self.latent_cache[batch.index, batch.flip.long()]
                return DiagonalGaussian(moments.to(self.device)).sample()
            return self.vae.encode(to_signed_range(batch.images)).sample()

    def frozen_vae_step(self, batch: Batch) -> dict[str, float]:
        """The sit and repa recipes: one SiT update on the frozen VAE's latents."""
        tokens = self.encoder_tokens(batch.images)
        z = self.frozen_latents(batch)
        self.sit.train()
        self.sit.latent_norm.eval()  # frozen-VAE recipes keep the latent statistics fixed
        t, eps = self.interpolant.sample(z)
        with self.autocast():
            v, target, projected = self.objective_train(z, t, eps, batch.labels)
            loss, logs = self.sit_loss(v, target, projected, tokens)
        logs["grad_norm"] = self.update("sit", loss, self.sit)
        return {"loss": loss.item(), **logs}

    @contextlib.contextmanager
    def _vae_pass_latent_norm(self):
        """With vae_pass_batch_stats (a documented deviation), the latent BatchNorm of the VAE pass uses the
        batch's statistics (train mode, momentum 0: running statistics unchanged); otherwise upstream's
        eval-mode BatchNorm on running statistics."""
        norm = self.sit.latent_norm
        if not (self.config.vae_pass_batch_stats and isinstance(norm, nn.BatchNorm2d)):
            yield
            return
        momentum, tracked, mode = norm.momentum, norm.num_batches_tracked.clone(), norm.training
        norm.train()
        norm.momentum = 0.0
        try:
            yield
        finally:
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(tracked)
            norm.train(mode)

    def repae_step(self, batch: Batch) -> dict[str, float]:
        """The repae recipe: VAE, discriminator and SiT updates (module docstring)."""
        config, labels = self.config, batch.labels
        tokens = self.encoder_tokens(batch.images)
        x = to_signed_range(batch.images)
        self.vae.train()
        with self.autocast():
            posterior, z, recon = self.vae_train(x)

        # VAE update: SiT frozen, in eval mode (BN on running stats, no label drop); REPA via the projector.
        self.sit.eval().requires_grad_(False)
        self.discriminator.requires_grad_(False)
        t, eps = self.interpolant.sample(z)
        with self.autocast(), self._vae_pass_latent_norm():
            reg, logs = self.vae_loss(x, recon, posterior, self.discriminator)
            _, _, projected = self.objective(z, t, eps, labels, align_only=True)
            vae_proj = self.projection_loss(projected, tokens)
            vae_loss = reg + config.vae_align_proj_coeff * vae_proj
        logs = {f"vae_{k}": v for k, v in logs.items()} | {"vae_proj": vae_proj.item()}
        logs["vae_grad_norm"] = self.update("vae", vae_loss, self.vae)

        # Discriminator update on (x, x_hat.detach()).
        self.discriminator.requires_grad_(True)
        with self.autocast():
            d_loss = self.hinge_loss(self.discriminator_train(x), self.discriminator_train(recon.detach()))
        logs["d_loss"] = d_loss.item()
        logs["d_grad_norm"] = self.update("discriminator", d_loss, self.discriminator)

        # SiT update on the detached latents; the latent BN uses (and updates) batch statistics.
        self.sit.train().requires_grad_(True)
        with self.autocast():
            v, target, projected = self.objective_train(z.detach(), t, eps, labels)
            loss, sit_logs = self.sit_loss(v, target, projected, tokens)
        sit_logs["grad_norm"] = self.update("sit", loss, self.sit)
        return {"loss": loss.item(), "vae_loss": vae_loss.item(), **sit_logs, **logs}

    # -------------------------------------------------------------- checkpoints
    def _rng_states(self) -> list[dict]:
        """Every process's RNG state (gathered under DDP), so that a resumed run draws the same numbers."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return gather_objects({k: v.cpu() for k, v in rng.items()})

    def state_dict(self) -> dict:
        """The full training state (collective under DDP: every process must call it)."""
        return {"model": self.sit.state_dict(), "ema": self.ema.state_dict(), "vae": self.vae.state_dict(),
                "discriminator": self.discriminator.state_dict() if self.discriminator is not None else {},
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "config": self.config.to_json(), "step": self.step,
                "rng": self._rng_states(), "data": self.data_fingerprint()}

    def data_fingerprint(self) -> dict:
        """The training set's identity (computed once), saved so that a resume with other data is refused."""
        if getattr(self, "_data_fingerprint", None) is None:
            self._data_fingerprint = dataset_fingerprint(self.dataset)
        return self._data_fingerprint

    def load_state_dict(self, state: dict, source: str | Path) -> None:
        """Restore a checkpoint's full state; a missing or wrong-typed entry is a GenbenchError naming it."""
        load_state_strict(self.sit, state.get("model"), source)
        load_state_strict(self.ema, state.get("ema"), source)
        load_state_strict(self.vae, state.get("vae"), source)
        if self.discriminator is not None:
            load_state_strict(self.discriminator, state.get("discriminator"), source)
        try:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            self.step = int(state["step"])
            rngs = list(state["rng"])
            if len(rngs) != self.world:
                warnings.warn(f"{source}: saved by {len(rngs)} processes, resumed by {self.world}; random "
                              "draws will differ from an uninterrupted run", stacklevel=2)
            rng = rngs[self.rank % len(rngs)]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, ZeroDivisionError) as error:
            raise GenbenchError(f"{source}: incomplete or damaged training checkpoint "
                                f"({type(error).__name__}: {str(error)[:100]}); resume from an earlier "
                                "checkpoint or start a new run") from error

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint atomically (temp file, then os.replace); rank 0 only."""
        state = self.state_dict()
        if self.rank == 0:
            write_checkpoint(state, path)
        return Path(path)

    @classmethod
    def resume(cls, path: str | Path, dataset: ImageDataset, device: str | torch.device = "cpu") -> Trainer:
        """Rebuild from a checkpoint's config and continue exactly where it stopped."""
        state, values = read_training_checkpoint(path)
        config = TrainConfig.from_checkpoint(values, str(path))
        saved, given = state.get("data"), dataset_fingerprint(dataset)
        if saved is not None and saved != given:  # checkpoints before the fingerprint carry none
            raise GenbenchError(f"--data {dataset.source}: is not the data {path} was trained on (saved "
                                f"{_describe_data(saved)}, given {_describe_data(given)}); resume with the "
                                "same --data or start a new run")
        trainer = cls(config, dataset, device, pretrained=False)
        trainer._data_fingerprint = given
        trainer.load_state_dict(state, path)
        return trainer


for _spec in (RecipeSpec("sit", Trainer.frozen_vae_step),
              RecipeSpec("repa", Trainer.frozen_vae_step, encoder=True),
              RecipeSpec("repae", Trainer.repae_step, encoder=True, trains_vae=True,
                         latent_norm="batchnorm")):
    register_recipe(_spec)


def load_pretrained_discriminator(discriminator: nn.Module, path: str | Path) -> None:
    """Upstream's --disc-pretrained-ckpt: a bare discriminator state dict (REPA-E's
    `<vae>-discriminator-ckpt.pt` from save_vae_weights.py) or a training checkpoint holding one under
    "discriminator" (REPA-E's or genbench's). Read weights-only and loaded strictly."""
    state = read_checkpoint(path)
    if isinstance(state.get("discriminator"), dict):
        state = state["discriminator"]
    state = strip_wrappers(state)
    if not state or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise GenbenchError(f"{path}: holds no discriminator state dict; pass REPA-E's "
                            "<vae>-discriminator-ckpt.pt or a repae training checkpoint as disc_weights")
    expected = discriminator.state_dict()
    problems = [f"missing {key}" for key in expected if key not in state]
    problems += [f"unexpected {key}" for key in state if key not in expected]
    problems += [f"{key} is {tuple(state[key].shape)}, not {tuple(expected[key].shape)}"
                 for key in expected if key in state and state[key].shape != expected[key].shape]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise GenbenchError(f"{path}: does not fit the discriminator of disc_ndf {discriminator.ndf}, "
                            f"disc_layers {discriminator.n_layers} ({shown}); set disc_ndf / disc_layers "
                            "to the checkpoint's")
    discriminator.load_state_dict(state, strict=True)


def _describe_data(fingerprint: object) -> str:
    if not isinstance(fingerprint, dict):
        return "unknown data"
    return f"{fingerprint.get('images')} images, SHA-256 {str(fingerprint.get('sha256'))[:12]}"


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines after `step` (a run killed after its last checkpoint logged steps that the resumed run
    logs again) and a line cut short by the kill, so that log.jsonl holds each step once."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))


def train(trainer: Trainer, steps: int, out_dir: str | Path,
          log: Callable[[int, dict[str, float]], None] | None = None) -> Path:
    """Run until global step `steps`, checkpointing every `checkpoint_every` steps and at the end; logs go
    to `log(step, values)` every `log_every` steps and to out_dir/log.jsonl. The resolved config is written
    to out_dir/config.json before the first step."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = latest_checkpoint(out_dir)
    if trainer.rank == 0:
        write_text_atomic(out_dir / "config.json", trainer.config.to_json(indent=2) + "\n")
        truncate_log(out_dir / "log.jsonl", trainer.step)
    while trainer.step < steps:
        values = trainer.train_step()
        if trainer.step % trainer.config.log_every == 0 or trainer.step == steps:
            if trainer.rank == 0:
                with open(out_dir / "log.jsonl", "a") as handle:
                    handle.write(json.dumps({"step": trainer.step, **values}) + "\n")
            if log is not None:
                log(trainer.step, values)
        if trainer.step % trainer.config.checkpoint_every == 0 or trainer.step == steps:
            path = trainer.save(checkpoint_path(out_dir, trainer.step))
    return path
