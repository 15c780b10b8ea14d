"""A balanced, pipelined adder tree (the popcount of XNOR bits, or a sum of wider leaves).

A Python ``sum()`` over many bits becomes a linear add chain (slow to generate, slow timing);
this tree adds pairs level by level, widening by one bit per level, and registers the partial
sums every ``levels_per_stage`` levels. All registers advance only when ``ce`` is high.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value, unsigned


def tree_depth(n: int) -> int:
    """Number of pairwise-add levels for ``n`` leaves."""
    d = 0
    while n > 1:
        n = (n + 1) // 2
        d += 1
    return d


def tree_latency(n: int, levels_per_stage: int) -> int:
    """Register stages the tree inserts (the result is registered once at the end)."""
    return (tree_depth(n) - 1) // levels_per_stage + 1 if n > 1 else 1


def adder_tree(
    m: Module, leaves: list[Value], ce: Value, levels_per_stage: int = 4, name: str = "tree"
) -> tuple[Signal, int]:
    """Sum ``leaves`` (unsigned). Returns ``(registered_sum, latency_in_cycles)``."""
    if not leaves:
        raise ValueError("an adder tree needs at least one leaf")
    level: list[Value] = list(leaves)
    depth = 0
    stages = 0
    while len(level) > 1:
        nxt: list[Value] = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(level[i] + level[i + 1])
        if len(level) % 2:
            nxt.append(level[-1])
        depth += 1
        if depth % levels_per_stage == 0 and len(nxt) > 1:
            regs = []
            for j, v in enumerate(nxt):
                r = Signal(unsigned(len(v)), name=f"{name}_s{stages}_{j}")
                with m.If(ce):
                    m.d.sync += r.eq(v)
                regs.append(r)
            nxt = regs
            stages += 1
        level = nxt
    out = Signal(unsigned(len(level[0])), name=f"{name}_sum")
    with m.If(ce):
        m.d.sync += out.eq(level[0])
    return out, stages + 1
