"""GenEval checks in the `shapes` world, end to end with no download.

Classes are the world's kinds (circle, square, triangle, cross) and colours its five GenEval colour names.
`scene_for_prompt` draws an image that satisfies a prompt by construction (its ground truth), optionally
broken on purpose (`wrong="count" | "color" | "position"`); `ShapesDetector` finds objects from pixels
alone and `PaletteColorClassifier(COLORS)` names their colours.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from genbench.geneval.colors import PaletteColorClassifier
from genbench.geneval.detectors import Detection, boxes_from_masks
from genbench.geneval.prompts import generate_suite
from genbench.worlds.shapes import COLORS, KINDS, ShapeObject, ShapesWorld

GRID = 3  # objects sit at the centres of a GRID x GRID layout, so they never touch
RADIUS = 0.12  # object radius as a fraction of the resolution (EXTENT * RADIUS < 1 / (2 * GRID))
# cells of the reference B and of A for each relation of A to B (column, row; y down)
RELATION_CELLS = {"left of": ((1, 1), (0, 1)), "right of": ((1, 1), (2, 1)),
                  "above": ((1, 1), (1, 0)), "below": ((1, 1), (1, 2))}
SWAPPED = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def shapes_suite(seed: int = 0, per_task: int = 10) -> list[dict]:
    """A GenEval-format prompt suite over the world's kinds and colours (counts 2-4)."""
    return generate_suite(seed, per_task, classes=KINDS, colors=tuple(COLORS))


def scene_for_prompt(record: dict, world: ShapesWorld, seed: int, wrong: str | None = None) -> np.ndarray:
    """uint8 [H, W, 3] image drawn from the prompt's ground truth. `wrong` breaks one aspect: "count"
    (one object too many), "color" (another colour) or "position" (the opposite relation)."""
    rng = np.random.default_rng(seed)
    radius = RADIUS * world.resolution
    cells = [tuple(c) for c in rng.permutation([(x, y) for x in range(GRID) for y in range(GRID)])]
    objects: list[tuple[str, str, tuple[int, int]]] = []  # (kind, colour, cell)
    for index, clause in enumerate(record["include"]):
        count = clause["count"] + (1 if wrong == "count" else 0)
        color = clause.get("color") or str(rng.choice(list(COLORS)))
        if wrong == "color" and "color" in clause:
            color = str(rng.choice([c for c in COLORS if c != clause["color"]]))
        for _ in range(count):
            objects.append((clause["class"], color, cells.pop()))
        if "position" in clause:
            relation = clause["position"][0]
            relation = SWAPPED[relation] if wrong == "position" else relation
            reference_cell, cell = RELATION_CELLS[relation]
            objects[clause["position"][1]] = objects[clause["position"][1]][:2] + (reference_cell,)
            objects[index] = objects[index][:2] + (cell,)
    step = world.resolution / GRID
    shapes = [ShapeObject(kind, color, (cx + 0.5) * step, (cy + 0.5) * step, radius,
                          float(rng.uniform(0, 2 * np.pi)))
              for kind, color, (cx, cy) in objects]
    image, _ = world.render(shapes, background_seed=seed)
    return image.transpose(1, 2, 0)


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
    (a cross is the non-convex one; circle, square and triangle fill decreasing shares of their
    circumscribed disc); score 1. Reliable at 64 px; at 32 px small shapes get confused."""

    def __init__(self, min_saturation: int = 60, min_pixels: int = 6):
        self.min_saturation, self.min_pixels = min_saturation, min_pixels

    @staticmethod
    def classify(mask: np.ndarray) -> str:
        roundness, solidity = _shape_features(mask)
        if solidity < 0.8:
            return "cross"
        if roundness > 0.78:
            return "circle"
        return "square" if roundness > 0.52 else "triangle"

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
