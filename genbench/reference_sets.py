"""Registered reference sets fetched into the cache: `genbench ref fetch NAME`, then `--ref NAME`.

A registry entry (reference_stats/registry.json, or the file $GENBENCH_REFERENCE_REGISTRY names) gives the
publisher's `url`, an optional `sha256` and a `format`:
- `adm-npz` (the default): ADM's reference batch, kept as published (ReferenceStats reads it as is).
- `edm2-pkl`: EDM2's dataset reference, a pickle {"fid": {"mu", "sigma"}, "fd_dinov2": {"mu", "sigma"},
  "num_images"}. It is read by an unpickler that admits numpy arrays and plain containers only, and
  converted into one genbench reference .npz per extractor (NAME.inception.npz, NAME.dinov2.npz).

Cache layout, under `genbench.weights.cache_dir()/reference/`: NAME.npz or NAME.pkl (the published file),
the converted files, and NAME.json (url, SHA-256 of the published file, the files `--ref NAME` reads).
"""

from __future__ import annotations

import datetime
import importlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import GenbenchError
from genbench.fetch import Progress, RemoteFile, cache_dir, check_sha256, download, progress_bar
from genbench.io import sha256_file, write_text_atomic
from genbench.reference import ReferenceStats, registered_reference_sets, registry_path
from genbench.sources import read_json

SUFFIXES = {"adm-npz": ".npz", "edm2-pkl": ".pkl"}
# EDM2 metric key -> genbench extractor: fid reads the TF Inception graph (NVlabs' TorchScript port,
# TF-compatible resize), fd_dinov2 DINOv2 ViT-L/14 after torch's antialiased bicubic to 224.
EDM2_METRICS = {"fid": "inception", "fd_dinov2": "dinov2"}


def reference_dir() -> Path:
    return cache_dir() / "reference"


def registered_set(name: str) -> dict[str, Any]:
    sets = registered_reference_sets()
    if name not in sets:
        raise GenbenchError(f"{name}: not a registered reference set (known: {', '.join(sets)}; "
                            f"registry {registry_path()}); see `genbench ref list`")
    entry = sets[name]
    if entry.get("format", "adm-npz") not in SUFFIXES:
        raise GenbenchError(f"{registry_path()}: '{name}' has format {entry['format']!r}; known formats: "
                            f"{', '.join(SUFFIXES)}")
    return entry


def published_path(name: str, entry: dict[str, Any]) -> Path:
    return reference_dir() / f"{name}{SUFFIXES[entry.get('format', 'adm-npz')]}"


def record_path(name: str) -> Path:
    return reference_dir() / f"{name}.json"


def published_file(name: str, entry: dict[str, Any]) -> RemoteFile:
    """The published file of set `name` as the fetcher sees it (a mirror serves it as reference/NAME.npz)."""
    path = published_path(name, entry).relative_to(cache_dir()).as_posix()
    return RemoteFile(name=f"reference/{name}", url=entry["url"], path=path, sha256=entry.get("sha256"),
                      source=entry.get("source", ""))


# --- EDM2 pickles -----------------------------------------------------------------------------------

