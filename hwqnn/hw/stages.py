"""The back-end half of the layer-kind registry: one hardware stage class per bundle ``kind``.

A stage is one bundle layer in hardware. Its class answers every question the back end asks of
that kind, so nothing outside this module (and :mod:`hwqnn.layers`) asks which kind it holds:

=============  ==============================  ===============================================
kind           units                           cycles per frame
=============  ==============================  ===============================================
``dense``      MVTU                            ``NF * SF``
``conv2d``     SlidingWindow -> MVTU           ``max(pixel beats, P * max(NF*SF, k*k))``
``maxpool2d``  SlidingWindow -> MaxReduce      ``max(pixel beats, P * k*k)``
=============  ==============================  ===============================================

with ``P`` the window positions, ``k`` the kernel and pixel beats ``H * W * C / in_chunk`` (the
image written into the window unit's memory). A weighted kind (:class:`MatrixStage`) has a
folding (PE, SIMD) on its matrix; a convolution's PE divides its channels, so its output pixels
leave as whole beats, which is what the next window unit takes (``in_chunk`` divides the
channels).

Per stage: :meth:`Stage.units` (its Amaranth components, named as synthesis groups them),
:meth:`Stage.entry` (its manifest row), :meth:`Stage.latency` (cycles it adds to a frame's
latency, or ``None`` where not modelled), :meth:`Stage.ops` (op counts), :meth:`Stage.luts`
(the LUT model's terms) and :meth:`Stage.localize` (fault localisation on a unit bench).
Per class, before any folding exists: :meth:`Stage.choose_fold`, :meth:`Stage.lane_cycles` and
:meth:`Stage.window_floor` (what the folding chooser needs) and :meth:`Stage.plan` (the stage
under a folding, validated). A new kind is one class here, registered with :func:`stage_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from amaranth.lib import wiring

from hwqnn.errors import InputError
from hwqnn.hw.fold_choice import fold_for_target
from hwqnn.hw.layerfold import FoldingError, LayerFold
from hwqnn.hw.manifest import LayerEntry, WindowEntry
from hwqnn.hw.mvtu import MVTU
from hwqnn.hw.opcount import LayerOps, tree_add_bits
from hwqnn.hw.resources import layer_luts, reduce_luts, window_luts
from hwqnn.hw.window import MaxReduce, SlidingWindow
from hwqnn.intmath import ceil_div
from hwqnn.layers import Conv2d, Layer, MaxPool2d, NetLayer, Window
from hwqnn.layers.activation import Scores
from hwqnn.packing import level_scale

STAGES: dict[str, type[Stage]] = {}

# ``run(layer index, matrix, fold, in_chunk, rows)``: the codes (or scores) ``int64[len(rows),
# out]`` that the layer's MVTU alone gives for input vectors ``rows`` (a unit bench, run by
# :mod:`hwqnn.verify_rtl`)
UnitBench = Callable[[int, Layer, LayerFold, int, np.ndarray], np.ndarray]


def stage_for(kind: str) -> Callable[[type[Stage]], type[Stage]]:
    """Register a stage class under the bundle's ``kind`` string."""

    def register(cls: type[Stage]) -> type[Stage]:
        cls.kind = kind
        STAGES[kind] = cls
        return cls

    return register


def stage_class(layer: NetLayer, index: int | None = None) -> type[Stage]:
    """The stage class of ``layer``'s kind; an unknown kind is refused in one line."""
    cls = STAGES.get(layer.kind)
    if cls is None:
        where = f"layer {index}: " if index is not None else ""
        raise InputError(f"{where}the hardware back end has no {layer.kind!r} layers")
    return cls


@dataclass(frozen=True)
class Units:
    """A stage's Amaranth components in stream order, named as synthesis groups them; ``mvtu``
    is the one whose perf counters and output the network reads, if the kind has one."""

    named: tuple[tuple[str, wiring.Component], ...]
    mvtu: MVTU | None = None


