"""`genbench train`: run a training recipe (sit, repa, repae) from a JSON config or a named preset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genbench.cli.app import app
from genbench.errors import GenbenchError
from genbench.sources import read_json
from genbench.validate import check_number

console = Console()


def _load_config(recipe: str, config: Path | None, preset: str | None) -> dict:
    from genbench.training.recipes import PRESETS

    if (config is None) == (preset is None):
        raise GenbenchError("genbench train: give exactly one of --config FILE.json or --preset NAME "
                            f"(presets: {', '.join(sorted(PRESETS))})")
    if preset is not None:
        if preset not in PRESETS:
            raise GenbenchError(f"--preset {preset}: unknown; choose from {', '.join(sorted(PRESETS))}")
        values = dict(PRESETS[preset])
    else:
        values = read_json(config, "training config", dict, "give a JSON object of training options")
    if values.get("recipe", recipe) != recipe:
        raise GenbenchError(f"{config or preset}: is a {values['recipe']} config but --recipe is {recipe}")
    return {**values, "recipe": recipe}


@app.command()
def train(
    recipe: Annotated[str, typer.Option(help="sit | repa | repae")],
    data: Annotated[Path, typer.Option(help="Image folder or ADM .npz (arr_0 [+ arr_1]).")],
    out: Annotated[Path, typer.Option(help="Run directory: checkpoints/, log.jsonl.")],
    config: Annotated[Path | None, typer.Option(help="JSON file of TrainConfig options.")] = None,
    preset: Annotated[str | None, typer.Option(help="Named preset, e.g. tiny-repae.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Train until this global step.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint in --out.")] = False,
    disc_weights: Annotated[Path | None, typer.Option(
        help="Pre-trained discriminator (REPA-E's <vae>-discriminator-ckpt.pt or a repae checkpoint); "
             "upstream's --disc-pretrained-ckpt. Sets the config's disc_weights.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:i].")] = "auto",
) -> None:
    """Train SiT (vanilla), REPA or REPA-E; checkpoints load with `genbench sample --model`."""
    from genbench.distributed import local_device
    from genbench.io import check_output
    from genbench.models.checkpoints import latest_checkpoint
    from genbench.training.data import ImageDataset
    from genbench.training.ema import short_run_warning
    from genbench.training.recipes import TrainConfig, Trainer

    check_output(out, folder=True)
    device = local_device(device)
    if resume and disc_weights is not None:
        raise GenbenchError("--disc-weights starts a run; a resumed run's discriminator comes from its "
                            "checkpoint, so drop --disc-weights or --resume")
    if resume:
        checkpoint = latest_checkpoint(out)
        if checkpoint is None:
            raise GenbenchError(f"{out}: no checkpoints/*.pt to resume from; run without --resume")
        trainer = Trainer.resume(checkpoint, _dataset(data, checkpoint), device)
        if trainer.config.recipe != recipe:
            raise GenbenchError(f"{checkpoint}: is a {trainer.config.recipe} run, not {recipe}")
        console.print(f"resumed {checkpoint} at step {trainer.step}")
    else:
        if out.exists() and latest_checkpoint(out) is not None:
            raise GenbenchError(f"{out}: already holds checkpoints; pass --resume or choose a new --out")
        values = _load_config(recipe, config, preset)
        if disc_weights is not None:
            values["disc_weights"] = str(disc_weights)
        train_config = TrainConfig.from_dict(values, str(config or preset))
        trainer = Trainer(train_config, ImageDataset(data, train_config.resolution), device)
    total = check_number("--steps", steps if steps is not None else trainer.config.steps, 1, integer=True)
    if total < trainer.step:
        raise GenbenchError(f"--steps {total}: {out} is already at step {trainer.step}; give a larger "
                            "--steps")
    warning = short_run_warning(trainer.config.ema_decay, total)
    if warning and trainer.rank == 0:
        console.print(f"warning: {warning}", markup=False, highlight=False)

    def log(step: int, values: dict[str, float]) -> None:
        if trainer.rank == 0:
            shown = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
            console.print(f"step {step}/{total}  {shown}", highlight=False)

    from genbench.training.recipes import train as run

    path = run(trainer, total, out, log)
    if trainer.rank == 0:
        console.print(f"checkpoint: {path}")


def _dataset(data: Path, checkpoint: Path):
    from genbench.models.checkpoints import checkpoint_config
    from genbench.sources import read_checkpoint
    from genbench.training.data import ImageDataset

    resolution = checkpoint_config(read_checkpoint(checkpoint), checkpoint).get("resolution")
    return ImageDataset(data, check_number(f"{checkpoint}: config resolution", resolution, 1, integer=True))
