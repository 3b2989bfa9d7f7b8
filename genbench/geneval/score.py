"""Score an image set in GenEval's layout and summarise it as GenEval's summary_scores.py does.

Layout: IMAGES_DIR/<NNNNN>/metadata.jsonl (one prompt record) + IMAGES_DIR/<NNNNN>/samples/<digits>.png.
With a separate metadata file, folder <NNNNN> takes its line NNNNN (0-based, blank lines skipped) instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image, ImageOps

from genbench.errors import GenbenchError
from genbench.geneval.colors import ColorClassifier
from genbench.geneval.detectors import Detector
from genbench.geneval.prompts import TASKS, parse_record
from genbench.geneval.rules import DEFAULT_RULES, Rules, evaluate, filter_detections
from genbench.io import atomic_write

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
            record = parse_record(path.read_text().strip(), str(path))
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
                 progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """GenEval records (filename, tag, prompt, correct, reason, metadata, details) for every image."""
    items = list(iter_images(images_dir, metadata))
    if not items:
        raise GenbenchError(f"{images_dir}: no samples/<digits>.png images found")
    records = []
    for done, (path, record) in enumerate(items, 1):
        try:
            image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        except OSError as error:
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
