"""DINOv2 and CLIP extractors with tiny random weights saved to disk in the publishers' layouts, checked
against the libraries' own loaders and pipelines (transformers' from_pretrained, open_clip's transforms)."""

import json

import numpy as np
import open_clip
import pytest
import torch
from conftest import random_images
from PIL import Image
from safetensors.torch import save_file
from transformers import Dinov2Config, Dinov2Model

from genbench.backbones import build_extractor
from genbench.errors import GenbenchError
from genbench.extractors.clip import weights_spec
from genbench.extractors.dinov2 import DINOV2_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE
from genbench.fetch import registered_file
from genbench.io import sha256_file

TINY_CLIP = {
    "embed_dim": 16, "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
CLIP_NORM = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}


@pytest.fixture(scope="module")
def dinov2_folder(tmp_path_factory):
    """A Hugging Face Dinov2Model folder (config.json + model.safetensors) with a tiny random model."""
    folder = tmp_path_factory.mktemp("dinov2-tiny")
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=28,
                          patch_size=14)
    Dinov2Model(config).save_pretrained(folder)
    return folder


def save_tiny_clip(folder, image_size: int = 32):
    """open_clip's local-dir layout (open_clip_config.json + open_clip_model.safetensors), tiny and random,
    reading `image_size` pixels."""
    config = {**TINY_CLIP, "vision_cfg": {**TINY_CLIP["vision_cfg"], "image_size": image_size}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config,
                                                              "preprocess_cfg": CLIP_NORM}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "open_clip_model.safetensors")
    return folder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip-tiny"))


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def test_dinov2_pool_is_the_final_layernorm_cls_token_of_the_saved_model(dinov2_folder):
    extractor = build_extractor("dinov2", dinov2_folder)
    images = _nchw(random_images(3, 48, seed=0))
    pool = extractor(images)["pool"]
    assert pool.shape == (3, 32) and extractor.feature_dims == {"pool": 32}

    reference = Dinov2Model.from_pretrained(dinov2_folder, local_files_only=True).eval()
    # EDM2's preprocessing written out: float [0, 255] -> bicubic antialias 224 -> /255 -> ImageNet mean/std.
    x = torch.nn.functional.interpolate(images.float(), size=(224, 224), mode="bicubic", antialias=True) / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        hidden = reference(pixel_values=x, output_hidden_states=True).hidden_states[-1]
        cls = reference.layernorm(hidden)[:, 0]
    torch.testing.assert_close(pool, cls, rtol=1e-5, atol=1e-5)
    assert extractor.resize_mode == f"torch-bicubic-antialias-{INPUT_SIZE}"
    assert extractor.weights_sha256 == sha256_file(dinov2_folder / "model.safetensors")


def test_dinov2_torch_resize_is_close_to_edm2s_pil_reference_mode(dinov2_folder):
    """EDM2's 'pil' mode (PIL bicubic on uint8, matching dgm-eval) and its default 'torch' mode differ only
    by the filter's details: compare the preprocessed pixels on a smooth image."""
    extractor = build_extractor("dinov2", dinov2_folder)
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8)
    ours = extractor.preprocess(_nchw(image[None]))
    pil = np.asarray(Image.fromarray(image).resize((224, 224), Image.Resampling.BICUBIC), dtype=np.float32)
    pil = (torch.from_numpy(pil).permute(2, 0, 1)[None] / 255 - extractor.mean) / extractor.std
    pixel_levels = ((ours - pil) * extractor.std * 255).abs()
    assert float(pixel_levels.mean()) < 1.0  # under one grey level on average
    assert float(pixel_levels.max()) > 0  # ...but not the same filter (the resize mode is recorded)


def test_dinov2_weights_errors_name_the_download_and_the_mismatch(dinov2_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(GenbenchError, match="dinov2-large/resolve/main/model.safetensors") as error:
        build_extractor("dinov2")
    assert str(tmp_path / "cache" / registered_file(DINOV2_WEIGHTS).path) in str(error.value)
    wider = tmp_path / "wider"  # the tiny weights beside a config of another width
    wider.mkdir()
    (wider / "model.safetensors").write_bytes((dinov2_folder / "model.safetensors").read_bytes())
    wide = Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=2)
    wide.to_json_file(wider / "config.json")
    with pytest.raises(GenbenchError, match="not DINOv2 weights for this architecture"):
        build_extractor("dinov2", wider)
    with pytest.raises(GenbenchError, match="name the DINOv2 weights file model.safetensors"):
        build_extractor("dinov2", tmp_path / "wider" / "config.json")


def test_clip_pool_matches_open_clips_own_transforms_and_encoder(clip_folder):
    extractor = build_extractor("clip", clip_folder)
    images = random_images(4, 40, seed=3)[:, 4:36]  # 32 x 40: open_clip resizes nothing, crops the width
    pool = extractor(_nchw(images))["pool"]

    model, _, transform = open_clip.create_model_and_transforms(f"local-dir:{clip_folder}")
    with torch.no_grad():
        expected = model.eval().encode_image(torch.stack([transform(Image.fromarray(i)) for i in images]))
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(pool, expected, rtol=1e-5, atol=1e-5)
    assert extractor.feature_dims == {"pool": 16} and extractor.name == "clip"
    assert extractor.resize_mode == "center-crop-torch-bicubic-antialias-32"

    texts = extractor.encode_text(["a red circle", "two blue squares"])
    with torch.no_grad():
        expected_text = model.encode_text(open_clip.get_tokenizer(f"local-dir:{clip_folder}")(
            ["a red circle", "two blue squares"]))
    torch.testing.assert_close(texts, expected_text / expected_text.norm(dim=1, keepdim=True))


def test_clip_resizes_larger_images_to_the_model_size(clip_folder):
    extractor = build_extractor("clip", clip_folder)
    small = _nchw(random_images(2, 32, seed=4))
    large = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # the same pictures at 64 x 64
    assert extractor.preprocess(large).shape == (2, 3, 32, 32)
    # An antialiased 2x downscale of a 2x nearest upscale gives the picture back up to the filter's ringing.
    assert float((extractor.preprocess(large) - extractor.preprocess(small)).abs().mean()) < 0.1


def test_clip_default_is_cmmds_model_and_any_open_clip_model_is_nameable(tmp_path, monkeypatch):
    spec = weights_spec("ViT-L-14-336", "openai")
    assert spec.url == ("https://huggingface.co/timm/vit_large_patch14_clip_336.openai/resolve/main/"
                        "open_clip_model.safetensors")
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path))
    with pytest.raises(GenbenchError, match="vit_large_patch14_clip_336.openai") as error:
        build_extractor("clip")
    assert str(tmp_path / "open_clip-ViT-L-14-336-openai.safetensors") in str(error.value)
    with pytest.raises(GenbenchError, match="vit_base_patch32_clip_224.openai"):
        build_extractor("clip:ViT-B-32/openai")
    with pytest.raises(GenbenchError, match="open_clip knows no such model"):
        build_extractor("clip:ViT-B-32/no-such-tag")
    with pytest.raises(GenbenchError, match="has no variants"):
        build_extractor("dinov2:vitg14")


def test_clip_wrong_weights_file_is_a_readable_error(clip_folder, tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"visual.proj": torch.zeros(3)}, wrong)
    with pytest.raises(GenbenchError, match="not open_clip weights for this model"):
        build_extractor("clip:ViT-B-32/openai", wrong)
