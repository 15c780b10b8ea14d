"""The streaming network: one MVTU per layer, joined by streams, behind AXI-Stream-style ports.

Ports of the generated Verilog top (``aclk`` rising edge, ``aresetn`` active low, of any length:
it sets two flops asynchronously, so the design enters reset as ``aresetn`` falls and leaves it
two cycles after ``aresetn`` rises, holding ``s_axis_tready`` and ``m_axis_tvalid`` low until
then)::

    s_axis_tdata  [AXIS_BITS-1:0]   in    `in_chunk` raw values (pixels) of R bits per beat, value
                                          j at bits R*j+R-1..R*j
    s_axis_tvalid, s_axis_tready, s_axis_tlast (last beat of a frame; checked, see frame_error)
    m_axis_tdata  [OUT_BITS-1:0]    out   one beat per frame: class score k (signed, SCORE_W bits)
                                          at bits k*SCORE_W.., then the argmax class above them
    m_axis_tvalid, m_axis_tready, m_axis_tlast (always 1: every beat ends a frame)
    frame_error                     out   sticky: a tlast off a frame boundary (or none on a
                                          frame's last beat); only a reset clears it
    perf_counters [64*L-1:0]        out   per layer i: issue cycles at bits 64i, output beats
                                          at 64i+32 (32 bits each, wrapping); may be left open

``AXIS_BITS`` is the user's choice (``axis_bits``: a multiple of 8 in 8..1024, independent of the
folding): a beat carries ``in_chunk`` raw values of ``R`` bits (the bundle's ``raw_bits``: layer
0's ``in_bits`` unless the bundle quantizes its input), bits above ``in_chunk * R`` ignored, with
``in_chunk`` (:func:`hwqnn.hw.plan.first_chunk`) ``min(AXIS_BITS // R, in_features)`` for a
dense first layer and, for an image-shaped one, the largest divisor of its channel count that
fits (a beat never splits a pixel: a grayscale ConvNet takes one pixel a beat). A frame is
``ceil(in_features / in_chunk)`` beats; values above ``in_features`` in the last beat are
ignored. The manifest's ``ports.in_chunk`` and ``ports.in_beats`` say both. A bundle with input
thresholds gets a front end (:mod:`hwqnn.hw.inputq`, one register stage) that turns each beat
into layer 0's codes.
Each layer's frame buffer converts its producer's beat width to its own SIMD width, and holds two
frames: the FIFO between layers.
Register slices sit behind both AXI-Stream ports (one cycle each): every top-level output comes
from a register (``s_axis_tready`` and ``m_axis_tvalid`` through one gate with the reset flop)
and no top-level input reaches the datapath combinationally. A register slice also sits between
every two units of the network (one cycle each, full throughput): a unit's clock enable, which
reaches every pipeline register of a layer, then starts at a flip-flop beside it instead of at
the next unit's full flags (measured on ECP5, the demo shape: 118.9 -> 122.5 MHz, the ready path
between layers gone from the critical path; README, "Synthesis").
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.stream import Signature as StreamSignature
from amaranth.lib.wiring import In, Out

from hwqnn.hw.collector import Collector
from hwqnn.hw.inputq import InputQuantizer
from hwqnn.hw.manifest import Ports
from hwqnn.hw.mvtu import MVTU
from hwqnn.hw.plan import Plan
from hwqnn.hw.skid import RegisterSlice
from hwqnn.hw.stages import Units
from hwqnn.intmath import ceil_div


def _bytes(bits: int) -> int:
    return ceil_div(bits, 8)


def _synchronized_reset(m: Module, aclk: Signal, aresetn: Signal) -> Signal:
    """Define the ``sync`` domain on ``aclk`` with its reset taken from ``aresetn`` through two
    flops that ``aresetn`` sets asynchronously and that clear on the clock: the internal reset
    rises as soon as ``aresetn`` falls (so a reset pulse of any length is seen, and the stream
    valids can be held low during it, as AXI-Stream asks) and falls two cycles after ``aresetn``
    rises, on a clock edge. The datapath resets from these flops, not from a top-level input,
    which is common FPGA practice and keeps Verilator from re-evaluating the whole design
    whenever an input is written. Returns the internal reset; ``s_axis_tready`` and
    ``m_axis_tvalid`` must be held low while it is high."""
    m.domains.sync = cd = ClockDomain("sync")
    m.domains.rst_sync = rcd = ClockDomain("rst_sync", async_reset=True)
    pipe = Signal(2, init=0b11)
    m.d.comb += [cd.clk.eq(aclk), rcd.clk.eq(aclk), rcd.rst.eq(~aresetn), cd.rst.eq(pipe[1])]
    m.d.rst_sync += pipe.eq(Cat(Const(0, 1), pipe[0]))
    return pipe[1]


class Network(wiring.Component):
    """All layers chained; ``i`` takes beats of ``in_chunk`` input codes, ``o`` gives scores +
    argmax. Each stage of the plan contributes the units of its kind (:mod:`hwqnn.hw.stages`):
    an MVTU, a sliding window in front of it for a convolution, or a sliding window and a
    max-reduce for max-pooling; ``mvtus`` are the weighted layers' units, in order."""

    def __init__(self, p: Plan) -> None:
        bundle = p.bundle
        self.plan = p
        self.stages = p.stages
        self.in_chunk = p.in_chunk
        self.named: list[tuple[str, wiring.Component]] = []
        self.mvtus: list[MVTU] = []
        self.stage_units: list[Units] = []
        self.front: InputQuantizer | None = None  # raw values -> layer 0's codes
        if not bundle.quant.is_identity:
            self.front = InputQuantizer(bundle.quant, p.in_chunk, p.in_beats)
            self.named.append(("input_quant", self.front))
        for st in p.stages:
            units = st.units()
            self.stage_units.append(units)
            self.named.extend(units.named)
            if units.mvtu is not None:
                self.mvtus.append(units.mvtu)
        self.chain = [u for _, u in self.named]
        last = self.mvtus[-1]
        self.collector = Collector(
            pe=last.pe, nf=last.nf, classes=bundle.num_classes, score_width=last.out_width
        )
        # a register slice behind every unit of the chain, the last one's in front of the
        # collector; ``path`` is every stream unit from ``i`` to ``o`` in order
        self.slices = [RegisterSlice(len(u.o.payload)) for u in self.chain]
        self.path: list[wiring.Component] = [
            *itertools.chain.from_iterable(zip(self.chain, self.slices, strict=True)),
            self.collector,
        ]
        super().__init__(
            {
                "i": In(StreamSignature(self.in_chunk * bundle.raw_bits)),
                "o": Out(StreamSignature(self.collector.layout)),
                "perf": Out(64 * len(self.mvtus)),  # per MVTU: issues, then outputs
            }
        )

    def named_units(self) -> list[tuple[str, wiring.Component]]:
        """Submodule names: ``input_quant``; ``layer{i}`` for layer ``i``'s MVTU,
        ``layer{i}_window`` and ``layer{i}_reduce`` for its window and max-reduce units
        (synthesis groups by them)."""
        return list(self.named)

    @property
    def units(self) -> list[MVTU]:
        """The MVTUs (one per weighted layer), as the perf counters and the manifest list them."""
        return self.mvtus

    @property
    def cycles_per_frame(self) -> int:
        return self.plan.cycles_per_frame

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for (name, u), sl in zip(self.named_units(), self.slices, strict=True):
            m.submodules[name] = u
            m.submodules[f"{name}_slice"] = sl
        m.submodules.collector = self.collector
        wiring.connect(m, wiring.flipped(self.i), self.path[0].i)
        for a, b in itertools.pairwise(self.path):
            wiring.connect(m, a.o, b.i)  # a's output beat is b's input chunk (pad codes are 0)
        m.d.comb += self.perf.eq(Cat(*[Cat(u.perf.issues, u.perf.outputs) for u in self.mvtus]))
        wiring.connect(m, self.collector.o, wiring.flipped(self.o))
        return m


