"""The miniature text-to-image model of the shapes world: caption grammar and hold-out, the pixel-space
autoencoder, TextSiT (caption indices = token ids, null caption, cross and joint attention, REPA features),
and the whole loop: a tiny TextSiT trains a few steps with genbench's trainer, samples deterministically
through `geneval generate`, and its folder scores through `geneval score` on all six tasks."""

import json

import numpy as np
import pytest
import torch
from test_geneval_cli import genbench  # noqa: F401  (fixture)

from genbench.errors import GenbenchError
from genbench.geneval.prompts import TASKS
from genbench.geneval.shapes_world import shapes_suite
from genbench.geneval.t2i import (
    caption_index,
    grammar_caption_ids,
    grammar_prompts,
    held_out,
    shapes_tokenizer,
    training_prompts,
    write_caption_set,
)
from genbench.models.sit import SiT, TextSiT, build_sit
from genbench.models.vae import build_vae
from genbench.training.recipes import PRESETS


def test_grammar_covers_the_suite_and_holds_out_combinations():
    grammar = grammar_prompts()
    assert len(grammar) == len({r["prompt"] for r in grammar}) == 336
    suite = shapes_suite(0, 100)
    assert all(grammar[caption_index(r)]["prompt"] == r["prompt"] for r in suite)
    held = [r for r in grammar if held_out(r)]
    assert {r["tag"] for r in held} == {"colors", "color_attr", "position"}
    assert "a photo of a red triangle" in {r["prompt"] for r in held}
    assert "a photo of a square left of a circle" in {r["prompt"] for r in held}
    # every word of a held-out prompt is still seen in training captions
    seen_words = {w for r in training_prompts() for w in r["prompt"].split()}
    assert all(set(r["prompt"].split()) <= seen_words for r in held)
    assert PRESETS["t2i-shapes"]["num_classes"] == len(grammar)


def test_tokenizer_encodes_the_grammar_and_refuses_unknown_words():
    tokenizer = shapes_tokenizer()
    ids, vocab = grammar_caption_ids()
    assert ids.shape == (336, tokenizer.max_tokens) and vocab == tokenizer.vocab_size == 26
    words = ["a", "photo", "of", "a", "blue", "cross", "and", "a", "red", "circle"]
    assert tokenizer.encode(" ".join(words)) == [tokenizer.ids[w] for w in words] + [0, 0]
    with pytest.raises(GenbenchError, match="'orange'"):
        tokenizer.encode("a photo of an orange circle")
    with pytest.raises(GenbenchError, match="not in the shapes grammar"):
        caption_index({"prompt": "a photo of a dog"})


def test_caption_set_never_shows_held_out_prompts(tmp_path):
    path = write_caption_set(tmp_path / "captions.npz", 60, seed=4)
    with np.load(path) as data:
        images, labels = data["arr_0"], data["arr_1"]
    assert images.shape == (60, 64, 64, 3) and labels.shape == (60,)
    grammar = grammar_prompts()
    assert not any(held_out(grammar[i]) for i in labels)
    assert len({grammar[i]["tag"] for i in labels}) == len(TASKS)


def test_pixel_space_autoencoder_is_exact():
    vae = build_vae("pixels-f4")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z = vae.encode(x).sample()
    assert z.shape == (2, 48, 16, 16) and vae.downsample_factor == 4
    reference = x.numpy().reshape(2, 3, 16, 4, 16, 4).transpose(0, 1, 3, 5, 2, 4).reshape(2, 48, 16, 16)
    np.testing.assert_allclose(z.numpy(), reference, atol=1e-5)  # posterior std e^-15
    assert torch.equal(vae.decode(vae.encode(x).mean), x)


@pytest.mark.parametrize("attention", ["cross", "joint"])
def test_text_sit_reads_captions(attention):
    torch.manual_seed(0)
    sit = build_sit("TextSiT-T/2", input_size=8, in_channels=4, num_classes=336, z_dim=16,
                    text_attention=attention)
    assert isinstance(sit, TextSiT)
    for parameter in sit.parameters():  # move off adaLN-Zero's exact zeros so the text can show
        parameter.data.add_(0.05 * torch.randn_like(parameter))
    sit.eval()
    x, t = torch.randn(3, 4, 8, 8), torch.rand(3)
    y = torch.tensor([0, 100, 336])  # two captions and the null caption
    v = sit(x, t, y)
    assert torch.equal(v, sit(x, t, sit.caption_ids[y]))  # indices and token ids are one condition
    assert torch.equal(sit.caption_ids[336], torch.full((12,), 26))
    assert not torch.allclose(v[0], sit(x[:1], t[:1], torch.tensor([100])))  # the caption matters
    _, projected = sit.forward_features(x, t, y, align_only=True)
    assert projected.shape == (3, 16, 16)
    full, again = sit.forward_features(x, t, y)
    assert torch.allclose(full, v, atol=1e-6) and torch.allclose(again, projected, atol=1e-6)


