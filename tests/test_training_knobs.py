"""REPA-E's own knobs in the training recipes: separate VAE / discriminator learning rates, a pre-trained
discriminator, upstream's discriminator architecture, horizontal flips off by default, and resume (including
checkpoints written before these options existed)."""

import json

import numpy as np
import pytest
import torch

from genbench.errors import GenbenchError
from genbench.models.checkpoints import latest_checkpoint
from genbench.training.data import ImageDataset
from genbench.training.losses import NLayerDiscriminator
from genbench.training.recipes import PRESETS, TrainConfig, Trainer, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """16 real-photo crops (skimage's bundled images) at 32 px, 2 classes, as an ADM-style npz."""
    from skimage import data

    rng = np.random.default_rng(1)
    crops, labels = [], []
    for label, photo in enumerate([data.astronaut(), data.chelsea()]):
        for _ in range(8):
            top, left = rng.integers(0, photo.shape[0] - 128), rng.integers(0, photo.shape[1] - 128)
            crops.append(photo[top: top + 128: 4, left: left + 128: 4])
            labels.append(label)
    path = tmp_path_factory.mktemp("knobs") / "photos.npz"
    np.savez(path, arr_0=np.stack(crops).astype(np.uint8), arr_1=np.array(labels))
    return ImageDataset(path, resolution=32)


def tiny_config(recipe: str = "repae", **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**PRESETS[f"tiny-{recipe}"], **overrides})


def test_defaults_are_upstreams():
    config = TrainConfig()
    assert (config.lr, config.vae_lr, config.disc_lr) == (1e-4, 1e-4, 1e-4)  # train_repae.py L576, L608-609
    assert config.hflip is False and config.disc_weights is None
    for name in ("repae-sit-xl-2-f8d4", "repae-sit-xl-1-f16d32"):
        paper = TrainConfig.from_dict(PRESETS[name])
        assert (paper.disc_ndf, paper.disc_layers) == (64, 3)
    assert (tiny_config().disc_ndf, tiny_config().disc_layers) == (8, 2)  # the miniature's small one


def test_discriminator_is_upstreams_taming_patchgan():
    """Layer by layer against REPA-E loss/discriminator.py's NLayerDiscriminator(input_nc=3, ndf=64,
    n_layers=3, use_actnorm=False), written out by hand: stride-2 convs 3->64->128->256 (no bias under BN),
    a stride-1 conv to 512 + BN, and a stride-1 conv to 1 logit; all 4x4, padding 1, LeakyReLU 0.2."""
    upstream = [("conv", 3, 64, 2, True), ("lrelu",),
                ("conv", 64, 128, 2, False), ("bn", 128), ("lrelu",),
                ("conv", 128, 256, 2, False), ("bn", 256), ("lrelu",),
                ("conv", 256, 512, 1, False), ("bn", 512), ("lrelu",),
                ("conv", 512, 1, 1, True)]

    def describe(layer):
        if isinstance(layer, torch.nn.Conv2d):
            assert layer.kernel_size == (4, 4) and layer.padding == (1, 1)
            return ("conv", layer.in_channels, layer.out_channels, layer.stride[0], layer.bias is not None)
        if isinstance(layer, torch.nn.BatchNorm2d):
            return ("bn", layer.num_features)
        assert isinstance(layer, torch.nn.LeakyReLU) and layer.negative_slope == 0.2
        return ("lrelu",)

    disc = NLayerDiscriminator(3, 64, 3)
    assert [describe(layer) for layer in disc.main] == upstream
    # Same Sequential indices, so upstream's `<vae>-discriminator-ckpt.pt` keys (main.0.weight, ...,
    # main.11.bias) load as they are; a 256 px image gives upstream's 30 x 30 patch logits.
    assert "main.11.bias" in disc.state_dict() and "main.9.running_var" in disc.state_dict()
    assert disc(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_each_optimiser_takes_its_own_learning_rate(dataset):
    """Adam's first step moves every parameter with a gradient by lr * g / (|g| + eps), i.e. by lr, so the
    largest change in each module is that module's learning rate."""
    torch.manual_seed(0)
    rates = {"sit": 1e-3, "vae": 2e-4, "discriminator": 5e-5}
    trainer = Trainer(tiny_config(lr=rates["sit"], vae_lr=rates["vae"], disc_lr=rates["discriminator"]),
                      dataset)
    modules = {"sit": trainer.sit, "vae": trainer.vae, "discriminator": trainer.discriminator}
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in modules.items()}
    trainer.train_step()
    for name, module in modules.items():
        assert trainer.optimizers[name].param_groups[0]["lr"] == rates[name]
        after = module.parameters()
        moved = max((p - b).abs().max().item() for p, b in zip(after, before[name], strict=True))
        assert moved == pytest.approx(rates[name], rel=1e-3), name


