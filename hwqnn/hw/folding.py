"""Folding: how many output neurons (PE) and input elements (SIMD) a layer's unit does per cycle.

A layer with ``rows`` outputs and fan-in ``cols`` takes ``NF * SF`` cycles per frame, with the
neuron fold ``NF = ceil(rows / PE)`` and the synapse fold ``SF = ceil(cols / SIMD)`` (FINN's
matrix-vector-threshold unit). PE and SIMD need not divide the shape: rows and columns are padded
(pad neurons are dropped, pad inputs are masked to 0). The pipeline's initiation interval is the
slowest layer's cycles per frame (:class:`hwqnn.hw.plan.Plan`; each kind's formula is in
:mod:`hwqnn.hw.stages`).
"""

from __future__ import annotations

import math
import re

from hwqnn.bundle import Bundle
from hwqnn.hw.fold_choice import LANE_SLACK, fold_for_target
from hwqnn.hw.manifest import DEFAULT_AXIS_BITS
from hwqnn.hw.plan import (
    MAX_LANES,
    FoldingError,
    LayerFold,
    Plan,
    first_chunk,
    input_beats,
    plan,
)
from hwqnn.hw.stages import stage_class

__all__ = ["LANE_SLACK", "MAX_LANES", "fold_for_target", "input_beats"]


def validate_folding(
    bundle: Bundle, folds: list[LayerFold], axis_bits: int = DEFAULT_AXIS_BITS
) -> None:
    """Raise :class:`FoldingError` naming the layer if a PE or SIMD does not fit."""
    plan(bundle, folds, axis_bits)


def parse_folds(text: str) -> list[LayerFold]:
    """Parse ``"16x49,16x64,10x32"`` (PExSIMD per folded layer); :func:`hwqnn.hw.plan.plan`
    checks it against a bundle."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    folds = []
    for i, p in enumerate(parts):
        m = re.fullmatch(r"(\d+)x(\d+)", p)
        if not m:
            raise FoldingError(f"layer {i}: folding must look like PExSIMD (e.g. 16x64), not {p!r}")
        folds.append(LayerFold(int(m.group(1)), int(m.group(2))))
    return folds


def parse_folding(text: str, bundle: Bundle) -> list[LayerFold]:
    """:func:`parse_folds`, validated against ``bundle``."""
    folds = parse_folds(text)
    validate_folding(bundle, folds)
    return folds


def choose_folding(
    bundle: Bundle, target_cycles: int | None = None, axis_bits: int = DEFAULT_AXIS_BITS
) -> list[LayerFold]:
    """:func:`balance`, validated (:func:`hwqnn.hw.plan.plan`)."""
    folds = balance(bundle, target_cycles, axis_bits)
    validate_folding(bundle, folds, axis_bits)
    return folds


def balance(
    bundle: Bundle, target_cycles: int | None = None, axis_bits: int = DEFAULT_AXIS_BITS
) -> list[LayerFold]:
    """Balance every folded layer to ``target_cycles`` per frame (default: a budget that keeps
    simulation quick: 1024 cycles, or fewer for small nets). Layer 0 is fed ``axis_bits //
    in_bits`` codes per beat, every later layer its producer's beat; a convolution's budget is
    shared by its window positions."""
    if target_cycles is None:
        work = max(stage_class(ly, i).lane_cycles(ly) for i, ly in enumerate(bundle.layers))
        target_cycles = max(1, min(1024, work // 16), window_floor(bundle))
    if target_cycles < 1:
        raise FoldingError(f"target cycles per frame must be >= 1, not {target_cycles}")
    folds: list[LayerFold] = []
    chunk = first_chunk(bundle, axis_bits)
    for i, ly in enumerate(bundle.layers):
        cls = stage_class(ly, i)
        f = cls.choose_fold(ly, target_cycles, chunk)
        if f is not None:
            folds.append(f)
        chunk = cls.next_chunk(ly, f, chunk)
    return folds


TOP_LUTS = 40  # register slices, reset and the collector, about (small nets' hierarchical synth)
# Per unit, beyond the terms of :func:`layer_luts` (counters, address and control logic,
# threshold memories): fitted by least squares to four small nets synthesized with xc7 at
# 64-256 cycles/frame (64(8b)-128-128-4, 100(8b)-64-48-10, 256(1b)-128-10, 196(2b)-96-96-10;
# residuals -101..+113 LUTs). Held out, the demo shape 784(8b)-512x3-10 at 256..4096
# cycles/frame: -2.5 % to -18 % (was -6 % to -41 % without it).
LAYER_LUTS = 220


def window_floor(bundle: Bundle) -> int:
    """The fewest cycles per frame the window units allow (they give one pixel a cycle), 0 for
    a net without them: the default folding balances the MVTUs to it rather than below it."""
    return max(stage_class(ly, i).window_floor(ly) for i, ly in enumerate(bundle.layers))


def estimate_luts(p: Plan) -> float:
    """The LUT model of :mod:`hwqnn.hw.resources` for a whole design (xc7 LUTs)."""
    return float(TOP_LUTS + LAYER_LUTS * len(p.folds)) + sum(st.luts() for st in p.stages)


def cycles_per_frame(
    bundle: Bundle, folds: list[LayerFold], axis_bits: int = DEFAULT_AXIS_BITS
) -> int:
    """The pipeline's interval under ``folds`` (:attr:`hwqnn.hw.plan.Plan.cycles_per_frame`)."""
    return plan(bundle, folds, axis_bits).cycles_per_frame


