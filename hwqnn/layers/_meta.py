"""Strict reading of ``meta`` fields, shared by the schema and every layer kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from hwqnn.errors import printable, shown

Fail = Callable[[str, str, object], NoReturn]
"""``fail(field, expected, found)``: raise the one-line error naming the field."""


def int_field(v: object, fld: str, fail: Fail, allowed: tuple[int, ...] | range) -> int:
    """``v`` if it is a JSON integer (not ``1.0``, ``true`` or ``"1"``) in ``allowed``."""
    if type(v) is not int:
        fail(fld, "an integer", f"{v!r}"[:60])
    assert isinstance(v, int)
    if v not in allowed:
        want = (
            f"{allowed.start}..{allowed.stop - 1}"
            if isinstance(allowed, range)
            else ", ".join(map(str, allowed))
        )
        fail(fld, want, v)
    return v


def child(fld: str, key: str) -> str:
    """``fld.key``, or ``fld['key']`` (escaped) for a key that is not a plain name; ``key``
    alone at the top level (``fld`` empty)."""
    if not fld and key.isidentifier():
        return key
    return f"{fld}.{key}" if key.isidentifier() else f"{fld}[{key!r}]"


def keys(
    obj: object, fld: str, allowed: set[str], fail: Fail, optional: set[str]
) -> dict[str, object]:
    """``obj`` as a dict with exactly the keys ``allowed`` (``optional`` may be missing)."""
    if not isinstance(obj, dict):
        fail(fld, "a JSON object", type(obj).__name__)
    assert isinstance(obj, dict)
    extra = sorted(set(obj) - allowed)
    if extra:
        fail(
            f"{fld}.{extra[0]}" if fld else extra[0], "no such key (extensions go in 'info')", "one"
        )
    missing = sorted(allowed - optional - set(obj))
    if missing:
        fail(child(fld, missing[0]), "a value", "nothing")
    return obj


def refuse(where: str, error: type[Exception]) -> Fail:
    """A ``fail`` that raises ``error(f"{where}: field '{fld}': expected ..., found ...")``."""

    def fail(fld: str, expected: str, found: object) -> NoReturn:
        # one line, whatever the file says: names and values escaped, a long value cut
        raise error(f"{printable(where)}: field '{shown(fld)}': expected {expected}, "
                    f"found {shown(found)}")  # fmt: skip

    return fail