def test_flips_are_off_by_default_and_on_with_hflip(dataset):
    torch.manual_seed(0)
    trainer = Trainer(tiny_config("sit"), dataset)
    seen: dict[int, torch.Tensor] = {}
    for step in range(6):  # three epochs of 16 images at batch 8: every image is drawn three times
        trainer.step = step
        images, labels, index, flip = trainer.next_batch()
        assert not flip.any()
        for row, i in enumerate(index.tolist()):
            assert torch.equal(images[row], dataset.images[i])  # the image itself, never its mirror
            assert torch.equal(seen.setdefault(i, images[row]), images[row])
            assert labels[row] == dataset.labels[i]
    assert len(seen) == 16
    # hflip draws the same order and flips about half of the rows.
    index_off, _ = dataset.batch_indices(2, 16, seed=0)
    index_on, flip_on = dataset.batch_indices(2, 16, seed=0, hflip=True)
    assert torch.equal(index_off, index_on) and 0 < int(flip_on.sum()) < 16
    flipped = Trainer(tiny_config("sit", hflip=True), dataset)
    flipped.step = 2
    images, _, index, flip = flipped.next_batch()
    row = int(flip.nonzero()[0])
    assert torch.equal(images[row], dataset.images[index[row]].flip(-1))


@pytest.mark.parametrize("hflip", [False, True])
def test_latent_cache_holds_flips_only_with_hflip(dataset, hflip):
    online = Trainer(tiny_config("repa", hflip=hflip), dataset)
    online_losses = [online.train_step()["loss"] for _ in range(3)]
    cached = Trainer(tiny_config("repa", hflip=hflip, cache_latents=True), dataset)
    assert cached.latent_cache.shape == (16, 2 if hflip else 1, 8, 8, 8)
    assert [cached.train_step()["loss"] for _ in range(3)] == pytest.approx(online_losses, rel=1e-5)


