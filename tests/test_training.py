"""Tiny CPU tests of the training recipes: gradient isolation, loss decrease, exact resume, caching."""

import json

import numpy as np
import pytest
import torch

from genbench.errors import GenbenchError
from genbench.models.checkpoints import latest_checkpoint
from genbench.training.data import ImageDataset
from genbench.training.recipes import PRESETS, TrainConfig, Trainer, resolve, train


@pytest.fixture(scope="module")
def photo_npz(tmp_path_factory):
    """32 real-photo crops (skimage's bundled images) at 48 px, 4 classes, as an ADM-style npz."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    crops, labels = [], []
    for label, photo in enumerate(photos):
        for _ in range(8):
            top, left = rng.integers(0, photo.shape[0] - 192), rng.integers(0, photo.shape[1] - 192)
            crops.append(photo[top: top + 192: 4, left: left + 192: 4])  # 48 x 48
            labels.append(label)
    path = tmp_path_factory.mktemp("data") / "photos.npz"
    np.savez(path, arr_0=np.stack(crops).astype(np.uint8), arr_1=np.array(labels))
    return path


@pytest.fixture(scope="module")
def dataset(photo_npz):
    return ImageDataset(photo_npz, resolution=32)


def tiny_config(recipe: str, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**PRESETS[f"tiny-{recipe}"], **overrides})


def test_dataset_crops_flips_and_is_a_function_of_step(dataset):
    assert dataset.images.shape == (32, 3, 32, 32) and dataset.num_classes == 4
    index, flip = dataset.batch_indices(3, 8, seed=1, hflip=True)
    again, flip_again = dataset.batch_indices(3, 8, seed=1, hflip=True)
    assert torch.equal(index, again) and torch.equal(flip, flip_again)
    assert 0 < flip.sum() < 8 or dataset.batch_indices(4, 8, seed=1, hflip=True)[1].any()
    first_epoch = torch.cat([dataset.batch_indices(s, 8, seed=1)[0] for s in range(4)])
    assert sorted(first_epoch.tolist()) == list(range(32))  # each image once per epoch
    images = dataset.images_at(index, flip)
    row = int(flip.nonzero()[0]) if flip.any() else 0
    expected = dataset.images[index[row]].flip(-1) if flip[row] else dataset.images[index[row]]
    assert torch.equal(images[row], expected)


def test_image_folder_classes_and_adm_centre_crop(tmp_path, photo_npz):
    from PIL import Image

    from genbench.training.data import center_crop_arr

    photos = np.load(photo_npz)["arr_0"]
    for i, name in enumerate(["b_class", "a_class", "a_class"]):
        (tmp_path / name).mkdir(exist_ok=True)
        Image.fromarray(photos[i][:, :40]).save(tmp_path / name / f"{i}.png")  # 48 x 40, not square
    (tmp_path / "a_class" / "notes.txt").write_text("not an image")
    folder = ImageDataset(tmp_path, resolution=32)
    assert folder.images is None and len(folder) == 3 and folder.num_classes == 2
    assert folder.labels.tolist() == [0, 0, 1]  # sorted class folders: a_class = 0, b_class = 1
    decoded = folder.images_at(torch.tensor([2]), torch.tensor([False]))[0]
    # ADM centre crop by hand: BICUBIC resize of the short side (40 -> 32), then the central 32 rows.
    image = Image.fromarray(photos[0][:, :40]).resize((32, round(48 * 32 / 40)), resample=Image.BICUBIC)
    top = (image.size[1] - 32) // 2
    assert torch.equal(decoded, torch.from_numpy(np.array(image)[top: top + 32]).permute(2, 0, 1))
    big = np.zeros((130, 70, 3), dtype=np.uint8)
    assert center_crop_arr(Image.fromarray(big), 32).shape == (32, 32, 3)  # BOX halving path


def test_bad_data_path_is_readable_error(tmp_path):
    with pytest.raises(GenbenchError, match="no such image folder"):
        ImageDataset(tmp_path / "missing", 32)
    np.savez(tmp_path / "bad.npz", arr_0=np.zeros((2, 8, 8), dtype=np.float32))
    with pytest.raises(GenbenchError, match="uint8"):
        ImageDataset(tmp_path / "bad.npz", 32)


def test_bad_config_is_readable_error(dataset):
    with pytest.raises(GenbenchError, match="unknown training options"):
        TrainConfig.from_dict({"recipe": "repae", "learning_rate": 1})
    with pytest.raises(GenbenchError, match="tokens"):
        Trainer(tiny_config("repa", encoder={"name": "tiny", "grid": 8}), dataset)
    with pytest.raises(GenbenchError, match="tokens of width 16 but the SiT's z_dim is 8"):
        Trainer(tiny_config("repa", sit={"name": "SiT-T/2", "z_dim": 8}), dataset)


def test_config_is_resolved_before_building_and_saved_with_the_run(tmp_path, dataset):
    config = tiny_config("repae")
    assert config.num_classes is None and config.latent_norm is None  # the data's and the recipe's
    resolved = resolve(config, dataset)
    assert (resolved.num_classes, resolved.latent_norm) == (4, "batchnorm")
    assert resolved.sit == {"name": "SiT-T/2", "input_size": 8, "in_channels": 4, "num_classes": 4,
                            "class_dropout_prob": 0.1, "latent_norm": "batchnorm", "latent_scale": 0.18215,
                            "z_dim": 16}  # tiny-f4d4: 8 x 8 x 4 latents; the tiny encoder's 16-wide tokens
    assert resolve(resolved, dataset) == resolved
    assert TrainConfig.from_checkpoint(json.loads(resolved.to_json()), "saved") == resolved
    sit = resolve(tiny_config("sit", encoder={"name": "tiny"}, cache_latents=True), dataset)
    assert sit.encoder is None and sit.sit["z_dim"] == 0 and sit.cache_latents  # sit uses no encoder
    assert not resolve(tiny_config("repae", cache_latents=True), dataset).cache_latents  # the VAE trains
    trainer = Trainer(config, dataset)
    assert trainer.config == resolved and config == tiny_config("repae")  # building changed nothing
    train(trainer, 1, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(resolved.to_json())


def test_repae_gradient_isolation(dataset):
    torch.manual_seed(0)
    trainer = Trainer(tiny_config("repae"), dataset)
    seen = {}

    def record(phase):
        seen[phase] = {
            "sit": [p.grad is not None for p in trainer.sit.parameters()],
            "projector": [p.grad is not None for p in trainer.sit.projector.parameters()],
            "vae": [p.grad is not None for p in trainer.vae.parameters()],
            "disc": [p.grad is not None for p in trainer.discriminator.parameters()],
        }

    trainer.on_update = record
    trainer.train_step()
    assert set(seen) == {"vae", "discriminator", "sit"}
    # VAE update: the REPA loss reached the VAE through the frozen SiT, but left no gradient on it or on D.
    assert all(seen["vae"]["vae"]) and not any(seen["vae"]["sit"]) and not any(seen["vae"]["projector"])
    assert not any(seen["vae"]["disc"])
    # SiT update on z.detach(): the SiT (and its projector) has gradients, the VAE none.
    assert all(seen["sit"]["sit"]) and all(seen["sit"]["projector"]) and not any(seen["sit"]["vae"])
    assert all(seen["discriminator"]["disc"]) and not any(seen["discriminator"]["vae"])


def test_repae_vae_step_uses_sit_in_eval_mode_and_bn_trains_in_sit_step(dataset):
    torch.manual_seed(0)
    trainer = Trainer(tiny_config("repae"), dataset)
    modes = []
    trainer.on_update = lambda phase: modes.append((phase, trainer.sit.training))
    bn = trainer.sit.latent_norm
    before = bn.running_mean.clone()
    trainer.train_step()
    assert modes == [("vae", False), ("discriminator", False), ("sit", True)]
    assert bn.num_batches_tracked.item() == 1 and not torch.equal(bn.running_mean, before)
    # EMA follows the BN buffers too (decay 0.999 in the tiny preset).
    expected = 0.999 * before + 0.001 * bn.running_mean
    assert torch.allclose(trainer.ema.latent_norm.running_mean, expected, atol=1e-7)


def fixed_batch_loss(trainer: Trainer, dataset: ImageDataset) -> float:
    """The recipe's SiT objective on all images with fixed t and eps (eval mode, posterior mean)."""
    generator = torch.Generator().manual_seed(123)
    images, labels = dataset.images, dataset.labels
    trainer.sit.eval()
    with torch.no_grad():
        z = trainer.vae.encode(images.float() / 127.5 - 1).mode()
        t = torch.rand(len(z), generator=generator)
        eps = torch.randn(z.shape, generator=generator)
        v, target, projected = trainer.objective(z, t, eps, labels)
        tokens = trainer.encoder(images) if trainer.encoder is not None else None
        loss, _ = trainer.sit_loss(v, target, projected, tokens)
    return loss.item()


