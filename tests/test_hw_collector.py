# amaranth: UnusedElaboratable=no
"""The collector (scores in one beat, argmax appended) in Amaranth's simulator: exact scores, the
lowest class on ties, under input gaps and output back-pressure, and its latency."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwqnn.hw.collector import Collector, argmax_levels


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def run_collector(
    scores: np.ndarray, pe: int, sw: int, seed: int, gaps: bool
) -> tuple[list[list[int]], list[int], list[int]]:
    """Feed ``scores`` [frames, classes] as NF beats of PE scores each; return the output beats'
    scores and classes, and for each frame the cycles from its last beat's handshake to its
    output beat's ``valid`` (gaps and back-pressure at random when ``gaps``)."""
    frames, classes = scores.shape
    nf = -(-classes // pe)
    dut = Collector(pe=pe, nf=nf, classes=classes, score_width=sw)
    rng = np.random.default_rng(seed)
    mask = (1 << sw) - 1
    got_scores: list[list[int]] = []
    got_cls: list[int] = []
    last_in: list[int] = []
    first_valid: list[int] = []
    cycle = [0]

    async def clock(ctx):  # type: ignore[no-untyped-def]
        async for _ in ctx.tick():
            cycle[0] += 1

    async def feeder(ctx):  # type: ignore[no-untyped-def]
        for f in range(frames):
            padded = list(scores[f]) + [0] * (nf * pe - classes)
            for n in range(nf):
                while gaps and rng.random() < 0.3:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                word = sum((int(v) & mask) << (p * sw) for p, v in enumerate(padded[n * pe :][:pe]))
                ctx.set(dut.i.payload, word)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                if n == nf - 1:
                    last_in.append(cycle[0])
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):  # type: ignore[no-untyped-def]
        seen = False
        while len(got_cls) < frames:
            ready = int(not gaps or rng.random() < 0.6)
            ctx.set(dut.o.ready, ready)
            _, _, payload, valid = await ctx.tick().sample(dut.o.payload.as_value(), dut.o.valid)
            if valid and not seen:
                first_valid.append(cycle[0])
                seen = True
            if valid and ready:
                got_scores.append(
                    [_signed((payload >> (k * sw)) & mask, sw) for k in range(classes)]
                )
                got_cls.append(payload >> (classes * sw))
                seen = False

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(clock, background=True)
    sim.add_testbench(feeder)
    sim.add_testbench(sink)
    sim.run()
    return got_scores, got_cls, [v - i for v, i in zip(first_valid, last_in, strict=True)]


@pytest.mark.parametrize(("classes", "pe"), [(10, 1), (10, 4), (4, 4), (5, 2), (2, 1), (7, 7)])
@pytest.mark.parametrize("gaps", [False, True])
def test_argmax_is_the_lowest_class_of_the_highest_score(classes: int, pe: int, gaps: bool) -> None:
    sw = 6
    rng = np.random.default_rng(classes * 100 + pe)
    # few distinct values, so most frames have ties, the extremes of the signed range included
    scores = rng.choice([-32, -1, 0, 3, 31], size=(40, classes))
    got_scores, got_cls, _ = run_collector(scores, pe, sw, seed=pe, gaps=gaps)
    assert np.array_equal(np.array(got_scores), scores)
    assert got_cls == [int(np.argmax(s)) for s in scores]  # numpy: the first of the maxima


@pytest.mark.parametrize("classes", [2, 3, 4, 10, 17])
def test_latency_is_what_the_model_says(classes: int) -> None:
    """With the output always ready, a frame's beat is valid 1 + 2 * levels cycles after its last
    score beat: the figure the pipeline's latency prediction adds."""
    scores = np.arange(3 * classes).reshape(3, classes) % 7 - 3
    _, got_cls, lat = run_collector(scores, 1, 5, seed=0, gaps=False)
    assert got_cls == [int(np.argmax(s)) for s in scores]
    want = 1 + 2 * argmax_levels(classes)
    assert Collector(pe=1, nf=classes, classes=classes, score_width=5).latency == want
    assert lat == [want] * 3
