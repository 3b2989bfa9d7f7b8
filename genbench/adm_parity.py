"""Parity harness: openai/guided-diffusion's own evaluator and genbench on the same two ADM `.npz` files,
IS, FID, sFID, precision and recall side by side.

The evaluator (`evaluations/evaluator.py` at a pinned commit) and its Inception graph
(`classify_image_graph_def.pb`) are registered files, fetched and SHA-256-checked by `genbench.fetch`
(the graph has no published digest: its first download's is recorded and checked on every later use).
The evaluator runs as its own `main()` does, in this process, with the TensorFlow it imports itself
(`pip install genbench[adm]`); genbench never imports TensorFlow. Two adaptations, neither touching a
number: `np.bool` (used by `evaluate_pr`; NumPy 1.24-1.26 lack it) is aliased to `bool`, and the module's
`INCEPTION_V3_PATH` points at the fetched graph instead of the working directory.

Both `evaluator_path` and `graph_path` are injectable, so the harness runs end to end against a stand-in
evaluator module and graph (tests/test_adm_parity_harness.py).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from genbench.errors import GenbenchError

EVALUATOR_FILE = "adm-evaluator"  # registry names (reference_stats/registry.json, "files")
INCEPTION_GRAPH_FILE = "adm-inception-graph"
METRICS = ("is", "fid", "sfid", "precision", "recall")
LABELS = {"is": "IS", "fid": "FID", "sfid": "sFID", "precision": "precision", "recall": "recall"}


@dataclass(frozen=True)
class ParityRow:
    metric: str
    adm: float
    genbench: float

    @property
    def difference(self) -> float:
        return self.genbench - self.adm

    @property
    def relative(self) -> float:
        return self.difference / abs(self.adm) if self.adm else math.inf if self.difference else 0.0


def fetch_evaluator_files() -> tuple[Path, Path]:
    """(evaluator.py, Inception graph) from the cache, downloaded and digest-checked on first use."""
    from genbench.fetch import fetch

    return fetch(EVALUATOR_FILE), fetch(INCEPTION_GRAPH_FILE)


def load_evaluator(evaluator_path: Path, graph_path: Path) -> ModuleType:
    """Import the evaluator's file as a module, with its graph at `graph_path`."""
    spec = importlib.util.spec_from_file_location("adm_evaluator", evaluator_path)
    if spec is None or spec.loader is None:
        raise GenbenchError(f"{evaluator_path}: not a Python file; give guided-diffusion's evaluator.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        raise GenbenchError(f"{evaluator_path}: cannot import {error.name or error} (the ADM evaluator needs "
                            "TensorFlow: pip install 'genbench[adm]')") from error
    for name in ("Evaluator", "INCEPTION_V3_PATH", "tf"):
        if not hasattr(module, name):
            raise GenbenchError(f"{evaluator_path}: has no {name}; give guided-diffusion's evaluator.py")
    if not hasattr(np, "bool"):
        np.bool = bool  # type: ignore[attr-defined]  # evaluate_pr's np.bool, missing in NumPy 1.24-1.26
    module.INCEPTION_V3_PATH = str(graph_path)  # read by _create_*_graph; no download when it exists
    return module


def adm_metrics(evaluator: ModuleType, samples: Path, reference: Path) -> dict[str, float]:
    """The evaluator's `main()` on (reference, samples), returning what it prints."""
    tf = evaluator.tf
    config = tf.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    adm = evaluator.Evaluator(tf.Session(config=config))
    adm.warmup()
    ref_acts = adm.read_activations(str(reference))
    ref_stats, ref_stats_spatial = adm.read_statistics(str(reference), ref_acts)
    sample_acts = adm.read_activations(str(samples))
    sample_stats, sample_stats_spatial = adm.read_statistics(str(samples), sample_acts)
    precision, recall = adm.compute_prec_recall(ref_acts[0], sample_acts[0])
    return {
        "is": float(adm.compute_inception_score(sample_acts[0])),
        "fid": float(sample_stats.frechet_distance(ref_stats)),
        "sfid": float(sample_stats_spatial.frechet_distance(ref_stats_spatial)),
        "precision": float(precision),
        "recall": float(recall),
    }


def genbench_metrics(
    samples: Path, reference: Path, weights: Path | None = None, batch_size: int = 64, device: str = "cpu"
) -> dict[str, float]:
    """`genbench eval --metrics fid,sfid,is,pr` on the same files (Inception extractor)."""
    from genbench.backbones import build_extractor
    from genbench.evaluate import evaluate_by_name
    from genbench.reference import ReferenceStats
    from genbench.sources import open_source

    extractor = build_extractor("inception", weights)
    values, _ = evaluate_by_name(open_source(samples), ReferenceStats.load(reference),
                                 ["fid", "sfid", "is", "pr"], extractor, batch_size=batch_size, device=device)
    return {name: float(values[name]) for name in METRICS}


def compare(adm: dict[str, float], ours: dict[str, float]) -> list[ParityRow]:
    return [ParityRow(name, adm[name], ours[name]) for name in METRICS]


def run_parity(
    samples: Path,
    reference: Path,
    evaluator_path: Path | None = None,
    graph_path: Path | None = None,
    weights: Path | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    ours: Callable[..., dict[str, float]] | None = None,
) -> list[ParityRow]:
    """Both pipelines on (samples, reference) -> one row per metric. Unset paths are fetched."""
    for path in (samples, reference):
        if not Path(path).is_file():
            raise GenbenchError(f"{path}: no such file; give an ADM .npz (arr_0 uint8 NHWC)")
    if evaluator_path is None or graph_path is None:
        fetched = fetch_evaluator_files()
        evaluator_path, graph_path = evaluator_path or fetched[0], graph_path or fetched[1]
    evaluator = load_evaluator(Path(evaluator_path), Path(graph_path))
    adm = adm_metrics(evaluator, Path(samples), Path(reference))
    ours = ours or genbench_metrics
    return compare(adm, ours(Path(samples), Path(reference), weights, batch_size, device))


def format_table(rows: list[ParityRow]) -> str:
    """Markdown table: metric, ADM, genbench, difference, relative difference."""
    lines = ["| metric | ADM evaluator | genbench | genbench - ADM | relative |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {LABELS[row.metric]} | {row.adm:.6f} | {row.genbench:.6f} | {row.difference:+.2e} "
                     f"| {row.relative:+.2e} |")
    return "\n".join(lines)
