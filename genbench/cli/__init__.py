"""The `genbench` command. Each verb lives in a small module of this package; this file only wires
them into one Typer app and turns expected errors into one readable line with exit code 2."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from genbench.errors import GenbenchError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Evaluate and benchmark image generative models.")
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Evaluate and benchmark image generative models."""

# Verb modules register themselves on `app` (or add a sub-Typer) when imported.
from genbench.cli import commands  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    try:
        # Without standalone mode click returns (not raises) the code of a `typer.Exit(N)`.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except GenbenchError as error:
        err_console.print("[bold red]error:[/]", end=" ")
        err_console.print(str(error), markup=False, emoji=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[bold red]aborted[/]")
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except Exception as error:
        # Usage errors (unknown option, bad value) arrive here in non-standalone mode; Typer vendors
        # click, so recognise them by their interface rather than by class.
        if hasattr(error, "show") and hasattr(error, "exit_code"):
            error.show()
            sys.exit(error.exit_code)
        raise
