"""Cross-attention or joint attention for the shapes text-to-image model: train each for the same steps on
the same captions with genbench's trainer (preset t2i-shapes, `text_attention` the only difference), then
report seconds per step and the validation denoising loss with the true caption and with the null caption
(fixed t and noise on held-out scenes of training prompts). The caption gain, loss(null) - loss(caption),
is how much the model already uses the text.

    python scripts/t2i_attention_choice.py --data runs/t2i/captions.npz --steps 300 --out runs/t2i/choice.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from genbench.geneval.t2i import write_caption_set
from genbench.pixels import to_signed_range
from genbench.training.data import ImageDataset
from genbench.training.recipes import PRESETS, TrainConfig, Trainer


@torch.no_grad()
def validation_losses(trainer: Trainer, images: torch.Tensor, captions: torch.Tensor) -> dict[str, float]:
    """Denoising loss of the raw (non-EMA) model with the captions and with the null caption."""
    sit = trainer.sit.eval()
    z = trainer.vae.encode(to_signed_range(images)).mean
    generator = torch.Generator().manual_seed(0)
    t = torch.rand(len(z), generator=generator)
    eps = torch.randn(z.shape, generator=generator)
    x_t = (1 - t.view(-1, 1, 1, 1)) * z + t.view(-1, 1, 1, 1) * eps
    target = eps - z
    losses = {}
    for name, y in (("caption", captions), ("null", torch.full_like(captions, sit.num_classes))):
        losses[name] = float(((sit(x_t, t, y) - target) ** 2).mean())
    sit.train()
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--validation", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    validation = write_caption_set(args.out.with_suffix(".validation.npz"), args.validation, seed=2)
    with np.load(validation) as arrays:
        images = torch.from_numpy(arrays["arr_0"]).permute(0, 3, 1, 2)
        captions = torch.from_numpy(arrays["arr_1"])
    dataset = ImageDataset(args.data, 64)
    report = {}
    for attention in ("cross", "joint"):
        values = {**PRESETS["t2i-shapes"], "sit": {"name": "TextSiT-M/2", "text_attention": attention},
                  "cache_latents": False}
        trainer = Trainer(TrainConfig.from_dict(values), dataset)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        seconds = (time.perf_counter() - start) / args.steps
        losses = validation_losses(trainer, images, captions)
        parameters = sum(p.numel() for p in trainer.sit.parameters())
        report[attention] = {"seconds_per_step": seconds, "parameters": parameters, **losses,
                             "caption_gain": losses["null"] - losses["caption"]}
        print(attention, json.dumps(report[attention]), flush=True)
    summary = {"steps": args.steps, "validation_images": args.validation, **report}
    args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
