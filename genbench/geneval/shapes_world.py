"""GenEval checks in the `shapes` world, end to end with no download.

Classes are the world's kinds (circle, square, triangle, cross) and colours its five GenEval colour names.
`prompt_scene` draws a scene that satisfies every clause of any prompt of the six tasks by construction
(its ground truth): the asked kinds, counts and colours at random separable places (`place_scene`), and
for position prompts a placement redrawn until the relation holds with twice GenEval's margin on the
drawn boxes. It can be broken on purpose (`wrong="count" | "color" | "position"`). `ShapesDetector`
finds objects from pixels alone and `PaletteColorClassifier(COLORS)` names their colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from genbench.geneval.colors import PaletteColorClassifier
from genbench.geneval.detectors import Detection, boxes_from_masks
from genbench.geneval.prompts import generate_suite
from genbench.geneval.rules import relative_position
from genbench.worlds.shapes import (
    COLORS,
    KINDS,
    SceneTruth,
    ShapeObject,
    ShapesWorld,
    object_box,
    place_scene,
)

# The detector finds every ground-truth object of composed scenes at 64 px (it confuses a third of the
# kinds at 32 px, where objects are 3-4 px in radius), so GenEval scenes of the world are drawn at 64 px.
SUITE_RESOLUTION = 64
# Scenes keep the relation with twice GenEval's margin, so that detected boxes (which may lose a faint
# edge pixel) still show it under the 0.1 of the rules.
SCENE_POSITION_MARGIN = 0.2
SWAPPED = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def shapes_suite(seed: int = 0, per_task: int = 10) -> list[dict]:
    """A GenEval-format prompt suite over the world's kinds and colours (counts 2-4)."""
    return generate_suite(seed, per_task, classes=KINDS, colors=tuple(COLORS))


def _relation_holds(objects: list[ShapeObject], pairs: list[tuple[int, int, str]], resolution: int,
                    margin: float) -> bool:
    """Every (a, b, relation) holds between the drawn boxes of objects a and b under GenEval's rule."""
    boxes = [object_box(obj, resolution) for obj in objects]
    return all(relation in relative_position(Detection("", boxes[a], 1.0), Detection("", boxes[b], 1.0),
                                              margin)
               for a, b, relation in pairs)


def prompt_objects(record: dict, world: ShapesWorld, seed: int | Sequence[int],
                   wrong: str | None = None) -> tuple[list[ShapeObject], int]:
    """The objects of a scene for `record` and its background seed. Colour-free objects get a colour drawn
    per object. `wrong` breaks one aspect: "count" (one object too many in the last group), "color" (another
    colour for coloured groups) or "position" (the opposite relation)."""
    rng = np.random.default_rng(seed)
    specs: list[tuple[str, str]] = []
    groups: list[list[int]] = []  # object indices of each include clause
    pairs: list[tuple[int, int, str]] = []  # (object, target object, relation)
    include = record["include"]
    for index, clause in enumerate(include):
        count = clause["count"] + (1 if wrong == "count" and index == len(include) - 1 else 0)
        groups.append(list(range(len(specs), len(specs) + count)))
        for _ in range(count):
            color = clause.get("color") or str(rng.choice(list(COLORS)))
            if wrong == "color" and "color" in clause:
                color = str(rng.choice([c for c in COLORS if c != clause["color"]]))
            specs.append((clause["class"], color))
        if "position" in clause:
            relation, target = clause["position"]
            relation = SWAPPED[relation] if wrong == "position" else relation
            pairs += [(a, b, relation) for a in groups[index] for b in groups[target]]
    accept = (lambda objects: _relation_holds(objects, pairs, world.resolution, SCENE_POSITION_MARGIN)
              ) if pairs else None
    objects = place_scene(rng, specs, world.resolution, accept)
    return objects, int(rng.integers(2**31))


def prompt_scene(record: dict, world: ShapesWorld, seed: int | Sequence[int],
                 wrong: str | None = None) -> tuple[np.ndarray, SceneTruth]:
    """uint8 [H, W, 3] image drawn from the prompt's ground truth, and that truth (see prompt_objects)."""
    objects, background_seed = prompt_objects(record, world, seed, wrong)
    image, truth = world.render(objects, background_seed=background_seed)
    return image.transpose(1, 2, 0), truth


def scene_for_prompt(record: dict, world: ShapesWorld, seed: int | Sequence[int],
                     wrong: str | None = None) -> np.ndarray:
    """uint8 [H, W, 3] image drawn from the prompt's ground truth (see prompt_objects)."""
    return prompt_scene(record, world, seed, wrong)[0]


def _shape_features(mask: np.ndarray) -> tuple[float, float]:
    """(roundness, solidity) of a bool mask: area / disc through the farthest pixel from the centroid,
    and area / convex hull of the pixel squares (both area-normalised, so rotation-invariant)."""
    from scipy.spatial import ConvexHull, QhullError

    ys, xs = np.nonzero(mask)
    area = float(len(xs))
    reach = np.hypot(xs - xs.mean(), ys - ys.mean()).max() + 0.5
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    try:
        hull_area = ConvexHull(corners).volume
    except QhullError:  # degenerate (a line of pixels): call it solid
        hull_area = area
    return area / (np.pi * reach**2), area / hull_area


class ShapesDetector:
    """Detector for the `shapes` world that sees only pixels: objects are the connected components of
    saturated pixels (its backgrounds are near-grey), named by a shape classifier on the component mask
    (circle, square/cross and triangle fill decreasing shares of the disc through their farthest pixel;
    a cross is the non-convex one of the middle pair); score 1. The thresholds sit midway between the
    kinds' ranges of both features over 1,800 objects of composed 64 px scenes. Reliable
    at 64 px; at 32 px small shapes get confused."""

    def __init__(self, min_saturation: int = 60, min_pixels: int = 6):
        self.min_saturation, self.min_pixels = min_saturation, min_pixels

    @staticmethod
    def classify(mask: np.ndarray) -> str:
        roundness, solidity = _shape_features(mask)
        if roundness > 0.78:
            return "circle"
        if roundness < 0.545:
            return "triangle"
        return "cross" if solidity < 0.815 else "square"

    def __call__(self, image: Image.Image) -> list[Detection]:
        from scipy import ndimage

        pixels = np.asarray(image.convert("RGB")).astype(np.int16)
        saturated = pixels.max(axis=-1) - pixels.min(axis=-1) > self.min_saturation
        components, n = ndimage.label(saturated)
        detections = []
        for index in range(1, n + 1):
            mask = components == index
            if mask.sum() >= self.min_pixels:
                box = tuple(boxes_from_masks(mask[None])[0].tolist())
                detections.append(Detection(self.classify(mask), box, 1.0, mask))
        return detections


def shapes_color_classifier() -> PaletteColorClassifier:
    return PaletteColorClassifier(COLORS)
