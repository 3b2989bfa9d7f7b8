"""The one set of value checks at genbench's edges: option ranges (NaN, infinities, negatives, zero, out of
range) and names that go into boards. Library settings (`SampleSettings`, `Rules`, ...) call
`check_number`; CLI float options use `number_option(...)` as their Typer callback, so a bad value is one
line naming the option before any model is built. Click's own range checks let NaN through (every
comparison with NaN is false), which is why floats come here."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from genbench.errors import GenbenchError


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> Any:
    """`value` if it is a finite number (an integer when `integer`; bool is neither) within the bounds;
    else a GenbenchError "<name> <value>: must be a finite number >= low; <fix>"."""
    kind = "an integer" if integer else "a finite number"
    wanted = f"{kind}{_range_text(low, high, low_open, high_open)}"
    numeric = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not numeric:
        raise GenbenchError(f"{name} {value!r}: must be {wanted}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise GenbenchError(f"{name} {value!r}: must be {wanted}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise GenbenchError(f"{name} {value!r}: must be {wanted}")
    return value


def number_option(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                  high_open: bool = False) -> Callable[[Any, Any, Any], Any]:
    """A Typer callback applying `check_number` to an option's value (each element of a tuple option;
    None, an option not given, passes). Typer passes (context, parameter, value) by position."""

    def callback(context: Any, param: Any, value: Any) -> Any:
        if value is None:
            return value
        name = max(param.opts, key=len) if param.opts else param.name
        for item in value if isinstance(value, (tuple, list)) else (value,):
            check_number(name, item, low, high, low_open=low_open, high_open=high_open)
        return value

    return callback


# Board names and metric keys: a name is one line of printable text; a metric key a short identifier
# (fid, precision_dinov2, fd_dinov2_ci_low, geneval_two_object, z0_std) that cannot pose as a text column.
METRIC_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.@-]{0,79}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def check_text_cell(where: str, column: str, value: str) -> str:
    """A text cell of a board: no newline or other control character (they break CSV readers, Markdown
    and LaTeX tables), at most 1,000 characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # undecodable bytes of a command line arrive as lone surrogates
        raise GenbenchError(f"{where}: {column} {value[:60]!r} is not valid UTF-8 text; give a UTF-8 "
                            "name") from error
    if CONTROL_CHARACTERS.search(value):
        raise GenbenchError(f"{where}: {column} {value[:60]!r} holds a newline or control character; "
                            "give a one-line name (e.g. --name)")
    if len(value) > 1000:
        raise GenbenchError(f"{where}: {column} is {len(value)} characters long; keep it under 1,000")
    return value


def check_metric_value(where: str, key: str, value: Any, reserved: tuple[str, ...]) -> float | int:
    """A metric of a results file as a board column: an identifier-like key that is not one of the
    `reserved` text columns, and a finite number a CSV cell can hold (|value| < 1e300, an int within
    int64)."""
    if not isinstance(key, str) or not METRIC_KEY.fullmatch(key):
        raise GenbenchError(f"{where}: metric name {str(key)[:60]!r} cannot be a board column; metric names "
                            "are letters, digits and _ . @ - (at most 80), starting with a letter")
    if key in reserved:
        raise GenbenchError(f"{where}: metric '{key}' has the name of a board's text column "
                            f"({', '.join(reserved)}); rename it in the results file")
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        digits = int(value.bit_length() * math.log10(2)) + 1  # str() refuses ints over 4,300 digits
        raise GenbenchError(f"{where}: metric '{key}' is an integer of {digits} digits; a board holds 64-bit "
                            "integers")
    check_number(f"{where}: metric '{key}'", value, -1e300, 1e300)
    return value
