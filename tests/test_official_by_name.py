"""Official models by name: a test registry ($GENBENCH_REFERENCE_REGISTRY) lists tiny stand-ins of a REPA-E
checkpoint (VAE and latent BatchNorm inside) and of a SiT with a separate VAE and latents-stats file, with
their SHA-256s; a loopback server on 127.0.0.1 serves them. Names resolve to those files, fetched and
verified, and load into the models they stand for."""

from __future__ import annotations

import argparse
import hashlib
import io
import json

import numpy as np
import pytest
import torch
from conftest import run_main
from test_fetch import LoopbackServer
from test_official_checkpoints import TINY_XL, C, official_sit_state

from genbench import fetch as fetcher
from genbench.errors import GenbenchError
from genbench.io import package_file
from genbench.models.official import (
    GENERIC_SAMPLING,
    load_model,
    model_path,
    registered_model,
    registered_models,
    sampling_settings,
)
from genbench.models.vae import build_vae
from genbench.results import load_results

TINY_VAE = dict(ch=8, ch_mult=(1, 2, 2), groups=4, num_res_blocks=1, resolution=32)
SAMPLING = {"sampler": "ode", "steps": 3, "cfg_scale": 1.5, "guidance_interval": [0.0, 0.7]}


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def official(tmp_path, monkeypatch):
    """Serve and register `tiny-repae` (one checkpoint holding SiT EMA with BN stats and the VAE) and
    `tiny-sit` (a bare SiT state dict + VAE file + latents-stats file). Returns (server, states)."""
    server = LoopbackServer()
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("GENBENCH_MIRROR", raising=False)
    monkeypatch.setattr(fetcher, "RETRY_DELAYS", ())
    ema = official_sit_state(projector=True, bn=True)
    vae = build_vae("tiny-f4d4").state_dict()
    bare = official_sit_state(projector=True)
    stats = {"latents_scale": torch.full((1, C, 1, 1), 0.5), "latents_bias": torch.ones(1, C, 1, 1)}
    blobs = {
        "repae-ckpt": torch_bytes({"model": ema, "ema": ema, "vae": vae, "args": argparse.Namespace(),
                                   "steps": 400000}),
        "sit-ckpt": torch_bytes(bare),
        "sit-vae": torch_bytes(vae),
        "sit-stats": torch_bytes(stats),
    }
    files = {}
    for name, data in blobs.items():
        server.files[f"/hub/{name}.pt"] = data
        files[name] = {"url": server.url(f"/hub/{name}.pt"), "path": f"official/{name}.pt",
                       "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    common = {"architecture": "sit-repae-sdvae", "sit_overrides": TINY_XL, "vae_overrides": TINY_VAE,
              "recipe": "REPA-E", "params": "tiny", "sampling": SAMPLING}
    models = {"tiny-repae": {**common, "checkpoint": "repae-ckpt", "tokenizer": "tiny (in the checkpoint)"},
              "tiny-sit": {**common, "checkpoint": "sit-ckpt", "vae": "sit-vae", "latents_stats": "sit-stats",
                           "tokenizer": "tiny f4d4"}}
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"reference_sets": {}, "files": files, "models": models}))
    monkeypatch.setenv("GENBENCH_REFERENCE_REGISTRY", str(registry))
    yield server, {"ema": ema, "vae": vae, "bare": bare, "stats": stats}
    server.close()


