"""Miniature worlds: self-contained, procedural image distributions with ground truth, in which the whole
pipeline (data, features, models, reference statistics) runs on a CPU in minutes."""

from genbench.worlds.shapes import CLASS_NAMES, COLORS, KINDS, SceneTruth, ShapeObject, ShapesWorld

__all__ = ["CLASS_NAMES", "COLORS", "KINDS", "SceneTruth", "ShapeObject", "ShapesWorld"]
