"""The hardware plan of a bundle under a folding: one :mod:`stage <hwqnn.hw.stages>` per layer,
built once per command and handed to everything that asks about the design (the network
builder, the manifest, the LUT model, the op counter, fault localisation).

The input side: ``s_axis`` beats carry raw values (pixels) of the bundle's ``raw_bits``; a beat
holds as many as the bus does and, for an image-shaped first layer, a divisor of its channels (a
beat never splits across pixels). Each later layer is fed its producer's output beat.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwqnn.bundle import Bundle
from hwqnn.hw.layerfold import FoldingError, LayerFold
from hwqnn.hw.manifest import DEFAULT_AXIS_BITS
from hwqnn.hw.stages import Stage, stage_class
from hwqnn.intmath import ceil_div

MAX_LANES = 1 << 16  # PE * SIMD of one layer
AXIS_BITS_RANGE = (8, 1024)


def largest_divisor_at_most(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, max(1, cap)) + 1) if n % d == 0)


def first_chunk(bundle: Bundle, axis_bits: int) -> int:
    """Codes per ``s_axis`` beat: as many as the bus holds, and for an image-shaped first layer a
    divisor of its channels (a beat never splits across pixels)."""
    first = bundle.layers[0]
    cap = max(1, axis_bits // bundle.raw_bits)  # the beat carries raw values (pixels)
    if len(first.in_shape) == 3:
        return largest_divisor_at_most(first.in_shape[-1], cap)
    return max(1, min(cap, first.in_size))


def check_axis_bits(axis_bits: int, in_bits: int) -> None:
    """Raise :class:`FoldingError` unless ``axis_bits`` is a usable ``s_axis_tdata`` width."""
    lo, hi = AXIS_BITS_RANGE
    if not isinstance(axis_bits, int) or not lo <= axis_bits <= hi or axis_bits % 8:
        raise FoldingError(f"axis bits must be a multiple of 8 in {lo}..{hi}, not {axis_bits!r}")
    if axis_bits < in_bits:
        raise FoldingError(f"axis bits ({axis_bits}) must hold one {in_bits}-bit input code")


def folded_layers(bundle: Bundle) -> list[int]:
    """Indices of the layers that take a folding (one ``PExSIMD`` each), in order."""
    return [i for i, ly in enumerate(bundle.layers) if stage_class(ly, i).folded]


@dataclass(frozen=True)
class Plan:
    """``bundle`` in hardware under ``folds`` with ``axis_bits``-bit input beats."""

    bundle: Bundle
    folds: tuple[LayerFold, ...]
    axis_bits: int
    stages: tuple[Stage, ...]

    @property
    def in_chunk(self) -> int:
        return self.stages[0].in_chunk

    @property
    def in_beats(self) -> int:
        """``s_axis`` beats per frame."""
        return self.stages[0].in_beats

    @property
    def cycles_per_frame(self) -> int:
        """The pipeline's interval: its slowest stage, or the input beats of a frame."""
        return max(self.in_beats, *(st.cycles for st in self.stages))

    @property
    def slowest_layer(self) -> int:
        return max(range(len(self.stages)), key=lambda i: self.stages[i].cycles)

    @property
    def folding(self) -> str:
        return ",".join(str(f) for f in self.folds)


def plan(bundle: Bundle, folds: list[LayerFold] | tuple[LayerFold, ...],
         axis_bits: int = DEFAULT_AXIS_BITS) -> Plan:  # fmt: skip
    """The validated plan of ``bundle`` under ``folds`` (one per folded layer, in order); a
    :class:`FoldingError` names the layer that does not fit."""
    check_axis_bits(axis_bits, bundle.raw_bits)
    at = folded_layers(bundle)
    if len(folds) != len(at):
        pools = " with weights" if len(at) != len(bundle.layers) else ""
        raise FoldingError(f"folding names {len(folds)} layer(s), the bundle has {len(at)}{pools}")
    for i, f in zip(at, folds, strict=True):
        if f.pe * f.simd > MAX_LANES:
            raise FoldingError(f"layer {i}: PE*SIMD = {f.pe * f.simd} exceeds {MAX_LANES} lanes")
    fold_at = dict(zip(at, folds, strict=True))
    stages: list[Stage] = []
    chunk = first_chunk(bundle, axis_bits)
    for i, ly in enumerate(bundle.layers):
        st = stage_class(ly, i).plan(i, ly, fold_at.get(i), chunk)
        stages.append(st)
        chunk = st.out_chunk
    return Plan(bundle, tuple(folds), axis_bits, tuple(stages))


def input_beats(bundle: Bundle, axis_bits: int) -> int:
    """``s_axis`` beats per frame: the fewest cycles per frame any folding can reach."""
    return ceil_div(bundle.in_features, first_chunk(bundle, axis_bits))


__all__ = [
    "FoldingError",
    "LayerFold",
    "Plan",
    "check_axis_bits",
    "first_chunk",
    "folded_layers",
    "plan",
]
