"""The shapes world: determinism (same seed same bytes, per-index independence), ground truth that matches
the pixels, class balance, explicit-scene rendering and ADM .npz export."""

import hashlib

import numpy as np
import pytest

from genbench.errors import GenbenchError
from genbench.worlds import COLORS, ShapeObject, ShapesWorld
from genbench.worlds.shapes import balanced_labels, class_of

# sha256 of ShapesWorld(32).sample(16, seed=0)[0].tobytes(), recorded when the world was written: a change
# means the world's images changed (or differ on this machine), which invalidates shipped stats and weights.
PINNED_SHA256 = "6881368f56f52e40661b34b9faafa186a8d2ad5bbcc215cb541e472125f12412"


@pytest.fixture(scope="module")
def world():
    return ShapesWorld(32)


def test_same_seed_same_bytes_and_pinned_digest(world):
    first, labels, _ = world.sample(16, seed=0)
    second, _, _ = world.sample(16, seed=0)
    assert first.dtype == np.uint8 and first.shape == (16, 3, 32, 32)
    assert first.tobytes() == second.tobytes()
    assert hashlib.sha256(first.tobytes()).hexdigest() == PINNED_SHA256
    other, _, _ = world.sample(16, seed=1, labels=labels)
    assert (other != first).any(axis=(1, 2, 3)).all()  # other seed, other images


def test_image_depends_only_on_seed_and_index(world):
    whole, labels, _ = world.sample(10, seed=5)
    part, part_labels, _ = world.sample(4, seed=5, start=3)
    np.testing.assert_array_equal(part, whole[3:7])
    np.testing.assert_array_equal(part_labels, labels[3:7])
    # the label of one image does not change its neighbours
    changed = labels.copy()
    changed[4] = (changed[4] + 1) % world.num_classes
    mixed, _, truths = world.sample(10, seed=5, labels=changed)
    np.testing.assert_array_equal(np.delete(mixed, 4, axis=0), np.delete(whole, 4, axis=0))
    assert class_of(int(changed[4])) == (truths[4].objects[0].kind, truths[4].objects[0].color)


def test_ground_truth_matches_pixels(world):
    images, labels, truths = world.sample(60, seed=7)
    assert {t.count for t in truths} == {1, 2, 3}
    for image, label, truth in zip(images, labels, truths, strict=True):
        pixels = image.astype(int).transpose(1, 2, 0)  # [H, W, 3]
        outside = np.ones((32, 32), dtype=bool)
        assert truth.label == label and 1 <= truth.count == len(truth.objects) <= 3
        for obj in truth.objects:
            assert (obj.kind, obj.color) == class_of(int(label))
            nearest = min(COLORS, key=lambda name: np.abs(np.subtract(COLORS[name], obj.rgb)).sum())
            assert nearest == obj.color
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < obj.center[0] < x2 <= 32 and 0 <= y1 < obj.center[1] < y2 <= 32
            exact = (pixels[y1:y2, x1:x2] == obj.rgb).all(axis=2)
            assert exact.mean() >= 0.15, (obj, exact.mean())  # the box holds the object's own colour
            outside[y1:y2, x1:x2] = False
        saturation = pixels.max(axis=2) - pixels.min(axis=2)
        assert saturation[outside].max() <= 40  # nothing coloured lies outside the boxes


def test_balanced_labels_and_default_labels(world):
    labels = balanced_labels(47, 20)
    counts = np.bincount(labels, minlength=20)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 47
    _, default, _ = world.sample(47, seed=0)
    np.testing.assert_array_equal(default, labels)
    assert len(world.class_names) == world.num_classes == 20
    assert world.class_names[int(labels[6])] == " ".join(reversed(class_of(int(labels[6]))))


def test_render_explicit_scene(world):
    objects = [ShapeObject("circle", "red", 9.0, 10.0, 5.0), ShapeObject("square", "blue", 23.0, 22.0, 4.0)]
    image, truth = world.render(objects, background_seed=3)
    assert truth.label is None and truth.count == 2
    for obj, drawn in zip(objects, truth.objects, strict=True):
        assert drawn.rgb == COLORS[obj.color]
        np.testing.assert_array_equal(image[:, int(obj.cy), int(obj.cx)], COLORS[obj.color])
    assert truth.objects[0].box == (4, 5, 14, 15)  # circle of radius 5 at (9, 10)
    assert truth.objects[1].box == (19, 18, 27, 26)  # square of half side 0.8 * 4 at (23, 22)
    again, _ = world.render(objects, background_seed=3)
    np.testing.assert_array_equal(image, again)
    with pytest.raises(GenbenchError, match="colour 'orange'"):
        ShapeObject("circle", "orange", 5, 5, 3)
    with pytest.raises(GenbenchError, match="kind 'hexagon'"):
        ShapeObject("hexagon", "red", 5, 5, 3)


def test_export_npz_is_adm_layout(world, tmp_path):
    path = world.export_npz(tmp_path / "shapes.npz", n=12, seed=2)
    images, labels, _ = world.sample(12, seed=2)
    with np.load(path) as data:
        np.testing.assert_array_equal(data["arr_0"], images.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(data["arr_1"], labels)
    assert [p.name for p in tmp_path.iterdir()] == ["shapes.npz"]  # no temporary file left behind


def test_bad_arguments_are_readable(world):
    with pytest.raises(GenbenchError, match="expected 3 labels"):
        world.sample(3, seed=0, labels=[1, 2])
    with pytest.raises(GenbenchError, match="out of range"):
        world.sample(1, seed=0, labels=[20])
    with pytest.raises(GenbenchError, match="too small"):
        ShapesWorld(8)
