"""Locating model weights: an explicit path, or the registered file in the cache directory, fetched and
verified on first use by genbench.fetch (which alone touches the network)."""

from __future__ import annotations

from pathlib import Path

from genbench.errors import GenbenchError
from genbench.fetch import RemoteFile, check_sha256, fetch
from genbench.io import sha256_file


def verify_sha256(path: Path, expected: str | None) -> str:
    """Hash `path` and compare with `expected` (full digest or prefix). Returns the full digest."""
    actual = sha256_file(path)
    check_sha256(actual, expected, str(path),
                 "the file is corrupt or a different model. Delete it and download it again")
    return actual


def resolve_weights(spec: str | RemoteFile, override: str | Path | None = None) -> Path:
    """Path of the weights `spec` (a registered file name, or a RemoteFile for files the registry cannot
    list, e.g. any open_clip model): `override` as given (any hash; the caller records it), else the cache
    file, downloaded on first use and verified against the registry's or recorded SHA-256."""
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise GenbenchError(f"{path}: weights file not found (given with --weights)")
        return path
    return fetch(spec)