def folding_for_fps(
    bundle: Bundle, fps: float, clock_mhz: float, axis_bits: int = DEFAULT_AXIS_BITS
) -> list[LayerFold]:
    """The cheapest balanced folding that reaches ``fps`` frames/s at ``clock_mhz`` (not yet
    validated: plan it)."""
    if not (fps > 0 and clock_mhz > 0):
        raise FoldingError(f"target fps and clock must be positive, not {fps!r} at {clock_mhz!r}")
    cycles = math.floor(clock_mhz * 1e6 / fps)
    beats = input_beats(bundle, axis_bits)
    if cycles < beats:
        raise FoldingError(
            f"{fps:g} frames/s at {clock_mhz:g} MHz needs {cycles} cycles/frame, but a frame is "
            f"{beats} beats of {axis_bits} bits: widen --axis-bits or raise the clock"
        )
    return balance(bundle, cycles, axis_bits)


def cycle_grid(
    bundle: Bundle, axis_bits: int = DEFAULT_AXIS_BITS, steps_per_octave: int = 4
) -> list[int]:
    """Cycles/frame targets from the input's beats per frame (the fastest a design can take
    frames) to the largest layer's rows x cols (one lane), ``steps_per_octave`` per doubling."""
    beats = input_beats(bundle, axis_bits)
    slowest = max(
        beats, *(stage_class(ly, i).lane_cycles(ly) for i, ly in enumerate(bundle.layers))
    )
    grid: list[int] = []
    k = 0
    while True:
        c = min(slowest, math.floor(beats * 2 ** (k / steps_per_octave)))
        if not grid or c > grid[-1]:
            grid.append(c)
        if c >= slowest:
            return grid
        k += 1


def folding_for_budget(
    bundle: Bundle, lut_budget: int, axis_bits: int = DEFAULT_AXIS_BITS
) -> list[LayerFold]:
    """The fastest folding on :func:`cycle_grid` whose estimated LUTs (:func:`estimate_luts`)
    fit ``lut_budget``."""
    grid = cycle_grid(bundle, axis_bits)
    for cycles in grid:
        folds = balance(bundle, cycles, axis_bits)
        if estimate_luts(plan(bundle, folds, axis_bits)) <= lut_budget:
            return folds
    smallest = estimate_luts(plan(bundle, balance(bundle, grid[-1], axis_bits), axis_bits))
    raise FoldingError(
        f"the most folded design is estimated at {smallest:,.0f} LUTs, over the budget of "
        f"{lut_budget:,}"
    )
