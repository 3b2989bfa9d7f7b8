"""GenEval prompt suites: the six tasks, metadata validation, and GenEval's generation folder layout.

A prompt record is one JSON object per line of `evaluation_metadata.jsonl`:
    {"tag": task, "include": [{"class", "count", "color"?, "position": [relation, group]?}],
     "exclude": [{"class", "count"}]?, "prompt": text}
`generate_suite(seed=43)` draws the prompts with the same random calls as GenEval's create_prompts.py, so
seed 43 gives GenEval's own 553 prompts; any other seed gives a fresh suite in the same format.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from genbench.errors import GenbenchError
from genbench.io import write_text_atomic
from genbench.sources import parse_json, read_text

# COCO-80 in detector order, with GenEval's names at positions 64-66 (mouse, remote, keyboard).
CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS = ("left of", "right of", "above", "below")
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
IMAGES_PER_PROMPT = 4
GENEVAL_SEED = 43


def with_article(noun: str) -> str:
    """"an" before a vowel letter, else "a" (GenEval's rule: "an umbrella", "a cup")."""
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def plural(noun: str) -> str:
    """GenEval's rule: "es" after a final "s" ("buses", "skises"), else "s" ("knifes", as GenEval has it)."""
    return f"{noun}es" if noun.endswith("s") else f"{noun}s"


# --- generation (the random calls mirror create_prompts.py one for one) ---------------------------------

def _single_objects(rng: np.random.Generator, classes: tuple[str, ...]) -> list[dict]:
    order = rng.choice(len(classes), size=len(classes), replace=False)
    return [{"tag": "single_object", "include": [{"class": classes[i], "count": 1}],
             "prompt": f"a photo of {with_article(classes[i])}"} for i in order]


def _two_object(rng: np.random.Generator, classes: tuple[str, ...]) -> dict:
    a, b = rng.choice(len(classes), size=2, replace=False)
    return {"tag": "two_object",
            "include": [{"class": classes[a], "count": 1}, {"class": classes[b], "count": 1}],
            "prompt": f"a photo of {with_article(classes[a])} and {with_article(classes[b])}"}


def _counting(rng: np.random.Generator, classes: tuple[str, ...], max_count: int = 4) -> dict:
    i = rng.choice(len(classes))
    n = int(rng.integers(2, max_count, endpoint=True))
    return {"tag": "counting", "include": [{"class": classes[i], "count": n}],
            "exclude": [{"class": classes[i], "count": n + 1}],
            "prompt": f"a photo of {NUMBERS[n]} {plural(classes[i])}"}


def _non_person(rng: np.random.Generator, classes: tuple[str, ...], size: int | None = None):
    """Class indices for colour prompts: every class but "person" when it is one (no "a red person")."""
    if "person" not in classes:
        return rng.choice(len(classes), size=size, replace=False)
    person = classes.index("person")
    if size is None:
        return (rng.choice(len(classes) - 1) + 1 + person) % len(classes)
    return (rng.choice(len(classes) - 1, size=size, replace=False) + 1 + person) % len(classes)


def _colors(rng: np.random.Generator, classes: tuple[str, ...], colors: tuple[str, ...]) -> dict:
    i = _non_person(rng, classes)
    color = colors[rng.choice(len(colors))]
    return {"tag": "colors", "include": [{"class": classes[i], "count": 1, "color": color}],
            "prompt": f"a photo of {with_article(color)} {classes[i]}"}


def _position(rng: np.random.Generator, classes: tuple[str, ...]) -> dict:
    a, b = rng.choice(len(classes), size=2, replace=False)
    relation = RELATIONS[rng.choice(len(RELATIONS))]
    # include[0] is the reference object B; A must stand in `relation` to group 0.
    return {"tag": "position",
            "include": [{"class": classes[b], "count": 1},
                        {"class": classes[a], "count": 1, "position": [relation, 0]}],
            "prompt": f"a photo of {with_article(classes[a])} {relation} {with_article(classes[b])}"}


def _color_attr(rng: np.random.Generator, classes: tuple[str, ...], colors: tuple[str, ...]) -> dict:
    a, b = _non_person(rng, classes, size=2)
    ca, cb = rng.choice(len(colors), size=2, replace=False)
    return {"tag": "color_attr",
            "include": [{"class": classes[a], "count": 1, "color": colors[ca]},
                        {"class": classes[b], "count": 1, "color": colors[cb]}],
            "prompt": f"a photo of {with_article(colors[ca])} {classes[a]} and "
                      f"{with_article(colors[cb])} {classes[b]}"}


def generate_suite(seed: int = GENEVAL_SEED, per_task: int = 100, classes: tuple[str, ...] = CLASSES,
                   colors: tuple[str, ...] = COLORS) -> list[dict]:
    """All single-object prompts, then `per_task` draws of each other task, duplicates dropped (first kept).
    Other `classes` / `colors` (a subset of GenEval's colours) make suites for synthetic worlds."""
    if not set(colors) <= set(COLORS):
        raise GenbenchError(f"colours {sorted(set(colors) - set(COLORS))}: not GenEval colours "
                            f"({', '.join(COLORS)})")
    rng = np.random.default_rng(seed)
    records = _single_objects(rng, classes)
    draws = (partial(_two_object, rng, classes), partial(_counting, rng, classes),
             partial(_colors, rng, classes, colors), partial(_position, rng, classes),
             partial(_color_attr, rng, classes, colors))
    for draw in draws:
        records += [draw() for _ in range(per_task)]
    unique, seen = [], set()
    for record in records:
        key = json.dumps(record, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


# --- validation ---------------------------------------------------------------------------------------

def _check_clause(clause, where: str, n_previous: int, in_include: bool) -> None:
    if not isinstance(clause, dict):
        raise ValueError(f"{where}: must be an object")
    if not isinstance(clause.get("class"), str) or not clause["class"]:
        raise ValueError(f"{where}: needs a non-empty string \"class\"")
    count = clause.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"{where}: \"count\" must be a positive integer")
    allowed = {"class", "count", "color", "position"} if in_include else {"class", "count"}
    if set(clause) - allowed:
        raise ValueError(f"{where}: unknown keys {sorted(set(clause) - allowed)}")
    if "color" in clause and clause["color"] not in COLORS:
        raise ValueError(f"{where}: colour {clause['color']!r} is not one of {', '.join(COLORS)}")
    if "position" in clause:
        position = clause["position"]
        if (not isinstance(position, list) or len(position) != 2 or position[0] not in RELATIONS
                or not isinstance(position[1], int) or not 0 <= position[1] < n_previous):
            raise ValueError(f"{where}: \"position\" must be [relation, index of an earlier include] with "
                             f"relation one of {', '.join(RELATIONS)}")


def validate_record(record) -> dict:
    """Raise ValueError naming the problem; return the record unchanged when it is a valid prompt."""
    if not isinstance(record, dict):
        raise ValueError("must be a JSON object")
    for key in ("tag", "prompt", "include"):
        if key not in record:
            raise ValueError(f"missing \"{key}\"")
    if record["tag"] not in TASKS:
        raise ValueError(f"tag {record['tag']!r} is not one of {', '.join(TASKS)}")
    if not isinstance(record["prompt"], str):
        raise ValueError("\"prompt\" must be a string")
    if not isinstance(record["include"], list) or not record["include"]:
        raise ValueError("\"include\" must be a non-empty list")
    for i, clause in enumerate(record["include"]):
        _check_clause(clause, f"include[{i}]", i, in_include=True)
    exclude = record.get("exclude", [])
    if not isinstance(exclude, list):
        raise ValueError("\"exclude\" must be a list")
    for i, clause in enumerate(exclude):
        _check_clause(clause, f"exclude[{i}]", 0, in_include=False)
    return record


def parse_record(line: str, where: str) -> dict:
    """One metadata line -> record; GenbenchError "<where>: <problem>" when malformed."""
    record = parse_json(line, where, dict, "fix or delete that line")
    try:
        return validate_record(record)
    except ValueError as error:
        raise GenbenchError(f"{where}: {error}; fix or delete that line") from error


def load_metadata(path: str | Path) -> list[dict]:
    """Read GenEval's `evaluation_metadata.jsonl` (blank lines skipped), validating every line."""
    path = Path(path)
    lines = read_text(path, "prompt metadata", "give GenEval's evaluation_metadata.jsonl").splitlines()
    records = [parse_record(line, f"{path}:{number}") for number, line in enumerate(lines, 1) if line.strip()]
    if not records:
        raise GenbenchError(f"{path}: holds no prompts; give GenEval's evaluation_metadata.jsonl")
    return records


# --- writing ------------------------------------------------------------------------------------------

def write_suite(records: list[dict], out: str | Path) -> Path:
    """Write `evaluation_metadata.jsonl`, `generation_prompts.txt` and GenEval's generation layout
    `<NNNNN>/metadata.jsonl` + empty `<NNNNN>/samples/` (images go in as samples/<NNNN>.png)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for index, record in enumerate(records):
        folder = out / f"{index:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "metadata.jsonl", json.dumps(record) + "\n")
    write_text_atomic(out / "generation_prompts.txt", "".join(r["prompt"] + "\n" for r in records))
    write_text_atomic(out / "evaluation_metadata.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return out
