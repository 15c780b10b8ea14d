"""How each bundle layer becomes hardware: its units, its beat widths and the one cycle formula
per layer kind. The network builder, the folding chooser, the manifest and the op counter all
read this plan, so a fact about a kind is derived once.

Units per kind (see :mod:`hwqnn.hw.network`)::

    dense       MVTU                        cycles/frame  NF * SF
    conv2d      SlidingWindow -> MVTU       cycles/frame  max(pixel beats, P * max(NF*SF, k*k))
    maxpool2d   SlidingWindow -> MaxReduce  cycles/frame  max(pixel beats, P * k*k)

with ``P`` the window positions, ``k`` the kernel and pixel beats ``H * W * C / in_chunk`` (the
image written into the window unit's memory). A weighted layer (dense, conv2d) has a folding
(PE, SIMD) on its matrix; a convolution's PE divides its channels, so its output pixels leave as
whole beats, which is what the next window unit takes (``in_chunk`` divides the channels).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwqnn.bundle import Bundle, Layer
from hwqnn.errors import InputError
from hwqnn.intmath import ceil_div
from hwqnn.layers import Window, matrix_of, window_of


class FoldingError(InputError):
    """A folding that does not fit the network; the message names the layer."""


@dataclass(frozen=True)
class LayerFold:
    pe: int
    simd: int

    def nf(self, rows: int) -> int:
        return ceil_div(rows, self.pe)

    def sf(self, cols: int) -> int:
        return ceil_div(cols, self.simd)

    def cycles(self, rows: int, cols: int) -> int:
        return self.nf(rows) * self.sf(cols)

    def __str__(self) -> str:
        return f"{self.pe}x{self.simd}"


@dataclass(frozen=True)
class Stage:
    """One bundle layer in hardware."""

    index: int
    kind: str
    in_chunk: int  # codes per input beat
    out_chunk: int  # codes per output beat
    in_bits: int
    out_bits: int
    in_size: int  # codes per frame in
    matrix: Layer | None  # the MVTU's matrix (dense, conv2d)
    pe: int  # 0 without a matrix
    simd: int
    window: Window | None  # conv2d, maxpool2d
    cycles: int  # cycles per frame

    @property
    def vectors(self) -> int:
        """Matrix-vector products per frame (window positions for a convolution)."""
        return self.window.positions if self.window is not None and self.matrix else 1

    @property
    def nf(self) -> int:
        return ceil_div(self.matrix.out_features, self.pe) if self.matrix else 0

    @property
    def sf(self) -> int:
        return ceil_div(self.matrix.in_features, self.simd) if self.matrix else 0

    @property
    def in_beats(self) -> int:
        return ceil_div(self.in_size, self.in_chunk)


def weighted(bundle: Bundle) -> list[tuple[int, Layer, Window | None]]:
    """``(layer index, matrix, window or None)`` of each layer that is folded."""
    out = []
    for i, ly in enumerate(bundle.layers):
        m = matrix_of(ly)
        if m is not None:
            out.append((i, m, window_of(ly)))
    return out


def largest_divisor_at_most(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, max(1, cap)) + 1) if n % d == 0)


def first_chunk(bundle: Bundle, axis_bits: int) -> int:
    """Codes per ``s_axis`` beat: as many as the bus holds, and for an image-shaped first layer a
    divisor of its channels (a beat never splits across pixels)."""
    first = bundle.layers[0]
    cap = max(1, axis_bits // bundle.raw_bits)  # the beat carries raw values (pixels)
    w = window_of(first)
    if w is not None:
        return largest_divisor_at_most(w.channels, cap)
    return max(1, min(cap, first.in_size))


def plan(bundle: Bundle, folds: list[LayerFold], axis_bits: int) -> list[Stage]:
    """The stages of ``bundle`` under ``folds`` (one per weighted layer, in order)."""
    w_layers = weighted(bundle)
    if len(folds) != len(w_layers):
        pools = " with weights" if len(w_layers) != len(bundle.layers) else ""
        raise FoldingError(
            f"folding names {len(folds)} layer(s), the bundle has {len(w_layers)}{pools}"
        )
    fold_at = {i: f for (i, _, _), f in zip(w_layers, folds, strict=True)}
    stages: list[Stage] = []
    chunk = first_chunk(bundle, axis_bits)
    for i, ly in enumerate(bundle.layers):
        m, w = matrix_of(ly), window_of(ly)
        if w is not None:
            if w.channels % chunk:
                raise FoldingError(
                    f"layer {i}: its {w.channels} input channels arrive {chunk} codes a beat; a "
                    "window unit needs a divisor of its channels (fold the layer before it with "
                    "a PE that divides its outputs)"
                )
            in_chunk = chunk
            pixel_beats = w.height * w.width * (w.channels // chunk)
        else:
            in_chunk = min(chunk, ly.in_size)
            pixel_beats = 0
        pe = simd = 0
        if m is not None:
            f = fold_at[i]
            pe, simd = f.pe, f.simd
            if not 1 <= pe <= m.out_features:
                raise FoldingError(
                    f"layer {i}: PE must be in 1..{m.out_features} (its outputs), not {pe}"
                )
            if not 1 <= simd <= m.in_features:
                raise FoldingError(
                    f"layer {i}: SIMD must be in 1..{m.in_features} (its fan-in), not {simd}"
                )
            if w is not None and m.out_features % pe:
                raise FoldingError(
                    f"layer {i}: a convolution's PE must divide its {m.out_features} channels, "
                    f"not {pe}"
                )
            per_vector = ceil_div(m.out_features, pe) * ceil_div(m.in_features, simd)
            if w is None:
                cycles = per_vector
            else:
                cycles = max(pixel_beats, w.positions * max(per_vector, w.kernel**2))
            out_chunk = pe
        else:
            assert w is not None
            cycles = max(pixel_beats, w.positions * w.kernel**2)
            out_chunk = w.channels
        stages.append(
            Stage(
                index=i,
                kind=ly.kind,
                in_chunk=in_chunk,
                out_chunk=out_chunk,
                in_bits=ly.in_bits,
                out_bits=ly.out_bits,
                in_size=ly.in_size,
                matrix=m,
                pe=pe,
                simd=simd,
                window=w,
                cycles=cycles,
            )
        )
        chunk = out_chunk
    return stages
