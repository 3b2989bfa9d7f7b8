"""`genbench check`: direction-aware comparison with tolerances and its exit codes."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_main
from genbench.metrics.spec import Tolerance

from genbench.check import compare, parse_tolerances, verdict
from genbench.errors import GenbenchError
from genbench.results import write_results

REPO = Path(__file__).resolve().parents[1]
BASELINE = {"fid": 10.0, "sfid": 6.0, "is": 100.0, "precision": 0.70, "recall": 0.50}


@pytest.fixture
def board(tmp_path):
    path = tmp_path / "board.csv"
    rows = [{"name": "demo", "kind": "measured", "source": "ci", **BASELINE},
            {"name": "other", "kind": "reported", "source": "paper", "fid": 1.0}]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def results(tmp_path, **changes) -> Path:
    path = tmp_path / "results.json"
    write_results(path, {**BASELINE, "is_std": 3.0, **changes}, {"model": "demo"})
    return path


def run_check(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    return run_main(capsys, monkeypatch, "check", *args)


@pytest.mark.parametrize("changes, expected_code, expected_verdict", [
    ({}, 0, "equal"),
    ({"fid": 8.0, "is": 120.0}, 0, "better"),
    ({"fid": 10.15}, 0, "within tolerance"),  # default 2% of FID 10 = 0.2
    ({"fid": 10.3}, 1, "regression"),
    ({"is": 97.0}, 1, "regression"),  # default 2% of IS 100 = 2
    ({"precision": 0.69}, 0, "within tolerance"),  # default 0.02 absolute
    ({"recall": 0.47}, 1, "regression"),
])
def test_exit_codes_follow_the_metric_direction(tmp_path, board, capsys, monkeypatch, changes, expected_code,
                                                expected_verdict):
    code, out, err = run_check(capsys, monkeypatch, results(tmp_path, **changes), "--baseline", board,
                               "--row", "demo")
    assert code == expected_code, out + err
    assert expected_verdict in out
    for column in ("baseline", "current", "delta", "verdict"):
        assert column in out


def test_explicit_absolute_and_percent_tolerances(tmp_path, board, capsys, monkeypatch):
    worse = results(tmp_path, fid=10.4, **{"is": 95.0})
    assert run_check(capsys, monkeypatch, worse, "--baseline", board, "--row", "demo")[0] == 1
    code, out, _ = run_check(capsys, monkeypatch, worse, "--baseline", board, "--row", "demo",
                             "--tol", "fid=0.5,is=6%")
    assert code == 0, out
    assert run_check(capsys, monkeypatch, worse, "--baseline", board, "--row", "demo", "--tol",
                     "fid=0.3,is=6%")[0] == 1


@pytest.mark.parametrize("setup, args, message", [
    ("malformed", ["--row", "demo"], "not a readable results JSON"),
    ("ok", ["--row", "nobody"], "no row named 'nobody'"),
    ("ok", ["--row", "demo", "--tol", "bogus=1"], "--tol bogus: unknown metric"),
    ("ok", ["--row", "demo", "--tol", "fid"], "write METRIC=VALUE"),
    ("ok", ["--row", "demo", "--tol", "fid=abc"], "is not a number"),
    ("ok", ["--row", "demo", "--tol", "kid=1"], "do not both have"),
    ("ok", ["--row", "other", "--tol", "is=1"], "do not both have"),
])
def test_bad_input_exits_2(tmp_path, board, capsys, monkeypatch, setup, args, message):
    path = results(tmp_path)
    if setup == "malformed":
        path.write_text('{"schema": 2, "metrics": {"fid": ')
    code, _, err = run_check(capsys, monkeypatch, path, "--baseline", board, *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_verdicts_and_tolerance_parsing():
    assert parse_tolerances("fid=0.5, is=2%") == {"fid": Tolerance(0.5), "is": Tolerance(0.02, relative=True)}
    assert parse_tolerances(None) == {}
    with pytest.raises(GenbenchError, match=">= 0"):
        parse_tolerances("fid=-1")
    assert verdict("fid", 2.0, 2.4, Tolerance(0.5)) == "within tolerance"
    assert verdict("fid", 2.0, 2.6, Tolerance(0.5)) == "regression"
    assert verdict("precision", 0.82, 0.80, Tolerance(0.02)) == "within tolerance"  # exactly the tolerance
    assert verdict("precision", 0.82, 0.7999, Tolerance(0.02)) == "regression"
    assert verdict("lpips", 0.1, 0.05, Tolerance(0.0)) == "better"
    assert verdict("fd_dinov2", 100.0, 103.0, Tolerance(0.02, relative=True)) == "regression"
    assert verdict("psnr", 30.0, 29.5, Tolerance(0.02, relative=True)) == "within tolerance"  # 0.6 allowed
    assert verdict("psnr", 30.0, 29.0, Tolerance(0.5)) == "regression"


def test_a_metric_missing_from_the_results_fails_the_check(tmp_path, board, capsys, monkeypatch):
    path = tmp_path / "partial.json"
    write_results(path, {"fid": 9.0, "is": 101.0}, {})
    assert [c.verdict for c in compare(path, board, "demo")][2:] == ["missing"] * 3
    code, out, _ = run_check(capsys, monkeypatch, path, "--baseline", board, "--row", "demo")
    assert code == 1 and "missing" in out and "sfid, precision, recall" in out


def test_metrics_without_direction_or_baseline_are_not_compared(tmp_path, board):
    compared = {c.metric for c in compare(results(tmp_path, kid=0.5), board, "other")}
    assert compared == {"fid"}  # is_std has no direction, kid no baseline, 'other' has only fid


def test_console_script_exit_codes(tmp_path, board):
    """The installed entry point in real processes: better -> 0, worse -> 1, malformed -> 2."""
    def check(path):
        return subprocess.run([sys.executable, "-m", "genbench", "check", str(path), "--baseline", str(board),
                               "--row", "demo"], capture_output=True, text=True, cwd=REPO)

    better = check(results(tmp_path, fid=9.0))
    assert better.returncode == 0, better.stderr
    worse = check(results(tmp_path, fid=12.0))
    assert worse.returncode == 1 and "regression" in worse.stdout
    broken = tmp_path / "broken.json"
    broken.write_text("not json")
    malformed = check(broken)
    assert malformed.returncode == 2 and "Traceback" not in malformed.stderr


def test_github_workflow_runs_the_demo_eval_then_check():
    import yaml

    workflow = yaml.safe_load((REPO / "scripts" / "github-workflow-genbench-check.yml").read_text())
    commands = [step.get("run") for step in workflow["jobs"]["demo-regression"]["steps"]]
    eval_at = commands.index("genbench eval --model demo --out results.json")
    check_at = commands.index("genbench check results.json --baseline leaderboards/shapes.csv --row demo")
    assert eval_at < check_at