def _numpy_core(module: str) -> Any:
    try:  # numpy 2 moved numpy.core to numpy._core (pickles name either)
        return importlib.import_module(f"numpy._core.{module}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{module}")


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (any protocol) and plain containers; every other global is refused before it
    is imported, so a pickle cannot run code. dict, list, tuple, str and numbers need no globals; protocol 2
    spells bytes as _codecs.encode(str, "latin1")."""

    ALLOWED = {"numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct",
               "numpy.core.multiarray.scalar", "numpy.core.numeric._frombuffer", "_codecs.encode"}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy._core."):
            module = "numpy.core." + module.removeprefix("numpy._core.")
        if f"{module}.{name}" not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} (only numpy arrays may be rebuilt)")
        if module in ("numpy", "_codecs"):
            return getattr(importlib.import_module(module), name)
        return getattr(_numpy_core(module.removeprefix("numpy.core.")), name)


def read_edm2_reference(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int | None]:
    """EDM2 reference pickle -> ({"fid" | "fd_dinov2": (mu [D], sigma [D, D]) float64}, image count)."""
    try:
        with open(path, "rb") as handle:
            data = ArraysOnlyUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise GenbenchError(f"{path}: not an EDM2 reference pickle ({error}); delete it and fetch it "
                            "again") from error
    if not isinstance(data, dict) or not EDM2_METRICS.keys() & data.keys():
        raise GenbenchError(f"{path}: holds no EDM2 statistics ({', '.join(EDM2_METRICS)}); delete it and "
                            "fetch it again")
    gaussians = {}
    for key in EDM2_METRICS.keys() & data.keys():
        entry = data[key]
        mu, sigma = (entry.get("mu"), entry.get("sigma")) if isinstance(entry, dict) else (None, None)
        if not (isinstance(mu, np.ndarray) and isinstance(sigma, np.ndarray) and mu.dtype.kind == "f"
                and sigma.dtype.kind == "f" and mu.ndim == 1 and sigma.shape == (mu.size, mu.size)):
            raise GenbenchError(f"{path}: '{key}' needs float arrays mu [D] and sigma [D, D]; the file is "
                                "corrupt or not an EDM2 reference")
        gaussians[key] = (mu.astype(np.float64), sigma.astype(np.float64))
    count = data.get("num_images")
    return gaussians, int(count) if isinstance(count, (int, np.integer)) else None


def convert_edm2(pickle_path: Path, name: str, url: str) -> list[Path]:
    """Write NAME.<extractor>.npz per EDM2 statistic; returns the files written."""
    from genbench.extractors.dinov2 import Dinov2Features  # (imported here: Inception's pulls torch-fidelity)
    from genbench.extractors.inception import InceptionFeatures

    resize_modes = {e.name: e.resize_mode for e in (InceptionFeatures, Dinov2Features)}
    gaussians, count = read_edm2_reference(pickle_path)
    written = []
    for key, (mu, sigma) in sorted(gaussians.items()):
        extractor = EDM2_METRICS[key]
        meta = {"extractor": extractor, "weights_sha256": None, "resize_mode": resize_modes[extractor],
                "count": count, "source": f"EDM2 dataset reference '{key}' statistics ({url})"}
        path = reference_dir() / f"{name}.{extractor}.npz"
        ReferenceStats(None, {"pool": (mu, sigma)}, meta=meta).save(path)
        written.append(path)
    return written


# --- fetch and resolve ------------------------------------------------------------------------------

def _usable_files(name: str, entry: dict[str, Any], file: Path) -> list[Path]:
    """Check the published file (`file`: the cached copy or a download not yet in place) and return the
    files `--ref NAME` reads, converting EDM2 pickles. Errors name the URL of a download, never its
    temporary file (deleted by the time the user reads the message)."""
    try:
        if entry.get("format", "adm-npz") == "edm2-pkl":
            return convert_edm2(file, name, entry["url"])
        ReferenceStats.load(file)  # readable, with statistics or images
    except GenbenchError as error:
        if file == published_path(name, entry):
            raise
        raise GenbenchError(str(error).replace(str(file), f"{entry['url']} (downloaded for '{name}')")) \
            from None
    return [published_path(name, entry)]


def _read_record(name: str) -> dict[str, Any] | None:
    path = record_path(name)
    if not path.is_file():
        return None
    return read_json(path, "fetch record", dict, f"delete it and run `genbench ref fetch {name}` again")


# --- verification on every use ----------------------------------------------------------------------
# The record keeps each cached file's size, mtime and SHA-256 ("verified"); a use whose size and mtime
# still match costs a stat, anything else is hashed again and compared, so a replaced file is never used.

def _file_state(path: Path, sha256: str) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _cached_digest(path: Path, record: dict[str, Any] | None) -> str:
    """SHA-256 of a cached file: the recorded one while size and mtime are unchanged, else computed."""
    known = (record or {}).get("verified", {})
    known = known.get(path.name) if isinstance(known, dict) else None
    stat = path.stat()
    if isinstance(known, dict) and known.get("size") == stat.st_size and \
            known.get("mtime_ns") == stat.st_mtime_ns and isinstance(known.get("sha256"), str):
        return known["sha256"]
    return sha256_file(path)


def _verify_converted(name: str, record: dict[str, Any], published: Path) -> None:
    """Check every file `--ref NAME` reads against the digest recorded when it was written (files of a
    record written before digests were kept are recorded now); refresh the recorded sizes and mtimes."""
    verified = record.get("verified") if isinstance(record.get("verified"), dict) else {}
    states = {}
    for file in [published, *(reference_dir() / f for f in record.get("files", []))]:
        digest = _cached_digest(file, record)
        expected = verified.get(file.name, {}).get("sha256") if isinstance(verified.get(file.name), dict) \
            else (record.get("sha256") if file == published else None)
        check_sha256(digest, expected, str(file), f"it changed since it was fetched; delete it or run "
                     f"`genbench ref fetch {name} --force`", "recorded")
        states[file.name] = _file_state(file, digest)
    if states != verified:
        write_text_atomic(record_path(name), json.dumps({**record, "verified": states}, indent=2) + "\n")


def fetch_reference_set(name: str, force: bool = False, progress: Progress | bool = True) -> dict[str, Any]:
    """Download (unless present and verified; `force` downloads again), verify and convert the registered
    set `name`. Returns the record written to NAME.json, plus "downloaded": bool."""
    entry = registered_set(name)
    url, expected = entry["url"], entry.get("sha256")
    published = published_path(name, entry)
    record = _read_record(name)
    if published.is_file() and not force:
        sha256 = _cached_digest(published, record)
        again = f"delete it or run `genbench ref fetch {name} --force`"
        check_sha256(sha256, expected, str(published), f"the file is corrupt or another file; {again}",
                     "registry's")
        if record is not None and expected is None:
            check_sha256(sha256, record.get("sha256"), str(published),
                         f"it changed since it was fetched; {again}", "recorded")
        if record is not None and record.get("sha256") == sha256 and all(
                (reference_dir() / f).is_file() for f in record.get("files", [])):
            _verify_converted(name, record, published)
            return {**record, "downloaded": False}
        files = _usable_files(name, entry, published)
        downloaded = False
    else:
        converted: list[Path] = []
        by_hand = f"download it by hand to {published} and run `genbench ref fetch {name}` again"
        with progress_bar(name, progress) as report:
            sha256, url = download(published_file(name, entry), published, report,
                                   check=lambda tmp: converted.extend(_usable_files(name, entry, tmp)),
                                   by_hand=by_hand)
        files = converted
        downloaded = True
    record = {"name": name, "url": url, "sha256": sha256, "format": entry.get("format", "adm-npz"),
              "files": [f.name for f in files],
              "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "verified": {f.name: _file_state(f, sha256 if f == published else sha256_file(f))
                           for f in dict.fromkeys([published, *files])}}
    write_text_atomic(record_path(name), json.dumps(record, indent=2) + "\n")
    return {**record, "downloaded": downloaded}


def fetched_files(name: str) -> list[Path]:
    """The reference .npz files of a registered set, fetched (downloaded, verified, converted) on first
    use; later uses check the published file against its registry or recorded digest."""
    record = fetch_reference_set(name)
    return [reference_dir() / f for f in record["files"]]


def reference_paths(ref: str | Path) -> list[Path]:
    """`--ref` value -> reference .npz files: an existing path as is, a registered name as its fetched
    files (one per extractor for EDM2 sets), anything else as a path (ReferenceStats.load names it)."""
    path = Path(ref)
    if path.exists() or str(ref) not in registered_reference_sets():
        return [path]
    return fetched_files(str(ref))
