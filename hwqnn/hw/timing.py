"""The latency of one frame through an empty pipeline, from a cycle model of the handshakes.

A pipeline of MVTUs alone is store-and-forward and its latency is a sum (:func:`hwqnn.hw.emit.
predict`). A sliding window streams: it starts reading a window row as soon as the rows it
needs are in, and a slower unit behind it stalls it, which stalls its writer, and so on back to
``s_axis``. So the latency of a pipeline with window units is found the way the hardware finds
it: each unit is modelled as the registers that decide its handshakes (counters and valid bits,
no data), stepped one clock at a time, with ``s_axis`` offering the frame's beats back to back
and ``m_axis`` always ready. The result is the number of cycles from the first input beat's
handshake to ``m_axis_tvalid``, the figure the simulation measures.

Each model mirrors its unit's ``elaborate`` (:mod:`hwqnn.hw.skid`, :mod:`hwqnn.hw.inputq`,
:mod:`hwqnn.hw.window`, :mod:`hwqnn.hw.mvtu` with :mod:`hwqnn.hw.framebuffer`,
:mod:`hwqnn.hw.collector`): ``valid`` comes from registers, ``ready(o_ready)`` may depend on the
consumer's ready combinationally, and ``step(took, o_ready)`` is the clock edge.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.lib import wiring

from hwqnn.hw.collector import Collector
from hwqnn.hw.framebuffer import buffer_geometry
from hwqnn.hw.inputq import InputQuantizer
from hwqnn.hw.mvtu import MVTU
from hwqnn.hw.skid import RegisterSlice
from hwqnn.hw.window import MaxReduce, SlidingWindow


class UnitModel:
    """A stream unit's handshake registers."""

    def valid(self) -> bool:
        raise NotImplementedError

    def ready(self, o_ready: bool) -> bool:
        raise NotImplementedError

    def step(self, took: bool, o_ready: bool) -> None:
        raise NotImplementedError


class SliceModel(UnitModel):
    """:class:`hwqnn.hw.skid.RegisterSlice`: an output register and a skid register."""

    def __init__(self) -> None:
        self.o_valid = self.skid = False

    def valid(self) -> bool:
        return self.o_valid

    def ready(self, o_ready: bool) -> bool:
        return not self.skid

    def step(self, took: bool, o_ready: bool) -> None:
        if not self.o_valid or o_ready:
            if self.skid:
                self.o_valid, self.skid = True, False
            else:
                self.o_valid = took
        elif took:
            self.skid = True


class StageModel(UnitModel):
    """One register stage that moves when its output is free or read (the input quantizer,
    and any unit of ``latency`` such stages: the collector's)."""

    def __init__(self, latency: int = 1, group: int = 1) -> None:
        self.line = [False] * latency
        self.group, self.count = group, 0

    def valid(self) -> bool:
        return self.line[-1]

    def ready(self, o_ready: bool) -> bool:
        return not self.line[-1] or o_ready

    def step(self, took: bool, o_ready: bool) -> None:
        if not self.ready(o_ready):
            return
        last = False
        if took:
            self.count = (self.count + 1) % self.group
            last = self.count == 0
        self.line = [last, *self.line[:-1]]


class ReduceModel(UnitModel):
    """:class:`hwqnn.hw.window.MaxReduce`: a result the cycle after a group's last beat."""

    def __init__(self, group: int) -> None:
        self.group, self.count, self.out = group, 0, False

    def valid(self) -> bool:
        return self.out

    def ready(self, o_ready: bool) -> bool:
        return not self.out or o_ready

    def step(self, took: bool, o_ready: bool) -> None:
        if self.out and o_ready:
            self.out = False
        if took:
            self.count = (self.count + 1) % self.group
            if self.count == 0:
                self.out = True


