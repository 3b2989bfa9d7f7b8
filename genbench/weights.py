"""Locating model weights: an explicit path, or the cache directory, with SHA-256 verification and an
error that says exactly what to download and where to put it. Nothing here touches the network."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from genbench.errors import GenbenchError
from genbench.io import sha256_file


@dataclass(frozen=True)
class WeightsSpec:
    """A known weights file. `sha256` may be a full hex digest or a prefix (torch hub's filename
    convention carries the first 8 hex digits), or None where no checksum is published."""

    name: str
    filename: str
    url: str
    sha256: str | None


def cache_dir() -> Path:
    """$GENBENCH_CACHE, else ~/.cache/genbench."""
    return Path(os.environ.get("GENBENCH_CACHE", Path.home() / ".cache" / "genbench"))


def check_sha256(
    actual: str, expected: str | None, where: str, fix: str, expected_from: str = "expected"
) -> None:
    """Compare a computed digest with `expected` (full digest or prefix; None: nothing to compare). The
    error names `where`, whose digest `expected` is (`expected_from`), and the `fix`."""
    if expected is not None and not actual.startswith(expected.lower()):
        raise GenbenchError(f"{where}: SHA-256 {actual} does not match the {expected_from} {expected}; {fix}")


def verify_sha256(path: Path, expected: str | None) -> str:
    """Hash `path` and compare with `expected` (full digest or prefix). Returns the full digest."""
    actual = sha256_file(path)
    check_sha256(actual, expected, str(path),
                 "the file is corrupt or a different model. Delete it and download it again")
    return actual


def resolve_weights(spec: WeightsSpec, override: str | Path | None = None) -> Path:
    """Path of `spec`'s weights: `override` as given (any hash; the caller records it), else the cache
    file, verified against the spec's SHA-256. A missing file is an error naming the URL and target."""
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise GenbenchError(f"{path}: weights file not found (given with --weights)")
        return path
    path = cache_dir() / spec.filename
    if not path.is_file():
        raise GenbenchError(
            f"{path}: {spec.name} weights are missing. Download {spec.url} to that path "
            f"(or set GENBENCH_CACHE), or pass --weights PATH to a local copy"
        )
    verify_sha256(path, spec.sha256)
    return path
