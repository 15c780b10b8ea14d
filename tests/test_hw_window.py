# amaranth: UnusedElaboratable=no
"""The sliding-window unit and max-reduce in Amaranth's simulator, against the golden im2col and
max-pool, with random input gaps and output back-pressure, several images back to back."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwqnn.hw.window import MaxReduce, SlidingWindow, line_rows
from hwqnn.layers import MaxPool2d, Window
from hwqnn.randnet import random_codes


@dataclass(frozen=True)
class Case:
    window: Window
    bits: int
    in_chunk: int
    stalls: bool = True


def _pack(codes: np.ndarray, bits: int) -> int:
    return sum(int(v) << (j * bits) for j, v in enumerate(codes))


def _unpack(word: int, n: int, bits: int) -> list[int]:
    return [(word >> (j * bits)) & ((1 << bits) - 1) for j in range(n)]


when: list[int] = []  # the cycle of each output beat of the last simulate()


def simulate(
    dut: wiring.Component,
    top: Module | wiring.Component,
    beats_in: list[int],
    n_out: int,
    out_codes: int,
    bits: int,
    stalls: bool,
    seed: int,
) -> tuple[list[list[int]], int]:
    """Feed ``beats_in``, collect ``n_out`` output beats; returns them and the cycles taken."""
    rng = random.Random(seed)
    got: list[list[int]] = []
    cycles = [0]
    when.clear()

    async def feeder(ctx):  # type: ignore[no-untyped-def]
        for word in beats_in:
            while stalls and rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, word)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):  # type: ignore[no-untyped-def]
        while len(got) < n_out:
            ready = 0 if stalls and rng.random() < 0.3 else 1
            ctx.set(dut.o.ready, ready)
            _, _, payload, valid = await ctx.tick().sample(dut.o.payload, dut.o.valid)
            cycles[0] += 1
            if valid and ready:
                got.append(_unpack(payload, out_codes, bits))
                when.append(cycles[0])

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder)
    sim.add_testbench(sink)
    sim.run()
    return got, cycles[0]


def _beats(images: np.ndarray, chunk: int) -> list[int]:
    return [w for img in images for w in img.reshape(-1, chunk)]  # type: ignore[misc]


CASES = [
    pytest.param(Case(Window(5, 6, 2, 3), 1, 2), id="k3-odd"),
    pytest.param(Case(Window(11, 5, 2, 3), 1, 1), id="k3-tall-rows-wrap"),
    pytest.param(Case(Window(9, 7, 1, 3, 2), 2, 1), id="k3-s2-unread-bottom-row"),
    pytest.param(Case(Window(7, 4, 2, 1, 2), 1, 2), id="k1-s2-skipped-rows"),
    pytest.param(Case(Window(6, 5, 4, 3, 2, 1), 2, 1), id="k3-s2-p1-chunk1"),
    pytest.param(Case(Window(7, 7, 3, 5, 1, 2), 1, 3), id="k5-p2"),
    pytest.param(Case(Window(4, 4, 6, 1), 1, 3), id="k1-pow2-pixels"),
    pytest.param(Case(Window(5, 5, 1, 3, 1, 1), 8, 1), id="8bit-pixels-p1"),
    pytest.param(Case(Window(6, 6, 2, 2, 2), 1, 1, stalls=False), id="k2-s2-no-stalls"),
]


@pytest.mark.parametrize("case", CASES)
def test_windows_match_im2col(case: Case) -> None:
    w, bits = case.window, case.bits
    dut = SlidingWindow(window=w, bits=bits, in_chunk=case.in_chunk)
    images = random_codes(w.height + w.channels, 3, w.height * w.width * w.channels, bits)
    beats = [_pack(c, bits) for c in _beats(images, case.in_chunk)]
    n_out = 3 * w.positions * w.kernel**2
    got, _ = simulate(dut, dut, beats, n_out, w.channels, bits, case.stalls, 1)
    want = w.patches(images).reshape(3, w.positions, w.kernel**2, w.channels)
    np.testing.assert_array_equal(np.array(got).reshape(want.shape), want)


@pytest.mark.parametrize("pad_code", [1, 2])
def test_padding_reads_the_pad_code(pad_code: int) -> None:
    """A signed input's padding is its zero code (2**(bits-1)), in every channel."""
    w, bits = Window(5, 4, 3, 3, 1, 1), 2
    dut = SlidingWindow(window=w, bits=bits, in_chunk=3, pad_code=pad_code)
    images = random_codes(7, 2, w.height * w.width * w.channels, bits)
    beats = [_pack(c, bits) for c in _beats(images, 3)]
    got, _ = simulate(dut, dut, beats, 2 * w.positions * w.kernel**2, w.channels, bits, True, 1)
    want = w.patches(images, pad_code).reshape(2, w.positions, w.kernel**2, w.channels)
    np.testing.assert_array_equal(np.array(got).reshape(want.shape), want)
    assert (want == pad_code).sum() > (images == pad_code).sum() * w.kernel  # pads were read