class Top(wiring.Component):
    """The Verilog top: AXI-Stream-style names, ``aclk``/``aresetn`` (see module docstring)."""

    def __init__(self, p: Plan) -> None:
        bundle, axis_bits = p.bundle, p.axis_bits
        self.net = Network(p)
        result = self.net.collector.layout  # the m_axis beat: widths and offsets come from it
        scores = result["scores"].shape
        self.ports = Ports(
            axis_bits=axis_bits,
            in_chunk=p.in_chunk,
            in_beats=p.in_beats,
            s_tdata_bits=axis_bits,
            classes=scores.length,
            score_width=scores.elem_shape.width,
            class_bits=result["cls"].shape.width,
            m_tdata_bits=8 * _bytes(result.size),
            perf_layers=len(self.net.units),
            in_bits=bundle.raw_bits,
        )
        super().__init__(
            {
                "aclk": In(1),
                "aresetn": In(1),
                "s_axis_tdata": In(self.ports.s_tdata_bits),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(self.ports.m_tdata_bits),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
                "frame_error": Out(1),
                "perf_counters": Out(64 * len(self.net.units)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rst = _synchronized_reset(m, self.aclk, self.aresetn)
        m.submodules.net = net = self.net
        m.d.comb += self.perf_counters.eq(net.perf)
        n_in = len(net.i.payload)
        m.submodules.in_slice = in_slice = RegisterSlice(n_in)
        m.submodules.out_slice = out_slice = RegisterSlice(net.collector.layout)
        wiring.connect(m, in_slice.o, net.i)
        wiring.connect(m, net.o, out_slice.i)
        m.d.comb += [
            in_slice.i.payload.eq(self.s_axis_tdata[:n_in]),
            in_slice.i.valid.eq(self.s_axis_tvalid & ~rst),
            self.s_axis_tready.eq(in_slice.i.ready & ~rst),
            self.m_axis_tdata.eq(out_slice.o.payload),
            self.m_axis_tvalid.eq(out_slice.o.valid & ~rst),
            out_slice.o.ready.eq(self.m_axis_tready),
            self.m_axis_tlast.eq(1),
        ]
        beats = self.ports.in_beats
        beat = Signal(range(max(2, beats)))
        with m.If(self.s_axis_tvalid & self.s_axis_tready):
            m.d.sync += beat.eq(Mux(beat == beats - 1, 0, beat + 1))
            with m.If(self.s_axis_tlast != (beat == beats - 1)):
                m.d.sync += self.frame_error.eq(1)
        return m


class LayerTop(wiring.Component):
    """One unit alone behind AXI-Stream-style ports, for unit benches and proofs: an MVTU
    (``s_axis_tdata`` carries ``in_chunk`` codes of ``in_bits``; ``m_axis_tdata`` one neuron
    fold, PE outputs; ``tlast`` on a vector's last fold) or another stream unit (an input
    quantizer, a sliding window, a max-reduce; ``tlast`` on the last of ``out_beats`` output
    beats a frame)."""

    def __init__(self, unit: wiring.Component, out_beats: int) -> None:
        self.unit = unit
        self.out_beats = out_beats
        self.s_bits = 8 * _bytes(len(unit.i.payload))
        self.m_bits = 8 * _bytes(len(unit.o.payload))
        super().__init__(
            {
                "aclk": In(1),
                "aresetn": In(1),
                "s_axis_tdata": In(self.s_bits),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(self.m_bits),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
                "frame_error": Out(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rst = _synchronized_reset(m, self.aclk, self.aresetn)
        m.submodules.unit = u = self.unit
        m.d.comb += [
            u.i.payload.eq(self.s_axis_tdata[: len(u.i.payload)]),
            u.i.valid.eq(self.s_axis_tvalid & ~rst),
            self.s_axis_tready.eq(u.i.ready & ~rst),
            self.m_axis_tdata.eq(u.o.payload),
            self.m_axis_tvalid.eq(u.o.valid & ~rst),
            u.o.ready.eq(self.m_axis_tready),
        ]
        last = self.out_beats - 1
        nf = Signal(range(max(2, self.out_beats)))
        with m.If(u.o.valid & u.o.ready):
            m.d.sync += nf.eq(Mux(nf == last, 0, nf + 1))
        m.d.comb += self.m_axis_tlast.eq(nf == last)
        return m