@dataclass(frozen=True)
class Fault:
    """The first output of a layer's unit, run alone, that differs from golden."""

    layer: int
    neuron: int
    golden: int
    rtl: int
    what: str  # "code" or "score"


@dataclass(frozen=True)
class Stage:
    """One bundle layer in hardware (see the module docstring)."""

    kind: ClassVar[str]
    folded: ClassVar[bool] = False  # takes a LayerFold (PE x SIMD)

    index: int
    layer: NetLayer
    in_chunk: int  # codes per input beat
    out_chunk: int  # codes per output beat
    cycles: int  # cycles per frame

    @property
    def in_bits(self) -> int:
        return self.layer.in_bits

    @property
    def out_bits(self) -> int:
        return self.layer.out_bits

    @property
    def in_size(self) -> int:
        return self.layer.in_size

    @property
    def in_beats(self) -> int:
        return ceil_div(self.in_size, self.in_chunk)

    @property
    def title(self) -> str:
        """How reports name the layer: its index, and its kind unless dense."""
        return f"{self.index} ({self.kind})"

    # --- what the folding chooser asks of a layer of this kind, before any folding exists ---

    @classmethod
    def lane_cycles(cls, layer: NetLayer) -> int:
        """Cycles per frame of one lane (PE = SIMD = 1): the slowest the layer can be."""
        return 0

    @classmethod
    def window_floor(cls, layer: NetLayer) -> int:
        """The fewest cycles per frame its window unit allows (one pixel a cycle), or 0."""
        return 0

    @classmethod
    def choose_fold(cls, layer: NetLayer, target: int, chunk: int) -> LayerFold | None:
        """A folding that meets ``target`` cycles per frame fed ``chunk`` codes a beat."""
        return None

    @classmethod
    def next_chunk(cls, layer: NetLayer, fold: LayerFold | None, chunk: int) -> int:
        """Codes per output beat under ``fold``."""
        return layer.out_shape[-1]

    @classmethod
    def plan(cls, index: int, layer: NetLayer, fold: LayerFold | None, chunk: int) -> Stage:
        """The stage under ``fold`` fed ``chunk`` codes a beat, validated (a
        :class:`FoldingError` names the layer)."""
        raise NotImplementedError

    # --- what the generator, the manifest, the op counter and verification ask ---

    def units(self) -> Units:
        raise NotImplementedError

    def entry(self, units: Units) -> LayerEntry:
        """Its row in the manifest's ``layers``."""
        raise NotImplementedError

    def window_entry(self) -> WindowEntry | None:
        """Its window unit's geometry, for the manifest (``None``: no window unit)."""
        return None

    def latency(self, units: Units) -> int | None:
        """Cycles this stage adds to one frame's latency in an empty pipeline, or ``None``
        where that is not modelled."""
        return None

    def ops(self) -> LayerOps:
        raise NotImplementedError

    def luts(self) -> float:
        """The LUT model's terms for this stage beyond :data:`LAYER_LUTS` (0: not modelled)."""
        return 0.0

    def localize(self, x: np.ndarray, expected: np.ndarray, run: UnitBench) -> Fault | None:
        """Run the stage's unit alone on golden inputs ``x`` (one image); the first output that
        differs from ``expected``, or ``None`` (also for a kind without a unit bench)."""
        return None


def _window_entry(w: Window) -> WindowEntry:
    return WindowEntry(w.in_shape, w.kernel, w.stride, w.pad)


def _window_chunk(index: int, w: Window, chunk: int) -> int:
    if w.channels % chunk:
        raise FoldingError(
            f"layer {index}: its {w.channels} input channels arrive {chunk} codes a beat; a "
            "window unit needs a divisor of its channels (fold the layer before it with "
            "a PE that divides its outputs)"
        )
    return chunk


