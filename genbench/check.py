"""Regression checks: compare a results file with a stored leaderboard row, metric by metric, in the
direction that counts as better (lower FID, higher IS), within absolute or relative tolerances; directions and
default tolerances are the columns' declarations (genbench.metrics.registry)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genbench.errors import GenbenchError
from genbench.leaderboard import metric_direction, read_board
from genbench.metrics.registry import column_spec
from genbench.metrics.spec import Column, Tolerance
from genbench.results import load_results

FAILING = ("regression", "missing", "not a number")  # a check fails closed: no number is not a pass


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: float
    current: float
    tolerance: Tolerance
    # "better", "equal", "within tolerance", "regression", "missing" (no current value) or "not a number"
    # (NaN or infinite); the last two end in " (allowed)" for metrics named by --allow-missing
    verdict: str

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    @property
    def delta(self) -> float:
        return self.current - self.baseline


def parse_tolerances(text: str | None) -> dict[str, Tolerance]:
    """`fid=0.5,is=2%` -> {"fid": Tolerance(0.5), "is": Tolerance(0.02, relative=True)}."""
    tolerances: dict[str, Tolerance] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise GenbenchError(f"--tol {item!r}: write METRIC=VALUE or METRIC=PERCENT%, e.g. fid=0.5,is=2%")
        if metric_direction(name) is None:
            raise GenbenchError(f"--tol {name}: unknown metric (no better/worse direction known)")
        relative = value.endswith("%")
        try:
            number = float(value.rstrip("%"))
        except ValueError as error:
            raise GenbenchError(f"--tol {item!r}: {value!r} is not a number") from error
        if not math.isfinite(number) or number < 0:
            raise GenbenchError(f"--tol {item!r}: a tolerance is a finite number >= 0")
        tolerances[name] = Tolerance(number / 100 if relative else number, relative)
    return tolerances


def verdict(metric: str, baseline: float, current: float, tolerance: Tolerance) -> str:
    if not math.isfinite(current):  # NaN compares false with everything: it must not read as "within"
        return "not a number"
    worse_by = (current - baseline) * -metric_direction(metric)  # > 0 means worse
    # a hair of slack so that a change of exactly the tolerance (0.80 vs 0.82 at 0.02) is not a float accident
    if worse_by > tolerance.allowed(baseline) + 1e-9 * max(1.0, abs(baseline)):
        return "regression"
    if worse_by == 0:
        return "equal"
    return "better" if worse_by < 0 else "within tolerance"


def baseline_row(board_path: str | Path, row: str) -> pd.Series:
    """The row named `row`; when a name repeats (a board appended over time) the last one is the newest."""
    board = read_board(board_path)
    matches = board[board["name"] == row]
    if matches.empty:
        names = ", ".join(board["name"].astype(str).tolist()[:20])
        raise GenbenchError(f"{board_path}: no row named '{row}' (rows: {names})")
    return matches.iloc[-1]


def parse_metric_names(option: str, text: str | None) -> set[str]:
    """`fid,kid` -> {"fid", "kid"}; every name must be a metric with a direction."""
    names = {n.strip() for n in (text or "").split(",") if n.strip()}
    unknown = sorted(n for n in names if metric_direction(n) is None)
    if unknown:
        raise GenbenchError(f"{option} {', '.join(unknown)}: unknown metric (no better/worse direction "
                            "known)")
    return names


def _directed(name: str) -> Column | None:
    """The declaration of column `name` when it has a better/worse direction."""
    column = column_spec(name)
    return column if column is not None and column.direction.sign is not None else None


def compare(results_path: str | Path, board_path: str | Path, row: str,
            tolerances: dict[str, Tolerance] | None = None,
            allow_missing: set[str] | frozenset[str] = frozenset()) -> list[Comparison]:
    """One comparison per metric that has a direction and a baseline value. A metric the baseline has and
    the results lack is "missing", a NaN or infinite value "not a number": a check must not pass because a
    metric stopped being computed or broke. Metrics in `allow_missing` may be missing or not a number."""
    metrics = load_results(results_path)["metrics"]
    baseline = baseline_row(board_path, row)
    tolerances = tolerances or {}
    comparisons = []
    for metric, current in metrics.items():
        column = _directed(metric)
        if column is None or metric not in baseline.index or pd.isna(baseline[metric]):
            continue
        reference = float(baseline[metric])
        tolerance = tolerances.get(metric, column.tolerance)
        comparisons.append(Comparison(metric, reference, float(current), tolerance,
                                      verdict(metric, reference, float(current), tolerance)))
    for metric, reference in baseline.items():
        column = _directed(str(metric))
        if metric not in metrics and column is not None and not pd.isna(reference):
            tolerance = tolerances.get(str(metric), column.tolerance)
            comparisons.append(Comparison(str(metric), float(reference), math.nan, tolerance, "missing"))
    missing = [m for m in tolerances if m not in {c.metric for c in comparisons}]
    if missing:
        raise GenbenchError(f"--tol names {', '.join(missing)}, which {results_path} and row '{row}' of "
                            f"{board_path} do not both have")
    if not comparisons:
        raise GenbenchError(f"{results_path} and row '{row}' of {board_path} share no metric to compare")
    return [dataclasses.replace(c, verdict=f"{c.verdict} (allowed)")
            if c.verdict in ("missing", "not a number") and c.metric in allow_missing else c
            for c in comparisons]