def test_class_conditional_sit_is_unchanged():
    assert type(build_sit("SiT-T/2", num_classes=20)) is SiT
    with pytest.raises(ValueError, match="336 captions"):
        build_sit("TextSiT-T/2", num_classes=20)




@pytest.mark.slow
def test_tiny_text_model_trains_samples_deterministically_and_scores(tmp_path, genbench):  # noqa: F811
    data = write_caption_set(tmp_path / "captions.npz", 16, seed=0)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**PRESETS["t2i-shapes"], "sit": {"name": "TextSiT-T/2"}, "batch_size": 4,
                                  "steps": 3, "checkpoint_every": 3, "log_every": 1, "ema_decay": 0.5}))
    trained = genbench("train", "--recipe", "sit", "--config", config, "--data", data,
                       "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    checkpoint = tmp_path / "run" / "checkpoints" / "0000003.pt"
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(np.isfinite(losses))

    folders = []
    for name, batch in (("a", 3), ("b", 5)):
        made = genbench("geneval", "generate", "--model", checkpoint, "--out", tmp_path / name,
                        "--per-task", 1, "--images-per-prompt", 2, "--steps", 2, "--cfg-scale", 2.0,
                        "--batch-size", batch)
        assert made.returncode == 0, made.stderr
        folders.append(tmp_path / name)
    suite = shapes_suite(0, 1)
    pngs = sorted(p.relative_to(folders[0]) for p in folders[0].glob("*/samples/*.png"))
    assert len(pngs) == 2 * len(suite)
    for png in pngs:  # same seed, different batch boundaries: the same images
        assert (folders[0] / png).read_bytes() == (folders[1] / png).read_bytes()
    generation = json.loads((folders[0] / "generation.json").read_text())
    assert generation["prompts"] == len(suite) and generation["cfg_scale"] == 2.0

    scored = genbench("geneval", "score", folders[0], "--detector", "shapes", "--out", tmp_path / "r.jsonl",
                      "--bootstrap", 50)
    assert scored.returncode == 0, scored.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["provenance"]["geneval"]["missing_tasks"] == []
    assert {f"geneval_{t}" for t in TASKS} <= set(results["metrics"])
    assert results["metrics"]["geneval_overall_ci_low"] <= results["metrics"]["geneval_overall"]


def test_x_prediction_returns_the_velocity_of_its_clean_image():
    """A fresh TextSiT outputs exactly 0 (adaLN-Zero), so its x-prediction is x0 = 0 and its velocity
    (x_t - x0) / max(t, 0.05); a v-predicting one returns the 0 itself."""
    x, t, y = torch.randn(3, 4, 8, 8), torch.tensor([0.01, 0.5, 1.0]), torch.tensor([0, 5, 336])
    x_model = build_sit("TextSiT-T/2", input_size=8, in_channels=4, num_classes=336, z_dim=0, prediction="x")
    v_model = build_sit("TextSiT-T/2", input_size=8, in_channels=4, num_classes=336, z_dim=0)
    expected = x / torch.tensor([0.05, 0.5, 1.0]).view(-1, 1, 1, 1)
    torch.testing.assert_close(x_model.eval()(x, t, y), expected)
    assert torch.equal(v_model.eval()(x, t, y), torch.zeros_like(x))


def test_shipped_text_to_image_model_loads_after_its_checksum():
    from genbench.geneval.t2i import resolve_t2i_model
    from genbench.models import load_model_checkpoint

    loaded = load_model_checkpoint(resolve_t2i_model("demo-t2i"))
    assert isinstance(loaded.sit, TextSiT) and loaded.sit.prediction == "x"
    assert loaded.sit.text_attention == "joint" and loaded.sit.num_classes == 336
    assert torch.equal(loaded.sit.caption_ids[:336], grammar_caption_ids()[0])
