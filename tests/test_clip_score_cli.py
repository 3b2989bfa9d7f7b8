"""`genbench clip-score` on a tiny saved open_clip model, checked against a brute-force CLIP score computed
here with open_clip's own model, transforms and tokenizer on the same files."""

import json

import numpy as np
import open_clip
import pytest
import torch
from conftest import random_images, run_main
from PIL import Image
from test_extractors_extra import clip_folder, save_tiny_clip  # noqa: F401  (fixture)

from genbench.io import sha256_file


def brute_scores(folder, images, prompts) -> np.ndarray:
    """100 * max(cos, 0) per (image file, prompt), open_clip's pipeline end to end, float64 cosine."""
    model, _, transform = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        x = model.eval().encode_image(torch.stack([transform(Image.open(p).convert("RGB")) for p in images]))
        t = model.encode_text(tokenizer(prompts))
    x, t = x.double().numpy(), t.double().numpy()
    cosine = (x * t).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(t, axis=1)
    return 100 * np.maximum(cosine, 0)


@pytest.fixture(scope="module")
def clip_folder_64(tmp_path_factory):
    """A tiny CLIP reading 64 px, the shapes suite's resolution: the world's GenEval images need no resize,
    so open_clip's PIL transform and genbench's tensor one do the same arithmetic and the comparison below
    checks the score itself (resizing is checked in test_extractors_extra)."""
    return save_tiny_clip(tmp_path_factory.mktemp("clip-tiny-64"), image_size=64)


def test_clip_score_of_a_geneval_folder_matches_open_clip_brute_force(tmp_path, capsys, monkeypatch,
                                                                       clip_folder_64):
    images_dir = tmp_path / "geneval"
    code, _, err = run_main(capsys, monkeypatch, "geneval", "generate", "--model", "world",
                            "--out", images_dir, "--per-task", "2", "--images-per-prompt", "2")
    assert code == 0, err
    out = tmp_path / "clip.json"
    code, stdout, err = run_main(capsys, monkeypatch, "clip-score", images_dir, "--model", "clip",
                                 "--weights", clip_folder_64, "--out", out, "--batch-size", "3")
    assert code == 0, err

    files = sorted(images_dir.glob("*/samples/*.png"))
    prompts = [json.loads((f.parent.parent / "metadata.jsonl").read_text())["prompt"] for f in files]
    expected = brute_scores(clip_folder_64, files, prompts)
    assert (expected > 0).any()  # random weights: the scores are not all clamped away
    document = json.loads(out.read_text())
    assert document["metrics"]["clip_score"] == pytest.approx(expected.mean(), abs=1e-3)
    per_prompt = document["provenance"]["clip_score"]["per_prompt"]
    assert [r["prompt"] for r in per_prompt] == list(dict.fromkeys(prompts))
    for record in per_prompt:
        mine = expected[[p == record["prompt"] for p in prompts]]
        assert record["images"] == 2 and record["clip_score"] == pytest.approx(mine.mean(), abs=1e-3)
    provenance = document["provenance"]
    assert provenance["extractor"] == "clip" and provenance["num_samples"] == len(files)
    assert provenance["weights_sha256"] == sha256_file(clip_folder_64 / "open_clip_model.safetensors")
    assert "mean over all pairs" in stdout and per_prompt[0]["prompt"] in stdout


def test_pairs_file_with_mixed_sizes_and_repeated_prompts(tmp_path, capsys, monkeypatch,
                                                          clip_folder):  # noqa: F811
    square, wide = random_images(3, 32, seed=5), random_images(2, 40, seed=6)[:, 4:36]  # 32x32, 32x40
    names = []
    for i, image in enumerate([*square, *wide]):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        names.append(f"{i}.png")
    prompts = ["a red circle", "a blue square", "a red circle", "two green crosses", "a red circle"]
    pairs = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"image": n, "prompt": p}) for n, p in zip(names, prompts, strict=True)]
    pairs.write_text("\n\n".join(lines))  # blank lines are skipped
    out = tmp_path / "clip.json"
    code, _, err = run_main(capsys, monkeypatch, "clip-score", "--pairs", pairs, "--model", "clip",
                            "--weights", clip_folder, "--out", out)
    assert code == 0, err
    expected = brute_scores(clip_folder, [tmp_path / n for n in names], prompts)
    document = json.loads(out.read_text())
    assert document["metrics"]["clip_score"] == pytest.approx(expected.mean(), abs=1e-3)
    by_prompt = {r["prompt"]: r for r in document["provenance"]["clip_score"]["per_prompt"]}
    assert by_prompt["a red circle"]["images"] == 3
    assert by_prompt["a red circle"]["clip_score"] == pytest.approx(expected[[0, 2, 4]].mean(), abs=1e-3)
    assert by_prompt["two green crosses"]["clip_score"] == pytest.approx(expected[3], abs=1e-3)


def test_bad_inputs_give_one_line_and_no_results_file(tmp_path, capsys, monkeypatch, clip_folder):  # noqa: F811
    Image.fromarray(random_images(1, 32, seed=0)[0]).save(tmp_path / "a.png")
    out = tmp_path / "clip.json"
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"image": "a.png", "prompt": "x"}\n{"image": "a.png"\n')
    no_prompt = tmp_path / "no_prompt.jsonl"
    no_prompt.write_text('{"image": "a.png", "caption": "x"}\n')
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"image": "gone.png", "prompt": "x"}\n')
    weights = ["--weights", clip_folder, "--out", out]
    cases = {
        "neither": ([], "give exactly one of IMAGES_DIR"),
        "both": ([tmp_path, "--pairs", missing], "give exactly one of IMAGES_DIR"),
        "not clip": (["--pairs", missing, "--model", "dinov2"], "CLIP score needs a CLIP model"),
        "bad json": (["--pairs", bad_json, "--model", "clip"], f"{bad_json}:2: not valid JSON"),
        "no prompt": (["--pairs", no_prompt, "--model", "clip"], f"{no_prompt}:1: write {{\"image\""),
        "missing image": (["--pairs", missing, "--model", "clip"], f"{tmp_path / 'gone.png'}: no such image"),
        "not geneval": ([tmp_path, "--model", "clip"], "no <NNNNN>/ prompt folders"),
    }
    for name, (args, message) in cases.items():
        code, _, err = run_main(capsys, monkeypatch, "clip-score", *args, *weights)
        assert code == 2, name
        assert message in err.replace("\n", ""), (name, err)
        assert "Traceback" not in err and not out.exists(), name
