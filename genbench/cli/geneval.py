"""`genbench geneval prompts|generate|score`: GenEval prompt suites, images from a class-conditional model,
and GenEval-rule scoring of an image folder."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli.app import app
from genbench.cli.progress import progress_bar
from genbench.errors import GenbenchError
from genbench.io import check_output
from genbench.sources import read_json
from genbench.validate import number_option

geneval_app = typer.Typer(no_args_is_help=True, help="GenEval-style object checks for text-to-image models.")
app.add_typer(geneval_app, name="geneval")

DETECTORS = ("mask2former", "owlv2", "shapes")


@geneval_app.command("prompts")
def prompts_command(
    out: Path = typer.Option(..., help="Folder for evaluation_metadata.jsonl, generation_prompts.txt and "
                                       "GenEval's <NNNNN>/metadata.jsonl + samples/ layout."),
    seed: int = typer.Option(43, help="Generator seed; 43 reproduces GenEval's own 553 prompts."),
    per_task: int = typer.Option(100, min=1, help="Draws per task (single_object takes every class)."),
    world: str = typer.Option("coco", help="coco (GenEval's 80 classes) or shapes (the miniature world)."),
    metadata: Path | None = typer.Option(None, help="Use GenEval's evaluation_metadata.jsonl instead."),
    split: str = typer.Option("all", help="all | held-out | seen: the prompts whose combinations the shapes "
                                          "text-to-image model never saw in training, or the others."),
) -> None:
    """Write a prompt suite (4 images per prompt go in <NNNNN>/samples/0000.png ... 0003.png)."""
    from genbench.geneval.prompts import IMAGES_PER_PROMPT, write_suite

    check_output(out, folder=True)
    records = _suite(metadata, seed, per_task, world)
    if split != "all":
        from genbench.geneval.t2i import held_out

        if split not in ("held-out", "seen"):
            raise GenbenchError(f"--split {split}: choose all, held-out or seen")
        records = [r for r in records if held_out(r) == (split == "held-out")]
    write_suite(records, out)
    Console().print(f"{len(records)} prompts x {IMAGES_PER_PROMPT} images -> {out}", highlight=False)


def _suite(metadata: Path | None, seed: int, per_task: int, world: str) -> list[dict]:
    from genbench.geneval.prompts import generate_suite, load_metadata

    if metadata is not None:
        return load_metadata(metadata)
    if world == "coco":
        return generate_suite(seed, per_task)
    if world == "shapes":
        from genbench.geneval.shapes_world import shapes_suite

        return shapes_suite(seed, per_task)
    raise GenbenchError(f"--world {world}: unknown; choose coco or shapes")


@geneval_app.command("generate")
def generate_command(
    model: str = typer.Option("demo", help="demo[:sit|:repa|:repae], demo-t2i (the text-to-image model), a "
                                          "genbench checkpoint of the shapes world, or `world` (the world's "
                                          "own scene of every prompt, 64 px: the checks' ceiling)."),
    out: Path = typer.Option(..., help="Folder for GenEval's <NNNNN>/metadata.jsonl + samples/ layout."),
    metadata: Path | None = typer.Option(None, help="Prompt suite (evaluation_metadata.jsonl); default: "
                                                    "the shapes suite of --prompt-seed."),
    prompt_seed: int = typer.Option(0, help="Seed of the generated shapes prompt suite."),
    per_task: int = typer.Option(10, min=1, help="Draws per task of the generated suite."),
    images_per_prompt: int = typer.Option(4, min=1, help="Images per prompt (GenEval: 4)."),
    sampler: str = typer.Option("sde", help="sde (Euler-Maruyama) | ode (Euler)."),
    steps: int = typer.Option(50, min=1, help="Sampling steps."),
    cfg_scale: float = typer.Option(1.0, callback=number_option(), help="Classifier-free guidance scale "
                                                                        "(1 = off)."),
    seed: int = typer.Option(0, help="Seed of every image's noise and of colours for colour-free prompts."),
    batch_size: int = typer.Option(64, min=1, help="Images per forward pass (does not change them)."),
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N]."),
) -> None:
    """Sample the prompts into GenEval's layout: `world` and a text-to-image model draw every prompt (CFG
    against the null caption); a class-conditional model samples each prompt a class label can express
    (single object, colour) and lists the others with the reason in OUT/skipped.jsonl. Resumes: existing
    images are kept."""
    from genbench.cli.progress import progress_bar
    from genbench.geneval.generate import (
        SKIPPED,
        generate_geneval_images,
        plan_every_prompt,
        plan_prompts,
        world_scene_sampler,
    )
    from genbench.geneval.shapes_world import SUITE_RESOLUTION
    from genbench.io import sha256_file, write_text_atomic
    from genbench.records import GenerationRecord, ModelProvenance
    from genbench.worlds import ShapesWorld

    check_output(out, folder=True)
    world = ShapesWorld(32)
    records = _suite(metadata, prompt_seed, per_task, "shapes")
    if model == "world":
        sample_images = world_scene_sampler(ShapesWorld(SUITE_RESOLUTION), seed)
        described, prompt_driven = f"shapes world (ground-truth scenes, {SUITE_RESOLUTION} px)", True
    else:
        sample_images, described, prompt_driven = _model_sampler(model, world.num_classes, sampler, steps,
                                                                 cfg_scale, seed, device)
    if prompt_driven:
        plan = plan_every_prompt(records, images_per_prompt)
    else:
        plan = plan_prompts(records, world.class_names, images_per_prompt, seed)
    if not plan.sampled:
        raise GenbenchError(f"{metadata or 'the prompt suite'}: no prompt maps to a class of the shapes "
                            "world (one object of a shape kind, a world colour or none)")
    total = sum(len(labels) for _, labels in plan.sampled)
    with progress_bar("geneval images", total) as advance:
        written = generate_geneval_images(sample_images, plan, out, batch_size, advance)
    suite = str(metadata) if metadata else f"shapes suite seed {prompt_seed}"
    generation = GenerationRecord(seed=seed, images_per_prompt=images_per_prompt, prompts=len(plan.sampled),
                                  skipped_prompts=len(plan.skipped), metadata=suite)
    if model == "world":
        generation = replace(generation, world=described)
    else:
        generation = replace(generation, model=ModelProvenance(described, sha256_file(Path(described))),
                             sampler=sampler, steps=steps, cfg_scale=cfg_scale)
    write_text_atomic(out / "generation.json", json.dumps(generation.to_json(), indent=2))
    skipped_tasks = sorted({record["tag"] for record, _ in plan.skipped})
    Console().print(f"{len(plan.sampled)} prompts x {images_per_prompt} images -> {out} ({written} new); "
                    f"{len(plan.skipped)} prompts the class label cannot express "
                    f"({', '.join(skipped_tasks) or 'none'}) listed in {out / SKIPPED}", highlight=False)


def _model_sampler(model: str, num_classes: int, sampler: str, steps: int, cfg_scale: float, seed: int,
                   device: str):
    """(image sampler, checkpoint path, whether it reads prompts) for a demo name or genbench checkpoint of
    the shapes world: a caption-conditioned TextSiT samples prompt records, a class-conditional SiT labels."""
    from genbench.distributed import local_device
    from genbench.geneval.generate import model_sampler
    from genbench.geneval.t2i import resolve_t2i_model, text_model_sampler
    from genbench.models import load_model_checkpoint
    from genbench.models.official import model_path
    from genbench.models.sit import TextSiT
    from genbench.sampling.generate import SampleSettings

    path = resolve_t2i_model(model) if model == "demo-t2i" else model_path(model)
    if not path.is_file():
        raise GenbenchError(f"{path}: no such checkpoint file; pass --model demo, a checkpoint or world")
    loaded = load_model_checkpoint(path)
    if loaded.vae is None:
        raise GenbenchError(f"{path}: its config names no VAE to decode with")
    text = isinstance(loaded.sit, TextSiT)
    if not text and loaded.sit.num_classes != num_classes:
        raise GenbenchError(f"{path}: the model has {loaded.sit.num_classes} classes, the shapes world "
                            f"{num_classes}; geneval generate needs a model of the shapes world")
    device = local_device(device)
    sit, size = loaded.sit.to(device), loaded.sit.grid_size * loaded.sit.patch_size
    settings = SampleSettings(num_samples=1, latent_shape=(sit.in_channels, size, size),
                              num_classes=sit.num_classes, sampler=sampler, num_steps=steps,
                              cfg_scale=cfg_scale, seed=seed)
    build = text_model_sampler if text else model_sampler
    return build(sit, loaded.vae.to(device), settings, device), str(path), text


def _build_checks(detector: str, weights: Path | None, clip_weights: Path | None, device: str):
    """(detector, colour classifier) for a detector name; weights are read from local files only."""
    if detector == "shapes":
        from genbench.geneval.shapes_world import ShapesDetector, shapes_color_classifier

        return ShapesDetector(), shapes_color_classifier()
    from genbench.geneval.colors import load_clip_color_classifier
    from genbench.geneval.detectors import load_mask2former, load_owlv2

    if detector == "mask2former":
        found = load_mask2former(weights, device)
    elif detector == "owlv2":
        found = load_owlv2(weights, device)
    else:
        raise GenbenchError(f"--detector {detector}: unknown; choose from {', '.join(DETECTORS)}")
    return found, load_clip_color_classifier(clip_weights, device)


def print_summary(summary: dict, detector: str, intervals: dict | None = None,
                  failures: dict | None = None) -> None:
    """GenEval's summary table (+ 95% prompt-bootstrap intervals), then the failed images by kind."""
    intervals, failures = intervals or {}, failures or {}
    table = Table(title=f"GenEval ({detector} detector)")
    table.add_column("task", no_wrap=True)
    table.add_column("score", justify="right")
    if intervals:
        table.add_column("95% interval", justify="right", no_wrap=True)
    table.add_column("correct / images", justify="right")

    def interval(key: str) -> list[str]:
        return [f"[{intervals[key][0]:.3f}, {intervals[key][1]:.3f}]"] if intervals else []
    for tag, task in summary["tasks"].items():
        table.add_row(tag, f"{task['score']:.2%}", *interval(tag), f"{task['correct']} / {task['images']}")
    table.add_row("overall (mean of tasks)", f"{summary['overall']:.5f}", *interval("overall"), "",
                  style="bold")
    blank = [""] if intervals else []
    table.add_row("correct images", f"{summary['correct_images']:.2%}", *blank, str(summary["images"]))
    table.add_row("correct prompts", f"{summary['correct_prompts']:.2%}", *blank, str(summary["prompts"]))
    if failures:
        failed = Table(title="failed images by kind of the first failed clause")
        failed.add_column("task", no_wrap=True)
        failed.add_column("kinds")
        for tag, kinds in failures.items():
            ranked = sorted(kinds.items(), key=lambda kv: -kv[1])
            failed.add_row(tag, ", ".join(f"{kind} {n}" for kind, n in ranked))
    console = Console()
    console.print(table)
    if failures:
        console.print(failed)
    if summary["missing_tasks"]:
        console.print(f"[yellow]note:[/] no images for {', '.join(summary['missing_tasks'])}; "
                      "overall is the mean of the tasks present")


