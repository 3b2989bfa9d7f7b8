"""Tokenizer adapters against the libraries they wrap and against reference computations, at tiny size:
a FLUX-like diffusers AutoencoderKL (16 channels, scaling and shift; also from an LDM-named single file
checked against genbench's own LDM VAE), an AutoencoderDC, an RAE (tiny DINOv2-with-registers / MAE /
SigLIP encoders; a ViT decoder whose file carries the release's key names, built from transformers' ViT-MAE
decoder layers), the latent normalisations' round trips, registry resolution, and comparison rows."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import genbench  # noqa: F401  (torchvision compatibility before diffusers/transformers import it)
from genbench.errors import GenbenchError
from genbench.models.rae import RAEDecoderConfig, decoder_state_from_official, sincos_position_embedding
from genbench.models.tokenizer_adapters import TOKENIZERS, load_diffusers_tokenizer, load_rae_tokenizer
from genbench.models.vae import AutoencoderKL as GenbenchVAE
from genbench.sources import TensorSource
from genbench.tokenizer_comparison import CompareSettings, compare_tokenizers, load_tokenizer, reconstruct

diffusers = pytest.importorskip("diffusers", reason="diffusers (test extra) builds the reference models")
transformers = pytest.importorskip("transformers", reason="transformers builds the RAE encoders")

FLUX_LIKE = dict(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=16,
                 norm_num_groups=8, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159)


def _images(n=6, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def _x(images):
    return images.float() / 127.5 - 1


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(**FLUX_LIKE, use_quant_conv=False, use_post_quant_conv=False).eval()
    folder = tmp_path_factory.mktemp("flux")
    vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dcae_dir(tmp_path_factory):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderDC(
        latent_channels=8, attention_head_dim=8, encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(16, 32),
        decoder_block_out_channels=(16, 32), encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)), scaling_factor=0.41).eval()
    folder = tmp_path_factory.mktemp("dcae")
    vae.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------------------
#                                       diffusers AutoencoderKL
# --------------------------------------------------------------------------------------------------


def test_a_16_channel_shifted_autoencoderkl_matches_diffusers(flux_dir):
    adapter = load_tokenizer(f"diffusers:{flux_dir}").adapter
    reference = diffusers.AutoencoderKL.from_pretrained(flux_dir).eval()
    x = _x(_images())
    with torch.no_grad():
        z = adapter.encode(x)
        torch.testing.assert_close(z, reference.encode(x).latent_dist.mean, rtol=0, atol=0)
        torch.testing.assert_close(adapter.decode(z), reference.decode(z).sample, rtol=0, atol=0)
    assert z.shape == (6, 16, 16, 16) and adapter.latent_shape(32, 32) == (16, 16, 16)
    # FLUX's convention (diffusers' Flux pipeline): (z - shift) * scale, and back.
    torch.testing.assert_close(adapter.normalize(z), (z - 0.1159) * 0.3611)
    torch.testing.assert_close(adapter.denormalize(adapter.normalize(z)), z, rtol=1e-6, atol=1e-6)
    assert adapter.family == "diffusers-kl" and "diffusion_pytorch_model.safetensors" in adapter.description


# SD's kl-f8 files have quant convs, FLUX's ae.safetensors has none.
@pytest.mark.parametrize("quant_convs", [True, False])
def test_an_ldm_named_single_file_is_converted_by_diffusers_and_matches_genbenchs_vae(tmp_path, quant_convs):
    """Two independent implementations: genbench's LDM AutoencoderKL and diffusers' (through its own
    single-file converter) must give the same latents and pixels from one LDM-format file."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ours = GenbenchVAE(ch=32, ch_mult=(1, 1), z_channels=16, resolution=32, num_res_blocks=1, groups=8).eval()
    state = {k: v for k, v in ours.state_dict().items() if quant_convs or "quant_conv" not in k}
    save_file(state, tmp_path / "ae.safetensors")
    config = {"_class_name": "AutoencoderKL", "use_quant_conv": quant_convs,
              "use_post_quant_conv": quant_convs,
              **{k: list(v) if isinstance(v, tuple) else v for k, v in FLUX_LIKE.items()}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    adapter = load_diffusers_tokenizer(tmp_path / "ae.safetensors")
    x = _x(_images())
    with torch.no_grad():
        moments = ours.encoder(x) if not quant_convs else ours.quant_conv(ours.encoder(x))
        z = adapter.encode(x)
        torch.testing.assert_close(z, moments.chunk(2, dim=1)[0], rtol=1e-4, atol=1e-5)
        pixels = ours.decoder(z) if not quant_convs else ours.decode(z)
        torch.testing.assert_close(adapter.decode(z), pixels, rtol=1e-4, atol=1e-5)


def test_latent_statistics_in_the_config_or_a_repae_stats_file_normalise_and_round_trip(tmp_path, flux_dir):
    mean, std = [0.1 * c for c in range(16)], [0.5 + 0.1 * c for c in range(16)]
    config = json.loads((flux_dir / "config.json").read_text()) | {"latents_mean": mean, "latents_std": std}
    folder = tmp_path / "with-stats"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(
        (flux_dir / "diffusion_pytorch_model.safetensors").read_bytes())
    adapter = load_diffusers_tokenizer(folder)
    z = torch.randn(2, 16, 4, 4)
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    torch.testing.assert_close(adapter.normalize(z), (z - m) * 0.3611 / s)  # diffusers' SDXL-style rule
    torch.testing.assert_close(adapter.denormalize(adapter.normalize(z)), z, rtol=1e-5, atol=1e-5)
    # REPA-E's latents-stats file (latents_scale = 1/std, latents_bias = mean) takes precedence: a BatchNorm
    # with eps 1e-4 on the way in and none on the way out, as REPA-E samples.
    scale, bias = torch.rand(1, 16, 1, 1) + 0.5, torch.randn(1, 16, 1, 1)
    torch.save({"latents_scale": scale, "latents_bias": bias}, tmp_path / "stats.pt")
    adapter = load_diffusers_tokenizer(flux_dir, latents_stats=tmp_path / "stats.pt")
    (folder / "e2e-test-latents-stats.pt").write_bytes((tmp_path / "stats.pt").read_bytes())
    beside = load_diffusers_tokenizer(folder)  # found in the folder: it wins over the config's statistics
    torch.testing.assert_close(beside.normalize(z), adapter.normalize(z))
    assert "e2e-test-latents-stats.pt" in beside.description
    var = scale.pow(-2)
    torch.testing.assert_close(adapter.normalize(z), (z - bias) / torch.sqrt(var + 1e-4))
    torch.testing.assert_close(adapter.denormalize(adapter.normalize(z)) - bias,
                               (z - bias) * torch.sqrt(var / (var + 1e-4)), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
#                                             DC-AE
# --------------------------------------------------------------------------------------------------


def test_autoencoderdc_matches_diffusers_and_scales_its_latents(dcae_dir):
    adapter = load_tokenizer(f"diffusers:{dcae_dir}").adapter
    reference = diffusers.AutoencoderDC.from_pretrained(dcae_dir).eval()
    x = _x(_images())
    with torch.no_grad():
        z = adapter.encode(x)
        torch.testing.assert_close(z, reference.encode(x).latent, rtol=0, atol=0)
        torch.testing.assert_close(adapter.decode(z), reference.decode(z).sample, rtol=0, atol=0)
    assert adapter.family == "diffusers-dc" and z.shape == (6, 8, 16, 16)
    torch.testing.assert_close(adapter.normalize(z), z * 0.41)
    torch.testing.assert_close(adapter.denormalize(adapter.normalize(z)), z)


def test_a_folder_that_is_no_autoencoder_is_one_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(GenbenchError, match="AutoencoderKL and AutoencoderDC"):
        load_diffusers_tokenizer(tmp_path)
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "w.safetensors").write_bytes(b"")
    with pytest.raises(GenbenchError, match="no config.json beside it"):
        load_diffusers_tokenizer(tmp_path / "bare" / "w.safetensors")


# --------------------------------------------------------------------------------------------------
#                                              RAE
# --------------------------------------------------------------------------------------------------

TINY_DECODER = RAEDecoderConfig(hidden_size=48, depth=2, num_heads=4, mlp_size=96, patch_size=4)
TINY_DECODER_P8 = RAEDecoderConfig(hidden_size=48, depth=2, num_heads=4, mlp_size=96, patch_size=8)
ENCODER_WIDTH = 32


def _encoder(kind, input_size):
    """A tiny random encoder of each family, as transformers builds it from a config."""
    common = dict(hidden_size=ENCODER_WIDTH, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  image_size=input_size)
    if kind == "dinov2":
        return transformers.Dinov2WithRegistersModel(
            transformers.Dinov2WithRegistersConfig(**common, patch_size=4, num_register_tokens=4))
    if kind == "mae":
        return transformers.ViTMAEModel(transformers.ViTMAEConfig(**common, patch_size=4, mask_ratio=0.0))
    # SigLIP-2 checkpoints hold the text tower too (SiglipModel); the encoder reads the vision tower of it.
    vision = {**common, "patch_size": 4}
    text = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                vocab_size=99)
    return transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision))