def test_names_resolve_to_their_fetched_files_and_load(official, tmp_path):
    server, states = official
    assert set(registered_models()) == {"tiny-repae", "tiny-sit"}
    loaded = load_model("tiny-repae")
    assert loaded.path == tmp_path / "cache" / "official" / "repae-ckpt.pt"
    assert torch.equal(loaded.sit.blocks[1].mlp.fc2.weight, states["ema"]["blocks.1.mlp.fc2.weight"])
    assert torch.equal(loaded.sit.latent_norm.running_mean, states["ema"]["bn.running_mean"])
    key = "decoder.conv_out.weight"
    assert torch.equal(loaded.vae.state_dict()[key], states["vae"][key])
    assert loaded.config["registered"] == "tiny-repae" and loaded.config["official"] == "sit-repae-sdvae"

    loaded = load_model("tiny-sit")  # checkpoint, VAE and latent statistics: three registered files
    assert torch.equal(loaded.sit.blocks[0].attn.qkv.weight, states["bare"]["blocks.0.attn.qkv.weight"])
    assert torch.equal(loaded.vae.state_dict()[key], states["vae"][key])
    assert torch.equal(loaded.sit.latent_norm.running_var, torch.full((C,), 4.0))  # scale 0.5 -> var 4
    assert sorted(p for p, _ in server.requests) == ["/hub/repae-ckpt.pt", "/hub/sit-ckpt.pt",
                                                     "/hub/sit-stats.pt", "/hub/sit-vae.pt"]
    # the one demo-name resolver knows registered names too; a second use reads the cache
    assert model_path("tiny-sit") == tmp_path / "cache" / "official" / "sit-ckpt.pt"
    load_model("tiny-repae")
    assert len(server.requests) == 4


def test_a_tampered_official_file_is_refused(official, tmp_path):
    server, _ = official
    data = server.files["/hub/sit-vae.pt"]
    server.files["/hub/sit-vae.pt"] = data[:100] + bytes([data[100] ^ 1]) + data[101:]  # one bit flipped
    with pytest.raises(GenbenchError, match="does not match the registry's"):
        load_model("tiny-sit")
    assert not (tmp_path / "cache" / "official" / "sit-vae.pt").exists()
    assert not (tmp_path / "cache" / "official" / "sit-vae.pt.part").exists()


def test_registered_model_settings_and_unknown_names(official):
    model = registered_model("tiny-sit")
    assert model.sampling == SAMPLING and model.file_names == ["sit-ckpt", "sit-vae", "sit-stats"]
    assert registered_model("nope") is None
    with pytest.raises(GenbenchError, match="nope: checkpoint not found.*genbench models list"):
        load_model("nope")


def test_models_list_and_fetch_commands(official, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_main(capsys, monkeypatch, "models", "list")
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "tiny-" in line}
    assert set(rows) == {"tiny-repae", "tiny-sit"}
    assert "ode 3, cfg 1.5 [0, 0.7]" in rows["tiny-sit"]
    assert [cell.strip() for cell in rows["tiny-sit"].split("│")][6] == "no"

    code, out, err = run_main(capsys, monkeypatch, "models", "fetch", "tiny-sit")
    assert code == 0, err
    assert str(tmp_path / "cache" / "official" / "sit-stats.pt") in out
    code, out, _ = run_main(capsys, monkeypatch, "models", "list")
    row = next(line for line in out.splitlines() if "tiny-sit" in line)
    assert [cell.strip() for cell in row.split("│")][6] == "yes"


def test_a_bad_model_entry_names_the_registry(official, tmp_path):
    registry = tmp_path / "registry.json"
    content = json.loads(registry.read_text())
    content["models"]["broken"] = {"architecture": "no-such-arch", "checkpoint": "sit-ckpt"}
    registry.write_text(json.dumps(content))
    with pytest.raises(GenbenchError, match=r"registry.json: model 'broken' needs"):
        registered_model("broken")


def test_sampling_settings_come_from_the_paper_unless_an_option_overrides_them(official, tmp_path):
    paper = sampling_settings("tiny-sit")
    assert paper == {"sampler": "ode", "steps": 3, "cfg_scale": 1.5, "guidance_interval": (0.0, 0.7),
                     "cfg_channels": None, "heun": False}
    assert sampling_settings("tiny-sit", steps=7, cfg_scale=None)["steps"] == 7
    assert sampling_settings("tiny-sit", steps=7, cfg_scale=None)["cfg_scale"] == 1.5
    checkpoint = tmp_path / "mine.pt"
    checkpoint.write_bytes(b"")
    assert sampling_settings(checkpoint) == {**GENERIC_SAMPLING, "guidance_interval": (0.0, 1.0)}
    assert sampling_settings(checkpoint, sampler="ode")["sampler"] == "ode"


