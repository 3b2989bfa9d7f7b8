"""`genbench adm-parity` end to end against a stand-in evaluator (tests/adm_standin/evaluator.py, numpy)
and a stand-in Inception graph of tiny random weights; genbench's side runs its real Inception pipeline on
randomly initialised weights. No TensorFlow, no network."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import random_images, run_main

import genbench.adm_parity
from genbench.adm_parity import ParityRow, format_table, load_evaluator

STANDIN = Path(__file__).parent / "adm_standin" / "evaluator.py"
N = 10


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    root = tmp_path_factory.mktemp("adm")
    np.savez(root / "samples.npz", arr_0=random_images(N, 32, seed=1, brightness=0.7))
    np.savez(root / "ref.npz", arr_0=random_images(N + 2, 32, seed=2))
    rng = np.random.default_rng(0)
    graph = root / "graph.pb"
    with open(graph, "wb") as f:  # an .npz under the graph's name: the stand-in evaluator reads it
        # small feature sizes keep the stand-in's own Fréchet distances cheap
        np.savez(f, pool=rng.standard_normal((48, 64)).astype(np.float32),
                 spatial=rng.standard_normal((48, 40)).astype(np.float32),
                 logits=rng.standard_normal((64, 100)).astype(np.float32) * 0.5)
    return root / "samples.npz", root / "ref.npz", graph


def _standin_numbers(samples: Path, ref: Path, graph: Path) -> dict[str, float]:
    """The stand-in evaluator run by hand, as its main() would, without genbench."""
    spec = importlib.util.spec_from_file_location("standin_by_hand", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.INCEPTION_V3_PATH = str(graph)
    ev = module.Evaluator(module.tf.Session())
    ref_acts, sample_acts = ev.read_activations(ref), ev.read_activations(samples)
    ref_stats, ref_spatial = ev.read_statistics(ref, ref_acts)
    sample_stats, sample_spatial = ev.read_statistics(samples, sample_acts)
    precision, recall = ev.compute_prec_recall(ref_acts[0], sample_acts[0])
    return {"is": ev.compute_inception_score(sample_acts[0]), "fid": sample_stats.frechet_distance(ref_stats),
            "sfid": sample_spatial.frechet_distance(ref_spatial), "precision": precision, "recall": recall}


@pytest.mark.slow  # genbench's side: Inception and two 2048-d Fréchet distances on a CPU (~40 s idle)
def test_adm_parity_prints_both_pipelines_side_by_side(batches, inception_weights, capsys, monkeypatch):
    samples, ref, graph = batches
    calls = []
    real = genbench.adm_parity.genbench_metrics

    def recorded(*args):  # genbench's side as the harness ran it (Inception is slow on a CPU: run it once)
        calls.append((args, real(*args)))
        return calls[-1][1]

    monkeypatch.setattr(genbench.adm_parity, "genbench_metrics", recorded)
    code, out, err = run_main(capsys, monkeypatch, "adm-parity", samples, ref, "--evaluator", STANDIN,
                              "--graph", graph, "--weights", inception_weights, "--device", "cpu",
                              "--batch-size", 8)
    assert code == 0, err
    adm = _standin_numbers(samples, ref, graph)
    [(args, ours)] = calls
    assert args == (samples, ref, Path(inception_weights), 8, "cpu")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:6]]
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("| metric")}
    assert list(rows) == ["IS", "FID", "sFID", "precision", "recall"]
    for label, key in zip(rows, ("is", "fid", "sfid", "precision", "recall"), strict=True):
        shown_adm, shown_ours, shown_diff, _ = (float(x) for x in rows[label])
        assert shown_adm == pytest.approx(adm[key], rel=1e-5, abs=1e-6), label
        assert shown_ours == pytest.approx(ours[key], rel=1e-5, abs=1e-6), label
        assert shown_diff == pytest.approx(ours[key] - adm[key], rel=2e-2, abs=1e-6), label
    # different networks here, so the two columns differ: the table is not comparing a thing with itself
    assert float(rows["FID"][0]) != pytest.approx(float(rows["FID"][1]), rel=1e-3)


def test_evaluator_graph_path_is_injected(batches, tmp_path):
    _, _, graph = batches
    module = load_evaluator(STANDIN, graph)
    assert module.INCEPTION_V3_PATH == str(graph)
    assert hasattr(np, "bool")  # evaluate_pr's np.bool works, also under NumPy 1.24-1.26
    module.Evaluator(module.tf.Session())  # reads the graph from the injected path


def test_fetched_evaluator_is_digest_checked(batches, tmp_path, capsys, monkeypatch):
    # A mirror serving something else under the evaluator's cache path is refused: the pinned digest
    # (reference_stats/registry.json, adm-evaluator) does not match, and nothing is run.
    samples, ref, _ = batches
    mirror = tmp_path / "mirror"
    (mirror / "adm").mkdir(parents=True)
    impostor = STANDIN.read_bytes()
    impostor += b"#" * (25057 - len(impostor))  # the registered size, so the digest is what refuses it
    (mirror / "adm" / "evaluator-22e0df81.py").write_bytes(impostor)
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENBENCH_MIRROR", mirror.as_uri())
    code, _, err = run_main(capsys, monkeypatch, "adm-parity", samples, ref, "--device", "cpu")
    assert code == 2
    assert re.search(r"sha-?256|digest", err, re.IGNORECASE), err
    assert not (tmp_path / "cache" / "adm" / "evaluator-22e0df81.py").exists()


def test_missing_files_and_no_tensorflow_are_one_line_errors(batches, tmp_path, capsys, monkeypatch):
    samples, ref, graph = batches
    code, _, err = run_main(capsys, monkeypatch, "adm-parity", tmp_path / "nope.npz", ref, "--evaluator",
                            STANDIN, "--graph", graph)
    assert code == 2 and "nope.npz" in err and "Traceback" not in err
    needs_tf = tmp_path / "evaluator.py"
    needs_tf.write_text("import tensorflow_that_is_not_installed\n")
    code, _, err = run_main(capsys, monkeypatch, "adm-parity", samples, ref, "--evaluator", needs_tf,
                            "--graph", graph)
    assert code == 2 and "genbench[adm]" in err and "Traceback" not in err


def test_table_differences():
    rows = [ParityRow("fid", 2.0, 2.5), ParityRow("precision", 0.5, 0.5)]
    table = format_table(rows)
    assert "| FID | 2.000000 | 2.500000 | +5.00e-01 | +2.50e-01 |" in table
    assert "| precision | 0.500000 | 0.500000 | +0.00e+00 | +0.00e+00 |" in table