# transformers 5 renamed ViT-MAE's attention/MLP modules; the release's file keeps the 4.x names it copied
# (src/stage1/decoders/decoder.py: ViTMAESelfAttention query/key/value, ViTMAESelfOutput, ViTMAEIntermediate,
# ViTMAEOutput).
RELEASE_NAMES = {"attention.q_proj.": "attention.attention.query.",
                 "attention.k_proj.": "attention.attention.key.",
                 "attention.v_proj.": "attention.attention.value.",
                 "attention.o_proj.": "attention.output.dense.",
                 "mlp.fc1.": "intermediate.dense.", "mlp.fc2.": "output.dense."}


def _release_key(key):
    for new, old in RELEASE_NAMES.items():
        key = key.replace(new, old)
    return key


def _official_decoder(grid, patch=4):
    """A decoder state dict with the release's key names: transformers' ViT-MAE decoder (the layers the
    release copied) without its mask token, plus the release's trainable CLS token."""
    from transformers.models.vit_mae.modeling_vit_mae import ViTMAEDecoder

    config = transformers.ViTMAEConfig(hidden_size=ENCODER_WIDTH, decoder_hidden_size=48,
                                       decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                                       decoder_intermediate_size=96, patch_size=patch,
                                       image_size=grid * patch,
                                       layer_norm_eps=1e-12, hidden_act="gelu")
    torch.manual_seed(3)
    decoder = ViTMAEDecoder(config, num_patches=grid * grid).eval()
    for name, parameter in decoder.named_parameters():  # LayerNorms start at 1/0: perturb all but the table
        if name != "decoder_pos_embed":
            parameter.data.add_(0.05 * torch.randn_like(parameter))
    state = {_release_key(k): v for k, v in decoder.state_dict().items() if k != "mask_token"}
    state["decoder_pos_embed"] = decoder.decoder_pos_embed.detach().clone()
    state["trainable_cls_token"] = 0.1 * torch.randn(1, 1, 48)
    return decoder, state


