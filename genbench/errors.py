"""The one error type the CLI turns into a single readable line and exit code 2."""


class GenbenchError(Exception):
    """Bad input or a missing resource. The message names the file and the fix."""
