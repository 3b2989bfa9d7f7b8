"""GenEval checks end to end in the `shapes` world: ground-truth scenes score 100%, broken ones fail for the
right reason, and the summary matches GenEval's summary_scores.py arithmetic (redone with pandas)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genbench.geneval.score import score_folder, score_image, summarize, write_results_jsonl
from genbench.geneval.shapes_world import (
    ShapesDetector,
    scene_for_prompt,
    shapes_color_classifier,
    shapes_suite,
)
from genbench.worlds import ShapesWorld

WORLD = ShapesWorld(64)


def test_detector_recovers_world_ground_truth():
    images, _, truths = WORLD.sample(60, seed=3)
    detector, colors = ShapesDetector(), shapes_color_classifier()
    for array, truth in zip(images, truths, strict=True):
        image = Image.fromarray(array.transpose(1, 2, 0))
        found = detector(image)
        assert len(found) == truth.count
        assert sorted(d.label for d in found) == sorted(o.kind for o in truth.objects)
        assert colors(image, found, "") == [truth.objects[0].color] * truth.count
        # truth boxes include pixels with any sub-sample coverage; faint edges fall below the saturation cut
        found_boxes, true_boxes = np.array([d.box for d in found]), np.array([o.box for o in truth.objects])
        gaps = np.abs(found_boxes[:, None] - true_boxes[None])
        assert (gaps.max(axis=-1).min(axis=0) <= 1).all()


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    """GenEval layout with 2 ground-truth images per prompt of a small shapes suite."""
    root = tmp_path_factory.mktemp("shapes_geneval")
    suite = shapes_suite(seed=0, per_task=4)
    for index, record in enumerate(suite):
        samples = root / f"{index:05d}" / "samples"
        samples.mkdir(parents=True)
        (samples.parent / "metadata.jsonl").write_text(json.dumps(record) + "\n")
        for k in range(2):
            image = scene_for_prompt(record, WORLD, seed=100 * index + k)
            Image.fromarray(image).save(samples / f"{k:04d}.png")
    return root, suite


def test_ground_truth_scenes_score_100_percent(suite_dir, tmp_path):
    root, suite = suite_dir
    records = score_folder(root, ShapesDetector(), shapes_color_classifier())
    assert len(records) == 2 * len(suite)
    assert all(r["correct"] for r in records), [r["reason"] for r in records if not r["correct"]]
    summary = summarize(records)
    assert summary["overall"] == 1.0 and summary["correct_prompts"] == 1.0
    assert set(summary["tasks"]) == {"single_object", "two_object", "counting", "colors", "position",
                                     "color_attr"}
    path = write_results_jsonl(records, tmp_path / "results.jsonl")
    assert pd.read_json(path, orient="records", lines=True).columns.tolist() == [
        "filename", "tag", "prompt", "correct", "reason", "metadata", "details"]


def _first(suite, predicate):
    return next(r for r in suite if predicate(r))


@pytest.mark.parametrize("wrong, pick, reason", [
    ("count", lambda r: r["tag"] == "counting", "expected {cls}<{n1}, found {n1}"),
    ("color", lambda r: r["tag"] == "colors", "expected {color} {cls}>=1, found 0 {color}; and 1 "),
    ("position", lambda r: r["tag"] == "position", "expected {cls} {rel} target, found {opposite} target"),
])
def test_broken_scenes_fail_for_the_right_reason(wrong, pick, reason):
    suite = shapes_suite(seed=0, per_task=4)
    record = _first(suite, pick)
    clause = record["include"][-1]
    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    rel = clause.get("position", [""])[0]
    expected = reason.format(cls=clause["class"], n1=clause["count"] + 1, color=clause.get("color"), rel=rel,
                             opposite=opposite.get(rel))
    image = Image.fromarray(scene_for_prompt(record, WORLD, seed=5, wrong=wrong))
    correct, got, _ = score_image(image, record, ShapesDetector(), shapes_color_classifier())
    assert not correct and got.startswith(expected)
    good = Image.fromarray(scene_for_prompt(record, WORLD, seed=5))
    assert score_image(good, record, ShapesDetector(), shapes_color_classifier())[0]


def test_summary_matches_geneval_summary_arithmetic():
    rng = np.random.default_rng(0)
    records = [{"tag": tag, "metadata": json.dumps({"p": p, "tag": tag}), "correct": bool(rng.random() < 0.4)}
               for tag, n_prompts in (("single_object", 3), ("counting", 5), ("position", 2))
               for p in range(n_prompts) for _ in range(4)]
    df = pd.DataFrame(records)
    ours = summarize(records)
    task_scores = [g["correct"].mean() for _, g in df.groupby("tag", sort=False)]
    assert ours["overall"] == pytest.approx(np.mean(task_scores))
    assert ours["correct_images"] == pytest.approx(df["correct"].mean())
    assert ours["correct_prompts"] == pytest.approx(df.groupby("metadata")["correct"].any().mean())
    assert ours["missing_tasks"] == ["two_object", "colors", "color_attr"]


def test_separate_metadata_file_maps_folder_n_to_line_n(suite_dir, tmp_path):
    from genbench.errors import GenbenchError
    from genbench.geneval.score import iter_images

    root, suite = suite_dir
    pairs = list(iter_images(root, metadata=suite))
    assert [record for _, record in pairs] == [r for r in suite for _ in range(2)]
    folders = [f"{i:05d}" for i in range(len(suite)) for _ in range(2)]
    assert [p.parent.parent.name for p, _ in pairs] == folders
    with pytest.raises(GenbenchError, match="no prompt 3 in the metadata file"):
        list(iter_images(root, metadata=suite[:3]))
    (root / "00000" / "samples" / "notes.png").write_bytes(b"")  # not <digits>.png: ignored, as GenEval does
    assert len(list(iter_images(root))) == 2 * len(suite)
    (root / "00000" / "samples" / "notes.png").unlink()
