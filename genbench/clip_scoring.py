"""CLIP score of prompt-image pairs (`genbench clip-score`): the pairs come from GenEval's layout (as
`genbench geneval generate` writes it) or a jsonl file, the embeddings from a CLIP extractor
(`genbench.extractors.clip.ClipFeatures`: images and `encode_text`), the scores from
`metrics.clip_score` (100 * max(cos, 0)). The summary is the mean over all pairs (torchmetrics' CLIPScore)
and the mean per prompt."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genbench.errors import GenbenchError
from genbench.geneval.score import iter_images
from genbench.metrics.clip_score import clip_score_per_pair
from genbench.sources import decode_rgb, read_jsonl


@dataclass(frozen=True)
class Pair:
    image: Path
    prompt: str


def geneval_pairs(images_dir: str | Path) -> list[Pair]:
    """Every <NNNNN>/samples/<digits>.png with the prompt of its <NNNNN>/metadata.jsonl."""
    pairs = [Pair(path, record["prompt"]) for path, record in iter_images(images_dir)]
    if not pairs:
        raise GenbenchError(f"{images_dir}: no <NNNNN>/samples/<digits>.png images found")
    return pairs


def pairs_file(path: str | Path) -> list[Pair]:
    """A jsonl of {"image": path, "prompt": text} per line (blank lines skipped); relative image paths are
    relative to the file's folder."""
    path = Path(path)
    pairs = []
    for number, record in read_jsonl(path, "pairs"):
        if not (isinstance(record, dict) and isinstance(record.get("image"), str)
                and isinstance(record.get("prompt"), str)):
            raise GenbenchError(f"{path}:{number}: write {{\"image\": PATH, \"prompt\": TEXT}}")
        pairs.append(Pair(path.parent / record["image"], record["prompt"]))
    if not pairs:
        raise GenbenchError(f"{path}: holds no pairs; one {{\"image\": PATH, \"prompt\": TEXT}} per line")
    return pairs


def image_batches(pairs: list[Pair], batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 [B, 3, H, W] batches in pair order; a change of image size starts a new batch."""
    batch: list[np.ndarray] = []
    for pair in pairs:
        if not pair.image.is_file():
            raise GenbenchError(f"{pair.image}: no such image (prompt {pair.prompt!r})")
        image = decode_rgb(pair.image)
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
            batch = []
        batch.append(image)
    if batch:
        yield torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)


def score_pairs(pairs: list[Pair], clip: torch.nn.Module, batch_size: int = 32, device: str = "cpu",
                progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """float64 [N] CLIP scores of the pairs; each distinct prompt is encoded once."""
    prompts = list(dict.fromkeys(pair.prompt for pair in pairs))
    clip = clip.to(device)
    texts = torch.cat([clip.encode_text(prompts[i : i + batch_size]) for i in range(0, len(prompts),
                                                                                   batch_size)])
    row = {prompt: i for i, prompt in enumerate(prompts)}
    text_rows = texts[torch.tensor([row[pair.prompt] for pair in pairs], device=texts.device)]
    images = []
    for batch in image_batches(pairs, batch_size):
        images.append(clip(batch.to(device))["pool"])
        if progress is not None:
            progress(len(batch))
    return clip_score_per_pair(torch.cat(images), text_rows).cpu()


def per_prompt(pairs: list[Pair], scores: torch.Tensor) -> list[dict]:
    """[{"prompt", "images", "clip_score"}] in order of first appearance; clip_score is the prompt's mean."""
    grouped: dict[str, list[float]] = {}
    for pair, score in zip(pairs, scores.tolist(), strict=True):
        grouped.setdefault(pair.prompt, []).append(score)
    return [{"prompt": prompt, "images": len(values), "clip_score": float(np.mean(values))}
            for prompt, values in grouped.items()]
