"""The one error type the CLI turns into a single readable line and exit code 2, and the boundary that does
it: every other exception is an internal error (exit 1), one line plus the file its traceback was saved to.

Exit codes of every command: 0 success, 1 a failed check (`genbench check` regression) or an internal
error (a bug: please report it with the saved traceback), 2 bad input, a missing resource or an I/O error,
130 interrupted.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import traceback
from pathlib import Path

DEBUG_ENV = "GENBENCH_DEBUG"


class GenbenchError(Exception):
    """Bad input or a missing resource. The message names the file and the fix."""


def one_line(text: str) -> str:
    """A message as one line: DataLoader workers re-raise with the worker's traceback appended, and a
    message quoting a file's content may hold newlines."""
    if "Original Traceback" in text:  # "Caught GenbenchError in DataLoader worker ...": keep the message
        text = text.rstrip().splitlines()[-1].partition(": ")[2] or text
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # undecodable argv bytes, escaped
    return " ".join(text.split())


def os_error_message(error: OSError) -> str:
    """An OSError (permission, disk full, a directory where a file goes, ...) as "<file>: <problem>; fix"."""
    where = error.filename if error.filename is not None else "genbench"
    problem = error.strerror or str(error) or type(error).__name__
    return f"{where}: {problem}; check the path, its permissions and free space"


def save_traceback(error: BaseException) -> Path | None:
    """Write the full traceback of an internal error to a file in the temporary folder; its path, or None
    when even that cannot be written."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        fd, name = tempfile.mkstemp(prefix=f"genbench-traceback-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except OSError:
        return None
    return Path(name)


def debug_enabled() -> bool:
    """GENBENCH_DEBUG=1 (or any value but 0/empty) prints internal errors' full tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")
