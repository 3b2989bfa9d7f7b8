"""Which tokenizer keeps the shapes world's classes? Short pre-training runs of candidate VAEs, each measured
by the world classifier on reconstructions of held-out images (class, kind, colour), rFID (shapes
features, reconstructions vs originals), PSNR and SSIM; one CSV row per setting.

    python scripts/sweep_shapes_tokenizer.py --out runs/tokenizer_sweep.csv --name f4-ch16-z8-p1 \
        --ch 16 --z 8 --levels 3 --steps 600 --perceptual 1.0

Training images: ShapesWorld(32) seed 1 (as the demo models); held-out: seed 3. The perceptual term is the
second world network (genbench.worlds.perceptual), never the evaluation network.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from genbench.metrics.frechet import frechet_distance
from genbench.metrics.image_quality import ssim
from safetensors.torch import load_file, save_file

import genbench  # noqa: F401  (torchvision shim)
from genbench.backbones import build_extractor
from genbench.models.tokenizer_adapters import encode_mean
from genbench.models.vae import AutoencoderKL
from genbench.tokenizer_comparison import decode_uint8
from genbench.training.data import ImageDataset
from genbench.training.tokenizer_pretraining import pretrain_vae, reconstruction_fidelity
from genbench.worlds import ShapesWorld
from genbench.worlds.perceptual import load_shapes_perceptual


def tokenizer_config(args: argparse.Namespace) -> dict:
    """AutoencoderKL arguments: `levels` resolution levels (f = 2^(levels-1)), widths ch x (1, 2, 2, ...)."""
    return dict(ch=args.ch, ch_mult=(1,) + (2,) * (args.levels - 1), z_channels=args.z, resolution=32,
                num_res_blocks=args.res_blocks, attn_resolutions=(), groups=4)


def rfid_and_ssim(vae: AutoencoderKL, images: torch.Tensor, extractor: torch.nn.Module
                  ) -> tuple[float, float]:
    recon = torch.from_numpy(decode_uint8(vae, encode_mean(vae, images))).permute(0, 3, 1, 2)
    real, fake = extractor(images)["pool"].double().numpy(), extractor(recon)["pool"].double().numpy()
    fid = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    return fid, ssim(images, recon)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="CSV; a row is appended")
    parser.add_argument("--name", required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/shapes_train.npz"))
    parser.add_argument("--ch", type=int, default=8)
    parser.add_argument("--z", type=int, default=4)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--res-blocks", type=int, default=1)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--mse", type=float, default=0.0)
    parser.add_argument("--perceptual", type=float, default=0.0)
    parser.add_argument("--perceptual-weights", type=Path, default=None)
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--init", type=Path, default=None, help="start from this VAE state (safetensors)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="measure this genbench checkpoint's VAE instead of training one")
    parser.add_argument("--save", type=Path, default=None,
                        help="write the VAE state (safetensors) before measuring; if it exists, measure it")
    args = parser.parse_args()

    if not args.data.exists():
        args.data.parent.mkdir(parents=True, exist_ok=True)
        ShapesWorld(32).export_npz(args.data, n=20_000, seed=1)
    dataset = ImageDataset(args.data, 32)
    images, labels, _ = ShapesWorld(32).sample(args.heldout, seed=3)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    extractor = build_extractor("shapes")

    vae = AutoencoderKL(**tokenizer_config(args))
    started = time.time()
    if args.checkpoint is not None:  # measure the VAE of a genbench checkpoint (e.g. an older demo)
        from genbench.models.checkpoints import load_model_checkpoint

        vae = load_model_checkpoint(args.checkpoint).vae
    elif args.save is not None and args.save.exists():  # evaluate a VAE this script trained before
        vae.load_state_dict(load_file(str(args.save)))
    else:
        if args.init is not None:  # continue the training of an earlier run (a fresh optimiser)
            vae.load_state_dict(load_file(str(args.init)))
        perceptual = load_shapes_perceptual(args.perceptual_weights) if args.perceptual else None
        pretrain_vae(vae, dataset, args.steps, args.batch_size, lr=args.lr, seed=0, mse_weight=args.mse,
                     perceptual=perceptual, perceptual_weight=args.perceptual)
        if args.save is not None:
            save_file(vae.state_dict(), str(args.save))
    seconds = time.time() - started
    fidelity = reconstruction_fidelity(vae, images, labels, extractor.net)
    rfid, ssim_value = rfid_and_ssim(vae, images, extractor)
    row = {"name": args.name, "f": 2 ** (args.levels - 1), "ch": args.ch, "z": args.z,
           "res_blocks": args.res_blocks, "steps": args.steps, "mse": args.mse, "perceptual": args.perceptual,
           "params": sum(p.numel() for p in vae.parameters()), "train_s": round(seconds),
           **{k: round(v, 4) for k, v in fidelity.items()}, "rfid": round(rfid, 2),
           "ssim": round(ssim_value, 4)}
    print(row, flush=True)
    new = not args.out.exists()
    with open(args.out, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


if __name__ == "__main__":
    main()
