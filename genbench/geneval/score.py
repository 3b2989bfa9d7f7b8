"""Score an image set in GenEval's layout and summarise it as GenEval's summary_scores.py does.

Layout: IMAGES_DIR/<NNNNN>/metadata.jsonl (one prompt record) + IMAGES_DIR/<NNNNN>/samples/<digits>.png.
With a separate metadata file, folder <NNNNN> takes its line NNNNN (0-based, blank lines skipped) instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from genbench.errors import GenbenchError
from genbench.geneval.colors import ColorClassifier
from genbench.geneval.detectors import Detector
from genbench.geneval.prompts import TASKS, parse_record
from genbench.geneval.rules import DEFAULT_RULES, Rules, evaluate, filter_detections
from genbench.io import atomic_write
from genbench.sources import open_image, read_text

SAMPLE_NAME = re.compile(r"\d+\.png")


def iter_images(images_dir: str | Path, metadata: list[dict] | None = None) -> Iterator[tuple[Path, dict]]:
    """(image path, prompt record) for every sample, folders and files in sorted order."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise GenbenchError(f"{images_dir}: not a folder; give GenEval's <NNNNN>/samples/*.png layout")
    folders = [p for p in images_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    if not folders:
        raise GenbenchError(f"{images_dir}: no <NNNNN>/ prompt folders; "
                            "write them with `genbench geneval prompts`")
    for folder in sorted(folders, key=lambda p: int(p.name)):
        if metadata is not None:
            if int(folder.name) >= len(metadata):
                raise GenbenchError(f"{folder}: no prompt {int(folder.name)} in the metadata file "
                                    f"({len(metadata)} prompts); pass the matching --metadata")
            record = metadata[int(folder.name)]
        else:
            path = folder / "metadata.jsonl"
            if not path.is_file():
                raise GenbenchError(f"{path}: missing; write it with `genbench geneval prompts` "
                                    "or pass --metadata")
            record = parse_record(read_text(path, "prompt metadata").strip(), str(path))
        samples = folder / "samples"
        names = sorted(p.name for p in samples.iterdir()) if samples.is_dir() else []
        for name in names:
            if SAMPLE_NAME.fullmatch(name):
                yield samples / name, record


def details_of(objects) -> dict[str, list[list[float]]]:
    """GenEval's `details`: class -> [[x1, y1, x2, y2, score], ...] of the kept objects."""
    return {name: [[*map(float, d.box), float(d.score)] for d in found] for name, found in objects.items()}


def score_image(image: Image.Image, metadata: dict, detector: Detector, colors: ColorClassifier | None,
                rules: Rules = DEFAULT_RULES) -> tuple[bool, str, dict]:
    """(correct, reason, details) of one image."""
    objects = filter_detections(detector(image), metadata["tag"], rules)
    classify = None if colors is None else (lambda found, name: colors(image, found, name))
    correct, reason = evaluate(objects, metadata, classify, rules)
    return correct, reason, details_of(objects)


def score_folder(images_dir: str | Path, detector: Detector, colors: ColorClassifier | None,
                 rules: Rules = DEFAULT_RULES, metadata: list[dict] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 prompts: set[str] | None = None) -> list[dict]:
    """GenEval records (filename, tag, prompt, correct, reason, metadata, details) for every image, or for
    the images whose prompt text is in `prompts` (a subset such as held-out combinations)."""
    items = [(path, record) for path, record in iter_images(images_dir, metadata)
             if prompts is None or record["prompt"] in prompts]
    if not items:
        subset = "" if prompts is None else f" of the {len(prompts)} given prompts"
        raise GenbenchError(f"{images_dir}: no samples/<digits>.png images{subset} found")
    records = []
    for done, (path, record) in enumerate(items, 1):
        try:
            image = ImageOps.exif_transpose(open_image(path)).convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise GenbenchError(f"{path}: not a readable PNG ({error}); regenerate or delete it") from error
        correct, reason, details = score_image(image, record, detector, colors, rules)
        records.append({"filename": str(path), "tag": record["tag"], "prompt": record["prompt"],
                        "correct": correct, "reason": reason, "metadata": json.dumps(record),
                        "details": json.dumps(details)})
        if progress is not None:
            progress(done, len(items))
    return records


def write_results_jsonl(records: list[dict], path: str | Path) -> Path:
    """One JSON object per line, readable by pandas.read_json(lines=True) as GenEval's summary script does."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def summarize(records: list[dict]) -> dict:
    """GenEval's summary: per-task accuracy (tasks in first-seen order), overall = unweighted mean of the
    task scores, % correct images, % correct prompts (a prompt is correct if any of its images is)."""
    by_task: dict[str, list[bool]] = {}
    by_prompt: dict[str, bool] = {}
    for r in records:
        by_task.setdefault(r["tag"], []).append(bool(r["correct"]))
        by_prompt[r["metadata"]] = by_prompt.get(r["metadata"], False) or bool(r["correct"])
    tasks = {tag: {"score": sum(v) / len(v), "correct": sum(v), "images": len(v)}
             for tag, v in by_task.items()}
    return {
        "overall": sum(t["score"] for t in tasks.values()) / len(tasks),
        "tasks": tasks,
        "correct_images": sum(bool(r["correct"]) for r in records) / len(records),
        "correct_prompts": sum(by_prompt.values()) / len(by_prompt),
        "images": len(records),
        "prompts": len(by_prompt),
        "missing_tasks": [t for t in TASKS if t not in tasks],
    }


def prompt_bootstrap(records: list[dict], resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each task score and of the overall over resamples of the prompts: within
    each task its prompts are drawn with replacement (so every resample has every task), each drawn prompt
    bringing all its images; the overall of a resample is the mean of its task scores, as `summarize`.
    Keys: the task tags and "overall"."""
    if resamples < 2 or not 0 < confidence < 1:
        raise GenbenchError(f"bootstrap: need resamples >= 2 and 0 < confidence < 1, got {resamples} and "
                            f"{confidence}")
    per_prompt: dict[str, dict[str, list[int]]] = {}  # tag -> prompt -> [correct, images]
    for r in records:
        counts = per_prompt.setdefault(r["tag"], {}).setdefault(r["metadata"], [0, 0])
        counts[0] += bool(r["correct"])
        counts[1] += 1
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    draws = {}
    for tag, prompts in per_prompt.items():
        correct, images = np.array(list(prompts.values()), dtype=np.float64).T
        index = rng.integers(0, len(correct), size=(resamples, len(correct)))
        draws[tag] = correct[index].sum(axis=1) / images[index].sum(axis=1)
    draws["overall"] = np.mean(list(draws.values()), axis=0)
    return {key: (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
            for key, values in draws.items()}


# GenEval's reason strings (rules.evaluate) by the clause that failed, most specific first.
FAILURE_KINDS = (
    ("too many objects", re.compile(r"expected .+<\d+, found \d+")),
    ("wrong colour", re.compile(r"expected \S+ .+>=\d+, found \d+ \S+; and.*")),
    ("wrong position", re.compile(r"expected .+ (left of|right of|above|below) target, found.*")),
    ("no position target", re.compile(r"no target for .+")),
    ("object missing", re.compile(r"expected .+>=\d+, found \d+")),
)


def failure_kind(reason: str) -> str:
    """The kind of the first failed clause of a GenEval reason ("other" for an unknown string)."""
    first = reason.split("\n", 1)[0]
    return next((kind for kind, pattern in FAILURE_KINDS if pattern.fullmatch(first)), "other")


def failure_reasons(records: list[dict]) -> dict[str, dict[str, int]]:
    """Failed images of each task counted by the kind of their first failed clause (GenEval's `reason`
    field of results.jsonl; its summary_scores.py prints only the per-task accuracies)."""
    failures: dict[str, dict[str, int]] = {}
    for r in records:
        if not r["correct"]:
            kinds = failures.setdefault(r["tag"], {})
            kind = failure_kind(r["reason"])
            kinds[kind] = kinds.get(kind, 0) + 1
    return failures
