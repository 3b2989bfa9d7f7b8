"""How to add a metric (docs/architecture.md), shown in this file alone: write the compute function, declare
its `MetricSpec` (features read, output columns with direction, decimals and tolerance), `register` it.
`genbench eval`, the boards' decimals and sort order and `check`'s direction and tolerance then pick it up;
no other file changes. The fixture removes it again."""

import json

import numpy as np
import pytest
import torch
from conftest import run_main
from genbench.metrics.registry import METRICS, register
from genbench.metrics.spec import Column, Direction, FeatureSide, MetricOptions, MetricSpec, Tolerance

from genbench.backbones import build_extractor
from genbench.check import compare, parse_tolerances
from genbench.leaderboard import append_row, metric_direction, read_board, render, results_row, sort_board
from genbench.results import write_results


def mean_shift(sample: FeatureSide, reference: FeatureSide | None, options: MetricOptions,
               device: str | None) -> dict[str, float]:
    """Distance between the mean pool features of the samples and of the reference."""
    assert reference is not None
    shift = sample.features("pool").double().mean(0) - reference.features("pool").double().mean(0)
    return {"mean_shift": float(shift.norm())}


MEAN_SHIFT = MetricSpec(
    "mean_shift", mean_shift,
    outputs=(Column("mean_shift", Direction.LOWER, decimals=4, tolerance=Tolerance(0.05)),),
    feature="pool", uses="rows",
)


@pytest.fixture
def mean_shift_metric():
    register(MEAN_SHIFT)
    yield MEAN_SHIFT
    del METRICS[MEAN_SHIFT.name]


def pool_rows(path) -> torch.Tensor:
    with np.load(path) as data:
        images = torch.from_numpy(data["arr_0"]).permute(0, 3, 1, 2).contiguous()
    return build_extractor("shapes")(images)["pool"].double()


def test_eval_boards_and_check_read_a_registered_metric(mean_shift_metric, shapes_world, tmp_path, capsys,
                                                        monkeypatch):
    out = tmp_path / "run.json"
    code, _, stderr = run_main(capsys, monkeypatch, "eval", "--samples", shapes_world / "samples.npz",
                               "--ref", shapes_world / "ref.npz", "--extractor", "shapes",
                               "--metrics", "fid,mean_shift", "--out", out)
    assert code == 0, stderr
    value = json.loads(out.read_text())["metrics"]["mean_shift"]
    samples, reference = (pool_rows(shapes_world / name) for name in ("samples.npz", "ref_images.npz"))
    shift = samples.mean(0) - reference.mean(0)
    assert value == pytest.approx(float(shift.norm()), rel=1e-5)

    # boards: the column's decimals, and lower-is-better sorting
    board = tmp_path / "board.csv"
    append_row(board, results_row(out, "run"))
    better = tmp_path / "better.json"
    write_results(better, {"fid": 1.0, "mean_shift": value / 2}, {"model": "better"})
    append_row(board, results_row(better, "better"))
    assert f"| {value:.4f} |" in render(read_board(board), "md")
    assert list(sort_board(read_board(board), "mean_shift")["name"]) == ["better", "run"]

    # check: the column's direction and default tolerance (0.05 absolute)
    assert metric_direction("mean_shift") == -1
    assert "mean_shift" in parse_tolerances("mean_shift=0.1")
    for shift, verdict in ((0.04, "within tolerance"), (0.06, "regression"), (-0.01, "better")):
        current = tmp_path / f"current{shift}.json"
        write_results(current, {"mean_shift": value + shift}, {"model": "run"})
        (comparison,) = [c for c in compare(current, board, "run") if c.metric == "mean_shift"]
        assert comparison.verdict == verdict and comparison.tolerance == Tolerance(0.05)


def test_the_registry_refuses_a_second_metric_of_the_same_name_or_columns(mean_shift_metric):
    with pytest.raises(ValueError, match="registered already"):
        register(MEAN_SHIFT)
    renamed = MetricSpec("mean_shift_again", mean_shift, MEAN_SHIFT.outputs, "pool", "rows")
    with pytest.raises(ValueError, match="outputs mean_shift, declared already"):
        register(renamed)


def test_a_metric_must_return_exactly_its_declared_columns():
    wrong = MetricSpec("wrong", lambda s, r, o, d: {"other": 1.0}, (Column("wrong"),), "pool", "rows",
                       reference=False)
    with pytest.raises(ValueError, match=r"returned \['other'\], but declares \['wrong'\]"):
        wrong.compute(FeatureSide(), None, MetricOptions())


def test_without_registration_the_metric_is_unknown():
    assert "mean_shift" not in METRICS and metric_direction("mean_shift") is None
