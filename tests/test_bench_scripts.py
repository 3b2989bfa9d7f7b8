"""The benchmark scripts run in their tiny modes, so that none of them can rot before the machine it is
meant for (a GPU) is available. Each asserts what the script itself checks or reports, not just that it
exits: bench_gpu's every row ran without error, bench_features' NCHW features equal torch-fidelity's bit for
bit (asserted inside the script), bench_frechet's two formulas agree, bench_memory's peaks are measured."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_bench_gpu_tiny_runs_every_row_on_cpu(tmp_path, one_thread):
    bench = load_script("bench_gpu")
    result = bench.main(["--tiny", "--out", str(tmp_path / "bench"), "--budget", "3600"])
    rows = result["rows"]
    sections = {row["section"].split(",")[0].split(" ")[0] for row in rows}
    assert {"Inception", "whole", "SiT-T/2", "REPA-E"} <= sections
    failed = [(row["row"], row.get("error") or row.get("note")) for row in rows if "throughput" not in row]
    assert not failed, failed
    assert all(row["throughput"] > 0 and math.isfinite(row["throughput"]) for row in rows)
    by_name = {(row["section"].split(" ")[0], row["row"]): row for row in rows}
    # The fp32 extraction equals torch-fidelity's to float32 round-off (channels-last summation order).
    assert "max |pool diff|" in by_name[("Inception,", "torch-fidelity fp32")]["note"]
    bf16 = by_name[("Inception,", "genbench bf16")]
    assert 0 < abs(bf16["fid_deviation"]) < 0.1 * by_name[("Inception,", "genbench fp32")]["fid"]
    evaluation = by_name[("whole", "genbench eval fid,sfid,is,pr,kid")]["metrics"]
    assert {"fid", "sfid", "is", "precision", "recall", "kid"} <= set(evaluation)
    # The written files hold the same rows.
    written = json.loads((tmp_path / "bench.json").read_text())
    assert len(written["rows"]) == len(rows) and written["meta"]["tiny"] is True
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n|") == len(rows) + 2 and "genbench bf16 + compile" in table


def test_plain_repa_sampler_matches_genbench_sde_with_the_same_noise():
    """The benchmark's baseline loop is a faithful SDE sampler: with the same Brownian increments it gives
    genbench's euler_maruyama_sde result (both REPA's sampler), so the speed ratio compares equal work."""
    from genbench.sampling.samplers import euler_maruyama_sde

    bench = load_script("bench_gpu")
    torch.manual_seed(0)
    model = bench.build_sampling_sit(bench.TINY, "cpu").double()
    latents = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    labels = torch.tensor([1, 2, 3])
    seed = 7
    torch.manual_seed(seed)
    plain = bench.plain_repa_sde(model, latents, labels, 6, 1.8, 0.0, 0.7, model.num_classes)
    torch.manual_seed(seed)
    ours = euler_maruyama_sde(model, latents, labels, 6, cfg_scale=1.8, guidance_interval=(0.0, 0.7),
                              null_label=model.num_classes)
    torch.testing.assert_close(plain, ours, rtol=1e-10, atol=1e-10)
    assert (plain - latents).abs().max() > 0.1  # the model did move the latents


@pytest.mark.slow
def test_bench_features_tiny_checks_equality_and_reports_a_ratio(one_thread, capsys):
    ratio = load_script("bench_features").main(["--tiny"])
    out = capsys.readouterr().out
    assert "genbench NCHW == torch-fidelity bit for bit" in out
    assert ratio > 0 and math.isfinite(ratio)
    headline = out.strip().splitlines()[-1]
    assert headline.startswith(f"genbench vs torch-fidelity Inception extraction: x{ratio:.2f}")


def test_bench_frechet_small_dim_agrees_with_scipy():
    rows = load_script("bench_frechet").main(["--dim", "64"])
    assert [row["case"] for row in rows] == ["full rank", "rank deficient"]
    for row in rows:
        assert row["genbench"] == pytest.approx(row["scipy"], rel=1e-6)


def test_bench_memory_measures_each_metric_in_a_fresh_process(tmp_path):
    rows = load_script("bench_memory").main(
        ["--metrics", "stats,is,kid", "--counts", "1500", "3000", "--reference", "1000", "--dim", "32",
         "--json", str(tmp_path / "memory.json")])
    assert [row["metric"] for row in rows] == ["stats", "is", "kid"]
    for row in rows:
        assert "error" not in row and len(row["extra_peak_mb"]) == 2
        assert all(0 <= mb < 2000 for mb in row["extra_peak_mb"])
    assert json.loads((tmp_path / "memory.json").read_text()) == rows


def test_bench_gpu_rows_record_failures_and_stop_at_the_budget(tmp_path):
    bench = load_script("bench_gpu")
    sizes = bench.dataclasses.replace(bench.TINY, budget_s=2.0)
    report = bench.Report(tmp_path / "bench", sizes, "cpu", tiny=True)

    def fails() -> dict:
        raise ValueError("broken row")

    report.run("s", "failing", 0.0, fails)
    report.run("s", "overrunning", 0.0, lambda: bench.time.sleep(30) or {"throughput": 1.0})
    report.run("s", "late", 1.0, lambda: {"throughput": 1.0})
    failing, overrunning, late = report.rows
    assert "ValueError: broken row" in failing["error"]
    assert "time budget" in overrunning["error"] and report.elapsed() < 10
    assert late["note"].startswith("skipped") and "throughput" not in late
    assert len(json.loads((tmp_path / "bench.json").read_text())["rows"]) == 3
