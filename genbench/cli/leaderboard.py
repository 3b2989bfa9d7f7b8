"""`genbench leaderboard add|show|publish` and `genbench check`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.check import compare, parse_metric_names, parse_tolerances
from genbench.cli.app import app
from genbench.errors import GenbenchError
from genbench.io import atomic_write, check_output
from genbench.leaderboard import FORMATS, append_row, read_board, render, results_row, sort_board

board_app = typer.Typer(no_args_is_help=True, help="Leaderboards: results files become table rows.")
app.add_typer(board_app, name="leaderboard")

FORMAT_HELP = f"One of {', '.join(FORMATS)}."
SUFFIX_FORMATS = {".md": "md", ".csv": "csv", ".html": "html", ".htm": "html", ".tex": "latex",
                  ".json": "json"}


@board_app.command("add")
def add(
    results: Path = typer.Argument(..., help="Results JSON written by `genbench eval --out`."),
    board: Path = typer.Option(..., help="Leaderboard CSV (created when missing)."),
    name: str | None = typer.Option(None, help="Row name (default: the provenance's model, else file stem)."),
) -> None:
    """Append a measured row to a board; safe with several processes at once."""
    check_output(board, "--board")
    row = results_row(results, name)
    append_row(board, row)
    Console(stderr=True).print(f"added row '{row['name']}' (measured) to {board}")


def _rendered(board: Path, fmt: str, sort: str | None) -> str:
    return render(sort_board(read_board(board), sort), fmt)


@board_app.command("show")
def show(
    board: Path = typer.Option(..., help="Leaderboard CSV."),
    format: str = typer.Option("md", help=FORMAT_HELP),
    sort: str | None = typer.Option(None, help="Column to sort by, best first (e.g. fid)."),
    out: Path | None = typer.Option(None, help="Write here instead of printing."),
) -> None:
    """Print a board (or write it with --out)."""
    check_output(out)
    text = _rendered(board, format, sort)
    if out is None:
        typer.echo(text, nl=False)
    else:
        _write(out, text)


@board_app.command("publish")
def publish(
    board: Path = typer.Option(..., help="Leaderboard CSV."),
    out: Path = typer.Option(..., help="File to write; the format follows its suffix unless --format."),
    format: str | None = typer.Option(None, help=FORMAT_HELP),
    sort: str | None = typer.Option(None, help="Column to sort by, best first (e.g. fid)."),
) -> None:
    """Write a board as a file to publish (self-contained HTML page, booktabs LaTeX, ...)."""
    check_output(out)
    fmt = format or SUFFIX_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise GenbenchError(f"{out}: cannot tell the format from the suffix; pass --format ({FORMAT_HELP})")
    _write(out, _rendered(board, fmt, sort))


def _write(out: Path, text: str) -> None:
    with atomic_write(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    Console(stderr=True).print(f"wrote {out}")


@app.command("check")
def check(
    results: Path = typer.Argument(..., help="Results JSON of the run to check."),
    baseline: Path = typer.Option(..., help="Leaderboard CSV holding the baseline row."),
    row: str = typer.Option(..., help="Name of the baseline row."),
    tol: str | None = typer.Option(None, help="Tolerances, absolute or percent: e.g. fid=0.5,is=2%."),
    allow_missing: str | None = typer.Option(None, help="Metrics (e.g. kid,sfid) that may be missing from "
                                                        "the results or NaN without failing the check."),
) -> None:
    """Compare a run with a baseline row: exit 0 within tolerance or better, 1 on a regression or on a
    metric that is missing or not a number (NaN, infinite) unless --allow-missing names it."""
    comparisons = compare(results, baseline, row, parse_tolerances(tol),
                          parse_metric_names("--allow-missing", allow_missing))
    table = Table(title=f"{results} vs {baseline} [{row}]")
    for column in ("metric", "baseline", "current", "delta", "tolerance", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    styles = {"better": "green", "equal": "green", "within tolerance": "yellow"}
    for c in comparisons:
        style = "bold red" if c.failed else styles.get(c.verdict, "yellow")
        table.add_row(c.metric, f"{c.baseline:.6g}", f"{c.current:.6g}", f"{c.delta:+.4g}", str(c.tolerance),
                      f"[{style}]{c.verdict}[/]")
    console = Console()
    console.print(table)
    regressions = [c.metric for c in comparisons if c.failed]
    if regressions:
        console.print(f"[bold red]regression:[/] {', '.join(regressions)}")
        # not typer.Exit: in non-standalone mode click returns its exit code instead of exiting
        raise SystemExit(1)
    console.print("[green]ok:[/] no metric regressed beyond its tolerance")
