"""Reference statistics: the reference side of every metric, one `.npz` per reference set.

The file format is ADM's reference batch (`VIRTUAL_imagenet256_labeled.npz`), read as is:
`mu`, `sigma` (pool features), `mu_s`, `sigma_s` (sFID spatial features) and optionally `arr_0` (the
reference images, uint8 NHWC). genbench writes the same keys plus `pool` (kept pool feature rows, which
precision/recall and KID need) and `meta` (JSON: extractor, weights SHA-256, resize mode, image count,
source). A file without `meta` is an ADM file: Inception statistics from the TF graph.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.io import atomic_write, package_file
from genbench.metrics.spec import FeatureSide
from genbench.sources import NpzSource, SampleSource, npz_names, parse_json, read_json, read_npz

# feature name -> (mean key, covariance key) in ADM's file layout
GAUSSIAN_KEYS = {"pool": ("mu", "sigma"), "spatial": ("mu_s", "sigma_s")}
ADM_META = {
    "extractor": "inception",
    "weights_sha256": None,
    "resize_mode": "tf1-bilinear",
    "source": "ADM reference batch (TF Inception graph)",
}
REGISTRY_PATH = package_file("genbench.reference_stats", "registry.json")
REGISTRY_ENV = "GENBENCH_REFERENCE_REGISTRY"


@dataclass
class ReferenceStats:
    """Gaussian statistics and kept rows per feature name, plus provenance."""

    path: Path | None
    gaussians: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    has_images: bool = False

    @property
    def count(self) -> int | None:
        return self.meta.get("count")

    @classmethod
    def load(cls, path: str | Path) -> ReferenceStats:
        path = Path(path)
        if not path.is_file():
            raise GenbenchError(
                f"{path}: reference statistics not found; build them with `genbench ref build` "
                "or fetch a registered set with `genbench ref fetch NAME` (see `genbench ref list`)"
            )
        fix = "the reference file is corrupt: rebuild it with `genbench ref build` or fetch it again"
        keys = npz_names(path, "reference")
        wanted = [k for pair in GAUSSIAN_KEYS.values() if set(pair) <= keys for k in pair]
        data = read_npz(path, "reference", wanted, optional=["pool", "meta"], fix=fix)
        gaussians = {name: (data[m], data[s]) for name, (m, s) in GAUSSIAN_KEYS.items() if m in data}
        if not gaussians and "arr_0" not in keys:
            raise GenbenchError(f"{path}: holds neither statistics (mu, sigma) nor images (arr_0)")
        for name, (mu, sigma) in gaussians.items():
            mean_key, cov_key = GAUSSIAN_KEYS[name]
            if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or mu.shape[0] == 0:
                raise GenbenchError(f"{path}: {mean_key} {mu.shape} and {cov_key} {sigma.shape} do not fit "
                                    f"together (need [D] and [D, D]); {fix}")
            if mu.dtype.kind not in "fiu" or sigma.dtype.kind not in "fiu":
                raise GenbenchError(f"{path}: {mean_key}/{cov_key} hold {mu.dtype}/{sigma.dtype}, not "
                                    f"numbers; {fix}")
            if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
                raise GenbenchError(f"{path}: {mean_key}/{cov_key} hold NaN or infinite values; {fix}")
            gaussians[name] = (mu.astype(np.float64), sigma.astype(np.float64))
        rows = {}
        if "pool" in data:
            pool = data["pool"]
            if pool.ndim != 2 or pool.dtype.kind != "f" or not np.isfinite(pool).all():
                raise GenbenchError(f"{path}: pool feature rows are {pool.dtype} {pool.shape}, need finite "
                                    f"float [N, D]; {fix}")
            rows["pool"] = pool
        meta = dict(ADM_META)
        if "meta" in data:
            if data["meta"].dtype.kind != "U" or data["meta"].shape != ():
                raise GenbenchError(f"{path}: 'meta' is {data['meta'].dtype} {data['meta'].shape}, not the "
                                    f"JSON text genbench writes; {fix}")
            meta = parse_json(str(data["meta"]), f"{path} (meta)", dict, fix)
        return cls(path, gaussians, rows, meta, has_images="arr_0" in keys)

    def check_compatible(self, extractor: nn.Module) -> None:
        """Refuse statistics made with another extractor, other weights or other dimensions."""
        name = self.meta.get("extractor")
        if name != extractor.name:
            raise GenbenchError(
                f"{self.path}: reference statistics were made with the '{name}' extractor, "
                f"not '{extractor.name}'; rebuild them with `genbench ref build --extractor "
                f"{extractor.name}` or pick the matching extractor"
            )
        expected = self.meta.get("weights_sha256")
        if expected is not None and expected != extractor.weights_sha256:
            raise GenbenchError(
                f"{self.path}: reference statistics were made with weights {expected[:12]}..., "
                f"but the extractor loaded {extractor.weights_sha256[:12]}...; use the same "
                "weights file for both sides"
            )
        for feature, (mu, _) in self.gaussians.items():
            if feature in extractor.feature_dims and mu.shape[0] != extractor.feature_dims[feature]:
                raise GenbenchError(
                    f"{self.path}: '{feature}' statistics have {mu.shape[0]} dimensions, the "
                    f"extractor gives {extractor.feature_dims[feature]}"
                )

    def images(self) -> SampleSource:
        """The reference images (`arr_0`), for features the file does not carry."""
        if not self.has_images or self.path is None:
            raise GenbenchError(
                f"{self.path}: holds no pool feature rows nor reference images (arr_0), which "
                "precision/recall and KID need; rebuild it with `genbench ref build`"
            )
        return NpzSource(self.path)

    def side(self) -> FeatureSide:
        return FeatureSide(self.gaussians, {k: torch.from_numpy(v) for k, v in self.rows.items()})

    def save(self, path: str | Path) -> None:
        """Write ADM's keys plus `pool` rows and `meta`, atomically."""
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(self.meta))}
        for name, (mu, sigma) in self.gaussians.items():
            mean_key, cov_key = GAUSSIAN_KEYS[name]
            arrays[mean_key], arrays[cov_key] = mu, sigma
        arrays.update({name: np.asarray(rows, dtype=np.float32) for name, rows in self.rows.items()})
        with atomic_write(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)


def registry_path() -> Path:
    """$GENBENCH_REFERENCE_REGISTRY (another registry file, e.g. a site mirror or a test's), else
    reference_stats/registry.json."""
    return Path(os.environ.get(REGISTRY_ENV) or REGISTRY_PATH)


def registered_reference_sets() -> dict[str, dict[str, Any]]:
    """Known reference sets (registry.json): name -> url, format, resolution, count, sha256, source."""
    path = registry_path()
    form = '{"reference_sets": {NAME: {"url": ...}}}'
    sets = read_json(path, "reference registry", dict, f"it holds {form}").get("reference_sets")
    if not isinstance(sets, dict) or not all(isinstance(e, dict) and "url" in e for e in sets.values()):
        raise GenbenchError(f"{path}: every entry of 'reference_sets' needs a \"url\"")
    return sets
