"""`shapes`: a procedural, class-conditional world of coloured geometric shapes, drawn on the fly from a seed.

A class is a (kind, colour) pair: 4 kinds x 5 GenEval colour names = 20 classes. An image holds 1-3
non-overlapping objects of its class on a low-saturation background (grey tint, linear gradient, pixel
noise). Every image carries its ground truth (objects with kind, colour, centre, size, angle, box; count).

Bit-identical on any machine: all randomness comes from numpy's PCG64 seeded with (seed, index), shapes are
rasterised by point-in-shape tests on a 4x supersampled grid (coverage is an integer count), and pixels are
blended with elementwise IEEE float64 arithmetic only (no reductions, no PIL). Image i depends only on
(seed, i), never on the batch it is drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genbench.errors import GenbenchError
from genbench.io import atomic_write

KINDS = ("circle", "square", "triangle", "cross")
COLORS = {  # GenEval colour names -> base RGB; each object jitters these by up to COLOR_JITTER per channel
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 210, 40),
    "purple": (145, 55, 195),
}
COLOR_JITTER = 20
SUPERSAMPLE = 4
MAX_COUNT = 3
RADIUS_RANGE = (0.12, 0.2)  # object radius as a fraction of the resolution
EXTENT = 1.2  # every kind fits in a disc of EXTENT * radius around its centre
RENDER_STREAM = 2**32 - 1  # the index whose background `render` uses; sample streams never reach it


@dataclass(frozen=True)
class ShapeObject:
    """One object to draw: `kind` in KINDS, `color` in COLORS, centre (cx, cy) and radius in pixels,
    rotation `angle` in radians, `rgb` (default: the colour's base RGB)."""

    kind: str
    color: str
    cx: float
    cy: float
    radius: float
    angle: float = 0.0
    rgb: tuple[int, int, int] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise GenbenchError(f"shape kind {self.kind!r}: unknown; choose from {', '.join(KINDS)}")
        if self.color not in COLORS:
            raise GenbenchError(f"shape colour {self.color!r}: unknown; choose from {', '.join(COLORS)}")
        if self.radius <= 0:
            raise GenbenchError(f"shape radius {self.radius}: must be positive")


@dataclass
class ObjectTruth:
    """A drawn object: its spec plus the pixel box (x1, y1, x2, y2), end-exclusive, of its covered pixels."""

    kind: str
    color: str
    rgb: tuple[int, int, int]
    center: tuple[float, float]
    radius: float
    angle: float
    box: tuple[int, int, int, int]


@dataclass
class SceneTruth:
    """Ground truth of one image: class `label` (or None for an explicit scene), its objects and count."""

    label: int | None
    objects: list[ObjectTruth] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.objects)

    def to_dict(self) -> dict:
        return {"label": self.label, "count": self.count, "objects": [asdict(o) for o in self.objects]}


CLASS_NAMES = [f"{color} {kind}" for kind in KINDS for color in COLORS]  # label = kind * 5 + colour


def class_of(label: int) -> tuple[str, str]:
    """(kind, colour) of a class label."""
    if not 0 <= label < len(CLASS_NAMES):
        raise GenbenchError(f"class label {label}: out of range 0..{len(CLASS_NAMES) - 1}")
    kind_index, color_index = divmod(int(label), len(COLORS))
    return KINDS[kind_index], list(COLORS)[color_index]


