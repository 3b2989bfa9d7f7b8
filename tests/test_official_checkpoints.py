"""Official checkpoint formats load strictly into genbench's models (tiny dims, key names as upstream)."""

import argparse

import pytest
import torch
from safetensors.torch import save_file

from genbench.errors import GenbenchError
from genbench.models.official import load_official_sit, load_official_vae, read_latents_stats
from genbench.models.vae import build_vae

C, D, DEPTH, P, Z, PROJ, K, GRID = 4, 32, 2, 2, 16, 64, 10, 4  # tiny SiT-T/2 on 8x8 latents


def official_sit_state(projector: bool, learn_sigma: bool = False, bn: bool = False) -> dict:
    """A REPA / REPA-E / SiT state dict with the upstream key names and shapes (models/sit.py there)."""
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    out = C * 2 if learn_sigma else C
    state = {"pos_embed": r(1, GRID * GRID, D),
             "x_embedder.proj.weight": r(D, C, P, P), "x_embedder.proj.bias": r(D),
             "t_embedder.mlp.0.weight": r(D, 256), "t_embedder.mlp.0.bias": r(D),
             "t_embedder.mlp.2.weight": r(D, D), "t_embedder.mlp.2.bias": r(D),
             "y_embedder.embedding_table.weight": r(K + 1, D),
             "final_layer.linear.weight": r(P * P * out, D), "final_layer.linear.bias": r(P * P * out),
             "final_layer.adaLN_modulation.1.weight": r(2 * D, D),
             "final_layer.adaLN_modulation.1.bias": r(2 * D)}
    for i in range(DEPTH):
        b = f"blocks.{i}."
        state |= {b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D),
                  b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
                  b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D),
                  b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D),
                  b + "adaLN_modulation.1.weight": r(6 * D, D), b + "adaLN_modulation.1.bias": r(6 * D)}
    if projector:
        state |= {"projectors.0.0.weight": r(PROJ, D), "projectors.0.0.bias": r(PROJ),
                  "projectors.0.2.weight": r(PROJ, PROJ), "projectors.0.2.bias": r(PROJ),
                  "projectors.0.4.weight": r(Z, PROJ), "projectors.0.4.bias": r(Z)}
    if bn:
        state |= {"bn.running_mean": r(C), "bn.running_var": r(C).abs() + 0.5,
                  "bn.num_batches_tracked": torch.tensor(7)}
    return state


SIT_KW = dict(input_size=8, in_channels=C, num_classes=K)


def test_repae_sit_checkpoint_loads_ema_and_bn(tmp_path):
    ema = official_sit_state(projector=True, bn=True)
    model_state = {k: v + 1 for k, v in ema.items()}
    checkpoint = {"model": model_state, "ema": ema, "vae": {}, "discriminator": {}, "opt": {}, "opt_vae": {},
                  "opt_disc": {}, "args": argparse.Namespace(model="SiT-XL/2"), "steps": 400000}
    torch.save(checkpoint, tmp_path / "0400000.pt")
    model = load_official_sit(tmp_path / "0400000.pt", "SiT-T/2", z_dim=Z, latent_norm="batchnorm", **SIT_KW)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, ema["blocks.1.mlp.fc2.weight"])
    assert torch.equal(model.projector[4].weight, ema["projectors.0.4.weight"])
    assert torch.equal(model.latent_norm.running_var, ema["bn.running_var"])
    raw = load_official_sit(tmp_path / "0400000.pt", "SiT-T/2", use_ema=False, z_dim=Z,
                            latent_norm="batchnorm", **SIT_KW)
    assert torch.equal(raw.pos_embed, model_state["pos_embed"])


def test_repa_released_bare_state_dict_loads(tmp_path):
    state = {"module." + k: v for k, v in official_sit_state(projector=True).items()}  # DDP prefix
    torch.save(state, tmp_path / "last.pt")
    model = load_official_sit(tmp_path / "last.pt", "SiT-T/2", z_dim=Z, latent_norm="scale", **SIT_KW)
    table = state["module.y_embedder.embedding_table.weight"]
    assert torch.equal(model.y_embedder.embedding_table.weight, table)


def test_sit_learn_sigma_checkpoint_loads_and_drops_sigma(tmp_path):
    state = official_sit_state(projector=False, learn_sigma=True)
    save_file(state, str(tmp_path / "SiT-XL-2-256.safetensors"))
    torch.save(state, tmp_path / "SiT-XL-2-256.pt")
    for name in ("SiT-XL-2-256.safetensors", "SiT-XL-2-256.pt"):
        model = load_official_sit(tmp_path / name, "SiT-T/2", z_dim=0, learn_sigma=True, **SIT_KW).eval()
        v = model(torch.randn(2, C, 8, 8), torch.rand(2), torch.tensor([1, K]))
        assert v.shape == (2, C, 8, 8) and v.abs().sum() > 0


def test_mismatched_config_is_a_readable_error(tmp_path):
    torch.save(official_sit_state(projector=True), tmp_path / "last.pt")
    with pytest.raises(GenbenchError, match="last.pt"):
        load_official_sit(tmp_path / "last.pt", "SiT-T/2", z_dim=0, **SIT_KW)
    with pytest.raises(GenbenchError, match="not found"):
        load_official_sit(tmp_path / "missing.pt", "SiT-T/2", **SIT_KW)


