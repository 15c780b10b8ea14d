"""The stream's front end: raw input values (pixels) to layer 0's codes by the bundle's input
thresholds (:mod:`hwqnn.layers.inputq`), one beat per cycle, one register stage.

A beat carries ``chunk`` raw values of ``raw_bits``; element ``j`` of beat ``b`` of a frame is
input element ``g = b * chunk + j`` and takes the thresholds of channel ``g % C``. The offset
``(b * chunk) % C`` is a register that steps by ``chunk`` per beat and returns to 0 after the
frame's last beat, so the constant comparisons of each element are selected by it (``C`` is 1 or
the image's few channels; one comparator per threshold and element).

Members
-------
i : In(stream.Signature(chunk * raw_bits))
o : Out(stream.Signature(chunk * bits))
"""

from __future__ import annotations

import math

from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwqnn.layers.inputq import InputQuant

CHAIN_MAX = 15  # terms summed as a chain (the codes of up to 4 bits, as synthesized so far)


class InputQuantizer(wiring.Component):
    """Raw values to codes; see the module docstring."""

    def __init__(self, quant: InputQuant, chunk: int, beats: int) -> None:
        if quant.thresholds is None:
            raise ValueError("the identity input quantization needs no front end")
        if chunk < 1 or beats < 1:
            raise ValueError(f"chunk and beats must be >= 1, not {chunk!r}, {beats!r}")
        self.quant, self.chunk, self.beats = quant, chunk, beats
        self.table = [[int(v) for v in row] for row in quant.thresholds]
        c = quant.channels
        # the offsets (b * chunk) % C that a beat can start at
        self.offsets = sorted({(b * chunk) % c for b in range(c // math.gcd(c, chunk))})
        self.latency = 1
        super().__init__(
            {
                "i": In(stream.Signature(chunk * quant.raw_bits)),
                "o": Out(stream.Signature(chunk * quant.bits)),
            }
        )

    def _code(self, raw: Value, channel: int) -> Value:
        """``sum_i [raw >= T[channel, i]]`` with constant thresholds: a chain of additions for
        up to :data:`CHAIN_MAX` terms (1- to 4-bit codes), a balanced tree for more (8-bit
        codes: 255 terms, a chain Amaranth cannot elaborate without exceeding Python's
        recursion limit)."""
        rb, ob = self.quant.raw_bits, self.quant.bits
        terms: list[Value] = []
        for t in self.table[channel]:
            if t == 0:  # always met
                terms.append(Const(1, 1))
            elif t < 2**rb:  # 2**raw_bits is never met
                terms.append(raw >= Const(t, rb))
        if len(terms) > CHAIN_MAX:
            while len(terms) > 1:  # the count fits ob bits at every level: exact
                pairs = [(terms[i] + terms[i + 1])[:ob] for i in range(0, len(terms) - 1, 2)]
                terms = pairs + terms[len(pairs) * 2 :]
            return terms[0]
        total: Value = Const(0, ob)
        for term in terms:
            total = (total + term)[:ob]
        return total

    def elaborate(self, platform: object) -> Module:
        m = Module()
        c, rb, ob = self.quant.channels, self.quant.raw_bits, self.quant.bits
        multi = len(self.offsets) > 1
        offset = Signal(range(max(2, c)))
        beat = Signal(range(max(2, self.beats)))
        codes = []
        for j in range(self.chunk):
            raw = self.i.payload[j * rb : (j + 1) * rb]
            code: Value = self._code(raw, (self.offsets[0] + j) % c)
            for off in self.offsets[1:]:
                code = Mux(offset == off, self._code(raw, (off + j) % c), code)
            codes.append(code)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.valid.eq(1)
            for j, code in enumerate(codes):
                m.d.sync += self.o.payload[j * ob : (j + 1) * ob].eq(code)
            if multi:
                last = beat == self.beats - 1
                m.d.sync += beat.eq(Mux(last, 0, beat + 1))
                with m.If(last):
                    m.d.sync += offset.eq(0)
                with m.Else(), m.Switch(offset):
                    for off in self.offsets:
                        with m.Case(off):
                            m.d.sync += offset.eq((off + self.chunk) % c)
        return m
