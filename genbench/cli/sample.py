"""`genbench sample`: a SiT checkpoint -> an ADM .npz of samples, in resumable shards, torchrun or not."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genbench.cli.app import app
from genbench.validate import number_option

console = Console()


@app.command()
def sample(
    model: Annotated[Path, typer.Option(help="An official model name (`genbench models list`: its files are "
                                             "fetched and its paper's sampling settings are the defaults), "
                                             "a genbench training checkpoint, demo[:sit|:repa|:repae], or an "
                                             "official SiT file with --official.")],
    out: Annotated[Path, typer.Option(help="ADM .npz to write (arr_0 uint8 NHWC, arr_1 labels).")],
    num: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 50_000,
    official: Annotated[str | None, typer.Option(help="Official model name, e.g. sit-repae-sdvae, "
                                                      "repa-sit-xl-2, sit-xl-2-256.")] = None,
    vae: Annotated[Path | None, typer.Option(help="VAE weights for an official SiT (replaces a registered "
                                                  "model's).")] = None,
    latents_stats: Annotated[Path | None, typer.Option(help="REPA-E <vae>-latents-stats.pt.")] = None,
    sampler: Annotated[str | None, typer.Option(
        help="sde (Euler-Maruyama) | ode (Euler; --heun) [sde; a registered model: its paper's].")] = None,
    steps: Annotated[int | None, typer.Option(
        min=1, help="Sampling steps [250; a registered model: its paper's].")] = None,
    cfg_scale: Annotated[float | None, typer.Option(
        callback=number_option(),
        help="Classifier-free guidance scale, 1 = off [1; a registered model: its paper's].")] = None,
    guidance_interval: Annotated[tuple[float, float] | None, typer.Option(
        callback=number_option(0.0, 1.0),
        help="Guide only for LOW <= t <= HIGH, t = 1 noise [0 1; a registered model: its paper's].")] = None,
    heun: Annotated[bool, typer.Option(help="Heun correction for the ODE sampler.")] = False,
    cfg_channels: Annotated[int | None, typer.Option(
        min=1, help="Guide only the first K latent channels (3 = SiT's official CFG) [all; a registered "
        "model: its paper's].")] = None,
    balanced: Annotated[bool, typer.Option("--balanced/--random-labels",
                                           help="Exactly N/K per class, or uniform random labels.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the labels and every sample's noise.")] = 0,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Per-process batch (does not change the samples).")] = 64,
    shard_size: Annotated[int, typer.Option(min=1, help="Samples per resumable shard.")] = 1000,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast around the SiT.")] = False,
    work_dir: Annotated[Path | None, typer.Option(help="Shard directory (default: OUT.shards).")] = None,
    device: Annotated[str, typer.Option(help="auto (cuda when available) | cpu | cuda[:N].")] = "auto",
    grid: Annotated[bool, typer.Option("--grid/--no-grid",
                                       help="Write the first 64 samples as OUT.grid.png.")] = True,
) -> None:
    """Sample a SiT (REPA convention) into shards, resuming finished ones, then assemble OUT on rank 0."""
    from genbench.cli.progress import progress_bar
    from genbench.distributed import init_distributed, local_device
    from genbench.io import check_output
    from genbench.sampling.from_model import SampleRequest, sample_model

    check_output(out)
    check_output(work_dir or out.with_suffix(".shards"), "--work-dir", folder=True)
    device = local_device(device)
    rank, world_size = init_distributed(device)
    request = SampleRequest(model, num, official, vae, latents_stats, sampler, steps, cfg_scale,
                            guidance_interval, heun, cfg_channels, balanced, seed, shard_size, bf16)
    work_dir = work_dir or out.with_suffix(".shards")
    with progress_bar("sampling", -(-num // world_size), enabled=rank == 0) as advance:
        sample_model(request, out, work_dir, batch_size, device, advance)
    if rank == 0:
        console.print(f"wrote {num} samples to {out} (shards in {work_dir})")
        if grid:
            from genbench.grid import grid_path, write_grid
            from genbench.sources import open_source

            console.print(f"wrote {write_grid(open_source(out), grid_path(out))}")
