"""A PNG grid of the first samples, written next to what `eval` and `sample` produce, so a user looks at
the images before trusting (or publishing) a number computed from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from genbench.io import atomic_write
from genbench.sources import SampleSource

GRID_COUNT = 64
PADDING = 2


def grid_path(output: Path) -> Path:
    """Where the grid of `output` goes: samples.npz -> samples.grid.png, results.json -> results.grid.png."""
    return output.with_suffix(".grid.png")


def image_grid(images: np.ndarray) -> np.ndarray:
    """uint8 [n, 3, H, W] -> one uint8 [H', W', 3] image: ceil(sqrt(n)) columns, white padding."""
    count, _, height, width = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    shape = (rows * (height + PADDING) + PADDING, columns * (width + PADDING) + PADDING, 3)
    grid = np.full(shape, 255, np.uint8)
    for i, image in enumerate(images):
        top, left = PADDING + (i // columns) * (height + PADDING), PADDING + (i % columns) * (width + PADDING)
        grid[top : top + height, left : left + width] = image.transpose(1, 2, 0)
    return grid


def write_grid(source: SampleSource, path: Path, count: int = GRID_COUNT) -> Path:
    """The first `count` images of `source` as one PNG at `path` (written atomically)."""
    images = source.read(range(min(count, len(source))))
    with atomic_write(path) as tmp:
        Image.fromarray(image_grid(images)).save(tmp, format="PNG")
    return path