def _rae_files(tmp_path, kind, input_size, grid, patch=4):
    torch.manual_seed(2)
    encoder = _encoder(kind, input_size).eval()
    encoder.save_pretrained(tmp_path / "encoder")
    decoder, state = _official_decoder(grid, patch)
    torch.save(state, tmp_path / "decoder.pt")
    shape = (ENCODER_WIDTH, grid, grid)
    stats = {"mean": torch.randn(shape), "var": torch.rand(shape) + 0.5}
    torch.save(stats, tmp_path / "stat.pt")
    return decoder, state, stats


def _reference_tokens(kind, folder, x01, input_size, mean, std):
    """The release's encode, written out: bicubic resize, normalise, run the encoder, final LayerNorm without
    its affine weights on the last layer's output, drop the prefix tokens."""
    model_class = {"dinov2": transformers.Dinov2WithRegistersModel, "mae": transformers.ViTMAEModel,
                   "siglip2": transformers.SiglipModel}[kind]
    model = model_class.from_pretrained(folder).eval()
    if kind == "siglip2":
        model = model.vision_model
    x = F.interpolate(x01, size=(input_size, input_size), mode="bicubic", align_corners=False)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    kwargs = {"output_hidden_states": True}
    if kind == "mae":
        model.config.mask_ratio = 0.0
        kwargs["noise"] = torch.arange((input_size // 4) ** 2).float().expand(len(x), -1)
    hidden = model(x, **kwargs).hidden_states[-1]
    normed = F.layer_norm(hidden, (hidden.shape[-1],), eps=model.config.layer_norm_eps)
    return normed[:, {"dinov2": 5, "mae": 1, "siglip2": 0}[kind]:]


def test_rae_decoder_matches_transformers_vitmae_layers_and_the_official_key_names(tmp_path):
    grid = 4
    decoder, state, stats = _rae_files(tmp_path, "dinov2", 16, grid)
    adapter = load_rae_tokenizer("dinov2", tmp_path / "encoder", tmp_path / "decoder.pt",
                                 tmp_path / "stat.pt",
                                 input_size=16, decoder=TINY_DECODER)
    z = torch.randn(3, ENCODER_WIDTH, grid, grid)
    with torch.no_grad():
        # Reference: the release's GeneralDecoder forward written out over transformers' modules.
        tokens = z.flatten(2).transpose(1, 2)
        h = torch.cat([state["trainable_cls_token"].expand(3, -1, -1), decoder.decoder_embed(tokens)], dim=1)
        h = h + state["decoder_pos_embed"]
        for layer in decoder.decoder_layers:
            out = layer(h)
            h = out[0] if isinstance(out, tuple) else out
        patches = decoder.decoder_pred(decoder.decoder_norm(h))[:, 1:]
        image = torch.einsum("nhwpqc->nchpwq", patches.reshape(3, grid, grid, 4, 4, 3)).reshape(3, 3, 16, 16)
        mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
        expected = (image * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)) * 2 - 1
        torch.testing.assert_close(adapter.decode(z), expected, rtol=1e-5, atol=1e-5)
    # genbench's fixed sin-cos table is the one transformers' MAE decoder initialises.
    torch.testing.assert_close(sincos_position_embedding(48, grid)[None], decoder.decoder_pos_embed.detach(),
                               rtol=0, atol=1e-6)
    with pytest.raises(GenbenchError, match="unexpected key 'mask_token'"):
        decoder_state_from_official({"mask_token": decoder.mask_token, **state}, "decoder.pt")


@pytest.mark.parametrize("kind, input_size", [("dinov2", 16), ("mae", 16), ("siglip2", 16)])
def test_rae_encode_follows_the_release_and_normalises_per_element(tmp_path, kind, input_size):
    grid = input_size // 4
    _, _, stats = _rae_files(tmp_path, kind, input_size, grid)
    adapter = load_rae_tokenizer(kind, tmp_path / "encoder", tmp_path / "decoder.pt", tmp_path / "stat.pt",
                                 input_size=input_size, decoder=TINY_DECODER)
    images = _images(3, size=24)  # not the encoder's size: resized bicubically first, as the release
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    mean, std = ((0.5,) * 3, (0.5,) * 3) if kind == "siglip2" else imagenet
    with torch.no_grad():
        z = adapter.encode(_x(images))
        tokens = _reference_tokens(kind, tmp_path / "encoder", images.float() / 255, input_size, mean, std)
    assert z.shape == (3, ENCODER_WIDTH, grid, grid)
    torch.testing.assert_close(z, tokens.transpose(1, 2).reshape(3, ENCODER_WIDTH, grid, grid),
                               rtol=1e-4, atol=1e-4)
    expected = (z - stats["mean"]) / torch.sqrt(stats["var"] + 1e-5)
    torch.testing.assert_close(adapter.normalize(z), expected)
    torch.testing.assert_close(adapter.denormalize(adapter.normalize(z)), z, rtol=1e-5, atol=1e-5)
    assert adapter.latent_shape(24, 24) == (ENCODER_WIDTH, grid, grid)


def test_rae_noise_is_for_decoder_training_only(tmp_path):
    _rae_files(tmp_path, "dinov2", 16, 4)
    adapter = load_rae_tokenizer("dinov2", tmp_path / "encoder", tmp_path / "decoder.pt",
                                 tmp_path / "stat.pt",
                                 input_size=16, decoder=TINY_DECODER, noise_tau=0.8)
    x = _x(_images(2, 16))
    with torch.no_grad():
        assert torch.equal(adapter.encode(x), adapter.encode(x))  # eval: no noise
        adapter.model.train()
        assert not torch.equal(adapter.encode(x), adapter.encode(x))


# --------------------------------------------------------------------------------------------------
#                                     Registry and comparison
# --------------------------------------------------------------------------------------------------


def test_registered_names_resolve_from_a_local_copy_or_name_what_to_download(tmp_path, flux_dir, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENBENCH_OFFLINE", "1")  # never the network in tests
    for name in ("sd-vae-ft-ema", "e2e-sdvae", "rae-dinov2-b", "flux-vae", "dc-ae-f32c32-in-1.0"):
        assert all(f.url.startswith("https://huggingface.co/") for f in TOKENIZERS[name].files)
    with pytest.raises(GenbenchError, match="nyu-visionx/RAE-collections/resolve/main/decoders/dinov2"):
        load_tokenizer("rae-dinov2-b")
    tokenizer = load_tokenizer(f"sd-vae-ft-ema:{flux_dir}")  # NAME:DIR, the registered layout
    assert tokenizer.adapter.family == "diffusers-kl"
    with pytest.raises(GenbenchError, match="rae-mae-b needs encoder/config.json.*decoder.pt, stat.pt"):
        load_tokenizer(f"rae-mae-b:{tmp_path}")


def test_comparison_of_three_families_streams_resumes_and_fills_the_columns(tmp_path, flux_dir, dcae_dir,
                                                                            monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path))
    _rae_files(tmp_path / "rae", "dinov2", 16, 4, patch=8)  # 4x4 tokens -> 32x32 pixels
    rae_spec = "rae-test"
    monkeypatch.setitem(TOKENIZERS, rae_spec, TOKENIZERS["rae-dinov2-b"].__class__(
        rae_spec, "rae", TOKENIZERS["rae-dinov2-b"].files, "test",
        {"kind": "dinov2", "input_size": 16, "decoder": TINY_DECODER_P8}))
    for file in ("config.json", "model.safetensors"):
        assert (tmp_path / "rae" / "encoder" / file).is_file()
    (tmp_path / "rae" / "encoder" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))
    images = _images(20, 32, seed=5)
    source = TensorSource(images.permute(0, 2, 3, 1).numpy(), "random images")
    specs = [f"diffusers:{flux_dir}", f"diffusers:{dcae_dir}", f"{rae_spec}:{tmp_path / 'rae'}"]
    settings = CompareSettings(extractor="shapes", batch_size=8, work_dir=tmp_path / "work")
    table = compare_tokenizers(specs, source, None, None, "", settings)
    rows = table.to_dict("records")
    assert [(r["latent_channels"], r["latent_h"], r["latent_w"]) for r in rows] == [(16, 16, 16), (8, 16, 16),
                                                                                     (32, 4, 4)]
    assert [r["compression"] for r in rows] == pytest.approx([0.75, 1.5, 6.0])
    assert [r["tokenizer"].split(":")[0] for r in rows] == ["diffusers-kl", "diffusers-dc", "rae"]
    adapter = load_tokenizer(specs[0]).adapter
    with torch.no_grad():
        z = adapter.encode(_x(images)).double()
        normalized = adapter.normalize(z)
    assert rows[0]["z3_mean"] == pytest.approx(z[:, 3].mean().item(), rel=1e-6, abs=1e-9)
    assert rows[0]["latent_norm_std"] == pytest.approx(normalized.std().item(), rel=1e-6)
    assert "z15_mean" in table.columns and "z16_mean" not in table.columns  # at most 16 channels' columns
    # A rerun over the same work folder redoes nothing and gives the same row.
    calls = []
    original_encode = type(adapter).encode
    monkeypatch.setattr(type(adapter), "encode",
                        lambda self, x: calls.append(len(x)) or original_encode(self, x))
    again = compare_tokenizers(specs[:1], source, None, None, "", settings)
    assert sum(calls) == 1  # only latent_shape's probe image: every chunk was already done
    assert again["psnr"].iloc[0] == table["psnr"].iloc[0] and again["rfid"].iloc[0] == table["rfid"].iloc[0]


