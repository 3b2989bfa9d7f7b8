"""The Typer app every verb registers on, and the console errors go to. Verb modules import it from here
(not from the package, whose __init__ imports them: that would be an import circle)."""

from __future__ import annotations

import os

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Evaluate and benchmark image generative models.")
err_console = Console(stderr=True)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Print the full traceback of an internal error "
                                                      "(also GENBENCH_DEBUG=1; may follow the command)."),
    offline: bool = typer.Option(False, "--offline", help="Never open a connection: registered files come "
                                                          "from the cache only (also GENBENCH_OFFLINE=1)."),
) -> None:
    """Evaluate and benchmark image generative models."""
    if offline:  # genbench.fetch reads the switch from the environment, as for GENBENCH_OFFLINE=1
        os.environ["GENBENCH_OFFLINE"] = "1"
