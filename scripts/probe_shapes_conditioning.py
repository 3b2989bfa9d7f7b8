"""Does a SiT learn its class conditioning in the shapes world? A short training run with given settings, then
the world classifier's top-1 agreement with the asked class on samples with and without CFG, and the norms
of the label and time embeddings (a label embedding far smaller than the time embedding barely modulates).

    python scripts/probe_shapes_conditioning.py --vae runs/shapes/vae.safetensors \
        --stats runs/shapes/vae-latents-stats.pt --steps 500 --set lr=1e-3 --set sit='{"name": "SiT-M/2"}'

Prints one JSON line (settings, seconds, class accuracy per CFG scale, embedding norms) and appends it to
--log when given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import genbench  # noqa: F401  (torchvision shim)
from genbench.backbones import build_extractor
from genbench.models.official import load_official_vae
from genbench.pixels import to_uint8
from genbench.sampling.generate import SampleSettings, sample_batch
from genbench.training.data import ImageDataset
from genbench.training.recipes import TrainConfig, Trainer
from genbench.training.tokenizer_pretraining import latents_stats


@torch.no_grad()
def sample_class_accuracy(sit: torch.nn.Module, vae: torch.nn.Module, classifier: torch.nn.Module, num: int,
                          cfg_scale: float, steps: int = 25, seed: int = 0) -> float:
    """Top-1 agreement of the classifier with the asked (balanced) labels on `num` ODE samples."""
    sit.eval()
    labels = torch.arange(num) % sit.num_classes
    size = sit.grid_size * sit.patch_size
    settings = SampleSettings(num_samples=num, latent_shape=(sit.in_channels, size, size),
                              num_classes=sit.num_classes, sampler="ode", num_steps=steps,
                              cfg_scale=cfg_scale, seed=seed)
    x0 = sample_batch(sit, settings, list(range(num)), labels, "cpu")
    images = torch.from_numpy(to_uint8(vae.decode(sit.latent_norm.denormalize(x0)))).permute(0, 3, 1, 2)
    return (classifier(images).argmax(1) == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", type=Path, required=True)
    parser.add_argument("--vae-config", default='{"preset": "tiny-f4d4"}', help="JSON of TrainConfig.vae")
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/shapes_train.npz"))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--num", type=int, default=200)
    parser.add_argument("--cfg", default="1,4")
    parser.add_argument("--set", action="append", default=[], help="TrainConfig KEY=JSON_VALUE")
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    dataset = ImageDataset(args.data, 32)
    if not args.stats.exists():  # the latent BatchNorm's starting statistics, as train_shapes_models.py
        vae = load_official_vae(args.vae, **json.loads(args.vae_config))
        torch.save(latents_stats(vae, dataset), args.stats)
    values = {"recipe": "sit", "sit": {"name": "SiT-M/2"}, "vae": json.loads(args.vae_config),
              "vae_weights": str(args.vae), "latents_stats": str(args.stats), "latent_norm": "batchnorm",
              "encoder": None, "resolution": 32, "num_classes": None, "batch_size": 64, "steps": args.steps,
              "lr": 2e-4, "lpips": False, "ema_decay": 0.99, "cache_latents": True, "log_every": 10**9,
              "checkpoint_every": 10**9} | overrides
    config = TrainConfig.from_dict(values, "probe")
    trainer = Trainer(config, dataset)
    started = time.time()
    losses = []
    while trainer.step < args.steps:
        losses.append(trainer.train_step()["loss"])
    seconds = time.time() - started
    classifier = build_extractor("shapes").net
    ema = trainer.ema
    accuracy = {f"cfg{c}": sample_class_accuracy(ema, trainer.vae, classifier, args.num, float(c))
                for c in args.cfg.split(",")}
    label_norm = ema.y_embedder.embedding_table.weight[:-1].norm(dim=1).mean().item()
    time_norm = ema.t_embedder(torch.rand(256)).norm(dim=1).mean().item()
    record = {"settings": overrides, "steps": args.steps, "train_s": round(seconds),
              "final_loss": sum(losses[-50:]) / len(losses[-50:]), **accuracy,
              "label_norm": round(label_norm, 3), "time_norm": round(time_norm, 3)}
    print(json.dumps(record), flush=True)
    if args.log is not None:
        with open(args.log, "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