def _foreign_discriminator(seed: int, ndf: int = 8, layers: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    disc = NLayerDiscriminator(3, ndf, layers)
    with torch.no_grad():
        for buffer in (disc.main[3].running_mean, disc.main[3].running_var):
            buffer.uniform_(0.5, 1.5)  # non-default statistics, so buffers are checked too
    return disc.state_dict()


def test_pretrained_discriminator_is_loaded(tmp_path, dataset):
    state = _foreign_discriminator(seed=7)
    bare = tmp_path / "disc-ckpt.pt"  # REPA-E's save_vae_weights.py layout: the bare state dict
    torch.save(state, bare)
    wrapped = tmp_path / "run.pt"  # a training checkpoint with a DDP-prefixed discriminator entry
    torch.save({"model": {}, "discriminator": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    for path in (bare, wrapped):
        torch.manual_seed(0)
        trainer = Trainer(tiny_config(disc_weights=str(path)), dataset)
        loaded = trainer.discriminator.state_dict()
        assert all(torch.equal(loaded[key], state[key]) for key in state), path
    torch.manual_seed(0)
    fresh = Trainer(tiny_config(), dataset).discriminator.state_dict()
    assert not torch.equal(fresh["main.0.weight"], state["main.0.weight"])  # loading changed something


def test_bad_pretrained_discriminator_is_a_one_line_error(tmp_path, dataset):
    wider = tmp_path / "ndf16.pt"
    torch.save(_foreign_discriminator(seed=1, ndf=16), wider)
    with pytest.raises(GenbenchError, match="ndf16.pt: does not fit the discriminator of disc_ndf 8, "
                                            "disc_layers 2") as error:
        Trainer(tiny_config(disc_weights=str(wider)), dataset)
    message = str(error.value)
    assert "\n" not in message and "main.0.weight is (16, 3, 4, 4), not (8, 3, 4, 4)" in message
    deeper = tmp_path / "layers3.pt"
    torch.save(_foreign_discriminator(seed=1, layers=3), deeper)
    with pytest.raises(GenbenchError, match=r"missing main.8.bias; unexpected main.9.weight; .*and 6 more\)"):
        Trainer(tiny_config(disc_weights=str(deeper)), dataset)
    empty = tmp_path / "sit-run.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "discriminator": {}}, empty)
    with pytest.raises(GenbenchError, match="holds no discriminator state dict"):
        Trainer(tiny_config(disc_weights=str(empty)), dataset)
    with pytest.raises(GenbenchError, match="missing.pt: checkpoint not found"):
        Trainer(tiny_config(disc_weights=str(tmp_path / "missing.pt")), dataset)
    pickled = tmp_path / "pickled.pt"
    torch.save({"discriminator": {"main.0.weight": torch.zeros(1)}, "object": TrainConfig()}, pickled)
    with pytest.raises(GenbenchError, match="weights-only"):  # never unpickles arbitrary objects
        Trainer(tiny_config(disc_weights=str(pickled)), dataset)
    with pytest.raises(GenbenchError, match="disc_weights is for the repae recipe"):
        tiny_config("repa", disc_weights=str(wider))


def test_resume_keeps_the_knobs_and_needs_no_pretrained_file(tmp_path, dataset):
    disc = tmp_path / "disc.pt"
    torch.save(_foreign_discriminator(seed=3), disc)
    knobs = {"vae_lr": 3e-4, "disc_lr": 2e-5, "hflip": True, "disc_weights": str(disc), "steps": 4,
             "checkpoint_every": 2, "log_every": 1}
    torch.manual_seed(0)
    straight = Trainer(tiny_config(**knobs), dataset)
    train(straight, 4, tmp_path / "straight")
    torch.manual_seed(0)
    first = Trainer(tiny_config(**knobs), dataset)
    train(first, 2, tmp_path / "split")
    disc.unlink()  # the checkpoint holds the discriminator; the original file is not needed again
    torch.manual_seed(999)
    resumed = Trainer.resume(latest_checkpoint(tmp_path / "split"), dataset)
    assert (resumed.config.vae_lr, resumed.config.disc_lr, resumed.config.hflip) == (3e-4, 2e-5, True)
    assert resumed.optimizers["vae"].param_groups[0]["lr"] == 3e-4
    assert resumed.optimizers["discriminator"].param_groups[0]["lr"] == 2e-5
    train(resumed, 4, tmp_path / "split")
    for name in ("model", "vae", "discriminator"):
        a, b = straight.state_dict()[name], resumed.state_dict()[name]
        assert all(torch.equal(a[key], b[key]) for key in a), name


def test_checkpoint_from_before_the_knobs_resumes_as_it_trained(tmp_path, dataset):
    """A config saved without vae_lr / disc_lr / hflip trained every optimiser at `lr`, with flips."""
    torch.manual_seed(0)
    trainer = Trainer(tiny_config(lr=3e-4, steps=1), dataset)
    path = train(trainer, 1, tmp_path)
    state = torch.load(path, weights_only=True)
    old = {k: v for k, v in json.loads(state["config"]).items() if k not in ("vae_lr", "disc_lr", "hflip",
                                                                            "disc_weights")}
    state["config"] = json.dumps(old)
    torch.save(state, path)
    resumed = Trainer.resume(path, dataset)
    assert (resumed.config.vae_lr, resumed.config.disc_lr, resumed.config.hflip) == (3e-4, 3e-4, True)
    # a new run from a user's config that omits them gets upstream's defaults instead
    fresh = TrainConfig.from_dict({**old, "steps": 2})
    assert (fresh.vae_lr, fresh.disc_lr, fresh.hflip) == (1e-4, 1e-4, False)


def test_cli_disc_weights_sets_the_config_and_refuses_resume(tmp_path, dataset):
    from genbench.cli.train import train as train_command

    disc = tmp_path / "disc.pt"
    torch.save(_foreign_discriminator(seed=5), disc)
    out = tmp_path / "run"
    train_command(recipe="repae", data=dataset.source, out=out, preset="tiny-repae", steps=1,
                  disc_weights=disc, device="cpu")
    saved = torch.load(latest_checkpoint(out), weights_only=True)
    assert json.loads(saved["config"])["disc_weights"] == str(disc)
    with pytest.raises(GenbenchError, match="--disc-weights starts a run"):
        train_command(recipe="repae", data=dataset.source, out=out, steps=2, resume=True, disc_weights=disc,
                      device="cpu")