def balanced_labels(n: int, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Labels 0, 1, ..., C-1, 0, 1, ...: every class appears n // C or n // C + 1 times. int64 [n]."""
    return np.arange(n, dtype=np.int64) % num_classes


def _inside(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Point-in-shape test in the object's frame (u right, v down, origin at the centre), radius r."""
    if kind == "circle":
        return u * u + v * v <= r * r
    if kind == "square":
        half = 0.8 * r  # area close to the circle's
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if kind == "cross":
        width = 0.35 * r
        au, av = np.abs(u), np.abs(v)
        return ((au <= r) & (av <= width)) | ((au <= width) & (av <= r))
    # triangle: equilateral, circumradius 1.15 r, apex up; inside = within the inradius of all 3 edges
    inradius = 0.575 * r
    half_sqrt3 = math.sqrt(3.0) / 2
    return (v <= inradius) & (-half_sqrt3 * u - 0.5 * v <= inradius) & (half_sqrt3 * u - 0.5 * v <= inradius)


def _coverage(obj: ShapeObject, resolution: int) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Fraction of each pixel's SUPERSAMPLE^2 sub-samples inside `obj` (float64 [H, W]), and its box;
    None when the object covers no sample."""
    s = SUPERSAMPLE
    reach = EXTENT * obj.radius + 1
    lo_x, hi_x = max(0, math.floor(obj.cx - reach)), min(resolution, math.ceil(obj.cx + reach))
    lo_y, hi_y = max(0, math.floor(obj.cy - reach)), min(resolution, math.ceil(obj.cy + reach))
    if lo_x >= hi_x or lo_y >= hi_y:
        return None
    xs = (np.arange(lo_x * s, hi_x * s) + 0.5) / s - obj.cx
    ys = (np.arange(lo_y * s, hi_y * s) + 0.5) / s - obj.cy
    dx, dy = np.meshgrid(xs, ys)
    cos, sin = math.cos(obj.angle), math.sin(obj.angle)
    hits = _inside(obj.kind, cos * dx + sin * dy, -sin * dx + cos * dy, obj.radius)
    if not hits.any():
        return None
    rows, cols = np.nonzero(hits)
    box = (lo_x + int(cols.min()) // s, lo_y + int(rows.min()) // s,
           lo_x + int(cols.max()) // s + 1, lo_y + int(rows.max()) // s + 1)
    counts = hits.reshape(hi_y - lo_y, s, hi_x - lo_x, s).sum(axis=(1, 3))  # integer counts: exact
    coverage = np.zeros((resolution, resolution))
    coverage[lo_y:hi_y, lo_x:hi_x] = counts / (s * s)
    return coverage, box


def _background(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """Grey tint + linear grey gradient + integer pixel noise; saturation (max - min channel) <= 40.
    float64 [3, H, W]."""
    grey = rng.integers(60, 191)
    tint = rng.integers(-15, 16, size=3)
    gx, gy = rng.integers(-25, 26, size=2)
    ramp = (np.arange(resolution) + 0.5) / resolution - 0.5
    gradient = gx * ramp[None, :] + gy * ramp[:, None]
    noise = rng.integers(-5, 6, size=(3, resolution, resolution))
    return (grey + tint)[:, None, None] + gradient[None] + noise


def _composite(background: np.ndarray, objects: list[ShapeObject], resolution: int
               ) -> tuple[np.ndarray, list[ObjectTruth]]:
    """Paint `objects` over `background` in order. Returns uint8 [3, H, W] and each object's truth."""
    image = background.copy()
    truths = []
    for obj in objects:
        drawn = _coverage(obj, resolution)
        if drawn is None:
            continue
        alpha, box = drawn
        rgb = obj.rgb if obj.rgb is not None else COLORS[obj.color]
        image = image * (1 - alpha) + np.asarray(rgb, dtype=np.float64)[:, None, None] * alpha
        truths.append(ObjectTruth(obj.kind, obj.color, tuple(int(c) for c in rgb), (obj.cx, obj.cy),
                                  obj.radius, obj.angle, box))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), truths


def _place_object(rng: np.random.Generator, kind: str, color: str, radius: float, placed: list[ShapeObject],
                  resolution: int, gap: float, tries: int) -> ShapeObject | None:
    """One object of `radius` at a random spot inside the frame whose extent disc keeps `gap` pixels from
    every placed one (None after `tries` draws), its colour jittered and, unless a circle, rotated."""
    margin = EXTENT * radius + 1
    for _ in range(tries):
        cx, cy = rng.uniform(margin, resolution - margin, size=2)
        if all(math.hypot(cx - o.cx, cy - o.cy) >= EXTENT * (radius + o.radius) + gap for o in placed):
            break
    else:
        return None
    jitter = rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, size=3)
    rgb = tuple(int(c) for c in np.clip(np.asarray(COLORS[color]) + jitter, 0, 255))
    angle = 0.0 if kind == "circle" else float(rng.uniform(0, 2 * math.pi))
    return ShapeObject(kind, color, float(cx), float(cy), radius, angle, rgb)


def _place(rng: np.random.Generator, kind: str, color: str, count: int, resolution: int) -> list[ShapeObject]:
    """`count` non-overlapping objects of one class, fully inside the frame; shrinks them if crowded."""
    scale = 1.0
    while True:
        radii = rng.uniform(*RADIUS_RANGE, size=count) * resolution * scale
        placed: list[ShapeObject] = []
        for radius in radii:
            obj = _place_object(rng, kind, color, float(radius), placed, resolution, gap=1, tries=50)
            if obj is None:
                break
            placed.append(obj)
        if len(placed) == count:
            return placed
        scale *= 0.85


