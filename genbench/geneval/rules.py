"""GenEval's rules (evaluation/evaluate_images.py): filter detections per class, then check a prompt's
include clauses (AND-ed) and exclude clauses (OR-ed). Boxes are (x1, y1, x2, y2) in pixels, y down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genbench.geneval.detectors import Detection
from genbench.geneval.prompts import COLORS
from genbench.validate import check_number

ColorFn = Callable[[list[Detection], str], list[str]]  # (top objects of one class, class name) -> colours


@dataclass(frozen=True)
class Rules:
    """GenEval's defaults; each matches one of its `--options key=value`."""

    threshold: float = 0.3  # keep score > threshold (strict)
    counting_threshold: float = 0.9  # replaces `threshold` for every class in counting prompts
    max_objects: int = 16  # per class, applied before NMS
    max_overlap: float = 1.0  # per-class NMS IoU; 1.0 turns NMS off
    position_threshold: float = 0.1  # margin, as a fraction of the summed box sizes

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold", "max_overlap"):
            check_number(f"--{name.replace('_', '-')}", getattr(self, name), 0.0, 1.0)
        check_number("--max-objects", self.max_objects, 1, integer=True)
        check_number("--position-threshold", self.position_threshold, 0.0)


DEFAULT_RULES = Rules()


def box_iou(a, b) -> float:
    """IoU with the inclusive-pixel convention (+1 on widths and heights), as GenEval's compute_iou."""
    def area(box):
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    union = area(a) + area(b) - inter
    return inter / union if union else 0.0


def filter_detections(detections: list[Detection], tag: str,
                      rules: Rules = DEFAULT_RULES) -> dict[str, list[Detection]]:
    """Per class: sort by score (highest first), keep score > threshold, cap at max_objects, then greedy NMS
    when max_overlap < 1. Classes with nothing left are absent."""
    threshold = rules.counting_threshold if tag == "counting" else rules.threshold
    kept: dict[str, list[Detection]] = {}
    for label in dict.fromkeys(d.label for d in detections):
        ranked = sorted((d for d in detections if d.label == label), key=lambda d: -d.score)
        candidates = [d for d in ranked if d.score > threshold][: rules.max_objects]
        chosen: list[Detection] = []
        while candidates:
            best = candidates.pop(0)
            chosen.append(best)
            if rules.max_overlap < 1:
                candidates = [d for d in candidates if box_iou(best.box, d.box) < rules.max_overlap]
        if chosen:
            kept[label] = chosen
    return kept


def relative_position(a: Detection, b: Detection, margin: float = 0.1) -> set[str]:
    """Relations of A to B. Centre offset shrunk by margin*(size_A+size_B) per axis; none if both shrink to
    ~0 (overlap); otherwise each normalised component beyond 0.5 gives a relation, so two can hold."""
    boxes = np.array([a.box, b.box], dtype=np.float64).reshape(2, 2, 2)  # [object, corner, xy]
    centre_a, centre_b = boxes.mean(axis=1)
    size_a, size_b = np.abs(boxes[:, 1] - boxes[:, 0])
    offset = centre_a - centre_b
    revised = np.maximum(np.abs(offset) - margin * (size_a + size_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def _color_reason(clause: dict, colors: list[str]) -> str:
    wanted, name, count = clause["color"], clause["class"], clause["count"]
    found = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
    return f"expected {wanted} {name}>={count}, found {colors.count(wanted)} {wanted}; and {found}"


def _position_failure(objects: list[Detection], targets: list[Detection], clause: dict,
                      margin: float) -> str | None:
    """Every object of the clause must hold the relation to every object of the target group."""
    relation = clause["position"][0]
    for obj in objects:
        for target in targets:
            found = relative_position(obj, target, margin)
            if relation not in found:
                shown = " and ".join(r for r in ("left of", "right of", "above", "below") if r in found)
                return f"expected {clause['class']} {relation} target, found {shown} target"
    return None


def evaluate(objects: dict[str, list[Detection]], metadata: dict, classify_colors: ColorFn | None,
             rules: Rules = DEFAULT_RULES) -> tuple[bool, str]:
    """(correct, reason) for one image. `objects` come from filter_detections (sorted by score); colour and
    position are judged on the top-`count` objects of each class. Reasons are GenEval's, one per line."""
    correct, reasons = True, []
    groups: list[list[Detection] | None] = []  # matched objects of each include clause, None if it failed
    for clause in metadata.get("include", []):
        name, count = clause["class"], clause["count"]
        found = objects.get(name, [])[:count]
        matched = len(found) >= count
        if not matched:
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        if matched and "color" in clause:
            if classify_colors is None:
                raise ValueError("this prompt has a colour clause but no colour classifier was given")
            colors = classify_colors(found, name)
            if colors.count(clause["color"]) < count:
                matched = False
                reasons.append(_color_reason(clause, colors))
        if matched and "position" in clause:
            relation, group = clause["position"]
            if groups[group] is None:
                matched = False
                reasons.append(f"no target for {name} to be {relation}")
            else:
                failure = _position_failure(found, groups[group], clause, rules.position_threshold)
                if failure is not None:
                    matched = False
                    reasons.append(failure)
        correct = correct and matched
        groups.append(found if matched else None)
    for clause in metadata.get("exclude", []):
        name = clause["class"]
        if len(objects.get(name, [])) >= clause["count"]:
            correct = False
            reasons.append(f"expected {name}<{clause['count']}, found {len(objects[name])}")
    return correct, "\n".join(reasons)
