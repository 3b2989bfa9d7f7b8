"""The shapes feature network as an extractor and REPA encoder: shipped weights (SHA-256, safetensors),
held-out accuracy, feature dimensions and layout, tokens, the training script at reduced steps, and FID in
its feature space separating the world from corrupted versions of it."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from genbench.metrics.frechet import frechet_distance
from safetensors.torch import load_file

from genbench.errors import GenbenchError
from genbench.extractors.shapes_features import (
    WEIGHTS_PATH,
    WEIGHTS_SHA256,
    ShapesFeatures,
    build_shapes_encoder,
)
from genbench.io import sha256_file
from genbench.worlds import ShapesWorld

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_shapes_features.py"


@pytest.fixture(scope="module")
def extractor():
    return ShapesFeatures.from_weights()


@pytest.fixture(scope="module")
def fresh():
    """A stream no training run used (training uses 1000 + seed and 2000 + seed)."""
    return ShapesWorld(32).sample(200, seed=777)


def test_shipped_weights_match_recorded_sha256_and_are_small():
    assert sha256_file(WEIGHTS_PATH) == WEIGHTS_SHA256
    assert WEIGHTS_PATH.stat().st_size < 2 * 2**20
    assert "head.weight" in load_file(str(WEIGHTS_PATH))


def test_heldout_accuracy_is_high(extractor, fresh):
    images, labels, _ = fresh
    logits = extractor(torch.from_numpy(images))["logits"]
    accuracy = (logits.argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9, accuracy


def test_feature_dims_and_spatial_layout(extractor, fresh):
    images = torch.from_numpy(fresh[0][:8])
    out = extractor(images)
    assert extractor.name == "shapes" and extractor.resize_mode == "none"
    assert extractor.weights_sha256 == WEIGHTS_SHA256
    assert extractor.feature_dims == {"pool": 192, "logits": 20, "spatial": 256}
    for key, dim in extractor.feature_dims.items():
        assert out[key].shape == (8, dim) and out[key].dtype == torch.float32
    middle = extractor.net.features(images)["middle"]  # [8, 96, 8, 8]
    spatial = out["spatial"].view(8, 8, 8, 4)  # HWC
    torch.testing.assert_close(spatial[:, 2, 5, 3], middle[:, 3, 2, 5])
    torch.testing.assert_close(out["logits"], extractor.net.head(out["pool"]))


def test_tokens_pool_the_middle_map_to_the_requested_grid(extractor, fresh):
    images = torch.from_numpy(fresh[0][:4])
    fine = extractor.tokens(images, grid=8)
    coarse = extractor.tokens(images, grid=4)
    assert fine.shape == (4, 64, 96) and coarse.shape == (4, 16, 96)
    expected = F.avg_pool2d(fine.transpose(1, 2).reshape(4, 96, 8, 8), 2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(coarse, expected)
    encoder = build_shapes_encoder(32, grid=4)
    assert encoder.name == "shapes" and encoder.z_dim == 96
    torch.testing.assert_close(encoder(images), coarse)
    torch.testing.assert_close(encoder(images.float() / 255), coarse)  # [0, 1] floats read the same


def test_wrong_resolution_and_bad_weights_are_readable(extractor, tmp_path):
    with pytest.raises(GenbenchError, match=r"reads \[N, 3, 32, 32\]"):
        extractor(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(GenbenchError, match="resolution 64"):
        build_shapes_encoder(64)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(GenbenchError, match="not a shapes feature network"):
        ShapesFeatures.from_weights(junk)
    with pytest.raises(GenbenchError, match="not found"):
        ShapesFeatures.from_weights(tmp_path / "missing.safetensors")


def _run_script(argv):
    spec = importlib.util.spec_from_file_location("train_shapes_features", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


def test_training_script_at_reduced_steps_is_deterministic_and_loadable(tmp_path, fresh):
    args = ["--steps", "3", "--batch-size", "16", "--train-images", "48", "--eval-images", "20"]
    _run_script([*args, "--out", str(tmp_path / "a.safetensors")])
    _run_script([*args, "--out", str(tmp_path / "b.safetensors")])
    assert sha256_file(tmp_path / "a.safetensors") == sha256_file(tmp_path / "b.safetensors")
    rebuilt = ShapesFeatures.from_weights(tmp_path / "a.safetensors")
    assert rebuilt.weights_sha256 == sha256_file(tmp_path / "a.safetensors")
    out = rebuilt(torch.from_numpy(fresh[0][:4]))
    assert out["pool"].shape == (4, 192) and torch.isfinite(out["pool"]).all()


def _fid(extractor, a: np.ndarray, b: np.ndarray) -> float:
    fa = extractor(torch.from_numpy(a))["pool"].double().numpy()
    fb = extractor(torch.from_numpy(b))["pool"].double().numpy()
    return frechet_distance(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))


@pytest.mark.slow
def test_fid_separates_the_world_from_corrupted_versions(extractor):
    world = ShapesWorld(32)
    a, _, _ = world.sample(400, seed=31)
    b, _, _ = world.sample(400, seed=32)
    blurred = F.avg_pool2d(torch.from_numpy(b).float(), 3, stride=1, padding=1, count_include_pad=False)
    blurred = blurred.round().to(torch.uint8).numpy()
    shift = np.array([40, 0, -40])[None, :, None, None]  # warmer colours, same shapes
    colour_shifted = np.clip(b.astype(int) + shift, 0, 255).astype(np.uint8)
    same = _fid(extractor, a, b)
    assert _fid(extractor, a, blurred) > 3 * same
    assert _fid(extractor, a, colour_shifted) > 3 * same


def test_registry_builds_the_shapes_extractor():
    from genbench.backbones import BACKBONES, build_extractor

    assert BACKBONES["shapes"].features == ("pool", "logits", "spatial")
    built = build_extractor("shapes")
    assert built.name == "shapes" and built.weights_sha256 == WEIGHTS_SHA256


def test_shapes_network_is_the_worlds_repa_encoder():
    from genbench.backbones import build_encoder
    from genbench.worlds import ShapesWorld

    images, _, _ = ShapesWorld(32).sample(3, seed=0)
    encoder = build_encoder("shapes", 32, grid=4)
    tokens = encoder(torch.as_tensor(images))
    assert tokens.shape == (3, 16, 96) and torch.isfinite(tokens).all() and tokens.std() > 0
