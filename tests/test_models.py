"""Tiny CPU tests of the reference models (SiT, VAE, latent normalisation, encoders)."""

import pytest
import torch

from genbench.models import SIT_CONFIGS, LatentBatchNorm, build_sit
from genbench.models.sit import TimestepEmbedder, sincos_pos_embed_2d


def tiny_sit(**overrides):
    return build_sit("SiT-T/2", input_size=8, in_channels=4, num_classes=10, z_dim=16, **overrides)


def test_fresh_sit_outputs_exactly_zero():
    model = tiny_sit()
    x = torch.randn(3, 4, 8, 8)
    v = model(x, torch.rand(3), torch.tensor([0, 5, 10]))
    assert v.shape == x.shape
    assert torch.equal(v, torch.zeros_like(v))


@pytest.mark.parametrize("name", ["SiT-S/1", "SiT-S/2", "SiT-S/4", "SiT-B/2"])
def test_small_registry_configs_build_and_run(name):
    # Upstream's SiT-S configs crash (decoder width 768 hard-coded); ours must not.
    model = build_sit(name, input_size=8, in_channels=4, num_classes=10, z_dim=8, projector_dim=16,
                      depth=2, encoder_depth=1)
    y = torch.zeros(2, dtype=torch.long)
    v, projected = model.forward_features(torch.randn(2, 4, 8, 8), torch.rand(2), y)
    patch = SIT_CONFIGS[name]["patch_size"]
    assert v.shape == (2, 4, 8, 8)
    assert projected.shape == (2, (8 // patch) ** 2, 8)


def test_forward_features_matches_forward_and_align_only_stops_early():
    torch.manual_seed(0)
    model = tiny_sit().eval()
    for p in model.parameters():  # leave adaLN-Zero so the output depends on the input
        torch.nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([1, 2])
    v, projected = model.forward_features(x, t, y)
    assert torch.allclose(v, model(x, t, y), atol=1e-6)
    assert v.abs().max() > 0
    none, projected_early = model.forward_features(x, t, y, align_only=True)
    assert none is None and torch.equal(projected, projected_early)
    # align_only must not touch the layers after encoder_depth: no gradient reaches them.
    projected_early.sum().backward()
    assert model.final_layer.linear.weight.grad is None
    assert model.blocks[1].attn.qkv.weight.grad is None
    assert model.blocks[0].attn.qkv.weight.grad is not None


def test_learn_sigma_drops_second_half():
    model = tiny_sit(learn_sigma=True)
    assert model.final_layer.linear.out_features == 2 * 2 * 8
    torch.nn.init.normal_(model.final_layer.linear.bias)
    v = model(torch.randn(2, 4, 8, 8), torch.rand(2), torch.zeros(2, dtype=torch.long))
    assert v.shape == (2, 4, 8, 8)
    # bias index within a patch is (p, q, c) with c fastest; the first-half channels only
    bias = model.final_layer.linear.bias.view(2, 2, 8)
    assert torch.allclose(v[0, :, 0, 0], bias[0, 0, :4])


def test_timestep_embedding_is_cos_first_of_t_in_unit_interval():
    emb = TimestepEmbedder.sinusoid(torch.tensor([0.0, 0.5]), 256)
    assert torch.equal(emb[0, :128], torch.ones(128)) and torch.equal(emb[0, 128:], torch.zeros(128))
    assert emb[1, 0].item() == pytest.approx(torch.cos(torch.tensor(0.5)).item())
    assert emb[1, 128].item() == pytest.approx(torch.sin(torch.tensor(0.5)).item())


def test_pos_embed_matches_dit_formula():
    import numpy as np

    dim, grid = 16, 3
    emb = sincos_pos_embed_2d(dim, grid).numpy()
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))
    for row in range(grid):
        for col in range(grid):
            token = emb[row * grid + col]
            expected = np.concatenate([np.sin(col * omega), np.cos(col * omega),
                                       np.sin(row * omega), np.cos(row * omega)])
            np.testing.assert_allclose(token, expected, atol=1e-6)


def test_label_dropout_only_in_training():
    model = tiny_sit(class_dropout_prob=1.0)
    y = torch.tensor([3, 4])
    model.train()
    assert torch.equal(model.y_embedder(y), model.y_embedder.embedding_table.weight[[10, 10]])
    model.eval()
    assert torch.equal(model.y_embedder(y), model.y_embedder.embedding_table.weight[[3, 4]])