@dataclass(frozen=True)
class MatrixStage(Stage):
    """A weighted kind: an MVTU multiplying ``matrix`` by ``vectors`` input vectors a frame,
    fed ``mv_chunk`` codes a beat."""

    folded: ClassVar[bool] = True
    pe_divides: ClassVar[bool] = False  # PE must divide the rows (outputs leave as whole pixels)

    matrix: Layer
    fold: LayerFold
    vectors: int
    mv_chunk: int

    @property
    def pe(self) -> int:
        return self.fold.pe

    @property
    def simd(self) -> int:
        return self.fold.simd

    @property
    def nf(self) -> int:
        return self.fold.nf(self.matrix.out_features)

    @property
    def sf(self) -> int:
        return self.fold.sf(self.matrix.in_features)

    @classmethod
    def matrix_of(cls, layer: NetLayer) -> Layer:
        raise NotImplementedError

    @classmethod
    def vectors_of(cls, layer: NetLayer) -> int:
        return 1

    @classmethod
    def mv_chunk_of(cls, layer: NetLayer, chunk: int) -> int:
        """Codes per beat into the MVTU, fed ``chunk`` codes per beat by the producer."""
        return min(chunk, layer.in_size)

    @classmethod
    def lane_cycles(cls, layer: NetLayer) -> int:
        m = cls.matrix_of(layer)
        return m.out_features * m.in_features * cls.vectors_of(layer)

    @classmethod
    def choose_fold(cls, layer: NetLayer, target: int, chunk: int) -> LayerFold | None:
        m = cls.matrix_of(layer)
        per_vector = max(1, target // cls.vectors_of(layer))
        return fold_for_target(
            m.out_features, m.in_features, per_vector, cls.mv_chunk_of(layer, chunk),
            m.in_bits, m.w_bits, pe_divides=cls.pe_divides,
        )  # fmt: skip

    @classmethod
    def next_chunk(cls, layer: NetLayer, fold: LayerFold | None, chunk: int) -> int:
        assert fold is not None
        return fold.pe

    @classmethod
    def check_fold(cls, index: int, m: Layer, fold: LayerFold) -> None:
        if not 1 <= fold.pe <= m.out_features:
            raise FoldingError(
                f"layer {index}: PE must be in 1..{m.out_features} (its outputs), not {fold.pe}"
            )
        if not 1 <= fold.simd <= m.in_features:
            raise FoldingError(
                f"layer {index}: SIMD must be in 1..{m.in_features} (its fan-in), not {fold.simd}"
            )

    def mvtu(self) -> MVTU:
        return MVTU.from_layer(self.matrix, self.pe, self.simd, self.mv_chunk)

    def entry(self, units: Units) -> LayerEntry:
        u = units.mvtu
        assert u is not None
        return LayerEntry(
            kind=self.kind, cycles_per_frame=self.cycles, in_bits=self.in_bits,
            out_bits=self.out_bits, pe=u.pe, simd=u.simd, rows=u.rows, cols=u.cols,
            vectors=self.vectors, w_bits=u.w_bits,
            weight_bits=u.pe * max(2, u.nf * u.sf) * u.simd * u.w_bits,
            nf=u.nf, sf=u.sf, latency=u.latency, window=self.window_entry(),
        )  # fmt: skip

    def ops(self) -> LayerOps:
        ly = self.matrix
        v, nf, sf = self.vectors, self.nf, self.sf
        issues = nf * sf * v
        leaf_bits = ly.in_bits + ly.w_bits - 1 if ly.w_bits > 1 else ly.in_bits
        t_adds, t_bits = tree_add_bits(self.simd, leaf_bits)
        acc_bits = max(1, ly.acc_max.bit_length())
        n_thr = ly.act.levels
        return LayerOps(
            layer=self.index,
            kind=self.kind,
            title=self.title,
            vectors=v,
            rows=ly.out_features,
            cols=ly.in_features,
            pe=self.pe,
            simd=self.simd,
            xnor_bits=v * ly.out_features * ly.in_features * ly.in_bits * ly.w_bits,
            lane_cycles=self.pe * self.simd * issues,
            issue_cycles=issues,
            adds=self.pe * issues * (t_adds + 1),
            add_bits=self.pe * issues * (t_bits + acc_bits),
            compares=self.pe * nf * n_thr * v,
            compare_bits=self.pe * nf * n_thr * v * acc_bits,
            weight_bits_read=self.pe * self.simd * ly.w_bits * issues,
            act_bits_read=self.simd * ly.in_bits * issues,
            macs=v * ly.out_features * ly.in_features,
            activations=v * ly.out_features if n_thr else 0,
        )

    def luts(self) -> float:
        m = self.matrix
        acc_bits = (level_scale(m.in_bits, m.w_bits) * m.in_features).bit_length()
        return layer_luts(
            m.out_features, m.in_features, self.pe, self.simd, min(self.mv_chunk, m.in_features),
            m.in_bits, m.w_bits, acc_bits,
        )  # fmt: skip

    def bench_rows(self, x: np.ndarray) -> np.ndarray:
        """The input vectors of the MVTU for one image's codes ``x`` ``[1, in_size]``."""
        return x

    def localize(self, x: np.ndarray, expected: np.ndarray, run: UnitBench) -> Fault | None:
        rows = self.bench_rows(x)
        got = run(self.index, self.matrix, self.fold, self.mv_chunk, rows)
        got = got.reshape(len(rows), -1)[:, : self.matrix.out_features].reshape(1, -1)
        diff = np.flatnonzero(got[0] != expected[0])
        if not diff.size:
            return None
        n = int(diff[0])
        what = "score" if isinstance(self.matrix.act, Scores) else "code"
        return Fault(self.index, n, int(expected[0, n]), int(got[0, n]), what)


@stage_for("dense")
@dataclass(frozen=True)
class DenseStage(MatrixStage):
    """A dense layer: one MVTU."""

    @property
    def title(self) -> str:
        return f"{self.index}"

    @classmethod
    def matrix_of(cls, layer: NetLayer) -> Layer:
        assert isinstance(layer, Layer)
        return layer

    @classmethod
    def plan(cls, index: int, layer: NetLayer, fold: LayerFold | None, chunk: int) -> Stage:
        assert fold is not None
        m = cls.matrix_of(layer)
        cls.check_fold(index, m, fold)
        mv_chunk = cls.mv_chunk_of(layer, chunk)
        return cls(index, layer, mv_chunk, fold.pe, fold.cycles(m.out_features, m.in_features),
                   matrix=m, fold=fold, vectors=1, mv_chunk=mv_chunk)  # fmt: skip

    def units(self) -> Units:
        unit = self.mvtu()
        return Units(((f"layer{self.index}", unit),), unit)

    def latency(self, units: Units) -> int | None:
        u = units.mvtu
        assert u is not None
        return u.cycles_per_frame + u.latency


@stage_for("conv2d")
@dataclass(frozen=True)
class ConvStage(MatrixStage):
    """A convolution: a sliding window feeding an MVTU in im2col order, once per position."""

    pe_divides: ClassVar[bool] = True

    window: Window

    @classmethod
    def matrix_of(cls, layer: NetLayer) -> Layer:
        assert isinstance(layer, Conv2d)
        return layer.matrix

    @classmethod
    def vectors_of(cls, layer: NetLayer) -> int:
        assert isinstance(layer, Conv2d)
        return layer.window.positions

    @classmethod
    def mv_chunk_of(cls, layer: NetLayer, chunk: int) -> int:
        assert isinstance(layer, Conv2d)
        return layer.window.channels  # the window unit gives whole pixels

    @classmethod
    def window_floor(cls, layer: NetLayer) -> int:
        assert isinstance(layer, Conv2d)
        return layer.window.positions * layer.window.kernel**2

    @classmethod
    def plan(cls, index: int, layer: NetLayer, fold: LayerFold | None, chunk: int) -> Stage:
        assert isinstance(layer, Conv2d) and fold is not None
        w, m = layer.window, layer.matrix
        in_chunk = _window_chunk(index, w, chunk)
        cls.check_fold(index, m, fold)
        if m.out_features % fold.pe:
            raise FoldingError(
                f"layer {index}: a convolution's PE must divide its {m.out_features} channels, "
                f"not {fold.pe}"
            )
        pixel_beats = w.height * w.width * (w.channels // in_chunk)
        per_vector = fold.cycles(m.out_features, m.in_features)
        cycles = max(pixel_beats, w.positions * max(per_vector, w.kernel**2))
        return cls(index, layer, in_chunk, fold.pe, cycles, matrix=m, fold=fold,
                   vectors=w.positions, mv_chunk=w.channels, window=w)  # fmt: skip

    def units(self) -> Units:
        pad = self.matrix.in_enc.zero_code(self.in_bits)
        sw = SlidingWindow(window=self.window, bits=self.in_bits, in_chunk=self.in_chunk,
                           pad_code=pad)  # fmt: skip
        unit = self.mvtu()
        return Units(((f"layer{self.index}_window", sw), (f"layer{self.index}", unit)), unit)

    def window_entry(self) -> WindowEntry | None:
        return _window_entry(self.window)

    def luts(self) -> float:
        return super().luts() + window_luts(self.window, self.in_bits)

    def bench_rows(self, x: np.ndarray) -> np.ndarray:
        return self.window.patches(x, self.matrix.in_enc.zero_code(self.in_bits))[0]


@stage_for("maxpool2d")
@dataclass(frozen=True)
class PoolStage(Stage):
    """Max-pooling: a sliding window feeding a max-reduce; no weights, no folding."""

    window: Window

    @classmethod
    def window_floor(cls, layer: NetLayer) -> int:
        assert isinstance(layer, MaxPool2d)
        return layer.window.positions * layer.window.kernel**2

    @classmethod
    def plan(cls, index: int, layer: NetLayer, fold: LayerFold | None, chunk: int) -> Stage:
        assert isinstance(layer, MaxPool2d)
        w = layer.window
        in_chunk = _window_chunk(index, w, chunk)
        pixel_beats = w.height * w.width * (w.channels // in_chunk)
        cycles = max(pixel_beats, w.positions * w.kernel**2)
        return cls(index, layer, in_chunk, w.channels, cycles, window=w)

    def units(self) -> Units:
        w = self.window
        sw = SlidingWindow(window=w, bits=self.in_bits, in_chunk=self.in_chunk)
        reduce = MaxReduce(channels=w.channels, bits=self.in_bits, group=w.kernel**2)
        return Units(((f"layer{self.index}_window", sw), (f"layer{self.index}_reduce", reduce)))

    def luts(self) -> float:
        w = self.window
        return window_luts(w, self.in_bits) + reduce_luts(w.channels, self.in_bits)

    def entry(self, units: Units) -> LayerEntry:
        return LayerEntry(
            kind=self.kind, cycles_per_frame=self.cycles, in_bits=self.in_bits,
            out_bits=self.out_bits, pe=0, simd=0, rows=0, cols=0, vectors=0, w_bits=0,
            weight_bits=0, window=_window_entry(self.window),
        )  # fmt: skip

    def ops(self) -> LayerOps:
        w = self.window
        cmp = w.positions * w.channels * (w.kernel**2 - 1)
        return LayerOps(
            layer=self.index, kind=self.kind, title=self.title, vectors=w.positions, rows=0,
            cols=0, pe=0, simd=0, xnor_bits=0, lane_cycles=0, issue_cycles=0, adds=0,
            add_bits=0, compares=cmp, compare_bits=cmp * self.in_bits, weight_bits_read=0,
            act_bits_read=w.positions * w.kernel**2 * w.channels * self.in_bits, macs=0,
        )  # fmt: skip
