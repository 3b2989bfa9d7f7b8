"""Tokenizer comparison: every column against an independent computation on tiny VAEs (reconstructions made
here, PSNR/SSIM by scikit-image, rFID by scipy's sqrtm, latent statistics by torch, LPIPS by a hand-written
forward of a randomly initialised torchvision VGG16), spec loading, and the CLI (board, errors)."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import run_main
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from genbench.backbones import build_extractor
from genbench.errors import GenbenchError
from genbench.leaderboard import read_board, render
from genbench.models import build_sit, build_vae
from genbench.probe import probe_scores, split_indices
from genbench.sources import NpzSource
from genbench.tokenizer_comparison import (
    LPIPS,
    CompareSettings,
    compare_tokenizers,
    load_lpips,
    load_tokenizer,
)
from genbench.worlds import ShapesWorld

CLASSES = (0, 6, 12, 18)


def _vae(seed: int):
    torch.manual_seed(seed)
    return build_vae("tiny-f4d4").eval()


def _genbench_checkpoint(path, vae):
    config = {"sit": {"name": "SiT-T/2", "input_size": 8, "num_classes": 4, "z_dim": 0},
              "vae": {"preset": "tiny-f4d4"}}
    sit = build_sit("SiT-T/2", input_size=8, num_classes=4, z_dim=0)
    torch.save({"config": json.dumps(config), "ema": sit.state_dict(), "vae": vae.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """128 shapes images of 4 classes (labels in arr_1), a bare VAE file and a genbench checkpoint."""
    root = tmp_path_factory.mktemp("tokenizers")
    labels = np.resize(np.array(CLASSES), 128)
    images, _, _ = ShapesWorld(32).sample(len(labels), seed=9, labels=labels)
    np.savez(root / "data.npz", arr_0=images.transpose(0, 2, 3, 1), arr_1=labels)
    torch.save(_vae(1).state_dict(), root / "vae.pt")
    _genbench_checkpoint(root / "model.pt", _vae(2))
    return {"data": root / "data.npz", "images": torch.from_numpy(images), "labels": labels,
            "bare": f"tiny-f4d4:{root / 'vae.pt'}", "checkpoint": str(root / "model.pt"), "root": root}


def _reconstruct(vae, images):
    with torch.no_grad():
        z = vae.encode(images.float() / 127.5 - 1).mean
        recon = torch.clamp(127.5 * vae.decode(z) + 128, 0, 255).to(torch.uint8)
    return z, recon


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_tokenizer_specs_load_the_right_vae_or_say_what_is_missing(files, tmp_path):
    bare = load_tokenizer(files["bare"])
    for key, value in _vae(1).state_dict().items():
        assert torch.equal(bare.adapter.vae.state_dict()[key], value)
    assert bare.description.startswith("tiny-f4d4 vae.pt (")
    from_checkpoint = load_tokenizer(files["checkpoint"])
    assert torch.equal(from_checkpoint.adapter.vae.encoder.conv_in.weight, _vae(2).encoder.conv_in.weight)
    with pytest.raises(GenbenchError, match="huggingface.co/stabilityai/sd-vae-ft-ema"):
        load_tokenizer(f"f8d4:{tmp_path / 'sd-vae.safetensors'}")
    with pytest.raises(GenbenchError, match="no such checkpoint"):
        load_tokenizer(str(tmp_path / "missing.pt"))
    torch.save({"config": json.dumps({"sit": {"name": "SiT-T/2", "input_size": 8, "z_dim": 0}, "vae": None}),
                "ema": build_sit("SiT-T/2", input_size=8, z_dim=0).state_dict()}, tmp_path / "novae.pt")
    with pytest.raises(GenbenchError, match="holds no VAE"):
        load_tokenizer(str(tmp_path / "novae.pt"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units: singular covariances
def test_every_column_matches_an_independent_computation(files, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path))  # no LPIPS weights: the skipped path
    lpips, note = load_lpips()
    assert lpips is None and note.startswith("LPIPS skipped") and "vgg16-397923af.pth" in note
    settings = CompareSettings(extractor="shapes", batch_size=100, probe_pool=2)
    specs = [files["bare"], files["checkpoint"]]
    table = compare_tokenizers(specs, NpzSource(files["data"]), files["labels"], lpips, note, settings)
    assert table["name"].tolist() == [files["bare"], files["checkpoint"]]
    shapes = build_extractor("shapes").eval()
    originals, labels = files["images"], files["labels"]
    with torch.no_grad():
        original_pool = shapes(originals)["pool"].double().numpy()
    for row, vae in zip(table.to_dict("records"), (_vae(1), _vae(2)), strict=True):
        z, recon = _reconstruct(vae, originals)
        a, b = originals.numpy(), recon.numpy()
        psnr = np.mean([peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b, strict=True)])
        ssim = np.mean([structural_similarity(x, y, gaussian_weights=True, sigma=1.5, data_range=255,
                                              use_sample_covariance=False, channel_axis=0)
                        for x, y in zip(a, b, strict=True)])
        assert row["psnr"] == pytest.approx(psnr, abs=1e-4)
        assert row["ssim"] == pytest.approx(ssim, abs=1e-4)
        with torch.no_grad():
            recon_pool = shapes(recon)["pool"].double().numpy()
        assert row["rfid"] == pytest.approx(_scipy_fid(recon_pool, original_pool), rel=1e-3)
        assert row["rfid"] > 1  # a random VAE reconstructs badly
        for c in range(4):
            assert row[f"z{c}_mean"] == pytest.approx(z[:, c].double().mean().item(), rel=1e-5, abs=1e-7)
            assert row[f"z{c}_std"] == pytest.approx(z[:, c].double().std().item(), rel=1e-5)
        assert (row["latent_channels"], row["latent_dim"], row["compression"]) == (4, 256, 12.0)
        assert math.isnan(row["lpips"]) and "LPIPS skipped" in row["notes"]
        assert 0 < row["encode_ips"] < math.inf and 0 < row["decode_ips"] < math.inf
    assert table["psnr"].iloc[0] != table["psnr"].iloc[1]
    # The latent probe reads the posterior means (here of the last VAE), 2x2-pooled, split and standardised
    # as genbench.probe does (the probe itself is checked against a Bayes optimum and sklearn: test_probe.py).
    train, test = split_indices(128, 0.2, seed=0)
    pooled = torch.nn.functional.adaptive_avg_pool2d(z, 2).flatten(1).numpy()
    probe = probe_scores(pooled[train], labels[train], pooled[test], labels[test], standardise_knn=True)
    for column, key in (("probe", "probe_top1"), ("probe_top5", "probe_top5"), ("knn_top1", "knn_top1")):
        assert table[column].iloc[1] == pytest.approx(probe[key], abs=1e-6)


def test_the_probe_is_skipped_with_a_note_without_labels(files, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path))
    table = compare_tokenizers([files["bare"]], NpzSource(files["data"]), None, None, "",
                               CompareSettings(extractor="shapes", batch_size=128))
    assert "probe" not in table.columns and "probe skipped: no labels" in table["notes"].iloc[0]


def _random_vgg_files(root):
    """A randomly initialised torchvision VGG16 trunk and random non-negative LPIPS heads, saved as the real
    files are laid out (`features.N.*`, `linK.model.1.weight`)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    trunk = make_layers(cfgs["D"])
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, root / "vgg16.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(heads, root / "lin.pth")
    return trunk.eval(), heads


