# amaranth: UnusedElaboratable=no
"""The compressor tree in Amaranth's simulator: its registered sum is the integer sum of its
product bits, ``latency`` clock enables later, for every op, column shape and stall pattern."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hwqnn.hw.compressor import compressor_tree, plan_latency

OPS = {
    "xnor": lambda w, a: 1 - (w ^ a),
    "and": lambda w, a: w & a,
    "nor": lambda w, a: (1 - w) & (1 - a),
}


def heights(simd: int, ka: int, kw: int) -> list[int]:
    h = [0] * (ka + kw - 1)
    for m in range(kw):
        for b in range(ka):
            h[m + b] += simd
    return h


def run_tree(h: list[int], ops: list[str], seed: int, cycles: int = 40) -> None:
    rng = np.random.default_rng(seed)
    n = sum(h)
    w, a, ce = Signal(n), Signal(n), Signal()
    m = Module()
    products, cols, i = [], [], 0
    for c, hc in enumerate(h):
        col = []
        for _ in range(hc):
            op = ops[i % len(ops)]
            col.append((op, w[i], a[i]))
            cols.append((c, op))
            i += 1
        products.append(col)
    out, lat = compressor_tree(m, products, ce, name="t")
    assert lat == plan_latency(h)
    sums: list[int] = []
    seen: list[tuple[int, int]] = []

    async def bench(ctx):  # type: ignore[no-untyped-def]
        for _ in range(cycles):
            wv = [int(v) for v in rng.integers(0, 2, n)]
            av = [int(v) for v in rng.integers(0, 2, n)]
            if rng.random() < 0.3:  # all ones / zeros: the sum's extremes
                wv, av = [1] * n, ([1] * n if rng.random() < 0.5 else [0] * n)
            en = int(rng.random() < 0.7)
            ctx.set(w, sum(v << k for k, v in enumerate(wv)))
            ctx.set(a, sum(v << k for k, v in enumerate(av)))
            ctx.set(ce, en)
            await ctx.tick()
            if en:
                sums.append(sum(OPS[op](wv[k], av[k]) << c for k, (c, op) in enumerate(cols)))
                seen.append((len(sums), ctx.get(out)))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    checked = 0
    for k, value in seen:  # after the k-th enabled cycle the sum of the (k - lat + 1)-th input
        if k >= lat:
            assert value == sums[k - lat], (k, value, sums[k - lat])
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("simd", "ka", "kw", "ops"),
    [
        (1, 1, 1, ["xnor"]),
        (2, 1, 1, ["xnor"]),
        (7, 1, 1, ["xnor"]),
        (64, 1, 1, ["xnor"]),
        (131, 1, 1, ["xnor"]),
        (13, 8, 1, ["xnor"]),  # 8-bit inputs, 1-bit weights: eight columns
        (9, 2, 2, ["and", "nor"]),  # signed 2-bit weights: AND plane and NOR top plane
        (6, 4, 4, ["xnor", "and"]),
        (40, 2, 1, ["and"]),
    ],
)
def test_sum_is_exact(simd: int, ka: int, kw: int, ops: list[str]) -> None:
    run_tree(heights(simd, ka, kw), ops, seed=simd * 100 + ka * 10 + kw)


def test_uneven_columns() -> None:
    run_tree([3, 0, 17, 1, 40], ["xnor", "nor", "and"], seed=5)


def test_latency_grows_slowly() -> None:
    assert plan_latency([1]) == 1
    sizes = (8, 64, 256, 1024, 4096)
    lats = [plan_latency([n]) for n in sizes]
    assert lats == sorted(lats)
    for n, lat in zip(sizes, lats, strict=True):  # a register per two levels of halving
        assert lat <= 2 + (n - 1).bit_length() // 2, (n, lat)


def test_no_products_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one product"):
        compressor_tree(Module(), [[]], Signal())