@pytest.mark.parametrize("recipe", ["sit", "repa", "repae"])
def test_fifty_steps_lower_the_loss(dataset, recipe):
    torch.manual_seed(0)
    trainer = Trainer(tiny_config(recipe, lr=1e-3), dataset)
    if recipe == "repae":  # a fresh latent BN has mean 0 / var 1: estimate it before measuring
        trainer.sit.latent_norm.load_latents_stats(*_stats(trainer, dataset))
    before = fixed_batch_loss(trainer, dataset)
    logs = [trainer.train_step() for _ in range(50)]
    after = fixed_batch_loss(trainer, dataset)
    assert after < 0.95 * before, (before, after)
    if recipe == "repae":
        first, last = np.mean([x["vae_l1"] for x in logs[:5]]), np.mean([x["vae_l1"] for x in logs[-5:]])
        assert last < first, (first, last)


def _stats(trainer, dataset):
    with torch.no_grad():
        z = trainer.vae.encode(dataset.images.float() / 127.5 - 1).mode()
    var, mean = z.var(dim=(0, 2, 3)), z.mean(dim=(0, 2, 3))
    return var.rsqrt(), mean


@pytest.mark.parametrize("recipe", ["repae", "repa"])
def test_resume_equals_uninterrupted(tmp_path, dataset, recipe):
    overrides = {"steps": 4, "checkpoint_every": 2, "log_every": 1}
    torch.manual_seed(0)
    straight = Trainer(tiny_config(recipe, **overrides), dataset)
    train(straight, 4, tmp_path / "straight")
    torch.manual_seed(0)
    first = Trainer(tiny_config(recipe, **overrides), dataset)
    train(first, 2, tmp_path / "split")
    torch.manual_seed(999)  # the resumed process starts from an unrelated RNG state
    resumed = Trainer.resume(latest_checkpoint(tmp_path / "split"), dataset)
    assert resumed.step == 2
    train(resumed, 4, tmp_path / "split")
    for name in ("model", "ema", "vae", "discriminator"):
        a, b = straight.state_dict()[name], resumed.state_dict()[name]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    log_a = [json.loads(line) for line in open(tmp_path / "straight" / "log.jsonl")]
    log_b = [json.loads(line) for line in open(tmp_path / "split" / "log.jsonl")]
    assert log_a == log_b


