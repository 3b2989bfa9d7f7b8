"""`genbench tokenizers compare`: VAEs side by side (rFID, PSNR, SSIM, LPIPS, latent statistics, latent probe,
throughput) as one table, optionally appended to a tokenizer leaderboard."""

from __future__ import annotations

import math
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli.app import app
from genbench.errors import GenbenchError
from genbench.io import check_output

tokenizers_app = typer.Typer(no_args_is_help=True, help="Tokenizer (VAE) comparison.")
app.add_typer(tokenizers_app, name="tokenizers")

SHOWN = ("rfid", "psnr", "ssim", "lpips", "probe", "probe_top5", "knn_top1", "latent_dim", "compression",
         "encode_ips", "decode_ips")


def print_table(board) -> None:
    """One column per tokenizer (so that a few fit an 80-column terminal), one row per measure."""
    table = Table(title="tokenizers")
    table.add_column("measure")
    for name in board["name"]:
        table.add_column(name, justify="right")
    measures = [c for c in board.columns if c in SHOWN or re.fullmatch(r"z\d+_(mean|std)", c)]
    for measure in measures:
        cells = ("–" if isinstance(v, float) and math.isnan(v) else f"{v:.4g}" for v in board[measure])
        table.add_row(measure, *cells)
    console = Console()
    console.print(table)
    console.print(f"note: {board['notes'].iloc[0]}", markup=False, highlight=False)


@tokenizers_app.command("compare")
def compare_command(
    vae: list[str] = typer.Option(..., help="Tokenizer, repeated: a registered name (genbench tokenizers "
                                            "list; fetched on first use) or NAME:DIR for a local copy, "
                                            "diffusers:PATH, demo:sit|demo:repa|demo:repae, a genbench "
                                            "checkpoint, or PRESET:PATH (f8d4:sd-vae-ft-ema.safetensors, "
                                            "f16d32:e2e-vavae.pt, ...)."),
    data: Path = typer.Option(..., help="Original images: ADM .npz (arr_0; arr_1 labels for the probe) or a "
                                        "folder (class subfolders give probe labels)."),
    labels: Path | None = typer.Option(None, help="Probe labels: .npy, .npz (arr_1) or one integer per "
                                                  "line (default: from --data; without any, no probe)."),
    extractor: str = typer.Option("inception", help="Extractor of rFID (inception, shapes, dinov2, ...)."),
    weights: Path | None = typer.Option(None, help="Extractor weights (default: verified cache file)."),
    lpips_vgg: Path | None = typer.Option(None, help="torchvision vgg16-397923af.pth (default: cache)."),
    lpips_lin: Path | None = typer.Option(None, help="LPIPS v0.1 vgg.pth linear heads (default: cache)."),
    probe_pool: int = typer.Option(0, min=0, help="Average-pool latents to KxK before the probe (0: flat)."),
    seed: int = typer.Option(0, help="Seed of the probe's split and regularisation sweep."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N]."),
    board: Path | None = typer.Option(None, help="Tokenizer leaderboard CSV to append the rows to."),
    work_dir: Path | None = typer.Option(None, help="Keep reconstructions and per-chunk sums here: a rerun "
                                                    "resumes; under torchrun every rank must see it "
                                                    "(default: a temporary folder)."),
    chunk_images: int = typer.Option(512, min=1, help="Images per unit of work (resumed and split over "
                                                      "torchrun ranks as a whole)."),
) -> None:
    """Reconstruct --data with every --vae and compare them in one table."""
    from genbench.distributed import local_device
    from genbench.leaderboard import append_row
    from genbench.probe import read_labels
    from genbench.sources import open_source
    from genbench.tokenizer_comparison import CompareSettings, compare_tokenizers, load_lpips

    check_output(board, "--board")
    if len(set(vae)) != len(vae):
        raise GenbenchError("--vae: a tokenizer is given twice; give each once")
    source = open_source(data)
    probe_labels = read_labels(data, len(source), labels, required=False)  # None: the probe is skipped
    lpips, lpips_note = load_lpips(lpips_vgg, lpips_lin)
    settings = CompareSettings(extractor, weights, batch_size, local_device(device), probe_pool, seed=seed,
                               work_dir=work_dir, chunk_images=chunk_images)
    table = compare_tokenizers(vae, source, probe_labels, lpips, lpips_note, settings)
    if table is None:  # a torchrun rank other than 0: rank 0 prints and appends
        return
    print_table(table)
    if board is not None:
        for row in table.to_dict("records"):
            append_row(board, row)
        Console(stderr=True).print(f"appended {len(table)} rows to {board}")


@tokenizers_app.command("list")
def list_command() -> None:
    """Registered tokenizers: name, family, where the weights are published."""
    from genbench.models.tokenizer_adapters import TOKENIZERS, tokenizer_folder

    table = Table(title="registered tokenizers (--vae NAME)")
    for column in ("name", "family", "source", "cached"):
        table.add_column(column)
    for name, entry in TOKENIZERS.items():
        cached = all((tokenizer_folder(name) / f.path).is_file() for f in entry.files)
        table.add_row(name, entry.family, entry.source, "yes" if cached else "no")
    Console().print(table)
