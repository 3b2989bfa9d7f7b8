"""Shared fixtures. Importing genbench first applies the torchvision compatibility shim, so tests can
import torch-fidelity, timm and open_clip directly."""

import numpy as np
import pytest
import torch
from PIL import Image

import genbench  # noqa: F401
from genbench.backbones import build_extractor
from genbench.evaluate import build_reference
from genbench.sources import open_source
from genbench.worlds.shapes import ShapesWorld


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never reach the network: the fetcher only reads the cache and file:// URLs (tests that serve
    files on 127.0.0.1 unset GENBENCH_OFFLINE themselves)."""
    monkeypatch.setenv("GENBENCH_OFFLINE", "1")


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> str:
    """A randomly initialised Inception state dict in torch-fidelity's format, saved to disk
    (He-normal convolutions, so features are not degenerate)."""
    from genbench.extractors.inception import random_inception_state_dict

    path = tmp_path_factory.mktemp("weights") / "inception-random.pth"
    torch.save(random_inception_state_dict(seed=0), path)
    return str(path)


def write_png_folder(folder, images: np.ndarray) -> None:
    """images uint8 [N, H, W, 3] -> folder/000000.png ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.png")


def random_images(n: int, size: int, seed: int, brightness: float = 1.0) -> np.ndarray:
    """Smooth-ish random uint8 images [n, size, size, 3] (blocky noise, so resizing keeps structure)."""
    rng = np.random.default_rng(seed)
    small = rng.random((n, size // 4, size // 4, 3)) * 255 * brightness
    return np.clip(small.repeat(4, axis=1).repeat(4, axis=2), 0, 255).astype(np.uint8)


def run_main(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """The console script's main() in this process: (exit code, stdout, stderr)."""
    from genbench.cli import main

    monkeypatch.setattr("sys.argv", ["genbench", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="session")
def shapes_world(tmp_path_factory):
    """A tiny shapes-world sample npz, a reference image npz and its `shapes` reference statistics."""
    root = tmp_path_factory.mktemp("shapes")
    world = ShapesWorld(32)
    world.export_npz(root / "samples.npz", n=60, seed=11)
    world.export_npz(root / "ref_images.npz", n=80, seed=12)
    build_reference(open_source(root / "ref_images.npz"), build_extractor("shapes")).save(root / "ref.npz")
    return root
