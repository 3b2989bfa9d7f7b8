"""Train the `shapes` world's demo models: a tiny VAE, then SiT, REPA and REPA-E at equal steps.

    python scripts/train_shapes_models.py --out runs/shapes [--steps 1000] [--vae-steps 2000] \
        [--ema-decay 0.99]

Stages (all on CPU, deterministic for a seed on one machine and torch build):
1. training images: ShapesWorld(32).export_npz(n=--train-images, seed=1) (the reference set uses seed 0);
2. tokenizer: `pretrain_vae` (L1 + KL) on them, plus its latents stats (per-channel mean / std);
3. the three recipes with genbench's Trainer, same SiT-M/2, batch, steps, seed and latent BatchNorm
   initialised from those stats: `sit` and `repa` keep the VAE frozen, `repae` tunes it end to end;
   REPA targets are the `shapes` feature network's tokens (grid 4 = the SiT's 16 tokens);
4. slim checkpoints `demo-<recipe>.pt` ({ema, vae, config, step}) that `genbench sample/eval --model`
   read, written next to the full training runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

import genbench  # noqa: F401  (torchvision shim)
from genbench.models.vae import build_vae
from genbench.training.data import ImageDataset
from genbench.training.recipes import RECIPES, TrainConfig, Trainer, train
from genbench.training.tokenizer import latents_stats, pretrain_vae
from genbench.worlds import ShapesWorld

VAE_PRESET = "tiny-f4d4"


def recipe_config(recipe: str, out: Path, args: argparse.Namespace) -> TrainConfig:
    return TrainConfig.from_dict({
        "recipe": recipe, "sit": {"name": "SiT-M/2"}, "vae": {"preset": VAE_PRESET},
        "vae_weights": str(out / "vae.safetensors"), "latents_stats": str(out / "vae-latents-stats.pt"),
        "latent_norm": "batchnorm", "encoder": None if recipe == "sit" else {"name": "shapes", "grid": 4},
        "resolution": 32, "num_classes": None, "batch_size": args.batch_size, "steps": args.steps,
        "lr": args.lr, "lpips": False, "disc_ndf": 8, "disc_layers": 2, "ema_decay": args.ema_decay,
        "seed": args.seed, "log_every": 100, "checkpoint_every": args.checkpoint_every,
    }, f"shapes {recipe}")


def export_slim(run_dir: Path, path: Path) -> None:
    """The EMA SiT, the VAE and the config of the last checkpoint: all that sampling needs."""
    from genbench.models.official import read_state_file
    from genbench.training.recipes import latest_checkpoint

    state = read_state_file(latest_checkpoint(run_dir))
    slim = {key: state[key] for key in ("ema", "vae", "config", "step")}
    tmp = path.with_suffix(".tmp")
    torch.save(slim, tmp)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--vae-steps", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    # REPA's 0.9999 is for 400K steps; at 1,000 steps 0.999 would still hold 0.999^1000 = 37% of the random
    # initialisation in the EMA. 0.99 (half-life ~70 steps) averages only the end of a short run.
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    data = out / "train.npz"
    if not data.exists():
        ShapesWorld(32).export_npz(data, n=args.train_images, seed=1)
    dataset = ImageDataset(data, 32)

    if not (out / "vae.safetensors").exists():
        def log_vae(step: int, values: dict[str, float]) -> None:
            if step % 250 == 0:
                print(f"vae step {step}: l1 {values['l1']:.4f}", flush=True)

        vae = pretrain_vae(build_vae(VAE_PRESET), dataset, args.vae_steps, args.batch_size, seed=args.seed,
                           log=log_vae)
        torch.save(latents_stats(vae, dataset), out / "vae-latents-stats.pt")
        save_file(vae.state_dict(), str(out / "vae.safetensors"))
    print(f"vae ready ({time.time() - started:.0f} s)", flush=True)

    for recipe in args.recipes.split(","):
        run_dir = out / recipe
        trainer = Trainer(recipe_config(recipe, out, args), dataset)

        def log(step: int, values: dict[str, float], recipe: str = recipe) -> None:
            print(f"{recipe} step {step}: loss {values['loss']:.4f}", flush=True)

        train(trainer, args.steps, run_dir, log)
        export_slim(run_dir, out / f"demo-{recipe}.pt")
        print(f"{recipe} done ({time.time() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
