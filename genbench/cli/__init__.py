"""The `genbench` command. Each verb lives in a small module of this package; this file only wires
them into one Typer app and is the one error boundary: expected errors are one readable line with exit
code 2, internal errors one line with exit 1 (see genbench.errors)."""

from __future__ import annotations

import sys
import traceback

import typer

from genbench.cli import commands  # noqa: F401  (importing the verb modules registers them on `app`)
from genbench.cli.app import app, err_console
from genbench.errors import (
    DEBUG_ENV,
    GenbenchError,
    debug_enabled,
    one_line,
    os_error_message,
    save_traceback,
)


def main() -> None:
    """Console-script entry point and the one error boundary: GenbenchError and OSError (bad input, missing
    resources, I/O) are one line and exit 2; anything else is an internal error, one line naming the file
    its traceback was saved to (--debug or GENBENCH_DEBUG=1 prints it) and exit 1."""
    args = sys.argv[1:]
    debug = debug_enabled() or "--debug" in args
    args = [a for a in args if a != "--debug"]  # accepted anywhere, not only before the command
    try:
        # Without standalone mode click returns (not raises) the code of a `typer.Exit(N)`.
        code = app(args=args, prog_name="genbench", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except GenbenchError as error:
        _print_error(one_line(str(error)))
        sys.exit(2)
    except OSError as error:  # an unwritable --out, a full disk, a file vanished mid-run
        _print_error(one_line(os_error_message(error)))
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[bold red]aborted[/]")
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except Exception as error:
        # Usage errors (unknown option, bad value) arrive here in non-standalone mode; Typer vendors
        # click, so recognise them by their interface rather than by class.
        if hasattr(error, "format_message") and hasattr(error, "exit_code"):
            context = getattr(error, "ctx", None)
            command = context.command_path if context is not None else "genbench"
            message = one_line(error.format_message())
            if message:  # empty when the help was printed instead (a command given no arguments)
                _print_error(f"{message} (see `{command} --help`)")
            sys.exit(error.exit_code)
        _internal_error(error, debug)
        sys.exit(1)


def _print_error(message: str, label: str = "error:") -> None:
    err_console.print(f"[bold red]{label}[/]", end=" ")
    err_console.print(message, markup=False, emoji=False, highlight=False, soft_wrap=True)


def _internal_error(error: Exception, debug: bool) -> None:
    """One line naming the error and where its traceback is; the traceback itself with --debug."""
    summary = one_line(f"{type(error).__name__}: {error}")[:500]
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        _print_error(f"{summary} (a bug in genbench; please report it with the traceback above)",
                     "internal error:")
        return
    saved = save_traceback(error)
    where = f"full traceback in {saved}" if saved else "the traceback could not be saved"
    _print_error(f"{summary} ({where}; --debug or {DEBUG_ENV}=1 prints it; a bug in genbench, please "
                 "report it)", "internal error:")
