"""Tiny randomly initialised Mask2Former, OWLv2 and open_clip models through the GenEval adapters."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genbench.errors import GenbenchError
from genbench.geneval.colors import (
    TEMPLATES,
    PaletteColorClassifier,
    load_clip_color_classifier,
    object_crop,
)
from genbench.geneval.detectors import (
    Detection,
    Owlv2Detector,
    boxes_from_masks,
    geneval_name,
    load_mask2former,
    load_owlv2,
    owlv2_queries,
)
from genbench.geneval.prompts import CLASSES, COLORS

HF_COCO_NAMES = list(CLASSES[:64]) + ["mouse", "remote", "keyboard"] + list(CLASSES[67:])


def random_image(h=48, w=40, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_coco_label_spellings_map_to_geneval_names():
    assert [geneval_name(n) for n in ("mouse", "remote", "keyboard", "teddy_bear", "tvmonitor", "cup")] == [
        "computer mouse", "tv remote", "computer keyboard", "teddy bear", "tv", "cup"]


def test_boxes_from_masks_match_brute_force():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 9, 7)) > 0.8
    masks[4] = False
    for mask, box in zip(masks, boxes_from_masks(masks), strict=True):
        if not mask.any():
            assert box.tolist() == [0, 0, 0, 0]
            continue
        ys, xs = np.where(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.fixture(scope="module")
def mask2former_dir(tmp_path_factory):
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    swin = SwinConfig(image_size=32, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                      window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(
        backbone_config=swin, backbone=None, use_pretrained_backbone=False, hidden_dim=32,
        mask_feature_size=32, feature_size=32, encoder_feedforward_dim=32, dim_feedforward=32, num_queries=10,
        decoder_layers=2, encoder_layers=1, num_attention_heads=2, id2label=dict(enumerate(HF_COCO_NAMES)),
        label2id={n: i for i, n in enumerate(HF_COCO_NAMES)})
    model = Mask2FormerForUniversalSegmentation(config)
    path = tmp_path_factory.mktemp("m2f")
    model.save_pretrained(path)
    Mask2FormerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(path)
    return path


@pytest.mark.slow
def test_mask2former_adapter_masks_boxes_scores_and_labels(mask2former_dir):
    detector = load_mask2former(mask2former_dir)
    head = detector.model.class_predictor
    with torch.no_grad():  # every query predicts COCO "remote" with probability p (81 logits incl. null)
        head.weight.zero_()
        head.bias.zero_()
        head.bias[65] = 6.0
    p = np.exp(6.0) / (np.exp(6.0) + 80)
    image = random_image()
    detections = detector(image)
    assert 0 < len(detections) <= 10
    for d in detections:
        assert d.label == "tv remote"  # HF "remote" mapped to GenEval's name
        assert d.mask.shape == (48, 40) and d.mask.dtype == bool and d.mask.any()
        assert list(d.box) == boxes_from_masks(d.mask[None])[0].tolist()
        assert 0 < d.score <= p + 1e-6  # class probability x mean mask probability


@pytest.mark.slow
def test_mask2former_errors(tmp_path, mask2former_dir):
    with pytest.raises(GenbenchError, match="mask2former-swin-small-coco-instance"):
        load_mask2former(tmp_path / "nowhere")
    config = json.loads((mask2former_dir / "config.json").read_text())
    config["id2label"] = {str(i): f"thing{i}" for i in range(80)}
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in mask2former_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenbenchError, match="not GenEval's COCO classes"):
        load_mask2former(bad)


@pytest.fixture(scope="module")
def owlv2():
    import open_clip
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor

    torch.manual_seed(0)
    config = Owlv2Config(
        text_config=dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                           num_hidden_layers=1, num_attention_heads=2), projection_dim=16)
    ids = open_clip.get_tokenizer("ViT-B-32")(owlv2_queries(), context_length=16)
    text = {"input_ids": ids, "attention_mask": (ids > 0).long()}
    return Owlv2ForObjectDetection(config).eval(), Owlv2ImageProcessor(size={"height": 32, "width": 32}), text


def test_owlv2_adapter_square_padding_and_labels(owlv2):
    model, processor, text = owlv2
    detector = Owlv2Detector(model, processor, text)
    image = random_image(48, 40)
    detections = detector(image)
    assert len(detections) == (32 // 8) ** 2  # one box per patch, threshold 0
    # independent decoding: logits -> sigmoid max over queries; boxes scaled by the padded square side 48
    with torch.no_grad():
        out = model(pixel_values=processor(images=image, return_tensors="pt")["pixel_values"], **text)
    best, labels = out.logits[0].max(dim=-1)
    scores = best.sigmoid()
    cx, cy, w, h = out.pred_boxes[0].unbind(-1)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).double() * 48
    boxes = boxes.clamp(min=0).numpy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(max=40)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(max=48)
    assert [d.label for d in detections] == [CLASSES[j] for j in labels]  # patch order is kept
    np.testing.assert_allclose([d.box for d in detections], boxes, atol=1e-4)
    np.testing.assert_allclose([d.score for d in detections], scores.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="one tokenised query per class"):
        Owlv2Detector(model, processor, text, classes=CLASSES[:3])


def test_owlv2_missing_weights(tmp_path):
    with pytest.raises(GenbenchError, match="google/owlv2-base-patch16-ensemble"):
        load_owlv2(tmp_path / "nowhere")


TINY_CLIP = {"embed_dim": 16, "quick_gelu": True,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_clip_file(tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip")
    (folder / "geneval-tiny-quickgelu.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / "geneval-tiny-quickgelu.json")
    torch.manual_seed(0)
    model = open_clip.create_model("geneval-tiny-quickgelu")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "tiny.safetensors")
    return folder / "tiny.safetensors"


def test_geneval_clip_arch_is_quickgelu():
    import open_clip

    assert open_clip.get_model_config("ViT-L-14-quickgelu")["quick_gelu"] is True


def test_clip_colour_classifier_matches_manual_zero_shot(tiny_clip_file):
    import open_clip

    classifier = load_clip_color_classifier(tiny_clip_file, arch="geneval-tiny-quickgelu")
    model, tokenizer = classifier.model, classifier.tokenizer
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    image = random_image(48, 40)
    mask = np.zeros((48, 40), bool)
    mask[10:30, 5:25] = True
    objects = [Detection("car", (5.0, 10.0, 25.0, 30.0), 0.9, mask),
               Detection("car", (0.0, 0.0, 40.0, 20.0), 0.8)]
    with torch.no_grad():
        weights = []
        for color in COLORS:
            emb = model.encode_text(tokenizer([t.format(c=color, object="car") for t in TEMPLATES]))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            mean = emb.mean(0)
            weights.append(mean / mean.norm())
        text = torch.stack(weights, 1)
        crops = [object_crop(image, o) for o in objects]
        feats = model.encode_image(torch.stack([classifier.preprocess(c) for c in crops]))
        expected = [COLORS[i] for i in (F.normalize(feats, dim=-1) @ text).argmax(1).tolist()]
    torch.testing.assert_close(classifier.text_classifier("car"), text)
    assert classifier(image, objects, "car") == expected
    # the masked crop is the box, with #999 outside the mask
    pasted = np.asarray(object_crop(image, Detection("car", (0.0, 0.0, 40.0, 48.0), 1.0, mask)))
    assert pasted.shape == (48, 40, 3) and (pasted[~mask] == 153).all()
    assert (pasted[mask] == np.asarray(image)[mask]).all()
    assert crops[0].size == (20, 20)
    assert isinstance(open_clip.get_tokenizer("geneval-tiny-quickgelu")(["x"]), torch.Tensor)


def test_clip_missing_weights(tmp_path, monkeypatch):
    with pytest.raises(GenbenchError, match="none.safetensors: weights file not found"):
        load_clip_color_classifier(tmp_path / "none.safetensors")
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(GenbenchError, match="vit_large_patch14_clip_224.openai") as error:  # offline
        load_clip_color_classifier()
    assert str(tmp_path / "cache" / "open_clip-ViT-L-14-openai.safetensors") in str(error.value)


def test_palette_colour_classifier_uses_mask_median():
    pixels = np.full((10, 10, 3), 128, np.uint8)
    pixels[2:6, 2:6] = (200, 30, 40)
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:6] = True
    classify = PaletteColorClassifier({"red": (220, 40, 40), "grey": (128, 128, 128)})
    image = Image.fromarray(pixels)
    objects = [Detection("x", (0, 0, 10, 10), 1.0, mask), Detection("x", (0, 0, 10, 10), 1.0)]
    assert classify(image, objects, "x") == ["red", "grey"]
