"""`genbench clip-score`: CLIP score of prompt-image pairs -> per-prompt table and a results JSON."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli.app import app
from genbench.cli.progress import progress_bar
from genbench.errors import GenbenchError
from genbench.io import check_output

DEFAULT_MODEL = "clip:ViT-L-14/openai"  # torchmetrics' CLIPScore default (openai/clip-vit-large-patch14)


def print_scores(prompts: list[dict], mean: float, model: str) -> None:
    table = Table(title=f"CLIP score ({model})")
    table.add_column("prompt")
    table.add_column("images", justify="right")
    table.add_column("clip score", justify="right")
    for record in prompts:
        table.add_row(record["prompt"], str(record["images"]), f"{record['clip_score']:.4f}")
    table.add_row("mean over all pairs", str(sum(r["images"] for r in prompts)), f"{mean:.4f}", style="bold")
    Console().print(table)


@app.command("clip-score")
def clip_score_command(
    images_dir: Path | None = typer.Argument(None, help="GenEval layout (`genbench geneval generate`): "
                                                        "<NNNNN>/metadata.jsonl + samples/*.png."),
    pairs: Path | None = typer.Option(None, help="Instead of IMAGES_DIR: jsonl of {\"image\": PATH, "
                                                 "\"prompt\": TEXT}, paths relative to the file."),
    model: str = typer.Option(DEFAULT_MODEL, help="clip:MODEL/TAG, any open_clip model and pretrained tag "
                                                  "(`clip` alone is CMMD's ViT-L-14-336/openai)."),
    weights: Path | None = typer.Option(None, help="open_clip .safetensors file or local-dir folder "
                                                   "(default: verified cache file)."),
    out: Path | None = typer.Option(None, help="Results JSON to write (per-prompt scores in provenance)."),
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N]."),
) -> None:
    """CLIP score, 100 * max(cos(image, prompt), 0), per prompt (mean of its images) and over all pairs."""
    from genbench.backbones import build_extractor, check_extractor_name
    from genbench.clip_scoring import geneval_pairs, pairs_file, per_prompt, score_pairs
    from genbench.distributed import local_device
    from genbench.results import write_results

    check_output(out)
    if (images_dir is None) == (pairs is None):
        raise GenbenchError("give exactly one of IMAGES_DIR (GenEval layout) or --pairs PAIRS.jsonl")
    check_extractor_name(model)
    if model.partition(":")[0] != "clip":
        raise GenbenchError(f"--model {model}: CLIP score needs a CLIP model, e.g. {DEFAULT_MODEL}")
    found = geneval_pairs(images_dir) if images_dir is not None else pairs_file(pairs)
    clip = build_extractor(model, weights)
    with progress_bar("CLIP score", len(found)) as advance:
        scores = score_pairs(found, clip, batch_size, local_device(device), advance)
    prompts = per_prompt(found, scores)
    mean = float(scores.mean())
    print_scores(prompts, mean, clip.name)
    if out is not None:
        provenance = {"extractor": clip.name, "weights_sha256": clip.weights_sha256,
                      "resize_mode": clip.resize_mode, "num_samples": len(found),
                      "clip_score": {"input": str(images_dir or pairs), "prompts": len(prompts),
                                     "per_prompt": prompts}}
        write_results(out, {"clip_score": mean}, provenance)
        Console(stderr=True).print(f"wrote {out}")
