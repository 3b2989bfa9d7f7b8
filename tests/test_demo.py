"""The shapes-world demo: shipped checkpoints and reference, `genbench eval --model demo`, the rebuild
script at reduced steps, and the CI regression check of the demo row."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_main

from genbench.errors import GenbenchError
from genbench.leaderboard import metric_direction, read_board
from genbench.models.checkpoints import load_model_checkpoint
from genbench.reference import ReferenceStats
from genbench.results import load_results
from genbench.sources import read_checkpoint
from genbench.worlds import demo

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, recipe", [("demo", demo.DEFAULT_RECIPE), ("demo:sit", "sit"),
                                          ("demo:repa", "repa"), ("demo:repae", "repae")])
def test_demo_checkpoints_match_their_sha_and_load(name, recipe):
    path = demo.resolve_demo_model(name)
    assert path.name == f"demo-{recipe}.pt"
    loaded = load_model_checkpoint(path)  # weights_only read, strict load
    assert loaded.config["recipe"] == recipe
    assert loaded.sit.num_classes == 20 and loaded.vae is not None
    assert set(read_checkpoint(path)) == {"ema", "vae", "config", "step"}
    assert demo.describe_demo(name).startswith(f"{name}: the {recipe} recipe's checkpoint")


def test_the_three_recipes_share_steps_sit_and_starting_tokenizer():
    states = {r: read_checkpoint(demo.resolve_demo_model(f"demo:{r}")) for r in ("sit", "repa", "repae")}
    # retrained together (issue 14) at equal steps from the same tokenizer
    assert {int(s["step"]) for s in states.values()} == {4000}
    configs = {r: json.loads(s["config"]) for r, s in states.items()}
    sits = [{k: v for k, v in configs[r]["sit"].items() if k != "z_dim"} for r in states]
    assert sits[0] == sits[1] == sits[2]  # the same SiT; only the projector width (z_dim) differs
    assert len({configs[r]["vae_weights"].rsplit("/", 1)[-1] for r in states}) == 1  # one starting tokenizer
    vae = {r: s["vae"] for r, s in states.items()}
    assert all(torch.equal(vae["sit"][k], vae["repa"][k]) for k in vae["sit"])  # SiT and REPA: frozen VAE
    assert not all(torch.equal(vae["sit"][k], vae["repae"][k]) for k in vae["sit"])  # REPA-E tuned its VAE
    assert configs["repae"]["perceptual_net"] == "shapes" and configs["repae"]["vae_lr"] == 1e-4


def test_shipped_tokenizer_keeps_the_classes():
    """Issue 14's ceiling: the world classifier finds the class of >= 85% of the shipped (frozen) tokenizer's
    reconstructions of 1,000 held-out images (README: 86.2%; the previous tokenizer: 78.0%)."""
    from genbench.backbones import build_extractor
    from genbench.training.tokenizer_pretraining import reconstruction_fidelity
    from genbench.worlds import ShapesWorld

    images, labels, _ = ShapesWorld(32).sample(1000, seed=3)
    vae = load_model_checkpoint(demo.resolve_demo_model("demo:sit")).vae
    fidelity = reconstruction_fidelity(vae, torch.from_numpy(images), torch.from_numpy(labels),
                                       build_extractor("shapes").net)
    assert fidelity["class_acc"] == pytest.approx(0.862, abs=1e-3)
    assert fidelity["colour_acc"] == 1.0 and fidelity["class_acc_real"] == pytest.approx(0.919, abs=1e-3)


def test_demo_names_and_tampered_files(tmp_path, monkeypatch):
    assert demo.demo_recipe("runs/x.pt") is None
    with pytest.raises(GenbenchError, match="unknown demo"):
        demo.demo_recipe("demo:dit")
    tampered = tmp_path / "demo-sit.pt"
    tampered.write_bytes(demo.resolve_demo_model("demo:sit").read_bytes() + b"x")
    monkeypatch.setattr(demo, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(GenbenchError, match="SHA-256"):
        demo.resolve_demo_model("demo:sit")


def test_shipped_reference_is_the_shapes_world_built_with_its_extractor():
    reference = ReferenceStats.load(demo.demo_reference())
    assert reference.meta["extractor"] == "shapes" and reference.meta["count"] == 5000


def test_eval_demo_at_reduced_count(tmp_path, capsys, monkeypatch):
    out = tmp_path / "results.json"
    code, stdout, _ = run_main(capsys, monkeypatch, "eval", "--model", "demo:repa", "--num", "40", "--steps",
                               "4", "--metrics", "fid,is,pr,kid", "--out", out)
    assert code == 0, stdout
    results = load_results(out)
    assert results["provenance"]["extractor"] == "shapes"
    assert results["provenance"]["sampling"]["num_samples"] == 40
    assert results["provenance"]["sampling"]["num_steps"] == 4
    assert results["metrics"]["fid"] > 0 and 1 <= results["metrics"]["is"] <= 20
    assert "fid" in stdout and "demo:repa: the repa recipe's checkpoint demo-repa.pt after 4,000" in stdout
    # 40 samples: KID's subsets shrink to 40 rows (clean-fid's rule), said in provenance and the note
    assert results["provenance"]["metric_options"]["kid_subset_size"] == 40
    assert "KID on subsets of 40 rows" in results["provenance"]["note"]


@pytest.mark.slow
def test_demo_reproduces_its_leaderboard_row(tmp_path, capsys, monkeypatch):
    """The project's own CI regression check: the full demo run against the stored `demo` row."""
    out = tmp_path / "results.json"
    code, stdout, _ = run_main(capsys, monkeypatch, "eval", "--model", "demo", "--out", out)
    assert code == 0, stdout
    row = read_board(ROOT / "leaderboards" / "shapes.csv").query("name == 'demo'").iloc[-1]
    measured = load_results(out)["metrics"]
    # every metric the row and the run both have (class_acc joins once the board row carries it)
    shared = [m for m in measured if metric_direction(m) is not None and m in row.index and pd.notna(row[m])]
    assert {"fid", "sfid", "is", "precision", "recall", "kid"} <= set(shared) and "class_acc" in measured
    for metric in shared:
        assert measured[metric] == pytest.approx(row[metric], rel=1e-4, abs=1e-6), metric
    code, stdout, _ = run_main(capsys, monkeypatch, "check", out, "--baseline",
                               ROOT / "leaderboards" / "shapes.csv", "--row", "demo")
    assert code == 0, stdout


