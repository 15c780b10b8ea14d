# amaranth: UnusedElaboratable=no
from __future__ import annotations

from pathlib import Path

import pytest

from hwqnn.hw.emit import generate
from hwqnn.hw.folding import (
    LANE_SLACK,
    FoldingError,
    LayerFold,
    choose_folding,
    fold_for_target,
    parse_folding,
)
from hwqnn.hw.network import Top
from hwqnn.hw.resources import layer_luts
from hwqnn.randnet import random_bundle


def _est(f: LayerFold, rows: int, cols: int, chunk: int) -> float:
    return layer_luts(rows, cols, f.pe, f.simd, min(chunk, cols), 1, 1, cols.bit_length())


@pytest.mark.parametrize(
    ("rows", "cols", "target", "chunk"),
    [(256, 784, 1024, 8), (10, 256, 64, 1), (33, 70, 40, 7), (7, 3, 1, 1), (100, 100, 10**6, 3)],
)
def test_chooser_meets_target_near_fewest_lanes(
    rows: int, cols: int, target: int, chunk: int
) -> None:
    f = fold_for_target(rows, cols, target, chunk)
    assert f.cycles(rows, cols) <= target
    meeting = [
        LayerFold(pe, simd)
        for pe in range(1, rows + 1)
        for simd in range(1, cols + 1)
        if LayerFold(pe, simd).cycles(rows, cols) <= target
    ]
    best = min(g.pe * g.simd for g in meeting)
    assert f.pe * f.simd <= LANE_SLACK * best
    fewest = [g for g in meeting if g.pe * g.simd == best]
    assert _est(f, rows, cols, chunk) <= min(_est(g, rows, cols, chunk) for g in fewest)


def test_chooser_prefers_simd_that_fits_the_beat() -> None:
    # 784 inputs in beats of 8 codes: a SIMD of 49 (784 = 16 x 49) would need a width-converting
    # multiplexer; the chooser takes a multiple or divisor of 8 instead
    f = fold_for_target(512, 784, 1024, 8)
    assert f.simd % 8 == 0 or 8 % f.simd == 0


def test_choose_balances_layers() -> None:
    b = random_bundle(0, 784, (256, 256), 10)
    folds = choose_folding(b, 512)
    cycles = [
        f.cycles(ly.out_features, ly.in_features) for f, ly in zip(folds, b.layers, strict=True)
    ]
    assert max(cycles) <= 512


def test_parse_and_errors() -> None:
    b = random_bundle(0, 70, (33,), 5)
    assert parse_folding("4x16, 1x33", b) == [LayerFold(4, 16), LayerFold(1, 33)]
    with pytest.raises(FoldingError, match="folding names 1 layer"):
        parse_folding("4x16", b)
    with pytest.raises(FoldingError, match=r"layer 1: PE must be in 1..5 \(its outputs\), not 6"):
        parse_folding("4x16,6x1", b)
    with pytest.raises(
        FoldingError, match=r"layer 0: SIMD must be in 1..70 \(its fan-in\), not 71"
    ):
        parse_folding("1x71,1x1", b)
    with pytest.raises(FoldingError, match="layer 0: folding must look like PExSIMD"):
        parse_folding("4*16,1x1", b)
    with pytest.raises(FoldingError, match="target cycles per frame must be >= 1, not 0"):
        choose_folding(b, 0)


@pytest.mark.parametrize("bad", [0, 4, 12, 1032, 2048])
def test_axis_bits_must_be_a_byte_multiple_in_range(bad: int) -> None:
    b = random_bundle(0, 70, (33,), 5)
    with pytest.raises(
        FoldingError, match=rf"axis bits must be a multiple of 8 in 8\.\.1024, not {bad}"
    ):
        Top(b, choose_folding(b, 40), bad)


@pytest.mark.parametrize(
    ("axis", "chunk", "beats"), [(8, 1, 70), (24, 3, 24), (64, 8, 9), (1024, 70, 1)]
)
def test_axis_bits_set_the_port_and_the_beats(
    tmp_path: Path, axis: int, chunk: int, beats: int
) -> None:
    b = random_bundle(0, 70, (33,), 5)
    ports = generate(b, choose_folding(b, 40, axis), tmp_path, axis)["ports"]
    assert (ports["s_tdata_bits"], ports["in_chunk"], ports["in_beats"]) == (axis, chunk, beats)
    verilog = (tmp_path / "hwqnn_top.v").read_text()
    assert f"input [{axis - 1}:0] s_axis_tdata;" in verilog