def test_repae_vae_pt_uses_ldm_names(tmp_path):
    reference = build_vae("tiny-f8d4")
    state = reference.state_dict()
    # Upstream LDM names, spot-checked: they must be present verbatim in a REPA-E .pt file.
    for key, shape in {"encoder.down.0.block.0.norm1.weight": (8,),
                       "encoder.down.0.downsample.conv.weight": (8, 8, 3, 3),
                       "encoder.down.2.block.0.nin_shortcut.weight": (16, 8, 1, 1),
                       "encoder.down.2.attn.0.q.weight": (16, 16, 1, 1),
                       "encoder.mid.attn_1.proj_out.weight": (16, 16, 1, 1),
                       "encoder.mid.block_2.conv2.weight": (16, 16, 3, 3),
                       "encoder.conv_out.weight": (8, 16, 3, 3),
                       "quant_conv.weight": (8, 8, 1, 1), "post_quant_conv.weight": (4, 4, 1, 1),
                       "decoder.up.0.block.1.conv2.weight": (8, 8, 3, 3),
                       "decoder.up.1.upsample.conv.weight": (8, 8, 3, 3),
                       "decoder.up.2.attn.1.k.weight": (16, 16, 1, 1),
                       "decoder.norm_out.weight": (8,)}.items():
        assert tuple(state[key].shape) == shape, key
    torch.save(state, tmp_path / "e2e-vae.pt")
    torch.save({"latents_scale": torch.full((1, 4, 1, 1), 2.0), "latents_bias": torch.zeros(1, 4, 1, 1)},
               tmp_path / "e2e-vae-latents-stats.pt")
    vae = load_official_vae(tmp_path / "e2e-vae.pt", "tiny-f8d4")
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in state.items())
    scale, bias = read_latents_stats(tmp_path / "e2e-vae-latents-stats.pt")
    assert scale.shape == (1, 4, 1, 1) and torch.equal(bias, torch.zeros(1, 4, 1, 1))


@pytest.mark.parametrize("attention_blocks", [False, True])
def test_diffusers_vae_matches_diffusers_numerically(tmp_path, attention_blocks):
    diffusers = pytest.importorskip("diffusers")  # a test dependency (pyproject [test])
    down = ["AttnDownEncoderBlock2D" if attention_blocks else "DownEncoderBlock2D", "DownEncoderBlock2D",
            "DownEncoderBlock2D"]
    up = ["UpDecoderBlock2D", "UpDecoderBlock2D",
          "AttnUpDecoderBlock2D" if attention_blocks else "UpDecoderBlock2D"]
    torch.manual_seed(0)
    theirs = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
                                     block_out_channels=[8, 16, 16], layers_per_block=1, latent_channels=4,
                                     norm_num_groups=4, sample_size=32).eval()
    save_file(theirs.state_dict(), str(tmp_path / "diffusion_pytorch_model.safetensors"))
    ours = load_official_vae(tmp_path / "diffusion_pytorch_model.safetensors", "tiny-f4d4",
                             attn_resolutions=(32,) if attention_blocks else ()).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        posterior = theirs.encode(x).latent_dist
        assert torch.allclose(ours.encode(x).mean, posterior.mean, atol=1e-5)
        assert torch.allclose(ours.encode(x).logvar, posterior.logvar, atol=1e-5)
        assert torch.allclose(ours.decode(posterior.mean), theirs.decode(posterior.mean).sample, atol=1e-5)


TINY_XL = {"depth": DEPTH, "hidden_size": D, "num_heads": 2, "encoder_depth": 1, "projector_dim": PROJ,
           "z_dim": Z, "input_size": 8, "in_channels": C, "num_classes": K}


def test_load_official_repae_model_with_its_vae_and_bn_stats(tmp_path):
    from genbench.models.official import load_official_model

    vae_state = build_vae("tiny-f4d4").state_dict()
    ema = official_sit_state(projector=True, bn=True)
    torch.save({"model": ema, "ema": ema, "vae": vae_state, "args": argparse.Namespace(), "steps": 1},
               tmp_path / "sit-repae.pt")
    tiny_vae = dict(ch=8, ch_mult=(1, 2, 2), groups=4, num_res_blocks=1, resolution=32)
    loaded = load_official_model("sit-repae-sdvae", tmp_path / "sit-repae.pt", sit_overrides=TINY_XL,
                                 vae_overrides=tiny_vae)
    assert torch.equal(loaded.sit.latent_norm.running_mean, ema["bn.running_mean"])
    key = "decoder.conv_out.weight"
    assert torch.equal(loaded.vae.state_dict()[key], vae_state[key])
    assert not loaded.sit.training and not loaded.vae.training
    # Separately released latents stats take precedence over the checkpoint's BN buffers.
    torch.save({"latents_scale": torch.full((1, C, 1, 1), 0.5), "latents_bias": torch.ones(1, C, 1, 1)},
               tmp_path / "stats.pt")
    loaded = load_official_model("sit-repae-sdvae", tmp_path / "sit-repae.pt", sit_overrides=TINY_XL,
                                 vae_overrides=tiny_vae, latents_stats=tmp_path / "stats.pt")
    assert torch.equal(loaded.sit.latent_norm.running_var, torch.full((C,), 4.0))


def test_load_official_sit_without_vae_names_the_download(tmp_path):
    from genbench.models.official import load_official_model

    torch.save(official_sit_state(projector=False, learn_sigma=True), tmp_path / "SiT-XL-2-256.pt")
    with pytest.raises(GenbenchError, match="sd-vae-ft-ema"):
        load_official_model("sit-xl-2-256", tmp_path / "SiT-XL-2-256.pt",
                            sit_overrides={**TINY_XL, "z_dim": 0})
