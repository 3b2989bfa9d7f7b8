"""`genbench eval`: samples + reference statistics -> metrics table and a results JSON."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli import app
from genbench.cli.progress import progress_bar
from genbench.errors import GenbenchError
from genbench.evaluate import evaluate, init_distributed, requested_metrics
from genbench.extractors import build_extractor
from genbench.reference import ReferenceStats
from genbench.results import write_results
from genbench.sources import open_source

DEFAULT_METRICS = "fid,sfid,is,pr,kid"


def print_metrics(metrics: dict[str, float], provenance: dict) -> None:
    table = Table(title=f"genbench ({provenance.get('extractor')} features)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.6g}")
    console = Console()
    console.print(table)
    if "note" in provenance:
        console.print(f"[yellow]note:[/] {provenance['note']}")


def parse_metric_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise GenbenchError("--metrics is empty; give e.g. fid,sfid,is,pr,kid")
    return names


@app.command("eval")
def eval_command(
    samples: Path = typer.Option(..., help="ADM .npz (arr_0 uint8 NHWC) or a folder of PNG/JPEG samples."),
    ref: Path = typer.Option(..., help="Reference statistics .npz (ADM batch or `genbench ref build`)."),
    metrics: str = typer.Option(DEFAULT_METRICS, help="Comma-separated metric names."),
    extractor: str = typer.Option("inception", help="Feature extractor (registry name)."),
    weights: Path | None = typer.Option(None, help="Extractor weights file (default: verified cache file)."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("cpu", help="cpu or cuda (cuda:N under torchrun is set per rank)."),
    num_workers: int = typer.Option(0, min=0, help="DataLoader workers decoding images."),
    kid_subset_size: int = typer.Option(1000, min=2, help="KID subset size (torch-fidelity's default 1000)."),
    kid_subsets: int = typer.Option(100, min=1),
    seed: int = typer.Option(2020, help="Seed of KID's subset draws (torch-fidelity's default)."),
    out: Path | None = typer.Option(None, help="Results JSON to write."),
) -> None:
    """Compute FID, sFID, IS, precision/recall and KID of samples against reference statistics."""
    rank, _ = init_distributed(device)
    if device == "cuda":
        import os

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    names = parse_metric_list(metrics)
    requested_metrics(names)  # unknown names fail before anything is loaded
    source = open_source(samples)
    reference = ReferenceStats.load(ref)
    feature_extractor = build_extractor(extractor, weights)
    options = {"kid_subset_size": kid_subset_size, "kid_subsets": kid_subsets, "seed": seed}
    with progress_bar(f"{extractor} features", len(source), enabled=rank == 0) as advance:
        values, provenance = evaluate(source, reference, names, feature_extractor, batch_size, device,
                                      num_workers, options, advance)
    if rank != 0:
        return
    print_metrics(values, provenance)
    if out is not None:
        write_results(out, values, provenance)
        Console(stderr=True).print(f"wrote {out}")