@pytest.mark.slow
def test_training_script_rebuilds_the_demo_checkpoints_at_reduced_steps(tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "train_shapes_models.py"), "--out", str(tmp_path),
               "--train-images", "64", "--vae-segments", "1,1", "--vae-batch-size", "8", "--disc-steps", "2",
               "--steps", "2", "--batch-size", "8", "--checkpoint-every", "1"]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    for recipe in ("sit", "repa", "repae"):
        path = tmp_path / f"demo-{recipe}.pt"
        loaded = load_model_checkpoint(path)
        assert loaded.config["recipe"] == recipe
        assert int(read_checkpoint(path)["step"]) == 2
        assert len(list((tmp_path / recipe / "checkpoints").glob("*.pt"))) == 2
        assert loaded.vae.z_channels == 8 and loaded.sit.grid_size == 4  # 8 x 8 x 8 latents, patch 2
    repae = load_model_checkpoint(tmp_path / "demo-repae.pt").config
    # REPA-E's whole regulariser: the second world network's perceptual term and the pre-trained discriminator
    assert repae["perceptual_net"] == "shapes" and repae["disc_weights"] == str(tmp_path / "discriminator.pt")
    assert (tmp_path / "discriminator.pt").is_file()
    # run again with more steps: the tokenizer is kept and the run continues from its latest checkpoint
    tokenizer = (tmp_path / "vae.safetensors").stat().st_mtime_ns
    result = subprocess.run([*command[:-6], "--steps", "3", "--batch-size", "8", "--checkpoint-every", "1",
                             "--recipes", "sit"], check=True, capture_output=True, cwd=ROOT, text=True)
    assert f"sit: resumed {tmp_path / 'sit' / 'checkpoints' / '0000002.pt'} at step 2" in result.stdout
    assert (tmp_path / "vae.safetensors").stat().st_mtime_ns == tokenizer
    assert int(read_checkpoint(tmp_path / "demo-sit.pt")["step"]) == 3
    assert len(list((tmp_path / "sit" / "checkpoints").glob("*.pt"))) == 3
    # a longer segment list extends the tokenizer from its last kept segment instead of starting over
    segments = tmp_path / "vae-segments"
    assert sorted(p.name for p in segments.iterdir()) == ["vae-00001.safetensors", "vae-00002.safetensors"]
    kept = (segments / "vae-00002.safetensors").stat().st_mtime_ns
    (tmp_path / "vae.safetensors").unlink()
    result = subprocess.run([*command[:6], "--vae-segments", "1,1,1", "--vae-batch-size", "8", "--disc-steps",
                             "2", "--recipes", ""], check=True, capture_output=True, cwd=ROOT, text=True)
    assert (segments / "vae-00002.safetensors").stat().st_mtime_ns == kept
    assert (segments / "vae-00003.safetensors").is_file() and (tmp_path / "vae.safetensors").is_file()
    assert "tokenizer after 3 steps: class_acc 0." in result.stdout