def test_cached_latents_match_online_encoding(dataset):
    # Trainers share the global RNG, so run one after the other (each reseeds at construction).
    online = Trainer(tiny_config("repa"), dataset)
    online_losses = [online.train_step()["loss"] for _ in range(3)]
    cached = Trainer(tiny_config("repa", cache_latents=True), dataset)
    assert cached.latent_cache.shape == (32, 1, 8, 8, 8)  # no flips by default (hflip: test_training_knobs)
    cached_losses = [cached.train_step()["loss"] for _ in range(3)]
    assert cached_losses == pytest.approx(online_losses, rel=1e-5)


def test_checkpoint_loads_for_sampling(tmp_path, dataset):
    from genbench.models.checkpoints import load_model_checkpoint

    torch.manual_seed(0)
    trainer = Trainer(tiny_config("repae", steps=1), dataset)
    path = train(trainer, 1, tmp_path)
    loaded = load_model_checkpoint(path)
    assert not loaded.sit.training and loaded.vae is not None
    assert torch.equal(loaded.sit.latent_norm.running_var, trainer.ema.latent_norm.running_var)
    z = torch.randn(2, 4, 8, 8)
    y = torch.tensor([0, 4])  # 4 = the null class of the 4-class data
    assert loaded.sit(z, torch.rand(2), y).shape == z.shape
    assert loaded.config["recipe"] == "repae" and loaded.config["sit"]["num_classes"] == 4


