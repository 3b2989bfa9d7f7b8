"""`genbench eval --model CKPT`: sample a checkpoint, then evaluate, one results file with the sampling
settings in its provenance."""

import json
import sys

import numpy as np
import pytest
from conftest import random_images
from PIL import Image
from test_generate import _tiny_checkpoint

from genbench.cli import main
from genbench.evaluate import build_reference
from genbench.extractors.inception import InceptionFeatures
from genbench.sources import open_source


@pytest.mark.slow
def test_eval_model_samples_then_evaluates(tmp_path, inception_weights, monkeypatch):
    _tiny_checkpoint(tmp_path / "model.pt")
    extractor = InceptionFeatures.from_weights(inception_weights)
    reference = build_reference(open_source(random_images(6, 32, seed=3)), extractor, batch_size=6)
    reference.save(tmp_path / "ref.npz")
    args = ["eval", "--model", tmp_path / "model.pt", "--num", 6, "--steps", 3, "--sampler", "ode",
            "--ref", tmp_path / "ref.npz", "--weights", inception_weights, "--metrics", "fid,is",
            "--batch-size", 6, "--out", tmp_path / "results.json"]
    monkeypatch.setattr(sys, "argv", ["genbench", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    sampling = results["provenance"]["sampling"]
    assert sampling["num_samples"] == 6 and sampling["num_steps"] == 3 and sampling["sampler"] == "ode"
    assert results["provenance"]["samples"]["count"] == 6
    assert np.isfinite(results["metrics"]["fid"]) and results["metrics"]["fid"] > 0
    with np.load(tmp_path / "results.samples.npz") as data:
        assert data["arr_0"].shape == (6, 32, 32, 3) and data["arr_0"].dtype == np.uint8
        # eval's grid of the samples it evaluated, next to --out (sample's own grid is not written)
        grid = np.asarray(Image.open(tmp_path / "results.grid.png"))
        np.testing.assert_array_equal(grid[2:34, 2:34], data["arr_0"][0])
    assert not (tmp_path / "results.samples.grid.png").exists()
