"""genbench.probe feature sources (SiT blocks against a hand-run forward pass, VAE latents against the VAE,
extractors and REPA encoders), label reading, and `genbench probe` (results, --layers all PNG, errors)."""

import json

import numpy as np
import pytest
import torch
from conftest import run_main
from PIL import Image

from genbench.errors import GenbenchError
from genbench.models import build_sit, build_vae
from genbench.probe import (
    ProbeData,
    build_features,
    extract_features,
    parse_feature_spec,
    read_labels,
    run_probe,
)
from genbench.sources import TensorSource
from genbench.worlds import ShapesWorld

CLASSES = (0, 6, 12, 18)  # red circle, green square, blue triangle, purple cross


def _tiny_checkpoint(path, num_classes=4, dropout=0.1):
    """A SiT-T/2 (2 blocks) on 8x8 latents of a random tiny-f4d4 VAE, saved as a genbench checkpoint."""
    sit_config = {"input_size": 8, "num_classes": num_classes, "z_dim": 0, "latent_norm": "scale",
                  "class_dropout_prob": dropout}
    config = {"sit": {"name": "SiT-T/2", **sit_config}, "vae": {"preset": "tiny-f4d4"}}
    torch.manual_seed(0)
    sit = build_sit("SiT-T/2", **sit_config)
    for block in sit.blocks:  # non-zero adaLN so that the blocks see t and the class
        torch.nn.init.normal_(block.adaLN_modulation[-1].weight, std=0.05)
    vae = build_vae("tiny-f4d4")
    torch.save({"config": json.dumps(config), "ema": sit.state_dict(), "vae": vae.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def shapes_npz(tmp_path_factory):
    """80 shapes images of 4 well-separated classes, 20 each, with labels in arr_1."""
    labels = np.repeat(np.array(CLASSES), 20)
    images, _, _ = ShapesWorld(32).sample(len(labels), seed=5, labels=labels)
    path = tmp_path_factory.mktemp("probe") / "shapes.npz"
    np.savez(path, arr_0=images.transpose(0, 2, 3, 1), arr_1=labels)
    return path, torch.from_numpy(images), labels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def test_spec_parsing_keeps_colons_in_the_target_and_refuses_unknown_options():
    spec = parse_feature_spec("sit:demo:repa:layer=3:t=0.5")
    assert (spec.kind, spec.target, spec.options) == ("sit", "demo:repa", {"layer": "3", "t": "0.5"})
    assert parse_feature_spec("vae:tiny-f4d4:/w/vae.pt:pool=2").target == "tiny-f4d4:/w/vae.pt"
    for bad, message in [("sat:x", "expected sit:CKPT"), ("sit:x:depth=2", "unknown option 'depth'"),
                         ("vae::pool=2", "no checkpoint")]:
        with pytest.raises(GenbenchError, match=message):
            parse_feature_spec(bad)


def test_sit_features_equal_a_hand_run_forward_at_the_noise_level(checkpoint, shapes_npz):
    from genbench.models.checkpoints import load_model_checkpoint
    from genbench.sampling.generate import per_sample_randn, sample_generators

    _, images, _ = shapes_npz
    images = images[:6]
    features, provenance = build_features(parse_feature_spec(f"sit:{checkpoint}:t=0.4"), 32, "all", seed=3)
    assert provenance["layers"] == [1, 2] and provenance["t"] == 0.4
    rows = extract_features(TensorSource(images), features, batch_size=4)
    again = extract_features(TensorSource(images), features, batch_size=6)  # batching does not matter
    loaded = load_model_checkpoint(checkpoint)
    sit, vae = loaded.sit, loaded.vae
    with torch.no_grad():
        z = sit.latent_norm.normalize(vae.encode(images.float() / 127.5 - 1).mean)
        eps = per_sample_randn(sample_generators(3, range(6), "cpu"), tuple(z.shape[1:]), "cpu")
        t = torch.full((6,), 0.4)
        h = sit.x_embedder(0.6 * z + 0.4 * eps) + sit.pos_embed
        c = sit.t_embedder(t) + sit.y_embedder(torch.full((6,), 4))  # 4 classes: index 4 is the null class
        for block, key in zip(sit.blocks, ("layer1", "layer2"), strict=True):
            h = block(h, c)
            np.testing.assert_allclose(rows[key], h.mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(rows[key], again[key], rtol=1e-5, atol=1e-7)  # same noise per image
    other_t, _ = build_features(parse_feature_spec(f"sit:{checkpoint}:t=0.9:layer=2"), 32, seed=3)
    assert not np.allclose(extract_features(TensorSource(images), other_t)["layer2"], rows["layer2"])


def test_sit_without_a_null_class_is_refused(tmp_path):
    path = _tiny_checkpoint(tmp_path / "nodrop.pt", dropout=0.0)
    with pytest.raises(GenbenchError, match="no null class"):
        build_features(parse_feature_spec(f"sit:{path}"), 32)


def test_vae_features_are_the_posterior_means_flattened_or_pooled(tmp_path, shapes_npz):
    _, images, _ = shapes_npz
    torch.manual_seed(1)
    vae = build_vae("tiny-f4d4").eval()
    torch.save(vae.state_dict(), tmp_path / "vae.pt")
    with torch.no_grad():
        mean = vae.encode(images[:5].float() / 127.5 - 1).mean  # [5, 4, 8, 8]
    flat, provenance = build_features(parse_feature_spec(f"vae:tiny-f4d4:{tmp_path / 'vae.pt'}"), 32)
    pooled, _ = build_features(parse_feature_spec(f"vae:tiny-f4d4:{tmp_path / 'vae.pt'}:pool=2"), 32)
    np.testing.assert_allclose(extract_features(TensorSource(images[:5]), flat)["latent"],
                               mean.flatten(1).numpy(), rtol=1e-5, atol=1e-6)
    by_hand = mean.reshape(5, 4, 2, 4, 2, 4).mean(dim=(3, 5)).flatten(1)  # 4x4 blocks of the 8x8 map
    np.testing.assert_allclose(extract_features(TensorSource(images[:5]), pooled)["latent"], by_hand.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert provenance["tokenizer"].startswith("tiny-f4d4 vae.pt")


def test_encoder_sources_give_extractor_features_and_pooled_encoder_tokens(shapes_npz):
    from genbench.backbones import build_encoder, build_extractor

    _, images, _ = shapes_npz
    logits, provenance = build_features(parse_feature_spec("encoder:shapes:feature=logits"), 32)
    with torch.no_grad():
        expected = build_extractor("shapes")(images[:4])["logits"]
    np.testing.assert_allclose(extract_features(TensorSource(images[:4]), logits)["logits"], expected.numpy(),
                               rtol=1e-5, atol=1e-5)
    assert provenance["extractor"] == "shapes" and len(provenance["weights_sha256"]) == 64
    tokens, _ = build_features(parse_feature_spec("encoder:tiny"), 32)
    expected = build_encoder("tiny", 32)(images[:4]).mean(dim=1)
    np.testing.assert_allclose(extract_features(TensorSource(images[:4]), tokens)["tokens"], expected.numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(GenbenchError, match="no feature 'middle'"):
        build_features(parse_feature_spec("encoder:shapes:feature=middle"), 32)
    with pytest.raises(GenbenchError, match="unknown encoder 'nope'"):
        build_features(parse_feature_spec("encoder:nope"), 32)


def test_features_stream_into_memory_maps_on_disk(tmp_path, shapes_npz):
    _, images, _ = shapes_npz
    features, _ = build_features(parse_feature_spec("encoder:shapes:feature=logits"), 32)
    on_disk = extract_features(TensorSource(images[:20]), features, batch_size=8, cache_dir=tmp_path)
    assert isinstance(on_disk["logits"], np.memmap)
    in_memory = extract_features(TensorSource(images[:20]), features, batch_size=20)["logits"]
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), in_memory, rtol=1e-5, atol=1e-6)


def test_probe_on_the_shapes_network_separates_its_classes_and_shuffled_labels_do_not(shapes_npz):
    path, _, labels = shapes_npz
    source = TensorSource(np.load(path)["arr_0"])
    run = run_probe("encoder:shapes:feature=logits", ProbeData(source, labels, test_fraction=0.25), seed=0)
    scores = run.scores["logits"]
    # The network was trained to tell these classes apart: a wiring error (labels out of order, a wrong
    # split) would put the probe near chance (25%).
    assert scores["probe_top1"] >= 90 and scores["knn_top1"] >= 90
    assert scores["probe_top5"] == 100  # 4 classes
    shuffled = np.random.default_rng(0).permutation(labels)
    chance = run_probe("encoder:shapes:feature=logits", ProbeData(source, shuffled, test_fraction=0.25),
                       seed=0)
    assert chance.scores["logits"]["probe_top1"] <= 60
    assert run.provenance["num_train"] == 60 and run.provenance["num_test"] == 20


def test_labels_come_from_npz_folders_or_files(tmp_path, shapes_npz):
    path, images, labels = shapes_npz
    np.testing.assert_array_equal(read_labels(path, 80), labels)
    for name, image in [("b_cls/1.png", images[0]), ("a_cls/2.png", images[1]), ("b_cls/0.png", images[2])]:
        (tmp_path / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "folder" / name)
    np.testing.assert_array_equal(read_labels(tmp_path / "folder", 3), [0, 1, 1])  # a_cls/2, b_cls/0, b_cls/1
    (tmp_path / "labels.txt").write_text("3\n1\n2\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "folder", 3, tmp_path / "labels.txt"), [3, 1, 2])
    np.save(tmp_path / "labels.npy", np.array([2, 2, 0]))
    np.testing.assert_array_equal(read_labels(path, 3, tmp_path / "labels.npy"), [2, 2, 0])
    with pytest.raises(GenbenchError, match="expected 4 non-negative integer labels"):
        read_labels(path, 4, tmp_path / "labels.npy")
    np.savez(tmp_path / "nolabels.npz", arr_0=images[:2].permute(0, 2, 3, 1).numpy())
    with pytest.raises(GenbenchError, match="no labels"):
        read_labels(tmp_path / "nolabels.npz", 2)
    assert read_labels(tmp_path / "nolabels.npz", 2, required=False) is None


def test_cli_layer_sweep_writes_results_and_the_png(tmp_path, capsys, monkeypatch, checkpoint, shapes_npz):
    path, _, _ = shapes_npz
    out = tmp_path / "probe.json"
    code, stdout, stderr = run_main(capsys, monkeypatch, "probe", "--features", f"sit:{checkpoint}:t=0.25",
                                    "--data", path, "--layers", "all", "--out", out)
    assert code == 0, stderr
    assert "layer1" in stdout and "layer2" in stdout
    document = json.loads(out.read_text())
    metrics = document["metrics"]
    assert {"layer1/probe_top1", "layer2/probe_top1", "layer2/knn_top1", "layer1/probe_top5"} <= set(metrics)
    assert all(0 <= metrics[f"layer{b}/probe_top1"] <= 100 for b in (1, 2))
    provenance = document["provenance"]
    assert provenance["probe"]["layers"] == [1, 2] and provenance["num_samples"] == 80
    assert len(provenance["checkpoint_sha256"]) == 64
    with Image.open(tmp_path / "probe_layers.png") as png:
        assert png.format == "PNG" and png.size[0] > 100


def test_cli_single_feature_results(tmp_path, capsys, monkeypatch, shapes_npz):
    path, _, _ = shapes_npz
    out = tmp_path / "enc.json"
    code, _, stderr = run_main(capsys, monkeypatch, "probe", "--features", "encoder:shapes:feature=logits",
                               "--data", path, "--out", out)
    assert code == 0, stderr
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"probe_top1", "probe_top5", "knn_top1", "knn_top5", "probe_c"}
    assert metrics["probe_top1"] >= 90


@pytest.mark.parametrize("args, message", [
    (["--features", "sat:x"], "expected sit:CKPT"),
    (["--features", "sit:/nope/model.pt"], "/nope/model.pt: checkpoint not found"),
    (["--features", "encoder:shapes", "--data", "/nope/data.npz"], "/nope/data.npz: no such file"),
    (["--features", "encoder:shapes", "--labels", "LABELS3"], "expected 80 non-negative integer labels"),
    (["--features", "encoder:shapes", "--layers", "all"], "--layers applies to sit: features only"),
    (["--features", "sit:CKPT", "--layers", "5"], "this SiT has blocks 1..2"),
    (["--features", "sit:CKPT:t=2"], "t=2.0 must lie in [0, 1]"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, checkpoint, shapes_npz, args, message):
    path, _, _ = shapes_npz
    np.save(tmp_path / "labels3.npy", np.array([0, 1, 2]))
    args = [str(a).replace("LABELS3", str(tmp_path / "labels3.npy")).replace("CKPT", str(checkpoint))
            for a in args]
    if "--data" not in args:
        args += ["--data", str(path)]
    code, _, stderr = run_main(capsys, monkeypatch, "probe", *args, "--out", tmp_path / "r.json")
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "r.json").exists()
