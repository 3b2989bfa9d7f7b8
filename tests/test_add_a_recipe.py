"""How to add a training recipe (docs/architecture.md), shown in this file alone: write its step as a function
of the trainer and one batch, declare a `RecipeSpec` (does it need an encoder, does it train the VAE, its
default latent normalisation) and `register_recipe` it. `genbench train --recipe NAME`, the run's resolved
config, checkpoints, resume and `--model` loading then take it; no other file changes. The fixture removes
it again."""

import json

import numpy as np
import pytest
from conftest import random_images, run_main

from genbench.errors import GenbenchError
from genbench.models.checkpoints import latest_checkpoint
from genbench.models.official import load_model
from genbench.training.data import ImageDataset
from genbench.training.recipes import (
    PRESETS,
    RECIPES,
    Batch,
    RecipeSpec,
    TrainConfig,
    Trainer,
    register_recipe,
)


def l1_step(trainer: Trainer, batch: Batch) -> dict[str, float]:
    """The sit recipe's step with an L1 velocity loss in place of the mean squared error."""
    z = trainer.frozen_latents(batch)
    trainer.sit.train()
    trainer.sit.latent_norm.eval()  # a frozen VAE: the latent statistics stay fixed
    t, eps = trainer.interpolant.sample(z)
    with trainer.autocast():
        v, target, _ = trainer.objective_train(z, t, eps, batch.labels)
        loss = (v - target).abs().mean()
    return {"loss": loss.item(), "grad_norm": trainer.update("sit", loss, trainer.sit)}


SIT_L1 = RecipeSpec("sit-l1", l1_step, latent_norm="none")


@pytest.fixture
def sit_l1():
    register_recipe(SIT_L1)
    yield SIT_L1
    del RECIPES[SIT_L1.name]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """16 blocky random 32 px images in 3 classes, as an ADM-style npz."""
    path = tmp_path_factory.mktemp("recipe") / "train.npz"
    np.savez(path, arr_0=random_images(16, 32, seed=3), arr_1=np.arange(16) % 3)
    return path


def toy_values() -> dict:
    """The tiny sit preset on the toy recipe; latent_norm left to the recipe's default."""
    values = {**PRESETS["tiny-sit"], "recipe": "sit-l1", "log_every": 1}
    del values["latent_norm"]
    return values


def test_a_registered_recipe_trains_through_its_own_step(sit_l1, data):
    trainer = Trainer(TrainConfig.from_dict(toy_values()), ImageDataset(data, 32))
    assert trainer.config.latent_norm == trainer.config.sit["latent_norm"] == "none"  # the recipe's default
    assert trainer.encoder is None and trainer.discriminator is None and set(trainer.optimizers) == {"sit"}
    logs = trainer.train_step()
    assert set(logs) == {"loss", "grad_norm"} and np.isfinite(logs["loss"])  # sit's step logs "denoise" too
    assert trainer.step == 1


def test_cli_trains_resumes_and_loads_a_registered_recipe(sit_l1, data, tmp_path, capsys, monkeypatch):
    config, out = tmp_path / "toy.json", tmp_path / "run"
    config.write_text(json.dumps(toy_values()))
    common = ["train", "--recipe", "sit-l1", "--data", data, "--out", out, "--device", "cpu"]
    code, _, stderr = run_main(capsys, monkeypatch, *common, "--config", config, "--steps", "2")
    assert code == 0, stderr
    saved = json.loads((out / "config.json").read_text())  # the resolved config, written with the run
    assert saved["recipe"] == "sit-l1" and saved["num_classes"] == 3 and saved["sit"]["num_classes"] == 3
    code, stdout, stderr = run_main(capsys, monkeypatch, *common, "--steps", "3", "--resume")
    assert code == 0, stderr
    assert "resumed" in stdout and latest_checkpoint(out).name == "0000003.pt"
    assert [json.loads(line)["step"] for line in open(out / "log.jsonl")] == [1, 2, 3]
    loaded = load_model(latest_checkpoint(out))
    assert loaded.config["recipe"] == "sit-l1" and loaded.sit.num_classes == 3 and not loaded.sit.training


def test_an_unregistered_recipe_is_refused(data):
    assert "sit-l1" not in RECIPES  # the fixture undid the registration
    with pytest.raises(GenbenchError, match="recipe 'sit-l1'; use one of"):
        TrainConfig.from_dict(toy_values())
    with pytest.raises(ValueError, match="registered already"):
        register_recipe(RECIPES["sit"])
