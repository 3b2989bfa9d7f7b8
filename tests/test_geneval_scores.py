"""GenEval scores with intervals and failure kinds: the prompt bootstrap agrees with scipy's percentile
bootstrap on one task and with a brute-force loop on the overall; failure kinds name the clause that
failed in GenEval's reason strings, as the rules write them for broken world scenes."""

import json

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from genbench.geneval.score import failure_kind, failure_reasons, prompt_bootstrap, score_image
from genbench.geneval.shapes_world import (
    SUITE_RESOLUTION,
    ShapesDetector,
    scene_for_prompt,
    shapes_color_classifier,
    shapes_suite,
)
from genbench.worlds import ShapesWorld


def _records(rng, tasks: dict[str, tuple[int, float]], per_prompt: int = 4) -> list[dict]:
    """Synthetic results.jsonl records: tag -> (prompts, chance an image is correct)."""
    return [{"tag": tag, "metadata": json.dumps({"tag": tag, "p": p}), "correct": bool(rng.random() < share),
             "reason": ""}
            for tag, (prompts, share) in tasks.items() for p in range(prompts) for _ in range(per_prompt)]


def test_task_interval_matches_scipy_percentile_bootstrap():
    records = _records(np.random.default_rng(0), {"counting": (40, 0.55)})
    per_prompt = np.array([np.mean([r["correct"] for r in records[4 * p: 4 * p + 4]]) for p in range(40)])
    ours = prompt_bootstrap(records, resamples=20000, seed=1)["counting"]
    scipy_ci = stats.bootstrap((per_prompt,), np.mean, n_resamples=20000, method="percentile",
                               rng=np.random.default_rng(2)).confidence_interval
    assert ours == pytest.approx((scipy_ci.low, scipy_ci.high), abs=0.01)
    assert ours[0] < np.mean(per_prompt) < ours[1]


def test_overall_interval_matches_a_brute_force_loop():
    tasks = {"single_object": (4, 0.9), "two_object": (12, 0.5), "position": (30, 0.2)}
    records = _records(np.random.default_rng(3), tasks)
    ours = prompt_bootstrap(records, resamples=4000, seed=0)
    rng = np.random.default_rng(99)
    groups: dict[tuple[str, int], list[bool]] = {}
    for r in records:
        groups.setdefault((r["tag"], json.loads(r["metadata"])["p"]), []).append(r["correct"])
    by_task = {tag: [groups[tag, p] for p in range(n)] for tag, (n, _) in tasks.items()}
    overall = []
    for _ in range(4000):
        scores = []
        for prompts in by_task.values():
            drawn = [prompts[i] for i in rng.integers(0, len(prompts), len(prompts))]
            scores.append(sum(map(sum, drawn)) / sum(map(len, drawn)))
        overall.append(np.mean(scores))
    assert ours["overall"] == pytest.approx(tuple(np.quantile(overall, [0.025, 0.975])), abs=0.012)
    assert set(ours) == {*tasks, "overall"}
    perfect = [r | {"correct": True} for r in records]
    assert prompt_bootstrap(perfect, resamples=10)["overall"] == (1.0, 1.0)


@pytest.mark.parametrize("tag, wrong, kind", [
    ("counting", "count", "too many objects"),
    ("colors", "color", "wrong colour"),
    ("color_attr", "color", "wrong colour"),
    ("position", "position", "wrong position"),
])
def test_failure_kinds_of_broken_scenes(tag, wrong, kind):
    world = ShapesWorld(SUITE_RESOLUTION)
    record = next(r for r in shapes_suite(0, 20) if r["tag"] == tag)
    image = Image.fromarray(scene_for_prompt(record, world, seed=4, wrong=wrong))
    correct, reason, _ = score_image(image, record, ShapesDetector(), shapes_color_classifier())
    assert not correct and failure_kind(reason) == kind


def test_failure_kinds_of_missing_objects_and_counts():
    assert failure_kind("expected circle>=1, found 0") == "object missing"
    assert failure_kind("expected cross>=1, found 0\nexpected circle>=1, found 0") == "object missing"
    assert failure_kind("no target for square to be above") == "no position target"
    assert failure_kind("expected square above target, found  target") == "wrong position"
    assert failure_kind("something else") == "other"
    records = [{"tag": "two_object", "correct": False, "reason": "expected circle>=1, found 0"},
               {"tag": "two_object", "correct": True, "reason": ""},
               {"tag": "counting", "correct": False, "reason": "expected square<4, found 4"},
               {"tag": "two_object", "correct": False, "reason": "expected cross>=1, found 0"}]
    expected = {"two_object": {"object missing": 2}, "counting": {"too many objects": 1}}
    assert failure_reasons(records) == expected