def test_eval_by_name_fetches_model_and_reference_and_samples_with_the_paper_settings(official, tmp_path,
                                                                                       capsys, monkeypatch):
    """`genbench eval --model NAME --ref SET` in one command: checkpoint and reference set come from the
    loopback server; the sampler, CFG scale and interval are the registry's (steps overridden here)."""
    server, _ = official
    reference = package_file("genbench.reference_stats", "shapes32.npz").read_bytes()
    server.files["/refs/tiny-ref.npz"] = reference
    registry = tmp_path / "registry.json"
    content = json.loads(registry.read_text())
    content["reference_sets"]["tiny-ref"] = {"url": server.url("/refs/tiny-ref.npz"),
                                             "sha256": hashlib.sha256(reference).hexdigest()}
    registry.write_text(json.dumps(content))
    out = tmp_path / "results.json"
    code, stdout, err = run_main(capsys, monkeypatch, "eval", "--model", "tiny-repae", "--ref", "tiny-ref",
                                 "--extractor", "shapes", "--metrics", "fid", "--num", "20", "--steps", "2",
                                 "--device", "cpu", "--no-grid", "--out", out)
    assert code == 0, err
    results = load_results(out)
    sampling = results["provenance"]["sampling"]
    paper = (sampling["sampler"], sampling["cfg_scale"], sampling["guidance_interval"])
    assert paper == ("ode", 1.5, [0.0, 0.7])
    assert sampling["num_steps"] == 2 and sampling["num_samples"] == 20
    assert sampling["model"]["official"] == "tiny-repae" and len(sampling["model"]["sha256"]) == 64
    assert np.isfinite(results["metrics"]["fid"])
    assert sorted(p for p, _ in server.requests) == ["/hub/repae-ckpt.pt", "/refs/tiny-ref.npz"]
    assert (tmp_path / "cache" / "reference" / "tiny-ref.npz").read_bytes() == reference

    # the same name samples with `genbench sample` (an option overrides the paper's sampler)
    code, _, err = run_main(capsys, monkeypatch, "sample", "--model", "tiny-repae", "--num", "4", "--steps",
                            "2", "--sampler", "sde", "--device", "cpu", "--no-grid", "--out",
                            tmp_path / "s.npz")
    assert code == 0, err
    manifest = json.loads((tmp_path / "s.shards" / "manifest.json").read_text())
    assert manifest["sampler"] == "sde" and manifest["cfg_scale"] == 1.5
    assert len(server.requests) == 2  # the cached checkpoint was used


def test_tokenizers_and_probe_take_official_names(official):
    """`tokenizers compare --vae NAME` reads an official model's VAE (with its latent statistics) and
    `probe --features sit:NAME` its SiT, through the same resolver."""
    from genbench.probe import parse_feature_spec, sit_features
    from genbench.tokenizer_comparison import load_tokenizer

    _, states = official
    tokenizer = load_tokenizer("tiny-sit")
    key = "decoder.conv_out.weight"
    assert torch.equal(tokenizer.adapter.vae.state_dict()[key], states["vae"][key])
    assert torch.equal(tokenizer.adapter.latent_norm.running_var, torch.full((C,), 4.0))  # the stats file
    features, provenance = sit_features(parse_feature_spec("sit:tiny-repae:layer=1"), None, 0, "cpu")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    pooled = features(images, torch.arange(2))
    assert pooled["layer1"].shape == (2, TINY_XL["hidden_size"]) and "repae-ckpt.pt" in provenance["model"]
