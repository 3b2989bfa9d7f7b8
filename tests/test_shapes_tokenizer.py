"""The shapes world's tokenizer pieces: the second network's perceptual distance (against a hand-written
LPIPS-style sum), reconstruction fidelity (against a per-image loop), pre-training with MSE / perceptual
terms, discriminator pre-training, and REPA-E's `perceptual_net` and `vae_pass_batch_stats` options."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genbench.errors import GenbenchError
from genbench.models.vae import DiagonalGaussian, build_vae
from genbench.pixels import to_signed_range
from genbench.training.data import ImageDataset
from genbench.training.losses import HingeDiscriminatorLoss, NLayerDiscriminator
from genbench.training.recipes import PRESETS, TrainConfig, Trainer
from genbench.training.tokenizer_pretraining import (
    pretrain_discriminator,
    pretrain_vae,
    reconstruction_fidelity,
)
from genbench.worlds import ShapesWorld
from genbench.worlds import perceptual as perceptual_module
from genbench.worlds.perceptual import ShapesPerceptual, load_shapes_perceptual


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "train.npz"
    ShapesWorld(32).export_npz(path, n=40, seed=5)
    return ImageDataset(path, 32)


def test_perceptual_distance_is_lpips_baseline_on_the_second_network():
    net = load_shapes_perceptual()
    assert net.net.stem[0].out_channels == 16  # not the evaluation network's widths (24, ...)
    images, _, _ = ShapesWorld(32).sample(3, seed=9)
    x = to_signed_range(torch.from_numpy(images))
    y = x.flip(-1)
    distance = net(x, y)
    # by hand: layers stem, stage1, stage2, stage3 (each followed by ReLU), unit norm over channels,
    # squared difference summed over channels, averaged over positions, summed over layers
    expected = []
    for i in range(3):
        total = 0.0
        hx, hy = x[i:i + 1], y[i:i + 1]
        for layer in (net.net.stem, net.net.stage1, net.net.stage2, net.net.stage3):
            hx, hy = F.relu(layer(hx)), F.relu(layer(hy))
            nx = hx / (hx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = hy / (hy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total += float((nx - ny).pow(2).sum(1).mean())
        expected.append(total)
    assert distance.tolist() == pytest.approx(expected, rel=1e-4)
    assert net(x, x).abs().max() < 1e-6
    net.train()
    assert not net.net.training  # BatchNorm stays on running statistics
    x.requires_grad_(True)
    net(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_perceptual_weights_are_checked(tmp_path, monkeypatch):
    tampered = tmp_path / "shapes_perceptual.safetensors"
    tampered.write_bytes(perceptual_module.PERCEPTUAL_PATH.read_bytes() + b"x")
    monkeypatch.setattr(perceptual_module, "PERCEPTUAL_PATH", tampered)
    with pytest.raises(GenbenchError, match="SHA-256"):
        load_shapes_perceptual()


class ShiftingVAE(torch.nn.Module):
    """encode: mean = x; decode: the image shifted right by 3 pixels (so reconstructions differ)."""

    def encode(self, x):
        return DiagonalGaussian(torch.cat([x, torch.zeros_like(x)], dim=1))

    def decode(self, z):
        return torch.roll(z, shifts=3, dims=-1)


def test_reconstruction_fidelity_against_a_per_image_loop():
    images, labels, _ = ShapesWorld(32).sample(30, seed=4)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 20))
    classifier_u8 = lambda u8: classifier(u8.float() / 255)  # noqa: E731
    measured = reconstruction_fidelity(ShiftingVAE(), images, labels, classifier_u8, batch_size=7)
    hits = {"class": 0, "kind": 0, "colour": 0, "real": 0}
    psnrs = []
    for image, label in zip(images, labels, strict=True):
        recon = torch.roll(image, shifts=3, dims=-1)
        predicted = int(classifier_u8(recon[None]).argmax())
        hits["class"] += predicted == int(label)
        hits["kind"] += predicted // 5 == int(label) // 5
        hits["colour"] += predicted % 5 == int(label) % 5
        hits["real"] += int(classifier_u8(image[None]).argmax()) == int(label)
        mse = float((image.double() - recon.double()).pow(2).mean())
        psnrs.append(10 * np.log10(255**2 / mse))
    assert measured["class_acc"] == pytest.approx(hits["class"] / 30)
    assert measured["kind_acc"] == pytest.approx(hits["kind"] / 30)
    assert measured["colour_acc"] == pytest.approx(hits["colour"] / 30)
    assert measured["class_acc_real"] == pytest.approx(hits["real"] / 30)
    assert measured["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-6)


def test_pretraining_with_perceptual_and_mse_terms_lowers_the_perceptual_distance(shapes_data):
    logged = []
    vae = build_vae("tiny-f4d4")
    perceptual = load_shapes_perceptual()
    x = to_signed_range(shapes_data.images[:16])
    before = perceptual(vae.decode(vae.encode(x).mean), x).mean().item()
    pretrain_vae(vae, shapes_data, steps=30, batch_size=16, lr=3e-3, mse_weight=1.0, perceptual=perceptual,
                 log=lambda step, parts: logged.append(parts))
    with torch.no_grad():
        after = perceptual(vae.decode(vae.encode(x).mean), x).mean().item()
    assert set(logged[-1]) == {"l1", "kl", "mse", "perceptual"} and len(logged) == 30
    assert after < 0.8 * before


def test_discriminator_pretraining_separates_images_from_reconstructions(shapes_data):
    torch.manual_seed(0)
    vae = build_vae("tiny-f4d4").eval()
    discriminator = NLayerDiscriminator(3, 8, 2)
    x = to_signed_range(shapes_data.images[:16])
    with torch.no_grad():
        recon = vae.decode(vae.encode(x).mean)

    def hinge():
        with torch.no_grad():
            discriminator.eval()
            return HingeDiscriminatorLoss()(discriminator(x), discriminator(recon)).item()

    before = hinge()
    pretrain_discriminator(discriminator, vae, shapes_data, steps=40, batch_size=16, lr=1e-3)
    assert not discriminator.training
    assert hinge() < 0.95 * before  # 1.0 at init (logits ~0); ~0.92 after 40 steps


def repae_trainer(dataset, **overrides):
    values = {**PRESETS["tiny-repae"], "num_classes": 20, **overrides}
    return Trainer(TrainConfig.from_dict(values), dataset)


def test_repae_uses_the_world_perceptual_network(shapes_data):
    trainer = repae_trainer(shapes_data, perceptual_net="shapes")
    assert isinstance(trainer.vae_loss.perceptual, ShapesPerceptual)
    logs = trainer.train_step()
    assert logs["vae_lpips"] > 0
    assert repae_trainer(shapes_data).vae_loss.perceptual is None  # tiny preset: lpips off, no world net


def test_vae_pass_batch_statistics_make_the_alignment_blind_to_latent_scale(shapes_data):
    trainer = repae_trainer(shapes_data, vae_pass_batch_stats=True)
    norm = trainer.sit.latent_norm
    norm.eval()
    running = (norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone())
    z = torch.randn(8, 4, 8, 8)
    with trainer._vae_pass_latent_norm():
        assert norm.training
        scaled = norm(5 * z + 2)
        plain = norm(z)
    assert torch.allclose(scaled, plain, atol=1e-3)  # batch statistics: a global scale cancels
    assert not norm.training
    assert all(torch.equal(a, b) for a, b in zip(running, (norm.running_mean, norm.running_var,
                                                           norm.num_batches_tracked), strict=True))
    assert not torch.allclose(norm(5 * z + 2), norm(z), atol=1e-1)  # upstream's running statistics
    upstream = repae_trainer(shapes_data)
    upstream.sit.eval()  # as in the VAE pass
    with upstream._vae_pass_latent_norm():
        assert not upstream.sit.latent_norm.training
    trainer.train_step()  # a whole step with the deviation runs
