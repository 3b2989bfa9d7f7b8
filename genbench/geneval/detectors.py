"""Object detectors for the GenEval checks: image -> list of Detection(label, box, score, mask).

Adapters: transformers Mask2Former COCO instance segmentation (GenEval's detector family: its score is
class probability x mean mask probability, and boxes come from the masks) and OWLv2 (open vocabulary,
boxes only). Both load from a local copy of the Hugging Face model folder: --weights DIR, or the registered
folder fetched into the cache on first use (genbench.fetch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genbench.errors import GenbenchError
from genbench.fetch import fetch_folder
from genbench.geneval.prompts import CLASSES


@dataclass
class Detection:
    """One object: GenEval class name, box (x1, y1, x2, y2) in pixels, confidence, bool mask [H, W]."""

    label: str
    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = None


Detector = Callable[[Image.Image], list[Detection]]

# COCO spellings used by Hugging Face / detectron2 configs -> GenEval's names.
COCO_ALIASES = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard",
                "tvmonitor": "tv", "motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
                "diningtable": "dining table", "pottedplant": "potted plant", "hair dryer": "hair drier"}


def geneval_name(label: str) -> str:
    """A detector's COCO label as GenEval names it ("remote" -> "tv remote", "teddy_bear" -> "teddy bear")."""
    label = label.replace("_", " ").strip().lower()
    return COCO_ALIASES.get(label, label)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """bool [N, H, W] -> float [N, 4] (x1, y1, x2, y2) with exclusive right/bottom edges, as mmdet's
    mask2bbox that GenEval's boxes come from; an empty mask gives a zero box."""
    boxes = np.zeros((len(masks), 4), dtype=np.float64)
    for i, mask in enumerate(masks):
        xs, ys = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
        if len(xs) and len(ys):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def local_model_dir(name: str, weights: str | Path | None, hub_id: str) -> Path:
    """`weights` (a saved Hugging Face folder), else the registered folder `name`, fetched into
    `$GENBENCH_CACHE/<name>` file by file and verified on first use (genbench.fetch)."""
    if weights is None:
        return fetch_folder(name)
    path = Path(weights)
    if not (path / "config.json").is_file():
        raise GenbenchError(
            f"{path}: no {name} model folder (config.json + weights) there; pass the folder of a saved "
            f"{hub_id} (huggingface-cli download {hub_id} --local-dir DIR), or omit --weights to fetch it")
    return path


class Mask2FormerDetector:
    """Mask2Former instance segmentation. Scores are GenEval's (softmax over classes without the null
    class, top-`num_queries` over queries x classes, times the mean mask probability inside the mask);
    masks are upsampled to the image with nearest neighbour and boxes are taken from the masks."""

    def __init__(self, model, image_processor, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.processor = image_processor
        self.device = device
        id2label = model.config.id2label
        self.names = [geneval_name(id2label[i]) for i in range(len(id2label))]
        unknown = sorted(set(self.names) - set(CLASSES))
        if unknown:
            raise GenbenchError(f"Mask2Former config: labels {unknown} are not GenEval's COCO classes; "
                                "use a COCO instance-segmentation checkpoint")

    @torch.no_grad()
    def __call__(self, image: Image.Image) -> list[Detection]:
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        outputs = self.model(pixel_values=inputs["pixel_values"], pixel_mask=inputs.get("pixel_mask"))
        # threshold 0 keeps every non-empty mask; GenEval's rules apply the real thresholds later.
        result = self.processor.post_process_instance_segmentation(
            outputs, threshold=0.0, target_sizes=[(image.height, image.width)], return_binary_maps=True)[0]
        if not result["segments_info"]:
            return []
        masks = result["segmentation"].bool().cpu().numpy()
        boxes = boxes_from_masks(masks)
        return [Detection(self.names[info["label_id"]], tuple(box.tolist()), float(info["score"]), mask)
                for info, box, mask in zip(result["segments_info"], boxes, masks, strict=True)]


def load_mask2former(weights: str | Path | None = None, device: str = "cpu") -> Mask2FormerDetector:
    """A local copy of `facebook/mask2former-swin-small-coco-instance` (or any COCO instance Mask2Former)."""
    path = local_model_dir("mask2former-swin-small-coco-instance", weights,
                           "facebook/mask2former-swin-small-coco-instance")
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    config = Mask2FormerConfig.from_pretrained(path, local_files_only=True)
    # transformers v5 looks a string `backbone` up on the Hub; the folder's backbone_config is all it needs
    if getattr(config, "backbone_config", None) is not None:
        config.backbone, config.use_pretrained_backbone = None, False
    model = Mask2FormerForUniversalSegmentation.from_pretrained(path, config=config, local_files_only=True)
    processor = Mask2FormerImageProcessor.from_pretrained(path, local_files_only=True)
    return Mask2FormerDetector(model, processor, device)


class Owlv2Detector:
    """OWLv2 open-vocabulary detection with one text query per GenEval class ("a photo of a {class}").
    Each box gets the sigmoid score of its best query (no NMS). OWLv2 pads images to a square at the
    bottom/right, so boxes are scaled back with target size (max(h, w), max(h, w)) and clipped."""

    def __init__(self, model, image_processor, text_inputs: dict[str, torch.Tensor],
                 classes: tuple[str, ...] = CLASSES, device: str = "cpu"):
        if text_inputs["input_ids"].shape[0] != len(classes):
            raise ValueError("text_inputs must hold one tokenised query per class")
        self.model = model.eval().to(device)
        self.processor = image_processor
        self.text_inputs = {k: v.to(device) for k, v in text_inputs.items()}
        self.classes = classes
        self.device = device

    @torch.no_grad()
    def __call__(self, image: Image.Image) -> list[Detection]:
        pixels = self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        outputs = self.model(pixel_values=pixels.to(self.device), **self.text_inputs)
        side = max(image.height, image.width)
        result = self.processor.post_process_object_detection(
            outputs, threshold=0.0, target_sizes=torch.tensor([[side, side]]))[0]
        limits = np.array([image.width, image.height, image.width, image.height], dtype=np.float64)
        boxes = np.clip(result["boxes"].cpu().double().numpy(), 0, limits)
        scores, labels = result["scores"].tolist(), result["labels"].tolist()
        return [Detection(self.classes[label], tuple(box.tolist()), score)
                for box, score, label in zip(boxes, scores, labels, strict=True)]


def owlv2_queries(classes: tuple[str, ...] = CLASSES) -> list[str]:
    return [f"a photo of a {name}" for name in classes]


def load_owlv2(weights: str | Path | None = None, device: str = "cpu") -> Owlv2Detector:
    """A local copy of `google/owlv2-base-patch16-ensemble` (model, image processor and tokenizer files)."""
    path = local_model_dir("owlv2-base-patch16-ensemble", weights, "google/owlv2-base-patch16-ensemble")
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    model = Owlv2ForObjectDetection.from_pretrained(path, local_files_only=True)
    processor = Owlv2Processor.from_pretrained(path, local_files_only=True)
    length = model.config.text_config.max_position_embeddings
    text = processor.tokenizer(owlv2_queries(), padding="max_length", truncation=True, max_length=length,
                               return_tensors="pt")
    text_inputs = {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}
    return Owlv2Detector(model, processor.image_processor, text_inputs, CLASSES, device)