class WindowModel(UnitModel):
    """:class:`hwqnn.hw.window.SlidingWindow`: the line buffer's row counters and the reader's
    window counters."""

    def __init__(self, u: SlidingWindow) -> None:
        w = u.window
        self.k, self.s, self.p = w.kernel, w.stride, w.pad
        self.h, self.width, self.out_h, self.out_w = w.height, w.width, w.out_h, w.out_w
        self.rows, self.lanes = u.rows, u.beats_per_pixel
        self.lane = self.x = self.written = 0
        self.ky = self.kx = self.ox = self.oy = 0
        self.y0, self.base = -self.p, 0
        self.out = False

    def _freed(self) -> int:
        return self.base + (max(self.y0, 0) if self.p else self.y0)

    def valid(self) -> bool:
        return self.out

    def ready(self, o_ready: bool) -> bool:
        return self.written - self._freed() < self.rows

    def step(self, took: bool, o_ready: bool) -> None:
        need = self.base + min(self.y0 + self.k - 1, self.h - 1)
        advance = not self.out or o_ready
        issue = need < self.written and advance
        if took:
            self.lane = (self.lane + 1) % self.lanes
            if self.lane == 0:
                self.x = (self.x + 1) % self.width
                if self.x == 0:
                    self.written += 1
        if advance:
            self.out = issue
        if issue:
            self._next_position()

    def _next_position(self) -> None:
        self.kx = (self.kx + 1) % self.k
        if self.kx:
            return
        self.ky = (self.ky + 1) % self.k
        if self.ky:
            return
        self.ox = (self.ox + 1) % self.out_w
        if self.ox:
            return
        self.oy = (self.oy + 1) % self.out_h
        if self.oy:
            self.y0 += self.s
        else:
            self.y0, self.base = -self.p, self.base + self.h


class MvtuModel(UnitModel):
    """:class:`hwqnn.hw.mvtu.MVTU`: the frame buffer's full flags, the (NF, SF) issue counters
    and the pipeline from an issue to the output register, all moving on one clock enable."""

    def __init__(self, u: MVTU) -> None:
        self.beats = buffer_geometry(u.cols, u.in_chunk, u.simd).beats
        self.nf_n, self.sf_n = u.nf, u.sf
        self.full, self.wsel, self.rsel, self.beat = [False, False], 0, 0, 0
        self.nf = self.sf = 0
        # registers between an issue and the output register's input: u.latency - 1
        assert u.latency == 4 + u.tree_latency
        self.line = [False] * (u.latency - 1)
        self.out = False

    def valid(self) -> bool:
        return self.out

    def ready(self, o_ready: bool) -> bool:
        return not self.full[self.wsel]

    def step(self, took: bool, o_ready: bool) -> None:
        ce = not self.out or o_ready
        issue = ce and self.full[self.rsel]
        if took:
            self.beat += 1
            if self.beat == self.beats:
                self.beat, self.full[self.wsel], self.wsel = 0, True, 1 - self.wsel
        if ce:
            self.out = self.line[-1]
            done = issue and self.sf == self.sf_n - 1  # a neuron fold's last issue
            self.line = [done, *self.line[:-1]]
        if issue:
            if self.sf == self.sf_n - 1:
                self.sf = 0
                if self.nf == self.nf_n - 1:
                    self.nf = 0
                    self.full[self.rsel], self.rsel = False, 1 - self.rsel
                else:
                    self.nf += 1
            else:
                self.sf += 1


MODELS: dict[type, Callable[[wiring.Component], UnitModel]] = {
    InputQuantizer: lambda u: StageModel(),
    SlidingWindow: lambda u: WindowModel(u),  # type: ignore[arg-type]
    MaxReduce: lambda u: ReduceModel(u.group),  # type: ignore[attr-defined]
    MVTU: lambda u: MvtuModel(u),  # type: ignore[arg-type]
    Collector: lambda u: StageModel(u.latency, u.nf),  # type: ignore[attr-defined]
    RegisterSlice: lambda u: SliceModel(),
}


def frame_latency(chain: list[wiring.Component], in_beats: int, limit: int = 1 << 26) -> int:
    """Cycles from the first ``s_axis`` handshake to ``m_axis_tvalid`` for one frame of
    ``in_beats`` beats through ``chain`` (the network's ``path``: its units and the register
    slices between them, collector last) between the top's two register slices, with the
    pipeline empty and ``m_axis_tready`` high."""
    units: list[UnitModel] = [SliceModel()]
    for u in chain:
        make = MODELS.get(type(u))
        if make is None:
            raise TypeError(f"no timing model for {type(u).__name__}")
        units.append(make(u))
    units.append(SliceModel())
    sent = 0
    first: int | None = None
    for cycle in range(limit):
        if units[-1].valid():
            assert first is not None
            return cycle - first
        readies = [False] * len(units)
        o_ready = True
        for j in range(len(units) - 1, -1, -1):
            readies[j] = units[j].ready(o_ready)
            o_ready = readies[j]
        took_in = sent < in_beats and readies[0]
        if took_in and first is None:
            first = cycle
        sent += took_in
        tooks = [took_in] + [units[j - 1].valid() and readies[j] for j in range(1, len(units))]
        for j, u in enumerate(units):
            u.step(tooks[j], readies[j + 1] if j + 1 < len(units) else True)
    raise RuntimeError(f"no output within {limit} cycles")
