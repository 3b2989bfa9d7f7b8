"""Sample sources: where images come from, validated once, read in batches.

A source has `len()`, `image_size` (H, W), `description` (for messages and provenance) and
`batches(batch_size, indices)` yielding `(uint8 [N, 3, H, W], int64 index [N])`, and `class_labels()`, the
class each sample was generated for, where the source has them. Sources:

- `NpzSource`: ADM's `.npz` (`arr_0`, uint8 [N, H, W, 3]; labels in `arr_1`). An uncompressed member
  (np.savez, ADM's own files) is read batch by batch at its byte offset, so memory does not grow with the
  sample count; a compressed one (np.savez_compressed) is streamed front to back.
- `FolderSource`: PNG/JPEG files under a folder, in sorted path order, decoded in DataLoader workers.
- `TensorSource`: images already in memory (uint8 [N, 3, H, W] tensor or [N, H, W, 3] array).
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genbench.errors import GenbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
Batch = tuple[torch.Tensor, torch.Tensor]


class SampleSource:
    """Base class: subclasses implement `__len__`, `image_size`, `read(indices) -> uint8 [n, 3, H, W]`."""

    description: str
    image_size: tuple[int, int]
    sequential = False  # True when reads must go front to back in one process (streamed files)

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, indices: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def class_labels(self) -> np.ndarray:
        """int64 [N]: the class each sample was generated for (what `class_acc` compares with)."""
        raise GenbenchError(f"{self.description}: has no class labels; class_acc needs an ADM .npz with the "
                            "labels the samples were generated for in arr_1 (genbench sample writes them)")

    def batches(
        self, batch_size: int, indices: Sequence[int] | None = None, num_workers: int = 0
    ) -> Iterator[Batch]:
        """Yield (images, index) batches over `indices` (default: all) in order."""
        indices = range(len(self)) if indices is None else indices
        chunks = [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]
        if num_workers == 0 or self.sequential:
            for chunk in chunks:
                yield torch.from_numpy(self.read(chunk)), torch.tensor(chunk, dtype=torch.long)
            return
        loader = torch.utils.data.DataLoader(
            _Chunks(self, chunks), batch_size=None, num_workers=num_workers, persistent_workers=False
        )
        yield from loader


class _Chunks(torch.utils.data.Dataset):
    def __init__(self, source: SampleSource, chunks: list[list[int]]):
        self.source, self.chunks = source, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> Batch:
        chunk = self.chunks[i]
        return torch.from_numpy(self.read_chunk(chunk)), torch.tensor(chunk, dtype=torch.long)

    def read_chunk(self, chunk: list[int]) -> np.ndarray:
        return self.source.read(chunk)


# --------------------------------------------------------------------------------------------------
#                                       Validation helpers
# --------------------------------------------------------------------------------------------------


def check_nhwc(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """ADM layout: uint8 [N, H, W, 3]. Says what was found and how to convert."""
    if dtype != np.uint8:
        hint = (
            (
                "floats: convert [-1, 1] with np.clip(np.rint(x * 127.5 + 127.5), 0, 255)"
                ".astype(np.uint8), or [0, 1] with x * 255"
            )
            if np.issubdtype(dtype, np.floating)
            else "convert to uint8 0..255"
        )
        raise GenbenchError(f"{name}: images are {dtype}, expected uint8 0..255 ({hint})")
    if len(shape) != 4 or shape[-1] != 3:
        found = f"shape {shape}"
        if len(shape) == 4 and shape[1] == 3:
            found += " (looks like NCHW; transpose to NHWC with x.transpose(0, 2, 3, 1))"
        elif len(shape) == 4 and shape[-1] in (1, 4):
            found += f" ({'grayscale' if shape[-1] == 1 else 'RGBA'}; convert to RGB)"
        elif len(shape) == 3:
            found += " (grayscale without a channel axis; convert to RGB)"
        raise GenbenchError(f"{name}: expected images of shape [N, H, W, 3], found {found}")
    if shape[0] == 0:
        raise GenbenchError(f"{name}: contains no images")


# --------------------------------------------------------------------------------------------------
#                                          ADM .npz files
# --------------------------------------------------------------------------------------------------


def _read_npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream at `handle`, leaving it at the array data."""
    major, _ = np.lib.format.read_magic(handle)
    if major == 1:
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _npz_member(path: Path, key: str) -> tuple[zipfile.ZipInfo, int, tuple[int, ...], np.dtype]:
    """(member info, byte offset of the array data in the file, shape, dtype) of `key` in an .npz."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise GenbenchError(
            f"{path}: not a readable .npz ({error}); the file is truncated or corrupt"
        ) from error
    with archive:
        names = archive.namelist()
        if f"{key}.npy" not in names:
            found = ", ".join(n.removesuffix(".npy") for n in names) or "nothing"
            raise GenbenchError(
                f"{path}: has no '{key}' array (found {found}); ADM sample files keep images in arr_0"
            )
        info = archive.getinfo(f"{key}.npy")
        with archive.open(info) as member:
            shape, fortran, dtype = _read_npy_header(member)
            header_size = member.tell()
    if fortran:
        raise GenbenchError(f"{path}: {key} is stored in Fortran order; re-save it with np.savez")
    with open(path, "rb") as handle:  # data start = local header + name + extra field + .npy header
        handle.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(handle.read(4), dtype="<u2")
    offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header_size
    return info, offset, tuple(shape), np.dtype(dtype)


class NpzSource(SampleSource):
    """ADM `.npz` samples: `arr_0` uint8 [N, H, W, 3], read in batches without loading the whole array."""

    def __init__(self, path: str | Path, key: str = "arr_0"):
        self.path = Path(path)
        self.description = str(self.path)
        info, self._offset, self._shape, dtype = _npz_member(self.path, key)
        check_nhwc(f"{self.path} ({key})", self._shape, dtype)
        self.image_size = (self._shape[1], self._shape[2])
        self._key = key
        self.sequential = info.compress_type != zipfile.ZIP_STORED
        expected_end = self._offset + int(np.prod(self._shape))
        if not self.sequential and expected_end > self.path.stat().st_size:
            raise GenbenchError(
                f"{self.path}: {key} is truncated (file ends before its {self._shape[0]} images)"
            )
        self._file = None
        self._stream = None
        self._stream_position = 0

    def __len__(self) -> int:
        return self._shape[0]

    def read(self, indices: Sequence[int]) -> np.ndarray:
        if self.sequential:
            return self._read_streamed(indices)
        # Plain reads, not a memory map: mapped pages count towards resident memory, which would then grow
        # with the file (2x the RSS at 4x the images). A run of consecutive indices is one read.
        if self._file is None:  # opened lazily, once per DataLoader worker
            self._file = open(self.path, "rb")
        image_bytes = int(np.prod(self._shape[1:]))
        out = np.empty((len(indices), *self._shape[1:]), dtype=np.uint8)
        start = 0
        while start < len(indices):
            end = start + 1
            while end < len(indices) and indices[end] == indices[end - 1] + 1:
                end += 1
            self._file.seek(self._offset + indices[start] * image_bytes)
            self._file.readinto(memoryview(out[start:end]).cast("B"))
            start = end
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def class_labels(self) -> np.ndarray:
        """`arr_1`: one integer label per image of `arr_0`."""
        try:
            with np.load(self.path) as archive:
                labels = archive["arr_1"] if "arr_1" in archive.files else None
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise GenbenchError(f"{self.path}: arr_1 (class labels) cannot be read ({error})") from error
        if labels is None:
            raise GenbenchError(f"{self.path}: has no arr_1 (class labels); class_acc needs the labels the "
                                "samples were generated for (genbench sample writes them)")
        if not np.issubdtype(labels.dtype, np.integer):
            raise GenbenchError(f"{self.path}: arr_1 holds {labels.dtype} values, but class labels are "
                                "integer class indices; save them as np.int64")
        if labels.shape != (len(self),):
            raise GenbenchError(f"{self.path}: arr_1 has shape {labels.shape}, but class labels are one per "
                                f"image of arr_0 ({len(self)},)")
        return labels.astype(np.int64)

    def _read_streamed(self, indices: Sequence[int]) -> np.ndarray:
        image_bytes = int(np.prod(self._shape[1:]))
        if self._stream is None or indices[0] < self._stream_position:
            archive = zipfile.ZipFile(self.path)
            self._stream = archive.open(f"{self._key}.npy")
            _read_npy_header(self._stream)
            self._stream_position = 0
        images = []
        for index in indices:
            if index != self._stream_position:
                self._stream.read((index - self._stream_position) * image_bytes)
            data = self._stream.read(image_bytes)
            if len(data) != image_bytes:
                raise GenbenchError(f"{self.path}: {self._key} is truncated at image {index}")
            images.append(np.frombuffer(data, np.uint8).reshape(self._shape[1:]))
            self._stream_position = index + 1
        return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_stream": None, "_stream_position": 0}


# --------------------------------------------------------------------------------------------------
#                                          Image folders
# --------------------------------------------------------------------------------------------------


class FolderSource(SampleSource):
    """PNG/JPEG files under `root` (recursively), in sorted relative-path order, all of one size."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.description = str(self.root)
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise GenbenchError(f"{self.root}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")
        sizes: dict[tuple[int, int], Path] = {}
        for file in self.files:
            width, height = _open_image(file).size
            sizes.setdefault((height, width), file)
            if len(sizes) > 1:
                (s1, f1), (s2, f2) = sizes.items()
                raise GenbenchError(
                    f"{self.root}: images of different sizes, e.g. {f1.name} is {s1[1]}x{s1[0]} "
                    f"and {f2.name} is {s2[1]}x{s2[0]}; resize them to one size first"
                )
        self.image_size = next(iter(sizes))

    def __len__(self) -> int:
        return len(self.files)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([decode_rgb(self.files[i]) for i in indices]).transpose(0, 3, 1, 2).copy()


