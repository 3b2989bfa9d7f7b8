"""`genbench eval`: samples + reference statistics -> metrics table and a results JSON."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.backbones import build_extractor, check_extractor_name
from genbench.cli.app import app
from genbench.cli.progress import progress_bar
from genbench.distributed import init_distributed, local_device
from genbench.errors import GenbenchError
from genbench.evaluate import evaluate, plan_metrics
from genbench.grid import grid_path, write_grid
from genbench.io import check_output
from genbench.metrics.kid import KID_SEED, KID_SUBSETS
from genbench.metrics.registry import METRICS
from genbench.metrics.spec import MetricOptions
from genbench.reference import ReferenceStats
from genbench.reference_sets import reference_paths
from genbench.results import write_results
from genbench.sampling.from_model import SampleRequest, sample_model
from genbench.sources import open_source
from genbench.validate import number_option
from genbench.worlds.demo import DEMO, demo_recipe, demo_reference, describe_demo

DEFAULT_METRICS = "fid,sfid,is,pr,kid"
DEMO_METRICS = f"{DEFAULT_METRICS},class_acc"  # the demo samples carry their labels: is the class learned?


def print_metrics(metrics: dict[str, float], provenance: dict) -> None:
    extractors = ", ".join(dict.fromkeys(r["name"] for r in provenance.get("extractors", {}).values()))
    table = Table(title=f"genbench ({extractors or provenance.get('extractor')} features)")
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


def parse_pairs(option: str, items: list[str] | None) -> dict[str, str]:
    """["dinov2=shapes", ...] -> {"dinov2": "shapes", ...}."""
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise GenbenchError(f"{option} {item}: write NAME=VALUE, e.g. {option} dinov2=shapes")
        pairs[key] = value
    return pairs


@app.command("eval")
def eval_command(
    samples: Path | None = typer.Option(None, help="ADM .npz (arr_0 uint8 NHWC) or a folder of PNG/JPEG."),
    model: Path | None = typer.Option(None, help="Instead of --samples: sample this model first, then "
                                                 "evaluate: an official model name (`genbench models list`; "
                                                 "files fetched, the paper's sampling settings), a genbench "
                                                 "checkpoint, an official file with --official, or the "
                                                 "shipped shapes-world demo[:sit|:repa|:repae]."),
    official: str | None = typer.Option(None, help="With --model: official model name (see `sample`)."),
    vae: Path | None = typer.Option(None, help="With --model --official: VAE weights."),
    num: int | None = typer.Option(None, min=1, help="With --model: number of samples [50000; demo 2000]."),
    sampler: str | None = typer.Option(None, help="With --model: sde | ode [sde; an official model: its "
                                                  "paper's]."),
    steps: int | None = typer.Option(None, min=1, help="With --model: sampling steps [250; demo 50; an "
                                                       "official model: its paper's]."),
    cfg_scale: float | None = typer.Option(None, callback=number_option(), help="With --model: guidance "
                                           "scale, 1 = off [1; an official model: its paper's]."),
    guidance_interval: tuple[float, float] | None = typer.Option(
        None, callback=number_option(0.0, 1.0), help="With --model: LOW HIGH [0 1; an official model: its "
        "paper's]."),
    sample_seed: int = typer.Option(0, help="With --model: seed of labels and noise."),
    ref: list[Path] | None = typer.Option(None, help="Reference statistics .npz (ADM batch or `genbench "
                                                     "ref build`) or a set fetched with `genbench ref fetch "
                                                     "NAME`, once per extractor; each extractor uses "
                                                     "the one made with it, else the images (arr_0) of one; "
                                                     "the demo defaults to reference_stats/shapes32.npz."),
    metrics: str | None = typer.Option(None, help=f"Comma-separated metric names ({', '.join(METRICS)}); "
                                                  "NAME@EXTRACTOR computes "
                                                  "one on another extractor (pr@dinov2 -> precision_dinov2); "
                                                  "class_acc reads the samples' labels (arr_1) "
                                                  f"[{DEFAULT_METRICS}; demo {DEMO_METRICS}]."),
    extractor: str | None = typer.Option(None, help="The run's feature extractor (registry name) for metrics "
                                                    "that name none [inception; demo shapes]."),
    weights: Path | None = typer.Option(None, help="Extractor weights file (default: verified cache file)."),
    extractor_for: list[str] | None = typer.Option(None, help="NAME=OTHER: compute the metrics that read "
                                                              "extractor NAME with OTHER instead (e.g. "
                                                              "dinov2=shapes); recorded in provenance."),
    weights_for: list[str] | None = typer.Option(None, help="NAME=PATH: weights of another extractor the "
                                                            "metrics read (e.g. dinov2=~/dinov2-large)."),
    bootstrap: int = typer.Option(0, min=0, help="Resamples for 95% bootstrap intervals of every metric "
                                                 "(KEY_ci_low, KEY_ci_high); 0 = off. Keeps feature rows."),
    fd_infinity: bool = typer.Option(False, "--fd-infinity", help="Also FD extrapolated to infinitely many "
                                                                  "samples (KEY_infinity) for every FD."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N] "
                                            "(under torchrun each rank takes cuda:LOCAL_RANK)."),
    num_workers: int = typer.Option(0, min=0, help="DataLoader workers decoding images."),
    kid_subset_size: int | None = typer.Option(
        None, min=2, help="KID subset size [min(1000, samples, reference rows), as clean-fid; "
        "torch-fidelity's "
        "1000 whenever both sides have it]."),
    kid_subsets: int = typer.Option(KID_SUBSETS, min=1),
    seed: int = typer.Option(KID_SEED, help="Seed of KID's subset draws (torch-fidelity's default)."),
    out: Path | None = typer.Option(None, help="Results JSON to write."),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="Write the first 64 samples as a PNG next to "
                              "--out (OUT.grid.png), or next to the samples drawn with --model."),
) -> None:
    """Compute FID, sFID, IS, precision/recall and KID (and FD-DINOv2, CMMD, density/coverage, FD on any
    extractor, class accuracy, with optional bootstrap intervals) of samples (or of a model's samples)
    against reference statistics."""
    if (samples is None) == (model is None):
        raise GenbenchError("give exactly one of --samples PATH or --model CHECKPOINT (try --model demo)")
    check_output(out)
    demo = model is not None and demo_recipe(str(model)) is not None
    if demo:
        num, steps, sampler = num or DEMO.num, steps or DEMO.steps, sampler or DEMO.sampler
        extractor, ref = extractor or DEMO.extractor, ref or [demo_reference()]
        metrics = metrics or DEMO_METRICS
    num, extractor = num or 50_000, extractor or "inception"  # unset sampling settings: the model's own
    metrics = metrics or DEFAULT_METRICS
    if not ref:
        raise GenbenchError("--ref is required: reference statistics .npz (an ADM batch, or `genbench ref "
                            "build`); see `genbench ref list`")
    device = local_device(device)
    rank, world_size = init_distributed(device)
    check_extractor_name(extractor)
    stand_ins = parse_pairs("--extractor-for", extractor_for)
    requests = plan_metrics(parse_metric_list(metrics), extractor, stand_ins)  # fails before loading
    extra_weights = parse_pairs("--weights-for", weights_for)
    ref_paths = [path for item in ref for path in reference_paths(item)]  # names fail before sampling
    sampling = None
    if model is not None:
        samples = (out or Path("genbench-results.json")).with_suffix(".samples.npz")
        work_dir = samples.with_suffix(".shards")
        check_output(samples, "--out (the samples beside it)")
        check_output(work_dir, "--out (the sample shards beside it)", folder=True)
        request = SampleRequest(model, num, official, vae, sampler=sampler, steps=steps, cfg_scale=cfg_scale,
                                guidance_interval=guidance_interval, seed=sample_seed)
        with progress_bar("sampling", -(-num // world_size), enabled=rank == 0) as advance:
            settings = sample_model(request, samples, work_dir, batch_size, device, advance)
        if rank == 0:
            Console().print(f"wrote {num} samples to {samples} (shards in {work_dir})")
        sampling = {**settings.to_json(), "samples_path": str(samples)}
    source = open_source(samples)
    references = [ReferenceStats.load(path) for path in ref_paths]
    names = list(dict.fromkeys(r.runs_on for r in requests))
    extractors = {n: build_extractor(n, weights if n == extractor else extra_weights.get(n)) for n in names}
    options = MetricOptions(kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, seed=seed,
                            bootstrap=bootstrap, fd_infinity=fd_infinity)
    with progress_bar(f"{', '.join(names)} features", len(source) * len(names), enabled=rank == 0) as advance:
        values, provenance = evaluate(source, references, requests, extractors, batch_size, device,
                                      num_workers, options, advance)
    if rank != 0:
        return
    if sampling is not None:
        provenance["sampling"] = sampling
    if demo:
        typer.echo(describe_demo(str(model)))
    print_metrics(values, provenance)
    if out is not None:
        write_results(out, values, provenance)
        Console(stderr=True).print(f"wrote {out}")
    if grid and (out is not None or model is not None):
        Console(stderr=True).print(f"wrote {write_grid(source, grid_path(out or samples))}")
