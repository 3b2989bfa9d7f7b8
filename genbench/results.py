"""Results files: one versioned JSON per run, `{"schema": N, "metrics": {...}, "provenance": {...}}`.

They are the only input of leaderboards and `genbench check`, so `load_results` accepts every schema
genbench ever wrote and migrates it to the current one.

Schema history:
- 1: `{"version": "<genbench version>", "fid": ..., "is": ..., ...}`, metrics flat at the top level.
- 2: metrics and provenance separated; provenance carries the genbench/torch versions, device and date.
"""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

import torch

import genbench
from genbench.errors import GenbenchError
from genbench.io import atomic_write
from genbench.sources import read_json

SCHEMA_VERSION = 2

# Provenance fields a results file may carry (all optional) and the JSON types each must have.
# A reader of a leaderboard row follows these back to exactly how the numbers were obtained.
Number = (int, float)
PROVENANCE_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "checkpoint_sha256": (str,), "tokenizer": (str,), "epochs": (int, float, str),
    "sampler": (str,), "steps": (int,), "cfg_scale": Number, "guidance_interval": (list,),
    "num_samples": (int,), "class_balanced": (bool,), "reference": (dict,), "extractor": (str,),
    "weights_sha256": (str,), "resize_mode": (str,), "genbench_version": (str,), "torch_version": (str,),
    "python_version": (str,), "device": (str,), "cuda_device": (str,), "date": (str,), "timings": (dict,),
    "seed": (int,),
}


def collect_environment() -> dict[str, Any]:
    """Versions, host and date for provenance."""
    return {
        "genbench_version": genbench.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_results(path: str | Path, metrics: dict[str, float], provenance: dict[str, Any]) -> dict[str, Any]:
    """Write a results file atomically; environment fields are added to the provenance."""
    document = {"schema": SCHEMA_VERSION, "metrics": metrics,
                "provenance": {**collect_environment(), **provenance}}
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    validate_results(json.loads(text), path)  # never write a file that load_results would refuse
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return document


def _migrate_v1(document: dict[str, Any]) -> dict[str, Any]:
    version = document.pop("version", None)
    # Schema 1 kept everything at the top level: numbers are metrics unless they name a provenance field.
    metrics = {k: v for k, v in document.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in PROVENANCE_TYPES}
    provenance = {k: v for k, v in document.items() if k not in metrics}
    provenance["genbench_version"] = version
    return {"schema": 2, "metrics": metrics, "provenance": provenance}


MIGRATIONS = {1: _migrate_v1}


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file of any schema and return it in the current schema."""
    path = Path(path)
    document = read_json(path, "results", dict, "give a results JSON written by genbench (eval --out)")
    schema = document.get("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise GenbenchError(f"{path}: results schema {schema!r} is not one genbench wrote (1 to "
                            f"{SCHEMA_VERSION}); give a results file written by genbench")
    if schema > SCHEMA_VERSION:
        raise GenbenchError(f"{path}: results schema {schema!r} is newer than this genbench understands "
                            f"({SCHEMA_VERSION}); upgrade genbench")
    while schema < SCHEMA_VERSION:
        document = MIGRATIONS[schema](document)
        schema = document["schema"]
    return validate_results(document, path)


def validate_results(document: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Check a current-schema document: numeric metrics, provenance fields of their documented types."""
    metrics = document.get("metrics")
    if not isinstance(metrics, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()
    ):
        raise GenbenchError(f"{path}: 'metrics' must map metric names to numbers")
    provenance = document.setdefault("provenance", {})
    if not isinstance(provenance, dict):
        raise GenbenchError(f"{path}: 'provenance' must be a JSON object")
    for field, types in PROVENANCE_TYPES.items():
        value = provenance.get(field)
        wrong_bool = isinstance(value, bool) and bool not in types  # bool is an int subclass
        if value is not None and (not isinstance(value, types) or wrong_bool):
            raise GenbenchError(f"{path}: provenance '{field}' is {value!r}; expected "
                                f"{' or '.join(t.__name__ for t in types)}")
    return document