def test_line_buffer_rows_do_not_grow_with_the_image() -> None:
    for h, k, s, p in itertools.product(range(3, 40), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2)):
        if p < k and h + 2 * p >= k:
            assert line_rows(Window(h, h, 1, k, s, p)) < 2 * k + s


SPEEDS = [  # (window, bits, in_chunk): reader-bound and writer-bound, with and without padding
    pytest.param(Window(12, 9, 2, 3), 1, 2, id="k3-reader-bound"),
    pytest.param(Window(10, 7, 3, 3, 2, 1), 1, 3, id="k3-s2-p1"),
    pytest.param(Window(11, 6, 4, 2, 2), 1, 1, id="mp2-writer-bound-odd"),
    pytest.param(Window(9, 9, 2, 5, 1, 2), 1, 2, id="k5-p2"),
    pytest.param(Window(8, 5, 4, 1, 2), 1, 1, id="k1-s2-writer-bound"),
]


@pytest.mark.parametrize(("w", "bits", "chunk"), SPEEDS)
def test_frames_leave_at_the_predicted_interval(w: Window, bits: int, chunk: int) -> None:
    """With input every cycle and no back-pressure, frame after frame starts exactly
    ``cycles_per_frame`` apart: the line buffer never starves the reader at an image boundary
    (nor blocks a writer that is the bottleneck)."""
    dut = SlidingWindow(window=w, bits=bits, in_chunk=chunk)
    frames = 5
    images = random_codes(3, frames, w.height * w.width * w.channels, bits)
    beats = [_pack(c, bits) for c in _beats(images, chunk)]
    per = w.positions * w.kernel**2
    got, _ = simulate(dut, dut, beats, frames * per, w.channels, bits, False, 1)
    want = w.patches(images).reshape(frames, w.positions, w.kernel**2, w.channels)
    np.testing.assert_array_equal(np.array(got).reshape(want.shape), want)
    starts = np.array(when[::per])
    assert (np.diff(starts)[1:] == dut.cycles_per_frame).all(), (np.diff(starts), dut.rows)


class Pool(wiring.Component):
    """SlidingWindow -> MaxReduce: the max-pool unit."""

    def __init__(self, window: Window, bits: int, in_chunk: int) -> None:
        self.sw = SlidingWindow(window=window, bits=bits, in_chunk=in_chunk)
        self.red = MaxReduce(channels=window.channels, bits=bits, group=window.kernel**2)
        width = window.channels * bits
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(in_chunk * bits))),
                "o": Out(stream.Signature(unsigned(width))),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.sw, m.submodules.red = self.sw, self.red
        wiring.connect(m, wiring.flipped(self.i), self.sw.i)
        wiring.connect(m, self.sw.o, self.red.i)
        wiring.connect(m, self.red.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize(
    ("window", "bits", "chunk"),
    [
        pytest.param(Window(6, 6, 4, 2, 2), 1, 2, id="mp2-1bit"),
        pytest.param(Window(7, 5, 3, 3, 2), 2, 3, id="mp3s2-2bit-odd"),
        pytest.param(Window(4, 4, 2, 2, 1), 4, 1, id="mp2s1-4bit"),
    ],
)
def test_maxpool_unit_matches_golden(window: Window, bits: int, chunk: int) -> None:
    pool = Pool(window, bits, chunk)
    images = random_codes(5, 4, window.height * window.width * window.channels, bits)
    beats = [_pack(c, bits) for c in _beats(images, chunk)]
    n_out = 4 * window.positions
    got, _ = simulate(pool, pool, beats, n_out, window.channels, bits, True, 2)
    _, want = MaxPool2d(window, bits).forward(images)
    np.testing.assert_array_equal(np.array(got).reshape(4, -1), want)


def test_bad_chunk_is_named() -> None:
    with pytest.raises(ValueError, match=r"in_chunk must divide the 6 channels, not 4"):
        SlidingWindow(window=Window(4, 4, 6, 3), bits=1, in_chunk=4)