def test_reconstruct_resumes_a_missing_chunk_only(tmp_path, flux_dir):
    tokenizer = load_tokenizer(f"diffusers:{flux_dir}")
    images = _images(10, 32, seed=7)
    source = TensorSource(images.permute(0, 2, 3, 1).numpy(), "random images")
    first = reconstruct(tokenizer, source, tmp_path, batch_size=3, chunk_images=4)
    chunks = sorted(p.name for p in (tmp_path / "chunks").iterdir())
    assert chunks == ["00000.json", "00001.json", "00002.json"]
    saved = np.array(first.images)
    (tmp_path / "chunks" / "00001.json").unlink()
    first.images[4:8] = 0
    first.images.flush()
    calls = []
    adapter = tokenizer.adapter
    original = adapter.encode
    adapter.encode = lambda x: calls.append(len(x)) or original(x)
    second = reconstruct(tokenizer, source, tmp_path, batch_size=3, chunk_images=4)
    assert sum(calls) == 1 + 4  # the shape probe, then the four images of chunk 1
    np.testing.assert_array_equal(np.array(second.images), saved)
    assert second.psnr == pytest.approx(first.psnr, rel=1e-12)
    other = TensorSource(_images(10, 32, seed=8).permute(0, 2, 3, 1).numpy(), "other images")
    with pytest.raises(GenbenchError, match="holds another comparison .*images: 'random images' -> 'other"):
        reconstruct(tokenizer, other, tmp_path, batch_size=3, chunk_images=4)
    with pytest.raises(GenbenchError, match="chunk_images: 4 -> 5"):
        reconstruct(tokenizer, source, tmp_path, batch_size=3, chunk_images=5)


