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

import argparse
import json
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
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


def check_labels(where: str, values: np.ndarray, count: int) -> np.ndarray:
    """int64 [count] class labels: one non-negative integer per image (floats are refused, not rounded)."""
    integers = np.issubdtype(values.dtype, np.integer) and not np.issubdtype(values.dtype, np.bool_)
    if values.shape != (count,) or not integers or (count and values.min() < 0):
        raise GenbenchError(f"{where}: expected {count} non-negative integer labels (one per image), found "
                            f"{values.dtype} of shape {values.shape}; give one integer class label per image")
    return values.astype(np.int64)


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
        try:
            with archive.open(info) as member:
                shape, fortran, dtype = _read_npy_header(member)
                header_size = member.tell()
        except (ValueError, SyntaxError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as error:
            raise GenbenchError(f"{path}: {key} has a corrupt .npy header ({str(error)[:100]}); the file is "
                                "truncated or corrupt: write it again") from error
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
        """`arr_1`: one non-negative integer label per image of `arr_0`."""
        arrays = read_npz(self.path, "sample file", optional=["arr_1"])
        if "arr_1" not in arrays:
            raise GenbenchError(f"{self.path}: has no arr_1 (class labels); class_acc needs the labels the "
                                "samples were generated for (genbench sample writes them)")
        return check_labels(f"{self.path} (arr_1)", arrays["arr_1"], len(self))

    def _read_streamed(self, indices: Sequence[int]) -> np.ndarray:
        try:
            return self._read_compressed(indices)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:  # bad deflate data or CRC
            raise GenbenchError(f"{self.path}: {self._key}'s compressed data is corrupt "
                                f"({str(error)[:100]}); write the file again") from error

    def _read_compressed(self, indices: Sequence[int]) -> np.ndarray:
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
            width, height = open_image(file).size
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


MAX_IMAGE_PIXELS = 8192 * 8192  # far above any generative benchmark; a decompression bomb is far above it


def open_image(file: Path) -> Image.Image:
    """A lazily opened image whose header says it has between 1 and MAX_IMAGE_PIXELS pixels: a 0x0 image
    or a decompression bomb (a small file that decodes to gigabytes) is refused before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise GenbenchError(f"{file}: image too large to decode safely ({error}); genbench reads images of "
                            f"at most {MAX_IMAGE_PIXELS:,} pixels: downscale it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise GenbenchError(f"{file}: not a readable image ({error}); delete or replace it") from error
    width, height = image.size
    if width < 1 or height < 1:
        raise GenbenchError(f"{file}: image of {width}x{height} pixels; delete or replace it")
    if width * height > MAX_IMAGE_PIXELS:
        raise GenbenchError(f"{file}: image of {width}x{height} pixels is too large to decode safely; "
                            f"genbench reads images of at most {MAX_IMAGE_PIXELS:,} pixels: downscale it")
    return image



def decode_rgb(file: Path) -> np.ndarray:
    """uint8 [H, W, 3]. Grayscale/palette become RGB (unambiguous); transparency is an error."""
    image = open_image(file)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, zlib.error) as error:
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


# --------------------------------------------------------------------------------------------------
#                     Readers of every other input file (JSON, npz arrays, CSV, checkpoints)
# --------------------------------------------------------------------------------------------------
# Each turns whatever a broken or hostile file does to its parser (bad encoding, bad magic, a zip bomb,
# 100,000 levels of nesting, a pickle) into one GenbenchError naming the file and the fix.

MAX_JSON_DEPTH = 64  # results, manifests and configs nest a few levels; deeper is not a genbench file
MAX_TEXT_BYTES = 256 << 20


def read_text(path: str | Path, what: str, fix: str = "fix or replace it") -> str:
    """A UTF-8 text file (a BOM is dropped)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise GenbenchError(f"{path}: {what} is larger than {MAX_TEXT_BYTES >> 20} MiB; {fix}")
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as error:
        raise GenbenchError(f"{path}: {what} file not found; {fix}") from error
    except IsADirectoryError as error:
        raise GenbenchError(f"{path}: is a folder, not a {what} file; {fix}") from error
    except OSError as error:
        raise GenbenchError(f"{path}: cannot read the {what} file ({error.strerror}); {fix}") from error
    except UnicodeDecodeError as error:
        raise GenbenchError(f"{path}: {what} file is not UTF-8 text (byte {error.start}); {fix}") from error


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _json_depth(value: object) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [v for item in level if isinstance(item, (dict, list))
                 for v in (item.values() if isinstance(item, dict) else item)]
    return depth - 1


def parse_json(text: str, where: str, expect: type | tuple[type, ...] = dict,
               fix: str = "fix or replace it", what: str | None = None) -> object:
    """One JSON document of type `expect`, nested at most MAX_JSON_DEPTH deep; `where` (and `what` it is)
    name it in errors."""
    try:
        value = json.loads(text)
    except RecursionError as error:
        raise GenbenchError(f"{where}: JSON nested too deeply to be a genbench file; {fix}") from error
    except ValueError as error:  # JSONDecodeError, and ints longer than Python converts
        problem = f"not a readable {what} JSON" if what else "not valid JSON"
        raise GenbenchError(f"{where}: {problem} ({str(error).splitlines()[0][:120]}); {fix}") from error
    if not isinstance(value, expect):
        wanted = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in
                             (expect if isinstance(expect, tuple) else (expect,)))
        found = _JSON_NAMES.get(type(value), type(value).__name__)
        holds = f"a {what} file holds" if what else "must hold"
        raise GenbenchError(f"{where}: {holds} a JSON {wanted}, found a JSON {found}; {fix}")
    if _json_depth(value) > MAX_JSON_DEPTH:
        raise GenbenchError(f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; {fix}")
    return value


def read_json(path: str | Path, what: str, expect: type | tuple[type, ...] = dict,
              fix: str = "fix or replace it") -> object:
    """A UTF-8 JSON file holding one value of type `expect` (see parse_json)."""
    return parse_json(read_text(path, what, fix), str(path), expect, fix, what)


def record_or_check_manifest(path: Path, wanted: dict, what: str, mismatch: str, fix: str,
                             upgrade: Callable[[dict], dict] | None = None) -> None:
    """Write the settings a resumable run works with, or check that the run being resumed used the same:
    other settings are one error naming the file and each changed key (`mismatch`: what they mean), not a
    mix of two runs. `upgrade` maps a manifest an older genbench wrote to today's form before the check.
    Every rank writes the same bytes, so concurrent writers agree."""
    from genbench.io import write_text_atomic

    if path.exists():
        found = read_json(path, what, dict, f"delete {path} to start the run again")
        found = upgrade(found) if upgrade is not None else found
        changed = {key: (found.get(key), value) for key, value in wanted.items() if found.get(key) != value}
        if changed:
            shown = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
            raise GenbenchError(f"{path}: {mismatch} ({shown}); {fix}")
        return
    write_text_atomic(path, json.dumps(wanted, indent=2, sort_keys=True))


def read_jsonl(path: str | Path, what: str, fix: str = "fix or delete that line") -> list[tuple[int, object]]:
    """(line number, JSON object) of every non-blank line of a UTF-8 jsonl file."""
    text = read_text(path, what)
    return [(number, parse_json(line, f"{path}:{number}", dict, fix))
            for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def npz_names(path: str | Path, what: str) -> set[str]:
    """The array names in an .npz (its members without .npy), without reading any array."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except FileNotFoundError as error:
        raise GenbenchError(f"{path}: {what} not found") from error
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise GenbenchError(f"{path}: not a readable {what} .npz ({str(error)[:120]}); the file is "
                            "truncated or corrupt") from error


def read_npz(path: str | Path, what: str, required: Sequence[str] = (), optional: Sequence[str] = (),
             fix: str = "the file is truncated or corrupt; write it again") -> dict[str, np.ndarray]:
    """The named arrays of an .npz, never unpickling: each member's header is checked against the bytes
    the zip says it holds before anything is allocated, so a corrupt magic, header or compressed stream,
    or a header claiming terabytes, is one error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise GenbenchError(f"{path}: {what} not found" if not path.exists() else f"{path}: not a file")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [key for key in required if f"{key}.npy" not in names]
            if missing:
                found = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "nothing"
                raise GenbenchError(f"{path}: {what} has no {', '.join(missing)} (found {found})")
            for key in [*required, *(k for k in optional if f"{k}.npy" in names)]:
                info = archive.getinfo(f"{key}.npy")
                with archive.open(info) as member:
                    shape, fortran, dtype = _read_npy_header(member)
                    if dtype.hasobject:
                        raise GenbenchError(f"{path}: {key} holds Python objects (a pickle), which genbench "
                                            "never loads; save plain numeric arrays")
                    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if member.tell() + size != info.file_size:
                        raise GenbenchError(f"{path}: {key}'s header says {shape} {dtype} but the member "
                                            f"holds {info.file_size - member.tell()} bytes; {fix}")
                    data = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=dtype)
                    if size and member.readinto(memoryview(data.view(np.uint8))) != size:
                        raise GenbenchError(f"{path}: {key} ends early; {fix}")
                arrays[key] = data.reshape(shape, order="F" if fortran else "C")
    except GenbenchError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, KeyError, SyntaxError,
            TypeError, OverflowError) as error:
        raise GenbenchError(f"{path}: not a readable {what} .npz ({type(error).__name__}: "
                            f"{str(error)[:120]}); {fix}") from error
    return arrays


