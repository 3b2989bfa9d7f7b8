"""Sharded generation: the sample set depends only on the settings (not batch size, process count or
interruptions), and assembles into an ADM .npz that genbench's sample sources read."""

import json
import socket

import numpy as np
import pytest
import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.pixels import to_uint8
from genbench.sampling.generate import SampleSettings, assemble, generate, vae_decoder
from genbench.sampling.labels import balanced_labels


class LinearVelocity(nn.Module):
    """v = W x + b[y] + c t: cheap, class-dependent, mixes channels. Fixed weights from seed 0."""

    def __init__(self, channels: int = 4, num_classes: int = 5):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.randn(channels, channels, generator=gen) * 0.3)
        self.bias = nn.Parameter(torch.randn(num_classes + 1, channels, generator=gen))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("dc,nchw->ndhw", self.weight, x)
        return mixed + self.bias[y][:, :, None, None] + t[:, None, None, None]


def decode(latents: torch.Tensor) -> torch.Tensor:
    """[N, 4, 4, 4] -> [N, 3, 8, 8] in [-1, 1]."""
    return torch.tanh(latents[:, :3]).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def _settings(**overrides) -> SampleSettings:
    values = dict(num_samples=11, latent_shape=(4, 4, 4), num_classes=5, sampler="sde", num_steps=6,
                  cfg_scale=1.5, guidance_interval=(0.0, 0.7), seed=7, shard_size=4)
    return SampleSettings(**{**values, **overrides})


def _run(out_dir, settings=None, batch_size=3, decode_fn=decode, **kwargs):
    torch.manual_seed(123)  # generation must not depend on the global RNG; a fixed state would hide that
    generate(LinearVelocity(), decode_fn, settings or _settings(), out_dir, batch_size=batch_size, **kwargs)
    return assemble(out_dir, out_dir / "samples.npz")


def _arrays(path):
    with np.load(path) as data:
        return data["arr_0"], data["arr_1"]


@pytest.mark.parametrize("sampler", ["sde", "ode"])
def test_samples_do_not_depend_on_batch_size_or_global_rng(tmp_path, sampler):
    images_a, labels_a = _arrays(_run(tmp_path / "a", _settings(sampler=sampler), batch_size=3))
    torch.manual_seed(999)
    images_b, labels_b = _arrays(_run(tmp_path / "b", _settings(sampler=sampler), batch_size=11))
    assert images_a.shape == (11, 8, 8, 3) and images_a.dtype == np.uint8
    assert np.array_equal(images_a, images_b) and np.array_equal(labels_a, labels_b)
    assert np.array_equal(labels_a, balanced_labels(11, 5, seed=7).numpy())
    assert len({images_a[i].tobytes() for i in range(11)}) == 11  # every sample has its own noise
    images_c, _ = _arrays(_run(tmp_path / "c", _settings(sampler=sampler, seed=8)))
    assert not np.array_equal(images_a, images_c)


def test_assembled_npz_is_read_by_the_sample_sources(tmp_path):
    from genbench.sources import open_source

    path = _run(tmp_path)
    source = open_source(path)
    assert len(source) == 11 and tuple(source.image_size) == (8, 8)
    images, index = next(iter(source.batches(11)))
    assert torch.equal(images, torch.from_numpy(_arrays(path)[0]).permute(0, 3, 1, 2))
    assert index.tolist() == list(range(11))


def test_interrupted_run_resumes_to_the_same_samples(tmp_path):
    reference, _ = _arrays(_run(tmp_path / "full"))
    calls = []

    def failing_decode(latents):
        calls.append(1)
        if len(calls) == 4:  # batches of 3 in shards of 4 (3 + 1): shard 0 done, shard 1 dies midway
            raise RuntimeError("interrupted")
        return decode(latents)

    with pytest.raises(RuntimeError, match="interrupted"):
        _run(tmp_path / "resumed", decode_fn=failing_decode)
    done = sorted(p.name for p in (tmp_path / "resumed").iterdir())
    assert done == ["manifest.json", "shard-00000.npz"]  # the shard in progress left no file behind
    with pytest.raises(GenbenchError, match="shards missing"):
        assemble(tmp_path / "resumed", tmp_path / "resumed" / "samples.npz")
    assert not (tmp_path / "resumed" / "samples.npz").exists()
    first_shard_time = (tmp_path / "resumed" / "shard-00000.npz").stat().st_mtime_ns
    resumed, _ = _arrays(_run(tmp_path / "resumed"))
    assert np.array_equal(resumed, reference)
    assert (tmp_path / "resumed" / "shard-00000.npz").stat().st_mtime_ns == first_shard_time  # skipped


