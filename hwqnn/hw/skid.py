"""A register slice (skid buffer) for a stream: both ``i.ready`` and ``o.valid``/``o.payload``
come from registers, so nothing combinational crosses it. Full throughput (one beat per cycle),
latency one cycle. At the top level it keeps the AXI-Stream ports away from the datapath: good
for timing on an FPGA and for simulation speed (top-level inputs then drive only this slice).

Members
-------
i : In(stream.Signature(width))
o : Out(stream.Signature(width))
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class RegisterSlice(wiring.Component):
    """Two-entry skid buffer; see the module docstring."""

    def __init__(self, shape: int | data.Layout) -> None:
        width = Shape.cast(shape).width
        if width < 1:
            raise ValueError(f"width must be >= 1, not {width!r}")
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        skid = Signal(self.shape)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):  # the output register is free this cycle
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Elif(self.i.valid):
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += self.o.valid.eq(0)
        with m.Elif(self.i.valid & self.i.ready):  # output stalled: park the beat
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
