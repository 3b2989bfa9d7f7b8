"""Train the `shapes` world's feature network (genbench.extractors.shapes_features.ShapesNet) on a CPU and
save it as safetensors. Deterministic given --seed (and the torch thread count): data come from the world's
seeded streams, the model and batch order from torch's seeded generator.

    python scripts/train_shapes_features.py --out genbench/worlds/weights/shapes_features.safetensors

Prints parameter count, held-out accuracy on a fresh stream, file size and SHA-256 (record the SHA-256 in
genbench/extractors/shapes_features.py: WEIGHTS_SHA256 when shipping new weights).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from genbench.extractors.shapes_features import ShapesNet
from genbench.io import atomic_write, sha256_file
from genbench.worlds import ShapesWorld

TRAIN_STREAM, HELDOUT_STREAM = 1000, 2000  # world seeds = stream + --seed; disjoint from other users' seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--eval-images", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    # another width gives a second, independent network of the world (the tokenizer's perceptual term)
    parser.add_argument("--widths", default="24,48,96,192", help="channels of the four stages")
    return parser.parse_args(argv)


def random_labels(n: int, seed: int, num_classes: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, num_classes, size=n)


def accuracy(net: ShapesNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
                      for i in range(0, len(images), batch_size))
    return correct / len(images)


def train(args: argparse.Namespace) -> tuple[ShapesNet, float]:
    """Train on a fixed pool of world images with random horizontal flips. Returns the net and its
    accuracy on a held-out stream."""
    torch.manual_seed(args.seed)
    world = ShapesWorld(32)
    train_seed = TRAIN_STREAM + args.seed
    images, labels, _ = world.sample(args.train_images, train_seed,
                                     random_labels(args.train_images, train_seed, world.num_classes))
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    widths = tuple(int(w) for w in args.widths.split(","))
    net = ShapesNet(num_classes=world.num_classes, widths=widths)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    cosine = lambda step: 0.5 * (1 + math.cos(math.pi * step / args.steps))  # noqa: E731
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    generator = torch.Generator().manual_seed(args.seed)
    net.train()
    for step in range(args.steps):
        index = torch.randint(len(images), (args.batch_size,), generator=generator)
        batch = images[index]
        flip = torch.rand(args.batch_size, generator=generator) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
        loss = F.cross_entropy(net(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}", flush=True)
    heldout_seed = HELDOUT_STREAM + args.seed
    eval_labels = random_labels(args.eval_images, heldout_seed, world.num_classes)
    eval_images, eval_labels, _ = world.sample(args.eval_images, heldout_seed, eval_labels)
    return net.eval(), accuracy(net, torch.from_numpy(eval_images), torch.from_numpy(eval_labels))


def save(net: ShapesNet, path: Path, heldout_accuracy: float, args: argparse.Namespace) -> str:
    config = {"num_classes": net.head.out_features,
              "widths": [net.stem[0].out_channels, net.stage1[0][0].out_channels,
                         net.stage2[0][0].out_channels, net.stage3[0].out_channels]}
    train_args = {k: str(v) for k, v in vars(args).items() if k != "out"}
    record = {"config": config, "heldout_accuracy": round(heldout_accuracy, 4), "train": train_args}
    # one metadata key: safetensors writes several keys in hash order, which would change the file's bytes
    metadata = {"genbench": json.dumps(record, sort_keys=True)}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return sha256_file(path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    net, heldout_accuracy = train(args)
    sha256 = save(net, args.out, heldout_accuracy, args)
    params = sum(p.numel() for p in net.parameters())
    print(f"parameters {params}  held-out accuracy {heldout_accuracy:.4f} ({args.eval_images} images)")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)  sha256 {sha256}")


if __name__ == "__main__":
    main()
