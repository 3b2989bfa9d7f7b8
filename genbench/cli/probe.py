"""`genbench probe`: linear-probe and k-NN accuracy of frozen features (SiT blocks, VAE latents, encoders)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli.app import app
from genbench.errors import GenbenchError
from genbench.io import check_output
from genbench.validate import number_option


def print_scores(scores: dict[str, dict[str, float]], title: str) -> None:
    table = Table(title=title)
    for column in ("features", "top-1 %", "top-5 %", "k-NN top-1 %", "k-NN top-5 %", "C"):
        table.add_column(column, justify="left" if column == "features" else "right")
    for key, s in scores.items():
        table.add_row(key, f"{s['probe_top1']:.2f}", f"{s['probe_top5']:.2f}", f"{s['knn_top1']:.2f}",
                      f"{s['knn_top5']:.2f}", f"{s['probe_c']:g}")
    Console().print(table)


@app.command("probe")
def probe_command(
    features: str = typer.Option(..., help="sit:CKPT[:layer=L][:t=T] (CKPT a genbench checkpoint or "
                                           "demo:NAME), vae:TOKENIZER[:pool=K] or "
                                           "encoder:NAME[:feature=F][:weights=PATH]."),
    data: Path = typer.Option(..., help="ADM .npz (arr_0 images, arr_1 labels) or a folder with one "
                                        "subfolder per class."),
    labels: Path | None = typer.Option(None, help="Labels of --data: .npy, .npz (arr_1) or one integer per "
                                                  "line (default: the .npz's arr_1 or the class folders)."),
    test_data: Path | None = typer.Option(None, help="Separate test images (default: a seeded split of "
                                                     "--data)."),
    test_labels: Path | None = typer.Option(None, help="Labels of --test-data (same forms as --labels)."),
    test_fraction: float = typer.Option(0.2, callback=number_option(0.0, 1.0, low_open=True, high_open=True),
                                        help="Share of --data held out for testing."),
    layers: str | None = typer.Option(None, help="sit: only: 'all' or block numbers like 2,4,8 (one probe "
                                                 "each, plotted by block)."),
    seed: int = typer.Option(0, help="Seed of the split, the regularisation sweep and the SiT's noise."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N]."),
    cache_dir: Path | None = typer.Option(None, help="Stream feature rows into .npy memory maps here "
                                                     "(large sets)."),
    out: Path | None = typer.Option(None, help="Results JSON to write."),
    plot: Path | None = typer.Option(None, help="Accuracy-by-block PNG of a --layers sweep [OUT_layers.png, "
                                                "or probe_layers.png]."),
) -> None:
    """Linear-probe top-1/top-5 (logistic regression, C chosen on held-out rows) and k-NN accuracy
    (k=20, T=0.07, cosine) of frozen features; `--layers all` sweeps a SiT's blocks."""
    from genbench.distributed import local_device
    from genbench.probe import ProbeData, layer_curve, plot_layer_curves, read_labels, run_probe
    from genbench.results import write_results
    from genbench.sources import open_source

    check_output(out)
    check_output(plot, "--plot")
    check_output(cache_dir, "--cache-dir", folder=True)
    if plot is not None and layers is None:
        raise GenbenchError("--plot draws a --layers sweep; add --layers all (sit: features)")
    if test_labels is not None and test_data is None:
        raise GenbenchError("--test-labels needs --test-data")
    train = open_source(data)
    test = open_source(test_data) if test_data is not None else None
    probe_data = ProbeData(train, read_labels(data, len(train), labels), test_fraction=test_fraction)
    if test is not None:
        probe_data.test, probe_data.test_labels = test, read_labels(test_data, len(test), test_labels)
    run = run_probe(features, probe_data, layers, seed, batch_size, local_device(device), cache_dir)
    print_scores(run.scores, f"probe of {features} on {train.description}")
    if layers is not None:
        if plot is None:
            plot = out.with_name(f"{out.stem}_layers.png") if out is not None else Path("probe_layers.png")
        title = f"linear probe by block, t={run.provenance['t']}, {run.provenance['num_test']} test images"
        plot_layer_curves({features: layer_curve(run)}, plot, title, num_test=run.provenance["num_test"],
                          chance=100 / run.provenance["num_classes"])
        Console(stderr=True).print(f"wrote {plot}")
    if out is not None:
        count = len(train) + (len(test) if test is not None else 0)
        write_results(out, run.metrics(), {"probe": run.provenance, "num_samples": count, "seed": seed,
                                           **_typed(run.provenance)})
        Console(stderr=True).print(f"wrote {out}")


def _typed(provenance: dict) -> dict:
    """The probe's fields that results.PROVENANCE_TYPES names, at the top level where boards read them."""
    keys = ("model", "checkpoint_sha256", "tokenizer", "extractor", "weights_sha256")
    return {k: provenance[k] for k in keys if provenance.get(k) is not None}
