# amaranth: UnusedElaboratable=no
from __future__ import annotations

import math
from pathlib import Path

import pytest

from hwqnn.hw.emit import generate
from hwqnn.hw.folding import (
    LANE_SLACK,
    FoldingError,
    LayerFold,
    choose_folding,
    cycle_grid,
    cycles_per_frame,
    estimate_luts,
    fold_for_target,
    folding_for_budget,
    folding_for_fps,
    parse_folding,
)
from hwqnn.hw.network import Top
from hwqnn.hw.plan import plan
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
        Top(plan(b, choose_folding(b, 40), bad))


@pytest.mark.parametrize(
    ("axis", "chunk", "beats"), [(8, 1, 70), (24, 3, 24), (64, 8, 9), (1024, 70, 1)]
)
def test_axis_bits_set_the_port_and_the_beats(
    tmp_path: Path, axis: int, chunk: int, beats: int
) -> None:
    b = random_bundle(0, 70, (33,), 5)
    ports = generate(plan(b, choose_folding(b, 40, axis), axis), tmp_path).ports
    assert (ports.s_tdata_bits, ports.in_chunk, ports.in_beats) == (axis, chunk, beats)
    verilog = (tmp_path / "hwqnn_top.v").read_text()
    assert f"input [{axis - 1}:0] s_axis_tdata;" in verilog


def test_folding_for_fps_is_the_balance_at_that_many_cycles() -> None:
    b = random_bundle(3, 100, (64, 48), 10)
    folds = folding_for_fps(b, 250_000, 100.0)  # 400 cycles per frame at 100 MHz
    assert cycles_per_frame(b, folds) <= 400
    assert folds == choose_folding(b, 400)
    with pytest.raises(FoldingError, match=r"needs 10 cycles/frame, but a frame is 13 beats of 64"):
        folding_for_fps(b, 10e6, 100.0)  # 100 codes at 8 per beat: 13 beats
    with pytest.raises(FoldingError, match="must be positive"):
        folding_for_fps(b, 0, 100.0)


def test_folding_for_budget_is_the_fastest_on_the_grid_that_fits() -> None:
    b = random_bundle(3, 100, (64, 48), 10)
    grid = cycle_grid(b)
    assert grid[0] == 13 and grid[-1] == 64 * 100 and grid == sorted(set(grid))
    middle = choose_folding(b, grid[len(grid) // 2])
    budget = math.ceil(estimate_luts(plan(b, middle)))
    folds = folding_for_budget(b, budget)
    assert estimate_luts(plan(b, folds)) <= budget
    assert cycles_per_frame(b, folds) <= cycles_per_frame(b, middle)
    for c in grid:  # every faster point on the grid is over the budget
        f = choose_folding(b, c)
        if cycles_per_frame(b, f) < cycles_per_frame(b, folds):
            assert estimate_luts(plan(b, f)) > budget
    with pytest.raises(FoldingError, match=r"most folded design is estimated at [\d,]+ LUTs"):
        folding_for_budget(b, 10)


def test_rtl_goal_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hwqnn import bundle as bundle_io
    from hwqnn.cli import main

    p = bundle_io.save(random_bundle(3, 100, (64, 48), 10), tmp_path / "b.npz")
    assert main(["rtl", str(p), "-o", str(tmp_path / "r"), "--target-fps", "500000"]) == 0
    out = capsys.readouterr().out
    assert "frames/s at 100 MHz" in out and "xc7 LUTs (model" in out
    assert main(["rtl", str(p), "-o", str(tmp_path / "r"), "--lut-budget", "9000",
                 "--target-cycles", "64"]) == 2  # fmt: skip
    assert "give one of --target-cycles / --lut-budget, not several" in capsys.readouterr().err


def test_frame_buffer_in_registers_is_priced_as_its_beat_multiplexer() -> None:
    """SF = 1 read at least twice: registers (the held-back beat's multiplexer only); read once,
    or in several slices: the two-frame LUT RAM."""
    from hwqnn.hw.resources import frame_buffer_luts

    assert frame_buffer_luts(784, 1, 64, 784, nf=1024) == 64
    assert frame_buffer_luts(784, 1, 64, 784, nf=1) > 500  # 784 bits x 2 words of RAM32M
    assert frame_buffer_luts(1024, 1, 1, 256, nf=256) > 150


def test_conv_and_pool_stages_price_their_window_units() -> None:
    """A conv stage's estimate is its MVTU's plus its window's, a pool stage's its window's and
    its max-reduce's; the whole design's estimate carries them."""
    from hwqnn.arch import parse_arch
    from hwqnn.hw import stages
    from hwqnn.hw.folding import balance, estimate_luts
    from hwqnn.hw.resources import reduce_luts, window_luts
    from hwqnn.randnet import random_net

    b = random_net(1, parse_arch("cnv:8c3-mp2-16c3-fc32", 1, 1), (12, 12, 1), 4)
    p = plan(b, balance(b))
    windows = 0.0
    kinds = []
    for st in p.stages:
        if isinstance(st, stages.ConvStage):
            w = window_luts(st.window, st.in_bits)
            assert st.luts() == stages.MatrixStage.luts(st) + w
            windows += w
        elif isinstance(st, stages.PoolStage):
            w = window_luts(st.window, st.in_bits)
            assert st.luts() == w + reduce_luts(st.window.channels, st.in_bits)
            windows += st.luts()
        kinds.append(type(st).__name__)
    assert kinds.count("ConvStage") == 2 and kinds.count("PoolStage") == 1
    assert windows >= 3 * 165
    mvtus = sum(
        stages.MatrixStage.luts(st) for st in p.stages if isinstance(st, stages.MatrixStage)
    )
    assert estimate_luts(p) - windows - mvtus > 0  # the per-unit and top terms remain
