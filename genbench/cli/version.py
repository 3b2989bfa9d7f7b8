"""`genbench version`."""

import typer

import genbench
from genbench.cli.app import app


@app.command()
def version() -> None:
    """Print the genbench version."""
    typer.echo(genbench.__version__)
