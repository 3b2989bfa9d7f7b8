"""Per-image cost of the GenEval checks: rules alone, the `shapes` world detector, and the Mask2Former,
OWLv2 and CLIP-colour adapters on randomly initialised models (tiny by default; `--full` builds the real
architectures: Mask2Former Swin-S at 384 px, OWLv2 B/16 at 960 px, CLIP ViT-L-14 at 224 px). No peer is
timed: GenEval's own evaluator needs CUDA, mmcv-full 1.7 and torch 1.12.

    python scripts/bench_geneval.py            # CPU, tiny models
    python scripts/bench_geneval.py --full --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

import genbench  # noqa: F401  (torchvision shim)
from genbench.geneval.detectors import Detection, Mask2FormerDetector, Owlv2Detector, owlv2_queries
from genbench.geneval.prompts import CLASSES, generate_suite
from genbench.geneval.score import score_image

STAGES = ["stage1", "stage2", "stage3", "stage4"]


def per_image_ms(fn, items, repeats: int) -> float:
    """Median over `repeats` passes of the mean milliseconds per item (after one warm-up item)."""
    fn(items[0])
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - start) * 1000 / len(items))
    return statistics.median(runs)


def fake_detections(rng: np.random.Generator, n: int = 30) -> list[Detection]:
    boxes = rng.uniform(0, 400, (n, 2))
    return [Detection(str(rng.choice(CLASSES[:5])), (x, y, x + 60, y + 60), float(rng.random()))
            for x, y in boxes]


def bench_rules(args) -> float:
    rng = np.random.default_rng(0)
    suite = generate_suite(per_task=20)
    items = [(record, fake_detections(rng)) for record in suite]

    def colors(image, objects, name):
        return ["red"] * len(objects)

    def check(item):
        return score_image(None, item[0], lambda _: item[1], colors)

    return per_image_ms(check, items, args.repeats)


def bench_shapes(args) -> float:
    from genbench.geneval.shapes_world import (
        ShapesDetector,
        scene_for_prompt,
        shapes_color_classifier,
        shapes_suite,
    )
    from genbench.worlds import ShapesWorld

    world, detector, colors = ShapesWorld(64), ShapesDetector(), shapes_color_classifier()
    suite = shapes_suite(0, 10)
    items = [(r, Image.fromarray(scene_for_prompt(r, world, seed=i))) for i, r in enumerate(suite)]
    return per_image_ms(lambda item: score_image(item[1], item[0], detector, colors), items, args.repeats)


def mask2former(full: bool, device: str) -> Mask2FormerDetector:
    from transformers import (
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessor,
        SwinConfig,
    )

    names = dict(enumerate(CLASSES))
    if full:  # facebook/mask2former-swin-small-coco-instance
        swin = SwinConfig(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7,
                          out_features=STAGES)
        config = Mask2FormerConfig(backbone_config=swin, backbone=None, use_pretrained_backbone=False,
                                   id2label=names, label2id={v: k for k, v in names.items()})
        size = 384
    else:
        swin = SwinConfig(image_size=32, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1],
                          num_heads=[1, 1, 1, 1], window_size=2, out_features=STAGES)
        config = Mask2FormerConfig(backbone_config=swin, backbone=None, use_pretrained_backbone=False,
                                   hidden_dim=32, mask_feature_size=32, feature_size=32,
                                   encoder_feedforward_dim=32, dim_feedforward=32, num_queries=10,
                                   decoder_layers=2, encoder_layers=1, num_attention_heads=2,
                                   id2label=names, label2id={v: k for k, v in names.items()})
        size = 64
    processor = Mask2FormerImageProcessor(size={"height": size, "width": size})
    return Mask2FormerDetector(Mask2FormerForUniversalSegmentation(config), processor, device)


def owlv2(full: bool, device: str) -> Owlv2Detector:
    import open_clip
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor

    if full:  # google/owlv2-base-patch16-ensemble
        config, size = Owlv2Config(vision_config={"image_size": 960, "patch_size": 16}), 960
    else:
        config = Owlv2Config(
            text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2),
            vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                               num_hidden_layers=1, num_attention_heads=2), projection_dim=16)
        size = 32
    ids = open_clip.get_tokenizer("ViT-B-32")(owlv2_queries(), context_length=16)
    processor = Owlv2ImageProcessor(size={"height": size, "width": size})
    return Owlv2Detector(Owlv2ForObjectDetection(config), processor, {"input_ids": ids,
                                                                      "attention_mask": (ids > 0).long()},
                         device=device)


def clip_colors(full: bool, device: str):
    import open_clip

    from genbench.geneval.colors import ClipColorClassifier

    if full:
        model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14-quickgelu")
    else:
        vision = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16}
        text = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
        model = open_clip.CLIP(16, vision, text, quick_gelu=True)
        preprocess = open_clip.image_transform(32, is_train=False)
    return ClipColorClassifier(model, preprocess, open_clip.get_tokenizer("ViT-L-14"), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="real-size architectures (random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=512, help="image size fed to the adapters")
    parser.add_argument("--images", type=int, default=4, help="images per adapter pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (args.resolution, args.resolution, 3), dtype=np.uint8))
              for _ in range(args.images)]
    size = "full" if args.full else "tiny"
    rows = [("rules only (30 detections, 550 prompts)", bench_rules(args)),
            ("shapes detector + rules (64 px)", bench_shapes(args))]
    for name, build in (("mask2former", mask2former), ("owlv2", owlv2)):
        detector = build(args.full, args.device)
        ms = per_image_ms(detector, images, args.repeats)
        rows.append((f"{name} adapter ({size}, {args.resolution} px)", ms))
    colors = clip_colors(args.full, args.device)
    box = Detection("car", (10.0, 10.0, args.resolution - 10.0, args.resolution - 10.0), 1.0)
    rows.append((f"clip colour, 1 object ({size})", per_image_ms(lambda im: colors(im, [box], "car"), images,
                                                                 args.repeats)))
    print(f"device {args.device}, {args.threads} threads")
    for name, ms in rows:
        print(f"{name:<45} {ms:10.2f} ms/image {1000 / ms:10.1f} images/s")


if __name__ == "__main__":
    main()
