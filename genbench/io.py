"""Small file helpers shared by every writer: atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path


def package_file(package: str, name: str) -> Path:
    """Path of a data file shipped inside an installed package (`genbench.reference_stats`,
    `genbench.worlds.weights`), wherever the package is installed: a wheel in site-packages, an editable
    checkout (where `genbench.reference_stats` maps to the repository's `reference_stats/`), a zip never."""
    return Path(str(files(package) / name))


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it.
    Readers never see a half-written file. `suffix` keeps the extension for writers that need it
    (np.savez appends .npz to names without it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` (UTF-8) through `atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
