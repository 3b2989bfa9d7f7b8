"""`genbench models list|fetch`: official models by name and every other registered file."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from genbench.cli.app import app
from genbench.errors import GenbenchError

models_app = typer.Typer(no_args_is_help=True, help="Official models and registered files (weights, VAEs, "
                                                    "detector folders).")
app.add_typer(models_app, name="models")


def _settings(sampling: dict) -> str:
    parts = [f"{sampling['sampler']} {sampling.get('steps', '')}".strip()] if "sampler" in sampling else []
    if "cfg_scale" in sampling:
        low, high = sampling.get("guidance_interval", (0.0, 1.0))
        interval = f" [{low:g}, {high:g}]" if (low, high) != (0, 1) else ""
        parts.append(f"cfg {sampling['cfg_scale']:g}{interval}")
    if "cfg_channels" in sampling:
        parts.append(f"first {sampling['cfg_channels']} channels")
    return ", ".join(parts)


@models_app.command("list")
def list_models() -> None:
    """Registered official models: recipe, tokenizer, size, the paper's sampling settings, whether their
    files are in the cache, and where they come from."""
    from genbench.fetch import is_cached, registered_file
    from genbench.models.official import registered_models

    table = Table()
    for column in ("name", "recipe", "tokenizer", "params", "sampling (paper)", "cached", "source"):
        table.add_column(column, overflow="fold")
    for name, model in registered_models().items():
        cached = [is_cached(registered_file(f)) for f in model.file_names]
        state = "yes" if all(cached) else "partly" if any(cached) else "no"
        table.add_row(name, model.recipe, model.tokenizer, model.params, _settings(model.sampling), state,
                      registered_file(model.checkpoint).url)
    Console().print(table)


@models_app.command("fetch")
def fetch_command(
    names: list[str] = typer.Argument(..., help="Official model names (`genbench models list`), "
                                                "registered file or folder names (the registry)."),
) -> None:
    """Download (or verify the cached copy of) every file of the named models, files or folders."""
    from genbench.fetch import fetch, fetch_folder, load_registry
    from genbench.models.official import fetch_model_files, registered_model

    registry = load_registry()
    console = Console()
    for name in names:
        model = registered_model(name)
        if model is not None:
            paths = [p for p in fetch_model_files(model).values() if p is not None]
        elif name in registry["folders"]:
            paths = [fetch_folder(name)]
        elif name in registry["files"]:
            paths = [fetch(name)]
        else:
            raise GenbenchError(f"{name}: not a registered model, file or folder; see `genbench models list` "
                                "or reference_stats/registry.json")
        for path in paths:
            console.print(f"{name}: {path}", highlight=False, soft_wrap=True)
