"""A miniature text-to-image model of the shapes world, closing GenEval's loop offline.

- `grammar_prompts()`: every prompt of the shapes suite's grammar (GenEval's six templates over the
  world's 4 kinds, 5 colours and counts 2-4), as GenEval records.
- `held_out(record)`: combinations never captioned in training (compositional generalisation): the
  colour-kind bindings HELD_OUT_BINDINGS in `colors` / `color_attr` prompts, and the (object, relation)
  pairs HELD_OUT_RELATIONS in `position` prompts. Every word and every kind, colour and relation on its own
  is still seen.
- `write_caption_set()`: world scenes of training prompts (`prompt_scene`) labelled by the prompt's index
  in `grammar_prompts()`, as an ADM .npz (arr_0 images, arr_1 caption indices) that
  `genbench train --preset t2i-shapes` reads; the TextSiT's caption set "shapes" (`grammar_caption_ids`)
  turns an index into its tokens.
- `text_model_sampler()`: samples a TextSiT checkpoint for prompt records (CFG against the null caption).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genbench.errors import GenbenchError
from genbench.geneval.generate import Condition, ImageSampler
from genbench.geneval.prompts import NUMBERS, RELATIONS, plural, with_article
from genbench.geneval.shapes_world import SUITE_RESOLUTION, prompt_scene
from genbench.io import atomic_write
from genbench.models.text import CaptionTokenizer
from genbench.weights import verify_sha256
from genbench.worlds.shapes import COLORS, KINDS, ShapesWorld

HELD_OUT_BINDINGS = {("red", "triangle"), ("blue", "square"), ("green", "cross"), ("yellow", "circle")}
HELD_OUT_RELATIONS = {("square", "left of"), ("circle", "below")}
T2I_CHECKPOINT = Path(__file__).resolve().parent.parent / "worlds" / "weights" / "demo-t2i.pt"
# the checkpoint scripts/train_geneval_t2i.sh wrote (1,250 steps)
T2I_SHA256 = "582f23ca216704b9b15173cd396d0f92450f1beefe2bb6d9bde226819e627c9e"


def shapes_tokenizer() -> CaptionTokenizer:
    """The vocabulary of GenEval's templates over the shapes world's kinds, colours and counts."""
    words = ["a", "an", "photo", "of", "and", "left", "right", "above", "below", *NUMBERS[2:5], *COLORS,
             *KINDS, *(plural(k) for k in KINDS)]
    return CaptionTokenizer(words, max_tokens=12)


def grammar_prompts() -> list[dict]:
    """Every distinct prompt of the shapes grammar, task by task (4 + 12 + 12 + 20 + 48 + 240 = 336)."""
    kinds, colors = KINDS, list(COLORS)
    records = [{"tag": "single_object", "include": [{"class": k, "count": 1}],
                "prompt": f"a photo of {with_article(k)}"} for k in kinds]
    records += [{"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
                 "prompt": f"a photo of {with_article(a)} and {with_article(b)}"}
                for a in kinds for b in kinds if a != b]
    records += [{"tag": "counting", "include": [{"class": k, "count": n}],
                 "exclude": [{"class": k, "count": n + 1}], "prompt": f"a photo of {NUMBERS[n]} {plural(k)}"}
                for k in kinds for n in (2, 3, 4)]
    records += [{"tag": "colors", "include": [{"class": k, "count": 1, "color": c}],
                 "prompt": f"a photo of {with_article(c)} {k}"} for k in kinds for c in colors]
    records += [{"tag": "position", "include": [{"class": b, "count": 1},
                                                {"class": a, "count": 1, "position": [r, 0]}],
                 "prompt": f"a photo of {with_article(a)} {r} {with_article(b)}"}
                for a in kinds for b in kinds if a != b for r in RELATIONS]
    records += [{"tag": "color_attr", "include": [{"class": a, "count": 1, "color": ca},
                                                  {"class": b, "count": 1, "color": cb}],
                 "prompt": f"a photo of {with_article(ca)} {a} and {with_article(cb)} {b}"}
                for a in kinds for b in kinds if a != b for ca in colors for cb in colors if ca != cb]
    return records


def grammar_caption_ids() -> tuple[torch.Tensor, int]:
    """Token ids [336, 12] of every grammar prompt (row i = grammar_prompts()[i]) and the vocabulary size:
    the caption set "shapes" of genbench.models.text.TextSiT."""
    tokenizer = shapes_tokenizer()
    return tokenizer([r["prompt"] for r in grammar_prompts()]), tokenizer.vocab_size


def caption_index(record: dict) -> int:
    """The index of `record`'s prompt among grammar_prompts()."""
    index = _GRAMMAR_INDEX.get(record["prompt"])
    if index is None:
        raise GenbenchError(f"prompt {record['prompt']!r}: not in the shapes grammar the text-to-image model "
                            "reads (GenEval's templates over circle/square/triangle/cross, 5 colours, 2-4)")
    return index


