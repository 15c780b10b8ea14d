"""Small integer helpers shared by every stage (ground floor: imports nothing of hwqnn)."""

from __future__ import annotations


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive integers, exactly (no floats)."""
    return -(-a // b)