def _open_image(file: Path) -> Image.Image:
    try:
        return Image.open(file)
    except (UnidentifiedImageError, OSError) as error:
        raise GenbenchError(f"{file}: not a readable image ({error}); delete or replace it") from error


def decode_rgb(file: Path) -> np.ndarray:
    """uint8 [H, W, 3]. Grayscale/palette become RGB (unambiguous); transparency is an error."""
    image = _open_image(file)
    try:
        image.load()
    except OSError as error:
        raise GenbenchError(f"{file}: corrupt image data ({error}); delete or replace it") from error
    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if (alpha != 255).any():
            raise GenbenchError(f"{file}: has transparent pixels; composite it onto a background first")
    if image.mode != "RGB":
        if image.mode not in ("RGBA", "LA"):
            warnings.warn(f"{file}: {image.mode} image converted to RGB", stacklevel=2)
        image = image.convert("RGB")
    return np.asarray(image)


# --------------------------------------------------------------------------------------------------
#                                     In-memory images and dispatch
# --------------------------------------------------------------------------------------------------


class TensorSource(SampleSource):
    """Images in memory: uint8 tensor [N, 3, H, W], or uint8 array [N, H, W, 3] read by index (not copied,
    so a np.memmap stays on disk)."""

    def __init__(self, images: torch.Tensor | np.ndarray, description: str = "<in-memory images>"):
        self.description = description
        if isinstance(images, np.ndarray):
            check_nhwc(description, images.shape, images.dtype)
            self.image_size = (images.shape[1], images.shape[2])
        elif images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise GenbenchError(
                f"{description}: expected a uint8 tensor [N, 3, H, W], got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        else:
            images = images.contiguous()
            self.image_size = (images.shape[2], images.shape[3])
        if images.shape[0] == 0:
            raise GenbenchError(f"{description}: contains no images")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def read(self, indices: Sequence[int]) -> np.ndarray:
        batch = self.images[list(indices)]
        if isinstance(batch, torch.Tensor):
            return batch.numpy()
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def open_source(samples: str | Path | torch.Tensor | np.ndarray) -> SampleSource:
    """A source for an `.npz` path, an image folder, or in-memory images."""
    if isinstance(samples, (torch.Tensor, np.ndarray)):
        return TensorSource(samples)
    path = Path(samples)
    if not path.exists():
        raise GenbenchError(f"{path}: no such file or folder")
    if path.is_dir():
        return FolderSource(path)
    if path.suffix == ".npz":
        return NpzSource(path)
    raise GenbenchError(f"{path}: unsupported sample file; give an ADM .npz (arr_0) or a folder of PNG/JPEG")