def test_resume_with_other_settings_is_refused(tmp_path):
    _run(tmp_path)
    with pytest.raises(GenbenchError, match=r"manifest.json.*cfg_scale: 1.5 -> 2.0"):
        _run(tmp_path, _settings(cfg_scale=2.0))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["cfg_scale"] == 1.5 and manifest["guidance_interval"] == [0.0, 0.7]


def test_bad_settings_are_readable_errors():
    with pytest.raises(GenbenchError, match="guidance-interval"):
        _settings(guidance_interval=(0.8, 0.2))
    with pytest.raises(GenbenchError, match="sampler"):
        _settings(sampler="dopri5")


def test_quantisation_matches_dit():
    images = torch.tensor([-1.5, -1.0, 0.0, 0.5, 1.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    # clamp(127.5 x + 128, 0, 255) then truncation: -1 -> 0.5 -> 0, 0 -> 128, 0.5 -> 191.75 -> 191.
    assert to_uint8(images)[0, 0, :, 0].tolist() == [0, 0, 128, 191, 255]


def _gloo_worker(rank: int, port: int, out_dir: str, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    written = generate(LinearVelocity(), decode, _settings(), out_dir, batch_size=2)
    queue.put((rank, sorted(p.name for p in written)))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_make_the_same_samples_as_one(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_gloo_worker, args=(rank, port, str(tmp_path / "two"), queue))
             for rank in (0, 1)]
    for proc in procs:
        proc.start()
    written = dict(queue.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert written == {0: ["shard-00000.npz", "shard-00002.npz"], 1: ["shard-00001.npz"]}
    two = _arrays(assemble(tmp_path / "two", tmp_path / "two.npz"))
    one = _arrays(_run(tmp_path / "one"))
    assert np.array_equal(two[0], one[0]) and np.array_equal(two[1], one[1])


@pytest.mark.slow
def test_sit_and_vae_decoder_produce_images(tmp_path):
    from genbench.models import build_sit, build_vae

    torch.manual_seed(0)
    sit = build_sit("SiT-T/2", input_size=8, num_classes=5, z_dim=0, latent_norm="scale").eval()
    nn.init.normal_(sit.final_layer.linear.weight, std=0.02)  # a fresh SiT outputs 0; make it do something
    vae = build_vae("tiny-f4d4").eval()
    settings = _settings(num_samples=3, latent_shape=(4, 8, 8), num_steps=3)
    generate(sit, vae_decoder(sit, vae), settings, tmp_path, batch_size=2)
    images, labels = _arrays(assemble(tmp_path, tmp_path / "out.npz"))
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8 and images.std() > 0
    assert sorted(labels.tolist()) == sorted(balanced_labels(3, 5, seed=7).tolist())


def _tiny_checkpoint(path, num_classes=5):
    from genbench.models import build_sit, build_vae

    sit_config = {"input_size": 8, "num_classes": num_classes, "z_dim": 0, "latent_norm": "scale"}
    config = {"sit": {"name": "SiT-T/2", **sit_config}, "vae": {"preset": "tiny-f4d4"}}
    torch.manual_seed(0)
    sit = build_sit("SiT-T/2", **sit_config)
    nn.init.normal_(sit.final_layer.linear.weight, std=0.02)
    vae = build_vae("tiny-f4d4")
    torch.save({"config": json.dumps(config), "ema": sit.state_dict(), "vae": vae.state_dict()}, path)


@pytest.mark.slow
def test_cli_samples_a_checkpoint_and_refuses_changed_settings(tmp_path):
    import os
    import subprocess
    import sys

    _tiny_checkpoint(tmp_path / "model.pt")

    def run(*args):
        common = ["--model", str(tmp_path / "model.pt"), "--num", "6", "--steps", "3", "--shard-size", "4",
                  "--batch-size", "4", "--cfg-scale", "1.8", "--guidance-interval", "0", "0.7"]
        return subprocess.run([sys.executable, "-m", "genbench", "sample", *common, *args],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})

    first = run("--out", str(tmp_path / "a.npz"))
    assert first.returncode == 0, first.stderr
    images, labels = _arrays(tmp_path / "a.npz")
    assert images.shape == (6, 32, 32, 3)
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "a.grid.png"))  # 6 samples: 3 columns x 2 rows
    assert grid.shape == (2 + 2 * 34, 2 + 3 * 34, 3)
    np.testing.assert_array_equal(grid[36:68, 70:102], images[5])
    assert run("--out", str(tmp_path / "b.npz"), "--no-grid").returncode == 0
    assert (tmp_path / "b.npz").exists() and not (tmp_path / "b.grid.png").exists()
    assert sorted(np.bincount(labels, minlength=5).tolist()) == [1, 1, 1, 1, 2]
    changed = run("--out", str(tmp_path / "a.npz"), "--seed", "1")
    assert changed.returncode == 2 and "seed: 0 -> 1" in changed.stderr and "Traceback" not in changed.stderr