def _brute_force_lpips(trunk, heads, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS written out from its definition: scaled inputs, relu1_2..relu5_3 (torchvision indices 3, 8, 15,
    22, 29), unit-normalised channels, squared difference weighted by the heads, spatial mean, sum."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    total = torch.zeros(a.shape[0], dtype=torch.float64)
    xa, xb = ((a.float() / 255 * 2 - 1) - shift) / scale, ((b.float() / 255 * 2 - 1) - shift) / scale
    taps = iter(heads.values())
    with torch.no_grad():
        for index, layer in enumerate(trunk[:30]):
            xa, xb = layer(xa), layer(xb)
            if index in (3, 8, 15, 22, 29):
                na = xa / (xa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                nb = xb / (xb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                weighted = (na - nb).pow(2).double() * next(taps).double()
                total += weighted.sum(1).mean(dim=(1, 2))
    return total


def test_lpips_matches_its_definition_and_fills_the_column(files, tmp_path):
    trunk, heads = _random_vgg_files(tmp_path)
    lpips, description = load_lpips(tmp_path / "vgg16.pth", tmp_path / "lin.pth")
    assert isinstance(lpips, LPIPS) and description.startswith("LPIPS-VGG v0.1 (vgg16.pth (")
    originals = files["images"][:12]
    _, recon = _reconstruct(_vae(1), originals)
    expected = _brute_force_lpips(trunk, heads, originals, recon)
    np.testing.assert_allclose(lpips(originals, recon).double().numpy(), expected.numpy(), rtol=1e-4)
    assert expected.min() > 0 and lpips(originals, originals).abs().max() == 0
    np.savez(tmp_path / "small.npz", arr_0=originals.permute(0, 2, 3, 1).numpy())
    table = compare_tokenizers([files["bare"]], NpzSource(tmp_path / "small.npz"), None, lpips, description,
                               CompareSettings(extractor="shapes", batch_size=5))
    assert table["lpips"].iloc[0] == pytest.approx(expected.mean().item(), rel=1e-4)
    assert description in table["notes"].iloc[0]
    with pytest.raises(GenbenchError, match="weights file not found"):
        load_lpips(tmp_path / "missing.pth", tmp_path / "lin.pth")


def test_cli_appends_one_measured_row_per_tokenizer(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path))
    board = tmp_path / "tokenizers.csv"
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, arr_0=files["images"].permute(0, 2, 3, 1).numpy())  # no arr_1: the probe is skipped
    code, stdout, stderr = run_main(capsys, monkeypatch, "tokenizers", "compare", "--vae", files["bare"],
                                    "--vae", files["checkpoint"], "--data", unlabelled, "--extractor",
                                    "shapes", "--batch-size", "128", "--board", board)
    assert code == 0, stderr
    assert "rfid" in stdout and "LPIPS skipped" in stdout and "probe skipped" in stdout
    rows = read_board(board)
    assert rows["name"].tolist() == [files["bare"], files["checkpoint"]] and set(rows["kind"]) == {"measured"}
    assert rows["rfid"].notna().all() and rows["lpips"].isna().all() and (rows["latent_dim"] == 256).all()
    markdown = render(rows, "md")
    assert "| rfid | psnr | ssim | lpips |" in markdown and "tiny-f4d4 vae.pt" in markdown


@pytest.mark.parametrize("args, message", [
    (["--vae", "tiny-f4d4:/nope/vae.pt"], "/nope/vae.pt: VAE weights for --vae tiny-f4d4:/nope/vae.pt"),
    (["--vae", "BARE", "--vae", "BARE"], "a tokenizer is given twice"),
    (["--vae", "BARE", "--labels", "LABELS3"], "expected 128 non-negative integer labels"),
    (["--vae", "BARE", "--extractor", "nope"], "unknown extractor 'nope'"),
    (["--vae", "BARE", "--data", "/nope/data.npz"], "/nope/data.npz: no such file"),
])
def test_cli_errors_are_one_line_exit_2(files, tmp_path, capsys, monkeypatch, args, message):
    np.save(tmp_path / "labels3.npy", np.array([0, 1, 2]))
    args = [a.replace("BARE", files["bare"]).replace("LABELS3", str(tmp_path / "labels3.npy")) for a in args]
    if "--data" not in args:
        args += ["--data", str(files["data"])]
    board = tmp_path / "board.csv"
    code, _, stderr = run_main(capsys, monkeypatch, "tokenizers", "compare", *args, "--board", board)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert not board.exists()
