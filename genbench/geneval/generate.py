"""GenEval images into GenEval's layout, `images_per_prompt` per prompt, so `genbench geneval score` closes
the loop offline. Two kinds of image source:

- prompt-driven (the world's composed scenes, a text-to-image model): every prompt of every task is
  sampled; each image's condition is the prompt record itself (`plan_every_prompt`);
- class-conditional: a prompt maps to a class when it asks for exactly one object of one of the world's
  kinds, with a colour of the world or none (single_object, colors); prompts the class label cannot
  express (two objects, counts above one, relations) are listed in `skipped.jsonl` with the reason, never
  sampled with a wrong label. A colour-free prompt takes a colour drawn from (seed, prompt index), the
  same on every run (`plan_prompts`).

Layout (GenEval's): OUT/<NNNNN>/metadata.jsonl + OUT/<NNNNN>/samples/<NNNN>.png, folders numbered over the
sampled prompts in suite order. Image j of prompt folder p is sample index p * images_per_prompt + j, so
it depends on (seed, index) only; a folder whose PNGs all exist is skipped on resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genbench.errors import GenbenchError
from genbench.io import atomic_write, write_text_atomic

Condition = int | dict  # a class label, or the prompt record itself
# sample indices [n], conditions [n] -> uint8 images [n, H, W, 3]
ImageSampler = Callable[[list[int], list[Condition]], np.ndarray]
SKIPPED = "skipped.jsonl"


@dataclass(frozen=True)
class PromptPlan:
    """The condition of each image of each sampled prompt, and the prompts left out with why."""

    sampled: list[tuple[dict, list[Condition]]]  # (prompt record, condition of each image)
    skipped: list[tuple[dict, str]]  # (prompt record, reason)


def _unexpressible(record: dict, kinds: Sequence[str], colors: Sequence[str]) -> str | None:
    """Why a class label cannot express `record`, or None when it can."""
    include = record["include"]
    if len(include) != 1 or record.get("exclude"):
        return f"{record['tag']}: asks for {len(include)} object groups; a class label draws one kind"
    clause = include[0]
    if clause["count"] != 1:
        return f"asks for {clause['count']} objects; the class label does not set the count"
    if clause["class"] not in kinds:
        return f"class {clause['class']!r} is not one of the world's kinds ({', '.join(kinds)})"
    if clause.get("color") is not None and clause["color"] not in colors:
        return f"colour {clause['color']!r} is not one of the world's colours ({', '.join(colors)})"
    return None


def plan_prompts(records: list[dict], class_names: Sequence[str], images_per_prompt: int,
                 seed: int) -> PromptPlan:
    """Labels for each prompt; `class_names` are "<colour> <kind>" (the shapes world's CLASS_NAMES)."""
    pairs = [name.split(" ", 1) for name in class_names]
    colors = list(dict.fromkeys(color for color, _ in pairs))
    kinds = list(dict.fromkeys(kind for _, kind in pairs))
    label_of = {(color, kind): index for index, (color, kind) in enumerate(pairs)}
    sampled, skipped = [], []
    for prompt_index, record in enumerate(records):
        reason = _unexpressible(record, kinds, colors)
        if reason is not None:
            skipped.append((record, reason))
            continue
        clause = record["include"][0]
        rng = np.random.default_rng([seed, prompt_index])
        picks = [clause.get("color") or colors[int(rng.integers(len(colors)))]
                 for _ in range(images_per_prompt)]
        sampled.append((record, [label_of[(color, clause["class"])] for color in picks]))
    return PromptPlan(sampled, skipped)


def plan_every_prompt(records: list[dict], images_per_prompt: int) -> PromptPlan:
    """Every prompt, each image conditioned on the prompt record (prompt-driven image sources)."""
    return PromptPlan([(record, [record] * images_per_prompt) for record in records], [])


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_write(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def generate_geneval_images(sample_images: ImageSampler, plan: PromptPlan, out: str | Path,
                            batch_size: int = 64, advance: Callable[[int], None] | None = None) -> int:
    """Sample every planned image that is not on disk yet into GenEval's layout; returns images written."""
    if batch_size < 1:
        raise GenbenchError(f"--batch-size {batch_size}: must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_prompt = len(plan.sampled[0][1]) if plan.sampled else 0
    todo: list[tuple[Path, int, Condition]] = []  # (png path, sample index, condition)
    for folder_index, (record, conditions) in enumerate(plan.sampled):
        folder = out / f"{folder_index:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "metadata.jsonl", json.dumps(record) + "\n")
        for j, condition in enumerate(conditions):
            path = folder / "samples" / f"{j:04d}.png"
            if not path.exists():
                todo.append((path, folder_index * per_prompt + j, condition))
            elif advance is not None:
                advance(1)
    write_text_atomic(out / SKIPPED, "".join(json.dumps({"reason": reason, **record}) + "\n"
                                       for record, reason in plan.skipped))
    for start in range(0, len(todo), batch_size):
        batch = todo[start: start + batch_size]
        images = sample_images([index for _, index, _ in batch], [condition for *_, condition in batch])
        for (path, _, _), image in zip(batch, images, strict=True):
            _write_png(path, image)
        if advance is not None:
            advance(len(batch))
    return len(todo)


# --- image samplers -------------------------------------------------------------------------------------

def model_sampler(sit: torch.nn.Module, vae: torch.nn.Module, settings, device: str) -> ImageSampler:
    """A SiT + VAE through genbench's sampler: image i is a function of (settings.seed, i) and its label."""
    from genbench.pixels import to_uint8
    from genbench.sampling.generate import sample_batch, vae_decoder

    decode = vae_decoder(sit, vae)

    def sample_images(indices: list[int], labels: list[Condition]) -> np.ndarray:
        return to_uint8(decode(sample_batch(sit, settings, indices, torch.tensor(labels), device)))
    return sample_images


def world_sampler(world, seed: int) -> ImageSampler:
    """The world's own images of each label: the ceiling a perfect model would reach under the checks."""
    def sample_images(indices: list[int], labels: list[Condition]) -> np.ndarray:
        pairs = zip(indices, labels, strict=True)
        images = [world.sample_one(seed, index, int(label))[0] for index, label in pairs]
        return np.stack(images).transpose(0, 2, 3, 1)
    return sample_images


def world_scene_sampler(world, seed: int) -> ImageSampler:
    """The world's composed scene of each prompt (`prompt_scene`), image i drawn from (seed, i): every
    clause of the prompt holds by construction, so its score is the ceiling of the checks."""
    from genbench.geneval.shapes_world import scene_for_prompt

    def sample_images(indices: list[int], records: list[Condition]) -> np.ndarray:
        pairs = zip(indices, records, strict=True)
        return np.stack([scene_for_prompt(record, world, seed=[seed, index]) for index, record in pairs])
    return sample_images