@geneval_app.command("score")
def score_command(
    images_dir: Path = typer.Argument(..., help="GenEval layout: <NNNNN>/metadata.jsonl + samples/*.png."),
    out: Path = typer.Option(..., help="results.jsonl (GenEval's per-image records)."),
    metadata: Path | None = typer.Option(None, help="evaluation_metadata.jsonl; folder N takes line N."),
    detector: str = typer.Option("mask2former", help="mask2former | owlv2 | shapes."),
    weights: Path | None = typer.Option(None, help="Detector model folder (saved Hugging Face model)."),
    clip_weights: Path | None = typer.Option(None, help="open_clip ViT-L-14 OpenAI .safetensors file."),
    results: Path | None = typer.Option(None, help="Results JSON for leaderboards (default: OUT.json)."),
    device: str = typer.Option("auto", help="auto (cuda when available) | cpu | cuda[:N]."),
    threshold: float = typer.Option(0.3, callback=number_option(0.0, 1.0),
                                    help="Keep detections with score > this."),
    counting_threshold: float = typer.Option(0.9, callback=number_option(0.0, 1.0),
                                             help="The threshold for counting prompts."),
    max_objects: int = typer.Option(16, min=1, help="At most this many objects per class."),
    max_overlap: float = typer.Option(1.0, callback=number_option(0.0, 1.0),
                                      help="Per-class NMS IoU; 1 turns NMS off (GenEval's default)."),
    position_threshold: float = typer.Option(0.1, callback=number_option(0.0),
                                             help="Relation margin, fraction of summed box sizes."),
    bootstrap: int = typer.Option(1000, min=0, help="Resamples of the prompts (within each task) for 95% "
                                                   "intervals, KEY_ci_low / KEY_ci_high; 0 = off."),
    bootstrap_seed: int = typer.Option(0, help="Seed of the bootstrap resamples."),
    prompts: Path | None = typer.Option(None, help="Score only the images whose prompt is in this "
                                                   "evaluation_metadata.jsonl (a subset, e.g. held-out "
                                                   "combinations from `geneval prompts --split`)."),
) -> None:
    """Score every image with GenEval's rules; print the per-task table (with prompt-bootstrap intervals and
    the failed images by kind of failure); write results.jsonl and a results JSON."""
    from genbench.geneval.prompts import load_metadata
    from genbench.geneval.rules import Rules
    from genbench.geneval.score import (
        failure_reasons,
        iter_images,
        prompt_bootstrap,
        score_folder,
        summarize,
        write_results_jsonl,
    )
    from genbench.records import GenerationRecord
    from genbench.results import write_results

    results = results if results is not None else out.with_suffix(".json")
    if results.resolve() == out.resolve():
        raise GenbenchError(f"--out {out}: is also the results JSON; name it results.jsonl or pass --results")
    check_output(out)
    check_output(results, "--results")
    rules = Rules(threshold, counting_threshold, max_objects, max_overlap, position_threshold)
    records_in = load_metadata(metadata) if metadata is not None else None
    # written by `genbench geneval generate`; read before scoring, so that a bad one costs no work
    generation_path, generation = images_dir / "generation.json", None
    if generation_path.is_file():
        fix = "delete it or run `genbench geneval generate` again"
        generation = GenerationRecord.from_json(read_json(generation_path, "generation record", dict, fix),
                                                str(generation_path))
    subset = {r["prompt"] for r in load_metadata(prompts)} if prompts is not None else None
    total = sum(1 for _, r in iter_images(images_dir, records_in) if subset is None or r["prompt"] in subset)
    from genbench.distributed import local_device

    found, colors = _build_checks(detector, weights, clip_weights, local_device(device))
    with progress_bar("geneval", total) as advance:
        records = score_folder(images_dir, found, colors, rules, records_in, lambda done, n: advance(1),
                               subset)
    write_results_jsonl(records, out)
    summary = summarize(records)
    intervals = prompt_bootstrap(records, bootstrap, seed=bootstrap_seed) if bootstrap else {}
    failures = failure_reasons(records)
    print_summary(summary, detector, intervals, failures)
    metrics = {"geneval_overall": summary["overall"],
               **{f"geneval_{tag}": task["score"] for tag, task in summary["tasks"].items()},
               "geneval_correct_images": summary["correct_images"],
               "geneval_correct_prompts": summary["correct_prompts"]}
    for key, (low, high) in intervals.items():
        metrics |= {f"geneval_{key}_ci_low": low, f"geneval_{key}_ci_high": high}
    provenance = {"num_samples": summary["images"],
                  "geneval": {"detector": detector, "rules": asdict(rules), "prompts": summary["prompts"],
                              "images_dir": str(images_dir), "results_jsonl": str(out),
                              "prompt_subset": str(prompts) if prompts is not None else None,
                              "missing_tasks": summary["missing_tasks"], "failures": failures,
                              "bootstrap": {"resamples": bootstrap, "confidence": 0.95,
                                            "seed": bootstrap_seed,
                                            "unit": "prompts, resampled within each task"}}}
    if generation is not None:
        provenance["geneval"]["generation"] = generation.to_json()
    write_results(results, metrics, provenance)
    Console().print(f"per-image records: {out}\nresults: {results}", highlight=False)