def test_latent_batchnorm_stats_roundtrip():
    bn = LatentBatchNorm(4)
    scale, bias = torch.tensor([0.5, 1.0, 2.0, 4.0]), torch.tensor([1.0, -1.0, 0.0, 0.5])
    bn.load_latents_stats(scale.view(1, 4, 1, 1), bias.view(1, 4, 1, 1))
    assert torch.allclose(bn.running_var, scale.pow(-2)) and torch.equal(bn.running_mean, bias)
    stats = bn.latents_stats()
    assert torch.allclose(stats["latents_scale"].flatten(), scale)
    bn.eval()
    z = torch.randn(2, 4, 3, 3)
    normalized = bn.normalize(z)
    var = scale.pow(-2).view(1, 4, 1, 1)
    assert torch.allclose(normalized, (z - bias.view(1, 4, 1, 1)) / (var + 1e-4).sqrt(), atol=1e-6)
    # The inverse uses no eps, as upstream.
    assert torch.allclose(bn.denormalize(normalized), normalized * var.sqrt() + bias.view(1, 4, 1, 1))


def test_vae_shapes_and_posterior():
    from genbench.models.vae import DiagonalGaussian, build_vae

    vae = build_vae("tiny-f4d4")
    posterior, z, recon = vae(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert z.shape == (2, 4, 8, 8) and recon.shape == (2, 3, 32, 32)
    moments = torch.cat([torch.full((1, 2, 1, 1), 0.5), torch.tensor([-100.0, 0.0]).view(1, 2, 1, 1)], dim=1)
    gaussian = DiagonalGaussian(moments)
    assert gaussian.logvar.flatten().tolist() == [-30.0, 0.0]  # clamped to [-30, 20]
    expected = 0.5 * ((0.25 + torch.exp(torch.tensor(-30.0)) - 1 + 30) + (0.25 + 1 - 1 - 0))
    assert gaussian.kl().item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(gaussian.mode(), gaussian.mean)


def test_vae_rejects_widths_not_divisible_by_groups():
    from genbench.models.vae import AutoencoderKL

    with pytest.raises(ValueError, match="GroupNorm"):
        AutoencoderKL(ch=8, ch_mult=(1, 2), z_channels=4, resolution=32, groups=32)


def test_dinov2_encoder_patch_tokens_and_preprocessing(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    from genbench.backbones import build_encoder

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(tmp_path / "dino")
    encoder = build_encoder("dinov2-vit-b", resolution=64, weights=tmp_path / "dino")
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    tokens = encoder(images)
    assert tokens.shape == (2, 16, 32)  # 224 * 64 / 256 = 56 px -> 4 x 4 patches, CLS dropped
    # Independent recomputation: normalise first, then bicubic resize; final-LN patch tokens.
    reference = Dinov2Model.from_pretrained(tmp_path / "dino").eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = torch.nn.functional.interpolate((images / 255.0 - mean) / std, size=(56, 56), mode="bicubic")
    with torch.no_grad():
        out = reference(pixel_values=x, output_hidden_states=True)
    final_ln = reference.layernorm(out.hidden_states[-1])  # the final LayerNorm of the last block's output
    assert torch.allclose(tokens, final_ln[:, 1:], atol=1e-5)
    assert torch.allclose(encoder(images.float() / 255), tokens, atol=1e-5)  # [0, 1] floats accepted


def test_dinov2_encoder_weights_come_through_the_fetcher(tmp_path, monkeypatch):
    """Without a path the encoder reads the registered file `dinov2-base` from the cache (offline here: a
    copy put there by hand, whose digest is then recorded) and the config.json beside it."""
    from transformers import Dinov2Config, Dinov2Model

    from genbench.backbones import build_encoder
    from genbench.errors import GenbenchError
    from genbench.fetch import read_record, registered_file

    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path))
    with pytest.raises(GenbenchError, match="facebook/dinov2-base/resolve/main/model.safetensors"):
        build_encoder("dinov2-vit-b", resolution=64)
    with pytest.raises(GenbenchError, match="facebook/dinov2-base"):
        build_encoder("dinov2-vit-b", resolution=256, weights=tmp_path / "nothing")
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(tmp_path / "dinov2-base")
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    cached = build_encoder("dinov2-vit-b", resolution=64)
    assert read_record(registered_file("dinov2-base")) is not None
    given = build_encoder("dinov2-vit-b", resolution=64, weights=tmp_path / "dinov2-base")
    assert torch.equal(cached(images), given(images))


def test_tiny_encoder_grid_and_no_weights(tmp_path):
    from genbench.backbones import build_encoder
    from genbench.errors import GenbenchError

    encoder = build_encoder("tiny", resolution=32, grid=4, z_dim=16)
    assert encoder(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 16, 16)
    with pytest.raises(GenbenchError, match="random and reads no weights"):
        build_encoder("tiny", resolution=32, weights=tmp_path / "tiny.pt")