@pytest.mark.slow
def test_two_torchrun_processes_give_the_rows_of_one(tmp_path, flux_dir):
    import os
    import subprocess
    import sys

    from genbench.leaderboard import read_board

    images = _images(21, 32, seed=11).permute(0, 2, 3, 1).numpy()  # odd: ranks do unequal shares
    np.savez(tmp_path / "data.npz", arr_0=images, arr_1=np.arange(21) % 3)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENBENCH_CACHE": str(tmp_path / "cache")}
    args = ["tokenizers", "compare", "--vae", f"diffusers:{flux_dir}", "--data", str(tmp_path / "data.npz"),
            "--extractor", "shapes", "--batch-size", "4", "--chunk-images", "5", "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "genbench", *args, "--board", str(tmp_path / "one.csv")],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", "29547"]
    two = subprocess.run([*torchrun, "-m", "genbench", *args, "--board", str(tmp_path / "two.csv"),
                          "--work-dir", str(tmp_path / "work")], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    a, b = read_board(tmp_path / "one.csv"), read_board(tmp_path / "two.csv")
    assert len(a) == len(b) == 1
    chunks = sorted(p.name for p in (tmp_path / "work").glob("*/chunks/*.json"))
    assert len(chunks) == 5  # 21 images in chunks of 5, shared by the two ranks
    # Without --work-dir the ranks share rank 0's temporary folder (one machine).
    scratch = subprocess.run([*torchrun, "-m", "genbench", *args, "--board", str(tmp_path / "two.csv")],
                             env=env, capture_output=True, text=True)
    assert scratch.returncode == 0, scratch.stderr
    b = read_board(tmp_path / "two.csv")
    assert len(b) == 2
    # Equal up to the order of float64 sums (statistics reduced over ranks, chunk sums added in order).
    for column in ("rfid", "psnr", "ssim", "probe", "z0_mean", "z15_std", "latent_norm_std"):
        for row in range(2):
            assert b[column].iloc[row] == pytest.approx(a[column].iloc[0], rel=1e-7, abs=1e-10), column


def test_the_published_board_cites_every_row_and_its_shapes_add_up(tmp_path, flux_dir):
    from genbench.leaderboard import append_row, read_board

    path = Path(__file__).parents[1] / "leaderboards" / "tokenizers_imagenet256.csv"
    board = read_board(path)  # metric columns numeric, or read_board refuses the file
    assert len(board) >= 8 and set(board["kind"]) == {"reported"}
    assert board["source"].str.len().gt(10).all() and board["notes"].notna().all()
    assert board[["rfid", "psnr", "ssim", "lpips"]].notna().any(axis=1).all()  # each row reports a number
    dim = board["latent_channels"] * board["latent_h"] * board["latent_w"]
    assert (board["latent_dim"] == dim).all()
    np.testing.assert_allclose(board["compression"], 3 * board["resolution"] ** 2 / dim)
    rae = board[board["name"].str.startswith("rae-")]
    assert (rae["latent_channels"] == 768).all() and (rae["compression"] == 1.0).all()
    # A measured row of `tokenizers compare` lands in the same columns.
    copy = tmp_path / "board.csv"
    copy.write_text(path.read_text())
    images = _images(8, 32, seed=3)
    table = compare_tokenizers([f"diffusers:{flux_dir}"], TensorSource(images.permute(0, 2, 3, 1).numpy()),
                               None, None, "", CompareSettings(extractor="shapes", batch_size=8))
    append_row(copy, table.to_dict("records")[0])
    merged = read_board(copy)
    assert len(merged) == len(board) + 1 and merged["kind"].iloc[-1] == "measured"
    last = merged.iloc[-1]
    assert (last["resolution"], last["latent_channels"], last["latent_h"]) == (32, 16, 16)
    assert last["compression"] == 0.75


def test_a_registered_name_is_fetched_through_the_fetcher_and_checked_afterwards(tmp_path, flux_dir,
                                                                                 monkeypatch):
    """`--vae sd-vae-ft-ema` on a machine without the files: fetched (here from a file:// mirror laid out as
    the cache, which GENBENCH_OFFLINE still allows), digests recorded, a changed file refused later."""
    mirror = tmp_path / "mirror" / "tokenizers" / "sd-vae-ft-ema"
    mirror.mkdir(parents=True)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (mirror / name).write_bytes((flux_dir / name).read_bytes())
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENBENCH_OFFLINE", "1")
    monkeypatch.setenv("GENBENCH_MIRROR", (tmp_path / "mirror").as_uri())
    tokenizer = load_tokenizer("sd-vae-ft-ema")
    cached = tmp_path / "cache" / "tokenizers" / "sd-vae-ft-ema"
    assert (cached / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (flux_dir / "diffusion_pytorch_model.safetensors").read_bytes()
    assert tokenizer.adapter.family == "diffusers-kl"
    assert len(list((tmp_path / "cache" / "records").glob("tokenizer-sd-vae-ft-ema-*.json"))) == 2
    with open(cached / "config.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(GenbenchError, match="changed since it was first used"):
        load_tokenizer("sd-vae-ft-ema")


def test_genbench_imports_and_compares_without_diffusers_or_transformers(tmp_path, flux_dir):
    import subprocess
    import sys

    code = f"""
import sys
sys.modules["diffusers"] = None  # importing either now raises ImportError
sys.modules["transformers"] = None
import genbench.tokenizer_comparison, genbench.cli.commands
from genbench.errors import GenbenchError
from genbench.tokenizer_comparison import load_tokenizer
try:
    load_tokenizer("diffusers:{flux_dir}")
except GenbenchError as error:
    print("ERROR", error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "ERROR this tokenizer needs diffusers; pip install" in result.stdout


def test_probe_reads_any_tokenizer_family_as_vae_features(dcae_dir):
    from genbench.probe import parse_feature_spec, vae_features

    features, provenance = vae_features(parse_feature_spec(f"vae:diffusers:{dcae_dir}:pool=2"), "cpu")
    images = _images(4, 32, seed=4)
    reference = diffusers.AutoencoderDC.from_pretrained(dcae_dir).eval()
    with torch.no_grad():
        expected = F.adaptive_avg_pool2d(reference.encode(_x(images)).latent, 2).flatten(1)
        torch.testing.assert_close(features(images, torch.arange(4))["latent"], expected)
    assert provenance["tokenizer"].startswith("diffusers AutoencoderDC") and provenance["pool"] == 2


@pytest.mark.parametrize("name", ["rae-dinov2-b", "rae-siglip2-b", "rae-mae-b"])
def test_registered_rae_settings_give_768x16x16_latents_and_256px_images(name):
    """The registry's input sizes and ViT-XL decoder (depths cut to 1 to stay small) with B-size encoders of
    the released patch sizes: 256 px images -> 768 x 16 x 16 latents -> 256 px images, as the release."""
    import dataclasses

    from genbench.models.rae import DECODER_CONFIGS, build_rae

    options = TOKENIZERS[name].options
    kind, size = options["kind"], options["input_size"]
    common = dict(hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=3072)
    if kind == "dinov2":  # facebook/dinov2-with-registers-base: patch 14, 4 registers, trained at 518
        encoder = transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(
            **common, patch_size=14, image_size=518, num_register_tokens=4))
    elif kind == "mae":  # facebook/vit-mae-base: patch 16 at 224
        encoder = transformers.ViTMAEModel(transformers.ViTMAEConfig(**common, patch_size=16, image_size=224))
    else:  # google/siglip2-base-patch16-256
        encoder = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**common, patch_size=16,
                                                                                 image_size=256))
    decoder = dataclasses.replace(DECODER_CONFIGS[options["decoder"]], depth=1)
    model = build_rae(kind, encoder.eval(), size, decoder)
    with torch.no_grad():
        z = model.encode(torch.rand(1, 3, 256, 256) * 2 - 1)
        assert z.shape == (1, 768, 16, 16)
        assert model.decode(z).shape == (1, 3, 256, 256)
    assert model.decoder.head.out_features == 16 * 16 * 3 and model.decoder.config.hidden_size == 1152
