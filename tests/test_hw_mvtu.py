# amaranth: UnusedElaboratable=no
"""The matrix-vector-threshold unit in Amaranth's simulator, against the golden layer."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwqnn import golden
from hwqnn.bundle import Layer
from hwqnn.hw.adder_tree import tree_latency
from hwqnn.hw.compressor import plan_latency
from hwqnn.hw.mvtu import MVTU, uses_compressor
from hwqnn.randnet import random_bundle, random_codes


def simulate_unit(
    layer: Layer,
    x: np.ndarray,
    pe: int,
    simd: int,
    chunk: int,
    junk: bool = False,
    stalls: int | None = None,
) -> np.ndarray:
    """Frames ``x`` through the unit; with ``junk``, the codes of the last beat past the fan-in
    are random instead of 0 (a producer's pad lanes), which the unit must not count; with
    ``stalls`` (a seed), the producer pauses and the consumer drops ``o.ready`` at random
    cycles (runs of 1 to 6), so the pipeline stalls and bubbles at every phase of a frame."""
    dut = MVTU.from_layer(layer, pe, simd, chunk)
    width, ka = dut.out_width, layer.in_bits
    beats: list[list[int]] = []
    rng = np.random.default_rng(11)
    gaps = np.random.default_rng(stalls) if stalls is not None else None

    async def pause(ctx, signal) -> None:  # type: ignore[no-untyped-def]
        """Hold ``signal`` low for a random run of cycles (some of the time)."""
        if gaps is not None and gaps.random() < 0.3:
            ctx.set(signal, 0)
            await ctx.tick().repeat(int(gaps.integers(1, 7)))

    async def feeder(ctx):  # type: ignore[no-untyped-def]
        for vec in x:
            if junk:
                pad = dut.beats * chunk - len(vec)
                vec = np.concatenate([vec, rng.integers(1, 2**ka, pad, endpoint=False)])
            for b in range(dut.beats):
                word = sum(
                    int(v) << (j * ka) for j, v in enumerate(vec[b * chunk : (b + 1) * chunk])
                )
                await pause(ctx, dut.i.valid)
                ctx.set(dut.i.payload, word)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):  # type: ignore[no-untyped-def]
        while len(beats) < len(x) * dut.nf:
            await pause(ctx, dut.o.ready)
            ctx.set(dut.o.ready, 1)
            _, _, payload, valid = await ctx.tick().sample(dut.o.payload, dut.o.valid)
            if valid:
                fields = [(payload >> (p * width)) & ((1 << width) - 1) for p in range(pe)]
                if layer.is_last:
                    fields = [f - (1 << width) if f >> (width - 1) else f for f in fields]
                beats.append(fields)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder)
    sim.add_testbench(sink)
    sim.run()
    flat = np.array(beats, dtype=np.int64).reshape(len(x), dut.nf * pe)
    return flat[:, : layer.out_features]


def layer_case(
    seed: int, x_seed: int, n: int, li: int, w_bits: int, a_bits: int
) -> tuple[Layer, np.ndarray, np.ndarray]:
    """Layer ``li`` of a random 70-33-20-5 net, ``n`` random frames at its input (the golden
    layers before it) and its golden outputs."""
    b = random_bundle(seed, 70, (33, 20), 5, w_bits, a_bits)
    x = random_codes(x_seed, n, 70)
    for layer in b.layers[:li]:
        _, x = golden.layer_forward(layer, x)
    _, expected = golden.layer_forward(b.layers[li], x)
    return b.layers[li], x, expected


# (layer index, PE, SIMD, input chunk, w_bits, a_bits): PE = 1, SIMD = full width, folds of 1,
# shapes that do not divide evenly, multi-bit weights and activations, the 8-bit first layer
CASES = [
    (0, 1, 70, 7, 1, 1),  # PE = 1, SIMD = full fan-in: SF = 1
    (0, 33, 1, 70, 1, 1),  # every neuron in parallel, one pixel per cycle
    (0, 4, 16, 10, 1, 1),  # 70 = 4*16 + 6: padded columns, 33 = 8*4 + 1: padded rows
    (1, 5, 9, 33, 1, 1),  # hidden layer, uneven both ways
    (1, 20, 33, 11, 1, 1),  # NF = SF = 1: the whole layer in one cycle
    (2, 2, 5, 4, 1, 1),  # last layer: signed scores
    (1, 3, 6, 33, 2, 2),  # 2-bit weights and activations
    (0, 4, 7, 7, 4, 4),  # 4-bit weights after the 8-bit input
    (2, 5, 7, 20, 2, 2),  # last layer, 2-bit
    # SF = 1 keeps the frame in registers (FrameBuffer.in_registers): one beat a frame, so a
    # frame can complete while the one before it still waits for its first read
    (0, 4, 70, 70, 1, 1),
    (1, 10, 33, 33, 1, 1),  # ... and NF = 2
    (1, 3, 33, 5, 2, 2),  # 2-bit codes, 7 beats, the frame's last beat short
]


@pytest.mark.parametrize(("li", "pe", "simd", "chunk", "w_bits", "a_bits"), CASES)
def test_mvtu_matches_golden(
    li: int, pe: int, simd: int, chunk: int, w_bits: int, a_bits: int
) -> None:
    layer, x, expected = layer_case(li * 7 + pe, 1, 5, li, w_bits, a_bits)
    np.testing.assert_array_equal(simulate_unit(layer, x, pe, simd, chunk), expected)


@pytest.mark.parametrize(("li", "pe", "simd", "chunk", "w_bits", "a_bits"), CASES)
def test_mvtu_matches_golden_under_stalls(
    li: int, pe: int, simd: int, chunk: int, w_bits: int, a_bits: int
) -> None:
    """Random pauses of the producer and back-pressure of the consumer: a stall holds every
    memory read (the frame buffer's and the weights'), a bubble reads ahead and is dropped."""
    layer, x, expected = layer_case(li * 7 + pe, 3, 6, li, w_bits, a_bits)
    got = simulate_unit(layer, x, pe, simd, chunk, stalls=li * 100 + simd)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("li", "pe", "simd", "chunk"),
    # one beat a frame (NF 2: a frame is released at the first cycle after its first read; NF
    # 9), several beats, and NF = 1 (a memory: a frame read once is freed as it is read)
    [(1, 10, 33, 33), (0, 4, 70, 70), (0, 1, 70, 7), (1, 10, 33, 11), (1, 20, 33, 33)],
)
def test_frame_in_registers_under_stalls(li: int, pe: int, simd: int, chunk: int) -> None:
    """SF = 1 (the frame buffer's registers when NF >= 2): many frames under stalls, so that a
    frame often completes while the one before it still waits (the held-back last beat) and the
    writer meets every phase of the reader."""
    layer, x, expected = layer_case(li * 7 + simd, 3, 40, li, 1, 1)
    for seed in (1, 2):
        got = simulate_unit(layer, x, pe, simd, chunk, stalls=seed)
        np.testing.assert_array_equal(got, expected)


def test_bad_parameters_are_named() -> None:
    layer = random_bundle(0, 10, (4,), 2).layers[0]
    kw = dict(weights=layer.weight_codes(), act=layer.act)
    with pytest.raises(ValueError, match=r"pe must be in 1\.\.4, not 5"):
        MVTU(**kw, in_bits=8, w_bits=1, pe=5, simd=1, in_chunk=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"simd must be in 1\.\.10, not 0"):
        MVTU(**kw, in_bits=8, w_bits=1, pe=1, simd=0, in_chunk=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "lat"), [(1, 1), (2, 1), (16, 1), (17, 2), (256, 2), (257, 3)])
def test_tree_latency(n: int, lat: int) -> None:
    assert tree_latency(n, 4) == lat


@pytest.mark.parametrize(
    ("in_bits", "w_bits", "compressor"),
    [(1, 1, True), (8, 1, False), (2, 2, False), (1, 2, False)],
)
def test_the_tree_by_product_width(in_bits: int, w_bits: int, compressor: bool) -> None:
    """1-bit x 1-bit sums are compressor trees, wider leaves adder trees; the unit's latency is
    that tree's (3 read/slice registers + tree + output register)."""
    assert uses_compressor(in_bits, w_bits) is compressor
    for simd in (1, 3, 24, 64, 200):
        layer = random_bundle(simd, simd, (4,), 2, w_bits, 1, in_bits=in_bits).layers[0]
        u = MVTU(weights=layer.weight_codes(), act=layer.act, in_bits=in_bits, w_bits=w_bits,
                 pe=1, simd=simd, in_chunk=1)  # fmt: skip
        tree = plan_latency([simd]) if compressor else tree_latency(simd, u.levels_per_stage)
        assert u.latency == 3 + tree + 1


# encodings (bundle version 4): (input enc, weight enc, activation enc, layer, PE, SIMD, chunk,
# w_bits, a_bits); the last layer's bias and offsets as a constant (NF = 1) and from a memory
ENC_CASES = [
    ("unsigned", "signed", "unsigned", 0, 4, 16, 10, 2, 2),  # AND planes and the NOR top plane
    ("signed", "unsigned", "signed", 1, 5, 9, 33, 4, 2),  # AND planes, signed inputs
    ("odd", "signed", "signed", 1, 3, 6, 33, 1, 1),  # 1-bit signed weights: one NOR plane
    ("signed", "odd", "unsigned", 2, 5, 7, 20, 2, 2),  # XNOR with signed inputs, scores, NF = 1
    ("unsigned", "signed", "signed", 2, 2, 5, 4, 2, 4),  # scores with offsets from a memory
    ("signed", "signed", "signed", 2, 1, 20, 20, 4, 2),  # PE = 1: NF = 5 offsets
]


@pytest.mark.parametrize(("ie", "we", "ae", "li", "pe", "simd", "chunk", "w_bits", "a_bits"),
                         ENC_CASES)  # fmt: skip
def test_mvtu_matches_golden_on_encodings(
    ie: str, we: str, ae: str, li: int, pe: int, simd: int, chunk: int, w_bits: int, a_bits: int
) -> None:
    from hwqnn.layers.encoding import ENCODINGS
    from hwqnn.randnet import Encodings

    encs = Encodings(ENCODINGS[ie], ENCODINGS[we], ENCODINGS[ae], bias=True)
    b = random_bundle(li * 7 + pe, 70, (33, 20), 5, w_bits, a_bits, encodings=encs)
    x = random_codes(1, 5, 70)
    for layer in b.layers[:li]:
        _, x = golden.layer_forward(layer, x)
    layer = b.layers[li]
    _, expected = golden.layer_forward(layer, x)
    assert isinstance(layer, Layer)
    np.testing.assert_array_equal(simulate_unit(layer, x, pe, simd, chunk), expected)


# the fan-in is not a multiple of the beat: the last beat carries codes past it
JUNK_CASES = [
    (0, 4, 16, 12, 1, 1),  # 70 codes in 6 beats of 12; words of 48 codes, a short last word
    (0, 3, 7, 9, 1, 1),  # 8 beats of 9, slices of 7: a read multiplexer over 9 slices a word
    (1, 5, 9, 10, 1, 1),  # 33 codes in 4 beats of 10
    (1, 3, 6, 4, 2, 2),  # 2-bit codes, 9 beats of 4
    (2, 2, 5, 3, 1, 1),  # last layer: 20 codes in 7 beats of 3
    (0, 3, 70, 12, 1, 1),  # SF = 1 (registers): 6 beats of 12, the last word's beats moved
]


@pytest.mark.parametrize(("li", "pe", "simd", "chunk", "w_bits", "a_bits"), JUNK_CASES)
def test_codes_past_the_fan_in_do_not_count(
    li: int, pe: int, simd: int, chunk: int, w_bits: int, a_bits: int
) -> None:
    layer, x, expected = layer_case(li * 5 + simd, 2, 4, li, w_bits, a_bits)
    assert layer.in_features % chunk  # the case needs codes past the fan-in
    np.testing.assert_array_equal(simulate_unit(layer, x, pe, simd, chunk, junk=True), expected)
