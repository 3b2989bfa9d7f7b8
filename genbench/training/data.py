"""Training images: an image folder or an ADM-style .npz, centre-cropped as ADM, optionally flipped at random
(off by default, as upstream REPA / REPA-E train).

- Folder: `root/<class>/*.png|jpg|jpeg` (labels = sorted class folder index) or images directly in `root`
  (all label 0).
- `.npz`: `arr_0` uint8 [N, H, W, 3] and optional `arr_1` int labels (ADM's sample/reference layout).

Batches are drawn without workers in an order fixed by (seed, epoch), and each flip by (seed, epoch, index),
so the stream from step k onwards depends only on k: a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genbench.errors import GenbenchError
from genbench.sources import IMAGE_SUFFIXES, check_labels, check_nhwc, decode_rgb, read_npz


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
    """Training images centre-cropped to `resolution` with int64 labels. An .npz is held in memory as uint8
    [N, 3, R, R] (`self.images`); a folder is decoded on demand (`self.images` is None), so ImageNet-sized
    folders need no memory up front."""

    def __init__(self, path: str | Path, resolution: int):
        path = Path(path)
        self.source, self.resolution = path, resolution
        self.images: torch.Tensor | None = None
        self.files: list[Path] = []
        if path.suffix == ".npz" and path.is_file():
            arrays, labels = self._read_npz(path)
            if len(arrays):
                crops = np.stack([self._crop(a) for a in arrays])
                self.images = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()
        elif path.is_dir():
            self.files, labels = self._list_folder(path)
        else:
            raise GenbenchError(f"{path}: no such image folder or .npz; pass --data a folder of images or an "
                                "ADM .npz")
        if len(labels) == 0:
            raise GenbenchError(f"{path}: contains no images ({', '.join(IMAGE_SUFFIXES)} or arr_0)")
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.num_classes = int(self.labels.max()) + 1
        self._permutations: dict[int, torch.Tensor] = {}

    def _crop(self, array: np.ndarray) -> np.ndarray:
        if array.shape[:2] == (self.resolution, self.resolution):
            return array
        return center_crop_arr(Image.fromarray(array), self.resolution)

    @staticmethod
    def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
        data = read_npz(path, "training images", required=["arr_0"], optional=["arr_1"])
        images = data["arr_0"]
        check_nhwc(f"{path} (arr_0)", images.shape, images.dtype)
        if "arr_1" not in data:
            return images, np.zeros(len(images), dtype=np.int64)
        return images, check_labels(f"{path} (arr_1)", data["arr_1"], len(images))

    @staticmethod
    def _list_folder(root: Path) -> tuple[list[Path], list[int]]:
        """Class subfolders in sorted order give labels 0..K-1; images directly in `root` get label 0."""
        classes = sorted(p for p in root.iterdir() if p.is_dir())
        groups = [(i, sorted(c.iterdir())) for i, c in enumerate(classes)] or [(0, sorted(root.iterdir()))]
        files, labels = [], []
        for label, members in groups:
            for file in members:
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(file)
                    labels.append(label)
        return files, labels

    def _decode(self, i: int) -> torch.Tensor:
        array = center_crop_arr(Image.fromarray(decode_rgb(self.files[i])), self.resolution)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def batch_indices(self, step: int, batch_size: int, seed: int,
                      hflip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of global step `step`: (image index int64 [B], h-flip bool [B], all False unless `hflip`).
        Epochs are consecutive permutations; a batch may span two epochs. The order does not depend on
        `hflip`."""
        positions = torch.arange(step * batch_size, (step + 1) * batch_size)
        epochs, offsets = positions // len(self), positions % len(self)
        index = torch.stack([self._permutation(int(e), seed)[int(o)]
                             for e, o in zip(epochs, offsets, strict=True)])
        if not hflip:
            return index, torch.zeros(batch_size, dtype=torch.bool)
        flip = torch.tensor([self._flip(int(e), int(i), seed) for e, i in zip(epochs, index, strict=True)])
        return index, flip

    def images_at(self, index: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, R, R] for the given rows, flipped where `flip`."""
        if self.images is not None:
            images = self.images[index]
        else:
            images = torch.stack([self._decode(int(i)) for i in index])
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


def dataset_fingerprint(dataset: ImageDataset) -> dict:
    """What identifies a training set, saved in checkpoints so that `--resume` with other data is refused:
    image count, class count and a SHA-256 of the labels and of the images (in memory) or of the files'
    relative paths and sizes (a folder: cheap, no decoding)."""
    digest = hashlib.sha256(dataset.labels.numpy().tobytes())
    if dataset.images is not None:
        digest.update(dataset.images.numpy().tobytes())
    else:
        for file in dataset.files:
            digest.update(f"{file.relative_to(dataset.source)}:{file.stat().st_size}\n".encode())
    return {"images": len(dataset), "classes": dataset.num_classes, "resolution": dataset.resolution,
            "sha256": digest.hexdigest()}
