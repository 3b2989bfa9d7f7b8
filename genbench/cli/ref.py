"""`genbench ref build|list`: reference statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli import app
from genbench.cli.progress import progress_bar
from genbench.evaluate import build_reference, init_distributed, local_device
from genbench.extractors import build_extractor
from genbench.reference import registered_reference_sets
from genbench.sources import open_source

ref_app = typer.Typer(no_args_is_help=True, help="Reference statistics.")
app.add_typer(ref_app, name="ref")


@ref_app.command("build")
def build(
    data: Path = typer.Argument(..., help="Folder of images or ADM .npz (arr_0) of the reference set."),
    out: Path = typer.Option(..., help="Reference statistics .npz to write."),
    extractor: str = typer.Option("inception"),
    weights: Path | None = typer.Option(None, help="Extractor weights file (default: verified cache file)."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("cpu"),
    num_workers: int = typer.Option(0, min=0),
) -> None:
    """Compute mean/covariance (pool, spatial) and pool feature rows of a reference image set."""
    device = local_device(device)
    rank, _ = init_distributed(device)
    source = open_source(data)
    feature_extractor = build_extractor(extractor, weights)
    with progress_bar(f"{extractor} features", len(source), enabled=rank == 0) as advance:
        stats = build_reference(source, feature_extractor, batch_size, device, num_workers, advance)
    if rank == 0:
        stats.save(out)
        Console(stderr=True).print(f"wrote {out} ({stats.count} images, {extractor})")


@ref_app.command("list")
def list_sets() -> None:
    """Known reference sets (reference_stats/registry.json)."""
    table = Table()
    for column in ("name", "resolution", "images", "url"):
        table.add_column(column)
    for name, entry in registered_reference_sets().items():
        table.add_row(name, str(entry.get("resolution")), str(entry.get("count")), entry.get("url", ""))
    Console().print(table)
