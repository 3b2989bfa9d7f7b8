"""Small file helpers shared by every writer: output-path checks, atomic writes and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

from genbench.errors import GenbenchError


def package_file(package: str, name: str) -> Path:
    """Path of a data file shipped inside an installed package (`genbench.reference_stats`,
    `genbench.worlds.weights`), wherever the package is installed: a wheel in site-packages, an editable
    checkout (where `genbench.reference_stats` maps to the repository's `reference_stats/`), a zip never."""
    return Path(str(files(package) / name))


def check_output(path: str | Path | None, option: str = "--out", folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any computation: a folder where a file goes
    (or a file where a folder goes), an unwritable existing file, or a parent that is not a writable folder.
    Every command calls this for each path it will write; None (no output asked for) passes."""
    if path is None:
        return
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise GenbenchError(f"{option} {path}: is a file, not a folder; choose a folder")
        if not folder and path.is_dir():
            raise GenbenchError(f"{option} {path}: is a folder; give a file name inside it")
        if not os.access(path, os.W_OK):
            raise GenbenchError(f"{option} {path}: not writable; fix its permissions or choose another path")
        if not folder:  # atomic writes create a temporary file beside the target
            path = path.resolve()
    parent = path.parent if not path.is_dir() else path
    while not parent.exists() and parent != parent.parent:  # folders atomic_write will create
        parent = parent.parent
    if not parent.is_dir():
        raise GenbenchError(f"{option} {path}: {parent} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenbenchError(f"{option} {path}: cannot create files in {parent} (permission denied); "
                            "choose a writable location")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else by the set-and-restore
    idiom."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it.
    Readers never see a half-written file. A new file gets the umask's mode (0644 under umask 022), a
    replaced one keeps its mode, and a symlink is written through (its target is replaced, the link kept).
    `suffix` keeps the extension for writers that need it (np.savez appends .npz to names without it).
    An unwritable location is a GenbenchError naming the path."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
        os.close(fd)
    except OSError as error:
        raise GenbenchError(f"{path}: cannot write here ({error.strerror or error}); choose a writable "
                            "location") from error
    try:
        yield Path(tmp)
        try:
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as error:
            raise GenbenchError(f"{path}: cannot be replaced ({error.strerror or error}); it may be a folder "
                                "or read-only") from error
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
