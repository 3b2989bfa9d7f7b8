"""genbench against numbers produced by openai/guided-diffusion's own evaluator (TensorFlow, CPU).

tests/fixtures/adm/adm_numbers.{json,npz} were written by scripts/make_adm_fixtures.py, which ran the
evaluator's ManifoldEstimator, DistanceBlock, compute_statistics/frechet_distance and compute_inception_score
on feature rows generated from fixed seeds; the same generators (imported from the script) rebuild the rows
here. P/R must match exactly (counts and every radius), FID/sFID to 1e-6 relative, IS to 1e-10.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from genbench.metrics.frechet import frechet_distance
from genbench.metrics.inception_score import inception_score, inception_score_from_probabilities
from genbench.metrics.precision_recall import (
    adm_distances,
    precision_recall_with_radii,
    tf_cpu_float_k_slices,
    tf_cpu_k_block,
)
from genbench.metrics.stats import FeatureStats

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "adm"
META = json.loads((FIXTURES / "adm_numbers.json").read_text())
ARRAYS = dict(np.load(FIXTURES / "adm_numbers.npz", allow_pickle=False))


def _load_generators():
    path = ROOT / "scripts" / "make_adm_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_adm_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generators()


def test_default_matmul_slices_are_the_ones_tensorflow_used():
    # The fixtures' TensorFlow (threaded session, the evaluator's default) summed 2048-d products in these
    # slices (probed by the script with blocks of the given shapes); genbench's defaults, which every test
    # below uses, must be the same.
    half = [*range(0, 2048, tf_cpu_k_block(2048)), 2048]
    assert tf_cpu_k_block(2048) == 296
    assert META["half_slices"] == META["half_slices_small"] == half
    assert META["float_slices"] == tf_cpu_float_k_slices(2048, 1500, 1500) == [*range(0, 2048, 384), 2048]
    assert META["float_slices_small"] == tf_cpu_float_k_slices(2048, 1000, 1000)
    assert tf_cpu_float_k_slices(2048, 1000, 1000) == [0, 384, 768, 1152, 1536, 1792, 2048]


@pytest.mark.parametrize("name", sorted(GEN.DISTANCE_BLOCKS))
def test_distances_equal_the_evaluators_distance_block_bit_for_bit(name):
    rows, cols = GEN.DISTANCE_BLOCKS[name]()
    expected = ARRAYS[f"distances/{name}"]
    ours = adm_distances(rows, cols).numpy()
    assert ours.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(ours, expected)


def test_rounding_once_is_not_what_the_evaluator_does():
    # Why the op-by-op emulation is needed: float32 from half inputs, rounded once, differs from the graph.
    rows, cols = GEN.DISTANCE_BLOCKS["pool_half"]()
    r16, c16 = rows.astype(np.float16).astype(np.float32), cols.astype(np.float16).astype(np.float32)
    once = ((r16 * r16).sum(1)[:, None] - 2 * r16 @ c16.T + (c16 * c16).sum(1)[None]).astype(np.float16)
    assert (once.astype(np.float32) != ARRAYS["distances/pool_half"]).mean() > 0.1


@pytest.mark.parametrize("name", sorted(GEN.PR_CASES))
def test_precision_recall_and_radii_equal_the_evaluator_exactly(name):
    ref, sample = GEN.case_features(name)
    expected = META["pr"][name]
    batch = expected["batch"]
    precision, recall, *radii = precision_recall_with_radii(ref, sample, k=3, block_size=batch)
    for side, ours in zip(("ref", "sample"), radii, strict=True):
        np.testing.assert_array_equal(ours.numpy(), ARRAYS[f"pr/{name}/{side}_radii"], err_msg=side)
    # counts of rows inside the other manifold, exactly
    assert round(precision * len(sample)) == round(expected["precision"] * len(sample))
    assert round(recall * len(ref)) == round(expected["recall"] * len(ref))
    assert (precision, recall) == (expected["precision"], expected["recall"])


@pytest.mark.parametrize("name", ["fid", "sfid"])
def test_frechet_distance_of_feature_rows_matches_the_evaluator(name):
    sample, ref = GEN.fid_features()[name]

    def gaussian(rows):
        stats = FeatureStats(rows.shape[1])
        stats.update(torch.from_numpy(rows))
        return stats.mean, stats.covariance

    ours = frechet_distance(*gaussian(sample), *gaussian(ref))
    assert ours == pytest.approx(META["fid"][name], rel=1e-6)


@pytest.mark.parametrize("name", sorted(GEN.is_logits()))
def test_inception_score_on_the_same_softmax_rows_matches_the_evaluator(name):
    logits, split = GEN.is_logits()[name]
    expected = META["is"][name]
    assert expected["split_size"] == split
    probabilities = GEN.softmax64(logits)
    mean, _ = inception_score_from_probabilities(probabilities, split_size=split)
    assert mean == pytest.approx(expected["float64"], rel=1e-10)
    assert inception_score(logits, split_size=split)[0] == pytest.approx(expected["float64"], rel=1e-10)
    # the evaluator's own arithmetic is float32 (its softmax graph's output): that costs ~1e-6
    assert mean == pytest.approx(expected["float32"], rel=1e-5)