def read_checkpoint(path: str | Path) -> dict:
    """A .safetensors or torch checkpoint, read safely (weights_only: no code runs); a dict of its
    entries. Anything torch refuses is one line without torch's advice to load it unsafely."""
    path = Path(path)
    if not path.is_file():
        raise GenbenchError(f"{path}: checkpoint not found; download it (see `genbench models list`) or fix "
                            "the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # REPA and REPA-E store their argparse Namespace under "args"; it is a plain attribute bag, so
            # it is allow-listed for the weights-only unpickler (nothing else is).
            with torch.serialization.safe_globals([argparse.Namespace]):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, a pickle of arbitrary objects, a non-torch file, ...
        reason = _weights_only_reason(error)
        raise GenbenchError(f"{path}: cannot be read as a weights-only checkpoint ({reason}); it is "
                            "corrupt, not a checkpoint, or holds objects other than tensors: re-download it "
                            "or convert it to safetensors") from None
    if not isinstance(state, dict):
        raise GenbenchError(f"{path}: holds a {type(state).__name__}, not a checkpoint dict of weights; give "
                            "a state dict or a genbench/REPA/SiT checkpoint")
    return state


def _weights_only_reason(error: Exception) -> str:
    """What torch's refusal says, without its advice (weights_only=False would run the file's code, which a
    user must never be told to do)."""
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it pickles {found.group(1)}, which the weights-only reader refuses"
    if "weights only" in text.lower() or "weights_only" in text:
        return "the weights-only reader refused it"
    first = text.strip().splitlines()[0][:120] if text.strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


# Spreadsheets run a cell that starts with = + - @ (or a tab / carriage return) as a formula. Text cells
# written to CSV get a leading apostrophe, as OWASP's CSV-injection advice and spreadsheet-safe writers do;
# numbers (-1.5) stay numbers, and a cell that already starts with apostrophes before such a character gets
# one more, so reading strips exactly one and every name round-trips.
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def spreadsheet_safe(value: object) -> object:
    """A text cell as written to CSV: apostrophe-prefixed when a spreadsheet would run it as a formula."""
    if isinstance(value, str) and _FORMULA_START.match(value) and not _is_number(value):
        return "'" + value
    return value


def _spreadsheet_text(value: object) -> object:
    """The inverse of spreadsheet_safe."""
    if isinstance(value, str) and value.startswith("'") and _FORMULA_START.match(value[1:]) \
            and not _is_number(value[1:]):
        return value[1:]
    return value


def read_csv(path: str | Path, what: str, text_columns: Sequence[str] = ()):
    """A UTF-8 CSV as a pandas DataFrame; `text_columns` stay strings with spreadsheet_safe undone."""
    import io

    import pandas as pd

    text = read_text(path, what)
    try:
        table = pd.read_csv(io.StringIO(text), dtype={c: "string" for c in text_columns})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as error:
        raise GenbenchError(f"{path}: not a readable {what} CSV ({str(error).splitlines()[0][:120]}); fix or "
                            "replace it") from error
    for column in text_columns:
        if column in table.columns:
            table[column] = table[column].map(_spreadsheet_text, na_action="ignore").astype("string")
    return table
