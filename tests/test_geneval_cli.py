"""`genbench geneval prompts|score` as a user runs them: files written, table printed, errors as one line."""

import json
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
from PIL import Image

from genbench.cli import main
from genbench.geneval.shapes_world import scene_for_prompt
from genbench.results import load_results
from genbench.worlds import ShapesWorld


@pytest.fixture
def genbench(monkeypatch, capsys):
    """Run the console entry point in-process (a subprocess would pay torch's import for every call)."""
    def run(*args):
        monkeypatch.setattr(sys, "argv", ["genbench", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def test_prompts_then_score_shapes_end_to_end(tmp_path, genbench):
    suite = tmp_path / "suite"
    made = genbench("geneval", "prompts", "--out", suite, "--world", "shapes", "--seed", 0, "--per-task", 2)
    assert made.returncode == 0, made.stderr
    records = [json.loads(line) for line in (suite / "evaluation_metadata.jsonl").read_text().splitlines()]
    world = ShapesWorld(64)
    for index, record in enumerate(records):
        for k, wrong in enumerate((None, "count")):  # the second image of each prompt has one object too many
            image = scene_for_prompt(record, world, seed=10 * index + k, wrong=wrong)
            Image.fromarray(image).save(suite / f"{index:05d}" / "samples" / f"{k:04d}.png")
    scored = genbench("geneval", "score", suite, "--detector", "shapes", "--out", tmp_path / "results.jsonl")
    assert scored.returncode == 0, scored.stderr
    assert "overall (mean of tasks)" in scored.stdout and "counting" in scored.stdout
    df = pd.read_json(tmp_path / "results.jsonl", orient="records", lines=True)
    assert len(df) == 2 * len(records)
    first, extra = df[df.filename.str.endswith("0000.png")], df[df.filename.str.endswith("0001.png")]
    assert first.correct.all()
    # one object too many fails counting through its exclude clause, and not single objects ...
    counting = extra[extra.tag == "counting"]
    assert (~counting.correct).all() and counting.reason.str.contains("<").all()
    assert extra[extra.tag == "single_object"].correct.all()
    result = load_results(tmp_path / "results.json")
    counting_share = 0.5
    assert result["metrics"]["geneval_counting"] == counting_share
    assert result["metrics"]["geneval_single_object"] == 1.0
    assert result["metrics"]["geneval_correct_prompts"] == 1.0
    assert result["provenance"]["geneval"]["rules"]["threshold"] == 0.3
    # ... and the thresholds are overridable from the command line
    rescored = genbench("geneval", "score", suite, "--detector", "shapes", "--out", tmp_path / "r2.jsonl",
                        "--threshold", "1.0", "--counting-threshold", "1.0")
    assert load_results(tmp_path / "r2.json")["metrics"]["geneval_overall"] == 0.0, rescored.stderr


def test_bad_metadata_and_missing_weights_are_one_line_errors(tmp_path, genbench, monkeypatch):
    meta = tmp_path / "evaluation_metadata.jsonl"
    meta.write_text('{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "x"}\n'
                    '{"tag": "single_object", "include": []}\n')
    bad = genbench("geneval", "prompts", "--out", tmp_path / "s", "--metadata", meta)
    assert bad.returncode == 2 and "evaluation_metadata.jsonl:2:" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "s").exists()
    suite = tmp_path / "suite"
    assert genbench("geneval", "prompts", "--out", suite, "--per-task", 1).returncode == 0
    Image.new("RGB", (8, 8)).save(suite / "00000" / "samples" / "0000.png")
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    missing = genbench("geneval", "score", suite, "--out", tmp_path / "r.jsonl")
    assert missing.returncode == 2 and "mask2former-swin-small-coco-instance" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "r.jsonl").exists()
