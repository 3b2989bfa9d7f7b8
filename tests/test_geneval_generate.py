"""`genbench geneval generate`: prompts become class labels of the shapes world (or are skipped with the
reason), images land in GenEval's layout keyed by (seed, index), runs resume, and the loop closes with
`genbench geneval score`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_generate import _tiny_checkpoint

from genbench.geneval.generate import generate_geneval_images, plan_prompts, world_sampler
from genbench.geneval.shapes_world import shapes_suite
from genbench.worlds import ShapesWorld
from genbench.worlds.shapes import CLASS_NAMES, class_of


def _record(tag, *include, exclude=None):
    record = {"tag": tag, "include": list(include), "prompt": tag}
    return record | ({"exclude": exclude} if exclude else {})


def test_plan_maps_expressible_prompts_to_labels_and_skips_the_rest():
    records = [
        _record("colors", {"class": "triangle", "count": 1, "color": "blue"}),
        _record("single_object", {"class": "cross", "count": 1}),
        _record("two_object", {"class": "cross", "count": 1}, {"class": "circle", "count": 1}),
        _record("counting", {"class": "square", "count": 3}, exclude=[{"class": "square", "count": 4}]),
        _record("single_object", {"class": "dog", "count": 1}),
        _record("colors", {"class": "circle", "count": 1, "color": "white"}),
    ]
    plan = plan_prompts(records, CLASS_NAMES, images_per_prompt=8, seed=3)
    assert [r["include"][0]["class"] for r, _ in plan.sampled] == ["triangle", "cross"]
    blue_triangle, crosses = plan.sampled[0][1], plan.sampled[1][1]
    assert blue_triangle == [CLASS_NAMES.index("blue triangle")] * 8
    assert {class_of(label)[0] for label in crosses} == {"cross"}
    assert len({class_of(label)[1] for label in crosses}) > 1  # a free colour is drawn per image
    assert plan_prompts(records, CLASS_NAMES, 8, seed=3).sampled[1][1] == crosses  # deterministic
    reasons = [reason for _, reason in plan.skipped]
    assert "2 object groups" in reasons[0] and "1 object groups" in reasons[1]  # counting has an exclude
    assert "'dog'" in reasons[2] and "'white'" in reasons[3]


def test_world_images_land_in_layout_and_resume(tmp_path):
    world = ShapesWorld(32)
    records = shapes_suite(seed=0, per_task=3)
    plan = plan_prompts(records, CLASS_NAMES, images_per_prompt=2, seed=5)
    written = generate_geneval_images(world_sampler(world, 5), plan, tmp_path, batch_size=3)
    assert written == 2 * len(plan.sampled)
    folder = tmp_path / "00001"
    assert json.loads((folder / "metadata.jsonl").read_text()) == plan.sampled[1][0]
    expected = world.sample_one(5, 1 * 2 + 1, plan.sampled[1][1][1])[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "samples" / "0001.png")), expected)
    skipped = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == len(plan.skipped) > 0 and all(s["reason"] for s in skipped)

    (folder / "samples" / "0001.png").unlink()
    assert generate_geneval_images(world_sampler(world, 5), plan, tmp_path, batch_size=3) == 1
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "samples" / "0001.png")), expected)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "genbench", "geneval", *args], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_cli_generates_from_a_checkpoint_and_scores_the_folder(tmp_path):
    _tiny_checkpoint(tmp_path / "model.pt", num_classes=len(CLASS_NAMES))
    out = tmp_path / "images"
    run = _cli("generate", "--model", str(tmp_path / "model.pt"), "--out", str(out), "--per-task", "2",
               "--images-per-prompt", "2", "--steps", "2", "--batch-size", "5")
    assert run.returncode == 0, run.stderr
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == len(plan_prompts(shapes_suite(0, 2), CLASS_NAMES, 2, 0).sampled)
    assert all(len(list((f / "samples").glob("*.png"))) == 2 for f in folders)
    assert json.loads((out / "generation.json").read_text())["steps"] == 2

    score = _cli("score", str(out), "--detector", "shapes", "--out", str(tmp_path / "results.jsonl"))
    assert score.returncode == 0, score.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["provenance"]["geneval"]["generation"]["model"]["file"] == str(tmp_path / "model.pt")
    assert set(results["provenance"]["geneval"]["missing_tasks"]) == {"two_object", "counting", "position",
                                                                      "color_attr"}


def test_cli_refuses_a_model_of_another_world(tmp_path):
    _tiny_checkpoint(tmp_path / "model.pt", num_classes=5)
    run = _cli("generate", "--model", str(tmp_path / "model.pt"), "--out", str(tmp_path / "o"))
    assert run.returncode == 2
    assert "has 5 classes, the shapes world 20" in run.stderr and "Traceback" not in run.stderr
