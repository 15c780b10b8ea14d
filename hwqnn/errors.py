"""hwqnn's exceptions: one root, :class:`HwqnnError`, that the CLI shows as one line with exit
status 2 (bad input, or a tool that cannot do what was asked); anything else is a bug and prints
as an ``internal error`` (exit status 1).

The subclasses keep a standard second base where callers catch by it: bad content (a corrupt
bundle, a wrong shape, an impossible folding) is also a ``ValueError``, a missing dataset also a
``FileNotFoundError``, a simulator failure also a ``RuntimeError``. Every message names the file
and the field, or quotes the tool's own words.
"""

from __future__ import annotations


class HwqnnError(Exception):
    """The root of hwqnn's own errors."""


class InputError(HwqnnError, ValueError):
    """Bad content: an argument, a file's field, a shape or a value out of range."""


class ToolError(HwqnnError, RuntimeError):
    """An external tool (Verilator, cocotb, a compiler) failed or is missing; the message
    carries the tool's own words."""


class MismatchError(HwqnnError, RuntimeError):
    """Two implementations that must agree bit for bit do not; the message names the first
    difference."""


USER_ERRORS: tuple[type[BaseException], ...] = (HwqnnError, OSError)


MAX_SHOWN = 120  # characters of an echoed value before it is cut


def printable(text: str) -> str:
    """``text`` safe for one terminal line: every control character (ESC, CR, LF, ...) and
    every other non-printable one as its escape (``\\x1b``, ``\\n``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """A value echoed in a message: :func:`printable`, cut to ``limit`` characters with the full
    length said (a 4,000-digit number is not echoed whole)."""
    text = printable(str(value))
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"
