"""Training images: an image folder or an ADM-style .npz, centre-cropped as ADM, flipped at random.

- Folder: `root/<class>/*.png|jpg|jpeg` (labels = sorted class folder index) or images directly in `root`
  (all label 0).
- `.npz`: `arr_0` uint8 [N, H, W, 3] and optional `arr_1` int labels (ADM's sample/reference layout).

Batches are drawn without workers in an order fixed by (seed, epoch), and each flip by (seed, epoch, index),
so the stream from step k onwards depends only on k: a resumed run sees exactly the same batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genbench.errors import GenbenchError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def center_crop_arr(image: Image.Image, size: int) -> np.ndarray:
    """ADM's centre crop: halve with BOX while the short side is >= 2 size, BICUBIC-resize the short side to
    `size`, then crop the centre. -> uint8 [size, size, 3]."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    arr = np.asarray(image.convert("RGB"))
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top: top + size, left: left + size]


class ImageDataset:
    """All images centre-cropped to `resolution`, in memory as uint8 [N, 3, R, R], with int64 labels."""

    def __init__(self, path: str | Path, resolution: int):
        path = Path(path)
        if path.suffix == ".npz" and path.is_file():
            arrays, labels = self._read_npz(path)
        elif path.is_dir():
            arrays, labels = self._read_folder(path, resolution)
        else:
            raise GenbenchError(f"{path}: no such image folder or .npz; pass --data a folder of images or an "
                                "ADM .npz")
        if len(arrays) == 0:
            raise GenbenchError(f"{path}: contains no images ({', '.join(sorted(IMAGE_SUFFIXES))} or arr_0)")
        images = np.stack([a if a.shape[:2] == (resolution, resolution)
                           else center_crop_arr(Image.fromarray(a), resolution) for a in arrays])
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.num_classes = int(self.labels.max()) + 1
        self.source = path
        self._permutations: dict[int, torch.Tensor] = {}

    @staticmethod
    def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
        with np.load(path) as data:
            if "arr_0" not in data:
                raise GenbenchError(f"{path}: no arr_0 (uint8 [N, H, W, 3]); write images as ADM's npz")
            images = data["arr_0"]
            labels = data["arr_1"] if "arr_1" in data else np.zeros(len(images), dtype=np.int64)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise GenbenchError(f"{path}: arr_0 is {images.dtype} {images.shape}; write uint8 [N, H, W, 3]")
        return images, labels

    @staticmethod
    def _read_folder(root: Path, resolution: int) -> tuple[list[np.ndarray], list[int]]:
        classes = sorted(p for p in root.iterdir() if p.is_dir())
        groups = [(i, sorted(c.iterdir())) for i, c in enumerate(classes)] or [(0, sorted(root.iterdir()))]
        arrays, labels = [], []
        for label, files in groups:
            for file in files:
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    with Image.open(file) as image:
                        arrays.append(center_crop_arr(image.convert("RGB"), resolution))
                    labels.append(label)
        return arrays, labels

    def __len__(self) -> int:
        return len(self.images)

    def batch_indices(self, step: int, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of global step `step`: (image index int64 [B], h-flip bool [B]). Epochs are consecutive
        permutations; a batch may span two epochs."""
        positions = torch.arange(step * batch_size, (step + 1) * batch_size)
        epochs, offsets = positions // len(self), positions % len(self)
        index = torch.stack([self._permutation(int(e), seed)[int(o)]
                             for e, o in zip(epochs, offsets, strict=True)])
        flip = torch.tensor([self._flip(int(e), int(i), seed) for e, i in zip(epochs, index, strict=True)])
        return index, flip

    def images_at(self, index: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, R, R] for the given rows, flipped where `flip`."""
        images = self.images[index]
        return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)

    def _permutation(self, epoch: int, seed: int) -> torch.Tensor:
        if epoch not in self._permutations:
            generator = torch.Generator().manual_seed(seed * 100003 + epoch)
            self._permutations = {epoch: torch.randperm(len(self), generator=generator)}
        return self._permutations[epoch]

    @staticmethod
    def _flip(epoch: int, index: int, seed: int) -> bool:
        generator = torch.Generator().manual_seed((seed * 100003 + epoch) * 1000003 + index)
        return bool(torch.rand(1, generator=generator).item() < 0.5)