class ShapesWorld:
    """The `shapes` distribution at `resolution` x `resolution` (>= 16)."""

    name = "shapes"
    class_names = CLASS_NAMES
    num_classes = len(CLASS_NAMES)

    def __init__(self, resolution: int = 32):
        if resolution < 16:
            raise GenbenchError(f"shapes resolution {resolution}: too small; use 16 or more (default 32)")
        self.resolution = resolution

    def sample_one(self, seed: int, index: int, label: int) -> tuple[np.ndarray, SceneTruth]:
        """Image `index` of stream `seed` with class `label`: uint8 [3, H, W] and its ground truth."""
        rng = np.random.default_rng([seed, index])
        kind, color = class_of(label)
        count = int(rng.integers(1, MAX_COUNT + 1))
        background = _background(rng, self.resolution)
        objects = _place(rng, kind, color, count, self.resolution)
        image, truths = _composite(background, objects, self.resolution)
        return image, SceneTruth(int(label), truths)

    def sample(self, n: int, seed: int, labels: np.ndarray | list[int] | None = None, start: int = 0
               ) -> tuple[np.ndarray, np.ndarray, list[SceneTruth]]:
        """Images start..start+n-1 of stream `seed`: (uint8 [n, 3, H, W], int64 labels [n], truths).

        `labels` default to `balanced_labels` of the global index, so any slice of a stream is the same
        as drawing the whole stream and slicing it."""
        if labels is None:
            labels = balanced_labels(start + n, self.num_classes)[start:]
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (n,):
            raise GenbenchError(f"labels: expected {n} labels, got shape {labels.shape}")
        images = np.empty((n, 3, self.resolution, self.resolution), dtype=np.uint8)
        truths = []
        for i, label in enumerate(labels):
            images[i], truth = self.sample_one(seed, start + i, int(label))
            truths.append(truth)
        return images, labels, truths

    def render(self, objects: list[ShapeObject], background_seed: int = 0) -> tuple[np.ndarray, SceneTruth]:
        """Draw an explicit scene (e.g. one that satisfies or violates a GenEval-style prompt) over the
        background of `background_seed`. Objects are painted in order; overlaps are allowed here.
        Returns uint8 [3, H, W] and its ground truth (label None)."""
        background = _background(np.random.default_rng([background_seed, RENDER_STREAM]), self.resolution)
        image, truths = _composite(background, list(objects), self.resolution)
        return image, SceneTruth(None, truths)

    def export_npz(self, path: str | Path, n: int, seed: int) -> Path:
        """Write images 0..n-1 of stream `seed` as an ADM .npz: arr_0 uint8 [n, H, W, 3], arr_1 labels [n]."""
        images, labels, _ = self.sample(n, seed)
        path = Path(path)
        with atomic_write(path, suffix=".npz") as tmp:
            np.savez(tmp, arr_0=images.transpose(0, 2, 3, 1), arr_1=labels)
        return path


# --- composed scenes (GenEval prompts) ------------------------------------------------------------------

SCENE_RADIUS_RANGE = (0.10, 0.13)  # object radius as a fraction of the resolution in composed scenes
SCENE_GAP = 2.0  # pixels left between the extent discs of two objects, so each stays its own component
SCENE_TRIES = 2000


def object_box(obj: ShapeObject, resolution: int) -> tuple[int, int, int, int] | None:
    """The end-exclusive pixel box (x1, y1, x2, y2) `obj` covers when drawn, as in its ObjectTruth."""
    drawn = _coverage(obj, resolution)
    return None if drawn is None else drawn[1]


def place_scene(rng: np.random.Generator, specs: list[tuple[str, str]], resolution: int,
                accept: Callable[[list[ShapeObject]], bool] | None = None,
                radius_range: tuple[float, float] = SCENE_RADIUS_RANGE) -> list[ShapeObject]:
    """Objects of the given (kind, colour) in order at random places, fully inside the frame, their extent
    discs at least SCENE_GAP pixels apart (separable by connected components), colours jittered as in
    `sample_one`. Whole scenes are redrawn until `accept(objects)` holds (e.g. a spatial relation)."""
    for _ in range(SCENE_TRIES):
        placed: list[ShapeObject] = []
        for kind, color in specs:
            radius = float(rng.uniform(*radius_range)) * resolution
            obj = _place_object(rng, kind, color, radius, placed, resolution, gap=SCENE_GAP, tries=100)
            if obj is None:
                break
            placed.append(obj)
        if len(placed) == len(specs) and (accept is None or accept(placed)):
            return placed
    raise GenbenchError(f"no placement of {len(specs)} objects at {resolution} px found in {SCENE_TRIES} "
                        "tries; use a larger resolution or fewer objects")
