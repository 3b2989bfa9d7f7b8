"""`genbench ref build|list|fetch`: reference statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from genbench.backbones import build_extractor
from genbench.cli.app import app, err_console
from genbench.cli.progress import progress_bar
from genbench.distributed import init_distributed, local_device
from genbench.evaluate import build_reference
from genbench.io import check_output
from genbench.reference import registered_reference_sets
from genbench.reference_sets import fetch_reference_set, record_path, reference_dir
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
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N]."),
    num_workers: int = typer.Option(0, min=0),
) -> None:
    """Compute mean/covariance (pool, spatial) and pool feature rows of a reference image set."""
    check_output(out)
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
    for column in ("name", "resolution", "images", "fetched", "url"):
        table.add_column(column)
    for name, entry in registered_reference_sets().items():
        fetched = "yes" if record_path(name).is_file() else "no"
        table.add_row(name, str(entry.get("resolution")), str(entry.get("count")), fetched,
                      entry.get("url", ""))
    Console().print(table)


@ref_app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="A registered reference set (`genbench ref list`)."),
    force: bool = typer.Option(False, "--force", help="Download again even when a verified copy exists."),
) -> None:
    """Download a registered reference set into the cache, verify its SHA-256 (recorded when the registry
    has none) and convert EDM2 pickles to genbench's format; then use it as `genbench eval --ref NAME`."""
    columns = (TextColumn(f"{name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(name, total=None)
        record = fetch_reference_set(name, force, lambda done, total: progress.update(
            task, completed=done, total=total))
    action = "downloaded" if record["downloaded"] else "already present and verified"
    files = ", ".join(str(reference_dir() / f) for f in record["files"])
    Console().print(f"{name}: {action} (SHA-256 {record['sha256']}); --ref {name} reads {files}",
                    highlight=False, soft_wrap=True)
