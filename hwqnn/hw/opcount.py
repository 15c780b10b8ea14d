"""One layer's operation counts per frame, as the hardware is generated (the stages of
:mod:`hwqnn.hw.stages` fill them in; :mod:`hwqnn.ops` defines each count and prices them)."""

from __future__ import annotations

from dataclasses import dataclass


def tree_add_bits(simd: int, leaf_bits: int) -> tuple[int, int]:
    """(additions, sum of their widths) of the balanced tree over ``simd`` leaves."""
    n, width, adds, bits = simd, leaf_bits, 0, 0
    while n > 1:
        pairs = n // 2
        width += 1
        adds += pairs
        bits += pairs * width
        n = pairs + n % 2
    return adds, bits


@dataclass(frozen=True)
class LayerOps:
    layer: int
    kind: str
    title: str  # how reports name the layer
    vectors: int
    rows: int
    cols: int
    pe: int
    simd: int
    xnor_bits: int
    lane_cycles: int
    issue_cycles: int
    adds: int
    add_bits: int
    compares: int
    compare_bits: int
    weight_bits_read: int
    act_bits_read: int
    macs: int
    activations: int = 0  # outputs through a folded BatchNorm and activation (thresholds)
