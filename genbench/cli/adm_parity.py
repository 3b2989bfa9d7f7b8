"""`genbench adm-parity SAMPLES.npz REF.npz`: the ADM evaluator and genbench side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from genbench.cli.app import app


@app.command("adm-parity")
def adm_parity_command(
    samples: Path = typer.Argument(..., help="Sample batch: ADM .npz (arr_0 uint8 NHWC)."),
    reference: Path = typer.Argument(..., help="Reference batch: ADM .npz (arr_0, optional mu/sigma)."),
    evaluator: Path | None = typer.Option(None, help="guided-diffusion's evaluations/evaluator.py "
                                                     "[fetched at the pinned commit]."),
    graph: Path | None = typer.Option(None, help="Its classify_image_graph_def.pb [fetched]."),
    weights: Path | None = typer.Option(None, help="genbench's Inception weights [verified cache file]."),
    batch_size: int = typer.Option(64, min=1, help="genbench's batch size (the evaluator uses its own 64)."),
    device: str = typer.Option("auto", help="genbench's device: auto | cpu | cuda[:N]."),
) -> None:
    """Run openai/guided-diffusion's evaluator (needs TensorFlow: pip install 'genbench[adm]') and genbench
    on the same files and print IS, FID, sFID, precision and recall with their differences."""
    from genbench.adm_parity import format_table, run_parity
    from genbench.distributed import local_device

    rows = run_parity(samples, reference, evaluator, graph, weights, batch_size, local_device(device))
    typer.echo(format_table(rows))
