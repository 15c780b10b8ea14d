"""The registry of layer kinds: ``meta`` ``"kind"`` string -> the header class that reads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

KINDS: dict[str, Any] = {}
"""Every registered kind's header class, in registration order (dense, conv2d, maxpool2d)."""


def register(kind: str, *, since: int) -> Callable[[type[T]], type[T]]:
    """Register a header class under ``kind``; ``since`` is the bundle version that introduced
    the kind (an older bundle naming it is refused)."""

    def add(cls: type[T]) -> type[T]:
        if kind in KINDS:
            raise ValueError(f"layer kind {kind!r} is registered twice")
        cls.since = since  # type: ignore[attr-defined]
        KINDS[kind] = cls
        return cls

    return add