def held_out(record: dict) -> bool:
    """Whether `record` combines a held-out colour-kind binding or (object, relation) pair."""
    for clause in record["include"]:
        if (clause.get("color"), clause["class"]) in HELD_OUT_BINDINGS:
            return True
        if "position" in clause and (clause["class"], clause["position"][0]) in HELD_OUT_RELATIONS:
            return True
    return False


_GRAMMAR_INDEX = {r["prompt"]: i for i, r in enumerate(grammar_prompts())}


def training_prompts() -> list[dict]:
    return [r for r in grammar_prompts() if not held_out(r)]


def write_caption_set(path: str | Path, n: int, seed: int, resolution: int = SUITE_RESOLUTION,
                      prompts: list[dict] | None = None) -> Path:
    """`n` captioned scenes as an ADM .npz: arr_0 uint8 [n, R, R, 3], arr_1 int64 caption indices [n]
    (grammar_prompts order). Image i draws a task, then a prompt of that task (default: the training
    prompts), then its scene, all from (seed, i)."""
    prompts = training_prompts() if prompts is None else prompts
    by_task: dict[str, list[dict]] = {}
    for record in prompts:
        by_task.setdefault(record["tag"], []).append(record)
    tasks = list(by_task)
    world = ShapesWorld(resolution)
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        choices = by_task[tasks[int(rng.integers(len(tasks)))]]
        record = choices[int(rng.integers(len(choices)))]
        images[i] = prompt_scene(record, world, seed=[seed, i, 1])[0]
        labels[i] = caption_index(record)
    path = Path(path)
    with atomic_write(path, suffix=".npz") as tmp:
        np.savez(tmp, arr_0=images, arr_1=labels)
    return path


def resolve_t2i_model(model: str) -> Path:
    """`demo-t2i` -> the shipped checkpoint after its SHA-256 check; anything else is a checkpoint path."""
    if model != "demo-t2i":
        return Path(model)
    if not T2I_CHECKPOINT.is_file() or not T2I_SHA256:
        raise GenbenchError(f"{T2I_CHECKPOINT}: text-to-image demo checkpoint missing; rebuild it with "
                            "bash scripts/train_geneval_t2i.sh")
    verify_sha256(T2I_CHECKPOINT, T2I_SHA256)
    return T2I_CHECKPOINT


def text_model_sampler(sit: torch.nn.Module, vae: torch.nn.Module, settings, device: str) -> ImageSampler:
    """A TextSiT + its (pixel-space) decoder through genbench's sampler: image i is a function of
    (settings.seed, i) and its prompt; CFG mixes against the null caption (index `num_classes`)."""
    from genbench.pixels import to_uint8
    from genbench.sampling.generate import sample_batch, vae_decoder

    decode = vae_decoder(sit, vae)

    def sample_images(indices: list[int], records: list[Condition]) -> np.ndarray:
        captions = torch.tensor([caption_index(record) for record in records])
        return to_uint8(decode(sample_batch(sit, settings, indices, captions, device)))
    return sample_images
