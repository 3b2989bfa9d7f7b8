"""A tiny CLIP of the shapes world for `genbench clip-score --weights FOLDER`, built offline (no CLIP weights
exist here): open_clip's own CLIP class with a 64 px ViT (patch 8, 2 layers of width 64) and a text
transformer (2 layers of width 64, context 16) over open_clip's BPE tokenizer, trained from scratch with
CLIP's symmetric contrastive loss on world scenes of every prompt of the shapes grammar (held-out
combinations included: it is an evaluator, not the evaluated model). Several images of a batch can share
a caption, so the targets spread evenly over every matching pair. Written as open_clip's local-dir
layout (open_clip_config.json + open_clip_model.safetensors). It prints caption retrieval accuracy (image ->
the right one of the 336 captions) on scenes of another seed.

    python scripts/train_shapes_clip.py --out runs/shapes-clip      # about 3 minutes on one thread
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import genbench  # noqa: F401  (torchvision compatibility before open_clip)
from genbench.geneval.t2i import grammar_prompts, write_caption_set

MODEL_CFG = {"embed_dim": 64,
             "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
PREPROCESS_CFG = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                     captions: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy with every pair of equal captions a positive."""
    logits = logit_scale.exp() * image @ text.T
    same = (captions[:, None] == captions[None]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import open_clip
    from safetensors.torch import save_file

    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    prompts = [r["prompt"] for r in grammar_prompts()]
    data = {}
    for name, seed, n in (("train", 5, args.images), ("test", 6, 672)):
        path = write_caption_set(args.out / f"{name}.npz", n, seed, prompts=grammar_prompts())
        with np.load(path) as arrays:
            data[name] = (torch.from_numpy(arrays["arr_0"]).permute(0, 3, 1, 2).float() / 127.5 - 1,
                          torch.from_numpy(arrays["arr_1"]))
        path.unlink()
    model = open_clip.CLIP(**MODEL_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=MODEL_CFG["text_cfg"]["context_length"])
    tokens = tokenizer(prompts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=args.steps, pct_start=0.1)
    images, captions = data["train"]
    generator = torch.Generator().manual_seed(args.seed)
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        image = model.encode_image(images[index], normalize=True)
        text = model.encode_text(tokens[captions[index]], normalize=True)
        loss = contrastive_loss(image, text, model.logit_scale, captions[index])
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    model.eval()
    with torch.no_grad():
        test_images, test_captions = data["test"]
        texts = model.encode_text(tokens, normalize=True)
        similarity = model.encode_image(test_images, normalize=True) @ texts.T
        accuracy = float((similarity.argmax(dim=1) == test_captions).float().mean())
    args.out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}
    (args.out / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, args.out / "open_clip_model.safetensors")
    print(f"caption retrieval top-1 over {len(prompts)} captions: {accuracy:.3f} on {len(test_captions)} "
          f"test scenes (chance {1 / len(prompts):.3f}); {time.perf_counter() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