@pytest.mark.slow  # three interpreter start-ups
def test_cli_train_resume_and_errors(tmp_path, photo_npz):
    import os
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "genbench", "train", *args], capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})

    common = ["--recipe", "repa", "--preset", "tiny-repa", "--data", str(photo_npz), "--out", str(tmp_path)]
    first = run(*common, "--steps", "2")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "checkpoints" / "0000002.pt").is_file()
    # tiny-repa's EMA decay 0.999 over 2 steps keeps 99.8% of the initial weights: the user is told
    assert "warning: EMA decay 0.999 over 2 steps keeps 100% of the initial weights" in first.stdout
    again = run(*common, "--steps", "3")
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = run(*common[:2], *common[4:], "--steps", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout and (tmp_path / "checkpoints" / "0000003.pt").is_file()
    steps = [json.loads(line)["step"] for line in open(tmp_path / "log.jsonl")]
    assert steps == [2, 3]  # logged every 10 steps and at the end of each run


def _sync_bn_worker(rank: int, port: int, z: torch.Tensor, queue) -> None:
    import torch.distributed as dist

    from genbench.models.latent_norm import LatentBatchNorm

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    bn = LatentBatchNorm(z.shape[1]).train()
    bn.sync = True
    local = z[rank * 3: (rank + 1) * 3].clone().requires_grad_(True)
    out = bn(local)
    (out * torch.arange(out.numel()).view_as(out).float()).sum().backward()  # position-weighted loss
    # numpy arrays travel by value; shared-memory tensors would need this process alive until received.
    tensors = (out, local.grad, bn.running_mean, bn.running_var)
    queue.put((rank, *(t.detach().numpy().copy() for t in tensors)))
    dist.destroy_process_group()


def test_latent_batchnorm_sync_over_two_gloo_processes_equals_one_big_batch():
    import socket

    import torch.multiprocessing as mp

    from genbench.models.latent_norm import LatentBatchNorm

    torch.manual_seed(0)
    z = torch.randn(6, 4, 3, 3) * 2 + 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_sync_bn_worker, args=(rank, port, z, queue)) for rank in range(2)]
    for proc in procs:
        proc.start()
    results = {r[0]: [torch.from_numpy(a) for a in r[1:]] for r in (queue.get(timeout=120) for _ in procs)}
    for proc in procs:
        proc.join(timeout=60)
    # Reference: one process, the whole batch, the summed loss of both ranks.
    bn = LatentBatchNorm(4).train()
    full = z.clone().requires_grad_(True)
    out = bn(full)
    weights = torch.arange(3 * 4 * 9).view(3, 4, 3, 3).float()
    (out * torch.cat([weights, weights])).sum().backward()
    for rank in range(2):
        out_r, grad_r, mean_r, var_r = results[rank]
        assert torch.allclose(out_r, out[rank * 3: (rank + 1) * 3].detach(), atol=1e-5)
        assert torch.allclose(grad_r, full.grad[rank * 3: (rank + 1) * 3], atol=1e-4)
        assert torch.allclose(mean_r, bn.running_mean, atol=1e-6) and torch.allclose(var_r, bn.running_var)


def test_bf16_autocast_step_runs_and_keeps_fp32_weights(dataset):
    torch.manual_seed(0)
    trainer = Trainer(tiny_config("repae", mixed_precision="bf16"), dataset)
    logs = [trainer.train_step() for _ in range(2)]
    assert all(np.isfinite(v) for log in logs for v in log.values())
    assert all(p.dtype == torch.float32 for p in trainer.sit.parameters())


def test_short_run_warning_names_the_kept_share_and_a_decay_that_fits():
    from genbench.training.ema import short_run_warning

    assert short_run_warning(0.99, 1000) is None  # 0.99^1000 = 4e-5
    message = short_run_warning(0.999, 1000)  # 0.999^1000 = 0.368
    assert "keeps 37% of the initial weights" in message
    suggested = float(message.split("ema_decay <= ")[1].split(" ")[0])
    assert suggested == pytest.approx(0.05 ** (1 / 1000), rel=1e-4) and suggested**1000 <= 0.0501
    assert "keeps 90%" in short_run_warning(0.9999, 1000)
