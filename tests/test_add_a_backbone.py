"""How to add a backbone (docs/architecture.md), shown in this file alone: write the network, one function
that loads its weights through the one fetcher (`genbench.weights.resolve_weights`), its views (a metric
extractor and/or a REPA target) and `register_backbone` a `BackboneSpec`. `genbench eval --extractor toy`
then measures FID in its feature space and a training config's `encoder: {"name": "toy"}` aligns a SiT to
its tokens; no other file changes. The fixture removes it again."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import run_main
from genbench.metrics.frechet import frechet_distance
from safetensors.torch import load_file, save_file
from torch import nn

from genbench.backbones import (
    BACKBONES,
    BackboneSpec,
    build_encoder,
    build_extractor,
    check_extractor_name,
    register_backbone,
)
from genbench.errors import GenbenchError
from genbench.evaluate import build_reference
from genbench.fetch import RemoteFile
from genbench.io import sha256_file
from genbench.pixels import to_unit_range
from genbench.sources import open_source
from genbench.training.data import ImageDataset
from genbench.training.recipes import PRESETS, TrainConfig, Trainer
from genbench.weights import resolve_weights


class ToyNet(nn.Module):
    """uint8 (or [0, 1] float) [N, 3, 32, 32] -> an 8-channel 8 x 8 map (a 4 x 4 stride-4 conv and ReLU)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(to_unit_range(images) * 2 - 1))


def load_toy(file: RemoteFile, weights) -> tuple[ToyNet, str]:
    """The one loader of both views: (network, weights SHA-256), from `weights` or the fetched file."""
    path = resolve_weights(file, weights)
    net = ToyNet()
    net.load_state_dict(load_file(path))
    return net.eval().requires_grad_(False), sha256_file(path)


class ToyFeatures(nn.Module):
    """Extractor view: forward(uint8 [N, 3, 32, 32]) -> {"pool": float32 [N, 8]}, the map's mean."""

    name, resize_mode, feature_dims = "toy", "none", {"pool": 8}

    def __init__(self, net: ToyNet, weights_sha256: str):
        super().__init__()
        self.net, self.weights_sha256 = net, weights_sha256

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pool": self.net(images).mean(dim=(2, 3))}


class ToyTokens(nn.Module):
    """REPA target view: forward(images) -> the map average-pooled to grid x grid, [N, grid^2, 8]."""

    name, z_dim = "toy", 8

    def __init__(self, net: ToyNet, grid: int):
        super().__init__()
        self.net, self.grid = net, grid

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.net(images), self.grid).flatten(2).transpose(1, 2)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy backbone, its weights published at a file:// URL and fetched into a fresh cache."""
    torch.manual_seed(0)
    published = tmp_path / "published" / "toy.safetensors"
    published.parent.mkdir()
    save_file(ToyNet().state_dict(), published)
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    file = RemoteFile("toy", published.as_uri(), "toy/toy.safetensors", sha256=sha256_file(published))

    def extractor(weights, variant):
        return ToyFeatures(*load_toy(file, weights))

    def repa_target(resolution, weights=None, grid=4):
        return ToyTokens(load_toy(file, weights)[0], grid)

    spec = register_backbone(BackboneSpec("toy", ("pool",), extractor=extractor, repa_target=repa_target))
    yield file
    del BACKBONES[spec.name]


def test_a_registered_backbone_measures_fid(toy, shapes_world, tmp_path, capsys, monkeypatch):
    reference = build_reference(open_source(shapes_world / "ref_images.npz"), build_extractor("toy"))
    reference.save(tmp_path / "toy-ref.npz")
    assert toy.cached.is_file()  # fetched into the cache on first use
    out = tmp_path / "run.json"
    code, _, stderr = run_main(capsys, monkeypatch, "eval", "--samples", shapes_world / "samples.npz",
                               "--ref", tmp_path / "toy-ref.npz", "--extractor", "toy", "--metrics", "fid",
                               "--out", out)
    assert code == 0, stderr
    results = json.loads(out.read_text())
    assert results["provenance"]["extractor"] == "toy"
    assert results["provenance"]["weights_sha256"] == toy.sha256

    def pool(name: str) -> np.ndarray:
        with np.load(shapes_world / name) as data:
            images = torch.from_numpy(data["arr_0"]).permute(0, 3, 1, 2).contiguous()
        return ToyFeatures(*load_toy(toy, None))(images)["pool"].double().numpy()

    samples, ref = pool("samples.npz"), pool("ref_images.npz")
    expected = frechet_distance(samples.mean(0), np.cov(samples, rowvar=False), ref.mean(0),
                                np.cov(ref, rowvar=False))
    assert results["metrics"]["fid"] == pytest.approx(expected, rel=1e-5) and expected > 0


def test_a_registered_backbone_is_a_repa_target(toy, shapes_world):
    config = TrainConfig.from_dict({**PRESETS["tiny-repa"], "encoder": {"name": "toy", "grid": 4}})
    trainer = Trainer(config, ImageDataset(shapes_world / "samples.npz", resolution=32))
    assert isinstance(trainer.encoder, ToyTokens) and trainer.config.sit["z_dim"] == ToyTokens.z_dim
    logs = trainer.train_step()
    assert math.isfinite(logs["proj"]) and math.isfinite(logs["loss"])


def test_the_registry_checks_names_and_views(toy):
    assert check_extractor_name("toy") is BACKBONES["toy"]
    with pytest.raises(GenbenchError, match="'toy' has no variants"):
        check_extractor_name("toy:big")
    with pytest.raises(ValueError, match="registered already"):
        register_backbone(BackboneSpec("toy", repa_target=BACKBONES["toy"].repa_target))
    with pytest.raises(ValueError, match="an extractor or a REPA target"):
        BackboneSpec("nothing")
    with pytest.raises(ValueError, match="an extractor view and its features go together"):
        BackboneSpec("unnamed-features", extractor=BACKBONES["toy"].extractor)
    # the checked base: a view that breaks the contract fails when built, not in a results file
    register_backbone(BackboneSpec("toy-wrong", ("pool", "logits"), extractor=BACKBONES["toy"].extractor,
                                   repa_target=lambda resolution, weights=None: nn.Identity()))
    try:
        with pytest.raises(TypeError, match=r"returns features \['pool'\], but its backbone declares"):
            build_extractor("toy-wrong")
        with pytest.raises(TypeError, match="lacks name, z_dim"):
            build_encoder("toy-wrong", 32)
    finally:
        del BACKBONES["toy-wrong"]


def test_without_registration_the_backbone_is_unknown():
    assert "toy" not in BACKBONES
    with pytest.raises(GenbenchError, match="unknown extractor 'toy'"):
        check_extractor_name("toy")
    with pytest.raises(GenbenchError, match="unknown encoder 'toy'"):
        build_encoder("toy", 32)
