"""One fetcher for every file genbench downloads: weights, reference sets, official checkpoints, VAEs,
latent statistics and the files of detector folders.

The registry (reference_stats/registry.json, or the file $GENBENCH_REFERENCE_REGISTRY names) gives each file a
name, the publisher's `url`, its `path` in the cache, its `size` in bytes where known and its `sha256`:
the full digest, a published prefix (torch hub file names carry the first 8 hex digits), or null. Folders
(`folders`) are lists of registered files fetched together.

`fetch(name)` returns the cached file, downloading it on first use:
- into `genbench.weights.cache_dir()/<path>` ($GENBENCH_CACHE, default ~/.cache/genbench), streamed into
  `<path>.part` and renamed onto `<path>` only after its size and SHA-256 are checked;
- an interrupted download resumes: the `.part` file is kept and the next attempt asks for the rest with
  an HTTP Range request (a server that ignores Range sends the whole file again, which is fine);
- transient failures (connection reset or timed out, a cut-off body, HTTP 408/429/5xx) are retried after
  RETRY_DELAYS seconds, then given up with a one-line error;
- a digest mismatch is a GenbenchError and deletes the `.part` file: nothing unverified stays in the cache;
- where the registry has no full digest, the digest of the first download (or of a copy put there by hand)
  is recorded in `cache_dir()/records/<name>.json` and every later use is checked against it.

$GENBENCH_MIRROR=BASE-URL tries BASE-URL/<path> before the publisher (a mirror is a copy of a cache folder
served over HTTP, or a `file://` folder; for a top-level file <path> is its file name). $GENBENCH_OFFLINE=1
(`genbench --offline`) opens no connection: only the cache and `file://` URLs are used, and a missing file
is an error naming the URL and the path where a hand-downloaded copy goes.

Hugging Face Hub files are fetched through their plain `https://huggingface.co/<repo>/resolve/<revision>/
<file>` URLs, not huggingface_hub: one code path then gives every file the same cache layout, digest
record, mirror, offline mode, resume and error messages; the Hub serves Range requests on those URLs; the
files we need are public (no token); and the Hub's own cache (blobs + symlinks under ~/.cache/huggingface)
would be a second place for a user to look. $HF_ENDPOINT (a Hub mirror such as the ones clusters in some
countries use) replaces the huggingface.co host, as huggingface_hub would.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbench.errors import GenbenchError
from genbench.io import package_file, sha256_file, write_text_atomic

# One registry for every fetched file: reference sets ("reference_sets", genbench/reference_sets.py),
# single files ("files"), folders of files ("folders") and official models ("models", genbench/models/hub.py).
REGISTRY_PATH = package_file("genbench.reference_stats", "registry.json")
REGISTRY_ENV = "GENBENCH_REFERENCE_REGISTRY"
MIRROR_ENV = "GENBENCH_MIRROR"
OFFLINE_ENV = "GENBENCH_OFFLINE"
HF_HOST = "https://huggingface.co/"
RETRY_DELAYS = (1.0, 3.0, 10.0, 30.0)  # seconds before the 2nd, 3rd, ... attempt; then give up
TIMEOUT_S = 60  # per connection attempt and per read
CHUNK = 1 << 20
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


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


@dataclass(frozen=True)
class RemoteFile:
    """A file genbench can fetch: registry `name`, publisher `url`, `path` relative to the cache folder,
    `sha256` (full digest, published prefix or None) and `size` in bytes (None when unknown)."""

    name: str
    url: str
    path: str
    sha256: str | None = None
    size: int | None = None
    source: str = ""

    @property
    def cached(self) -> Path:
        return cache_dir() / self.path


class TransientError(Exception):
    """A failure worth retrying (connection reset, timeout, cut-off body, 5xx)."""


# --- registry ---------------------------------------------------------------------------------------

def registry_path() -> Path:
    """$GENBENCH_REFERENCE_REGISTRY (another registry file, e.g. a site's or a test's), else
    reference_stats/registry.json."""
    return Path(os.environ.get(REGISTRY_ENV) or REGISTRY_PATH)


def load_registry() -> dict[str, Any]:
    """The registry JSON ({"reference_sets": ..., "files": ..., "folders": ..., "models": ...}), read on
    every call so that $GENBENCH_REFERENCE_REGISTRY takes effect at once. Missing sections are empty."""
    path = registry_path()
    try:
        registry = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise GenbenchError(f"{path}: unreadable file registry ({error}); fix it or unset "
                            f"{REGISTRY_ENV}") from error
    sections = ("reference_sets", "files", "folders", "models")
    if not isinstance(registry, dict) or not all(isinstance(registry.get(k, {}), dict) for k in sections):
        raise GenbenchError(f"{path}: a registry is a JSON object whose {', '.join(sections)} are objects")
    return {**{k: {} for k in sections}, **registry}


def _entry_to_file(name: str, entry: Any, where: Path) -> RemoteFile:
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry.get("path"):
        raise GenbenchError(f"{where}: file '{name}' needs 'url' and 'path' strings")
    digest, size = entry.get("sha256"), entry.get("size")
    if digest is not None and not (isinstance(digest, str) and 8 <= len(digest) <= 64
                                   and all(c in "0123456789abcdef" for c in digest.lower())):
        raise GenbenchError(f"{where}: file '{name}' has sha256 {digest!r}; give hex digits or null")
    if size is not None and not (isinstance(size, int) and size >= 0):
        raise GenbenchError(f"{where}: file '{name}' has size {size!r}; give a byte count or null")
    return RemoteFile(name, entry["url"], str(entry["path"]), digest.lower() if digest else None, size,
                      str(entry.get("source", "")))


def registered_files() -> dict[str, RemoteFile]:
    where = registry_path()
    return {name: _entry_to_file(name, entry, where) for name, entry in load_registry()["files"].items()}


def registered_file(name: str) -> RemoteFile:
    files = load_registry()["files"]
    if name not in files:
        raise GenbenchError(f"{name}: not a registered file (registry {registry_path()}; known: "
                            f"{', '.join(sorted(files)) or 'none'})")
    return _entry_to_file(name, files[name], registry_path())


def folder_files(folder: str) -> list[RemoteFile]:
    """The registered files of a folder (e.g. a Hugging Face model folder for transformers)."""
    folders = load_registry().get("folders", {})
    if folder not in folders:
        raise GenbenchError(f"{folder}: not a registered folder (registry {registry_path()}; known: "
                            f"{', '.join(sorted(folders)) or 'none'})")
    return [registered_file(name) for name in folders[folder]]


# --- cache state ------------------------------------------------------------------------------------

def record_path(file: RemoteFile) -> Path:
    return cache_dir() / "records" / f"{file.name}.json"


def read_record(file: RemoteFile) -> dict[str, Any] | None:
    """The fetch record of `file` ({name, path, url, sha256, size, mtime_ns, recorded}), None if none."""
    path = record_path(file)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("sha256"), str):
            raise ValueError("no sha256")
        return record
    except (OSError, ValueError, AttributeError) as error:
        raise GenbenchError(f"{path}: unreadable fetch record ({error}); delete it (the file's digest is "
                            "then recorded again on next use)") from error


def write_record(file: RemoteFile, sha256: str, url: str | None) -> None:
    """Record the digest of the cached file, with the size and mtime it was computed at."""
    stat = file.cached.stat()
    record = {"name": file.name, "path": file.path, "url": url, "sha256": sha256, "size": stat.st_size,
              "mtime_ns": stat.st_mtime_ns,
              "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(record_path(file), json.dumps(record, indent=2) + "\n")


def is_cached(file: RemoteFile) -> bool:
    """Present in the cache (not verified: that needs a full read)."""
    return file.cached.is_file()


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def candidate_urls(file: RemoteFile) -> list[str]:
    """The URLs tried, in order: $GENBENCH_MIRROR/<path>, then the publisher's URL
    (its huggingface.co host replaced by $HF_ENDPOINT when set)."""
    url = file.url
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if endpoint and url.startswith(HF_HOST):
        url = endpoint.rstrip("/") + "/" + url.removeprefix(HF_HOST)
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return ([f"{mirror.rstrip('/')}/{file.path}"] if mirror else []) + [url]


# --- download ---------------------------------------------------------------------------------------

def _is_transient(error: BaseException) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code in TRANSIENT_HTTP
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    return isinstance(error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, TimeoutError,
                              socket.timeout, http.client.IncompleteRead, http.client.RemoteDisconnected))


def _describe(error: BaseException) -> str:
    if isinstance(error, GenbenchError):
        return str(error)
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _download_attempt(url: str, part: Path, progress: Progress | None) -> None:
    """One request: continue `part` from its current size (Range) or start it over; raise TransientError
    for failures worth retrying. Returns when the body has arrived in full."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "genbench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status = response.getcode() or 200  # file:// responses carry no status
            content_range = response.headers.get("Content-Range", "")
            if offset and not (status == 206 and content_range.startswith(f"bytes {offset}-")):
                offset = 0  # the server sent the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            done = offset
            with open(part, "ab" if offset else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done != total:
                raise TransientError(f"stopped after {done} of {total} bytes")
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is not a prefix the server knows: start over
            part.unlink()
            raise TransientError("HTTP 416 on resume") from error
        if _is_transient(error):
            raise TransientError(_describe(error)) from error
        raise
    except (OSError, http.client.HTTPException) as error:
        if _is_transient(error):
            raise TransientError(_describe(error)) from error
        raise


def _download_with_retries(url: str, part: Path, progress: Progress | None) -> None:
    for attempt, delay in enumerate((*RETRY_DELAYS, None)):
        try:
            _download_attempt(url, part, progress)
            return
        except TransientError as error:
            if delay is None:
                raise GenbenchError(f"{error} after {attempt + 1} attempts") from error
            print(f"genbench: {url}: {error}; retrying in {delay:g} s (attempt {attempt + 2} of "
                  f"{len(RETRY_DELAYS) + 1})", file=sys.stderr)
            time.sleep(delay)


@contextlib.contextmanager
def _cache_lock(target: Path) -> Iterator[None]:
    """Serialise processes fetching the same file (e.g. every rank of a torchrun job)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = cache_dir() / "records" / ".locks" / (target.relative_to(cache_dir()).as_posix()
                                                 .replace("/", "__") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download(file: RemoteFile, target: Path | None = None, progress: Progress | None = None,
             check: Callable[[Path], None] | None = None, by_hand: str | None = None,
             recorded: str | None = None) -> tuple[str, str]:
    """Download `file` to `target` (default: its cache path) through the mirror and the publisher, verify
    size and SHA-256 (the registry's, and `recorded`, the digest of an earlier download, when given), run
    `check(partial_path)` (e.g. "is this a readable .npz"), then rename it into place. Returns (sha256, the
    URL it came from). Every failure is a GenbenchError ending in `by_hand` (default: where a
    hand-downloaded copy goes); a failed check or digest leaves no file behind."""
    target = target or file.cached
    by_hand = by_hand or f"download it by hand to {target}"
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in candidate_urls(file):
        if offline() and not url.startswith("file:"):
            errors.append(f"offline ({OFFLINE_ENV}=1, not downloading {url})")
            continue
        resumed = part.is_file()
        if os.environ.get("RANK", "0") == "0":  # a line for logs, where the progress bar does not show
            print(f"genbench: {'resuming' if resumed else 'downloading'} {url} -> {target}", file=sys.stderr)
        try:
            _download_with_retries(url, part, progress)
        except (OSError, http.client.HTTPException, GenbenchError) as error:
            errors.append(f"could not download {url}: {_describe(error)}")
            continue
        try:
            if file.size is not None and part.stat().st_size != file.size:
                raise GenbenchError(f"{url}: {part.stat().st_size} bytes, the registry says {file.size}; "
                                    "the download is corrupt or the file changed upstream")
            sha256 = sha256_file(part)
            check_sha256(sha256, file.sha256, url, "the download is corrupt or the file changed upstream "
                         "(nothing was kept); try again, or check the registry entry", "registry's")
            check_sha256(sha256, recorded, url, "the file changed upstream since its first download "
                         f"(nothing was kept); delete {record_path(file)} to accept the new one",
                         "recorded")
            if check is not None:
                check(part)
        except GenbenchError:
            part.unlink(missing_ok=True)
            if resumed:  # the kept partial file may have come from an older upload: one fresh try
                return download(file, target, progress, check, by_hand, recorded)
            raise
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, target)
        return sha256, url
    raise GenbenchError("; ".join(errors) + f"; {by_hand}")


def verify_cached(file: RemoteFile) -> str:
    """Check the cached copy of `file` against the registry's digest and the recorded one (recording it
    when there is none yet); returns the full digest. The file is hashed unless its size and mtime are
    those the recorded digest was computed at (a multi-GB checkpoint is then not read on every use, and
    any write to the file changes its mtime)."""
    path = file.cached
    record = read_record(file)
    stat = path.stat()
    unchanged = record is not None and (record.get("size"), record.get("mtime_ns")) == (stat.st_size,
                                                                                        stat.st_mtime_ns)
    sha256 = record["sha256"] if unchanged else sha256_file(path)
    fix = "delete it and it is downloaded again on next use (or fetch it by hand)"
    check_sha256(sha256, file.sha256, str(path), f"the file is corrupt or another file; {fix}",
                 "registry's")
    if record is None:
        write_record(file, sha256, None)
    elif not unchanged:
        check_sha256(sha256, record["sha256"], str(path), f"it changed since it was first used; {fix}",
                     "recorded")
        write_record(file, sha256, record.get("url"))  # same content, new mtime (e.g. copied back)
    return sha256


def fetch(file: str | RemoteFile, progress: Progress | bool = True) -> Path:
    """Path of a registered file (a name or a RemoteFile) in the cache, downloaded and verified on first
    use and checked against its registry/recorded digest on every use. `progress`: True shows a rich bar
    on stderr (rank 0 only), False nothing, a callable gets (bytes so far, total)."""
    file = registered_file(file) if isinstance(file, str) else file
    target = file.cached
    with _cache_lock(target):
        if target.is_file():
            verify_cached(file)
            return target
        record = read_record(file)  # a file deleted from the cache must come back the same
        with progress_bar(file.name, progress) as report:
            sha256, url = download(file, target, report, recorded=record["sha256"] if record else None)
        write_record(file, sha256, url)
    return target


def fetch_folder(folder: str, progress: Progress | bool = True) -> Path:
    """Fetch every file of a registered folder; returns the folder (the common parent of its files)."""
    files = folder_files(folder)
    paths = [fetch(file, progress) for file in files]
    parents = {path.parent for path in paths}
    if len(parents) != 1:
        raise GenbenchError(f"{registry_path()}: folder '{folder}' spans several folders ({sorted(parents)})")
    return parents.pop()


@contextlib.contextmanager
def progress_bar(label: str, progress: Progress | bool) -> Iterator[Progress | None]:
    """A download progress callback: `progress` itself when callable, a transient rich bar on stderr when
    True (on rank 0 only), None when False."""
    if callable(progress) or not progress or os.environ.get("RANK", "0") != "0":
        yield progress if callable(progress) else None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
