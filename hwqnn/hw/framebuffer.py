"""The frame buffer in front of a matrix-vector unit: two frames of input codes in one memory.

It is the FIFO between layers and the stream width converter at once: frames arrive as beats of
``in_chunk`` codes and leave as ``SF = ceil(cols / simd)`` slices of ``simd`` codes, re-read once
per neuron fold. Nothing in it grows with the square of the fan-in: beats shift into a register
one word wide (flip-flops sharing one enable, no decoder), whole words are written, and words
are read one per cycle through a synchronous port, so Yosys maps the memory to block RAM or LUT
RAM.

Geometry (``ka`` bits per code)::

    word    W = lcm(in_chunk, simd) codes, or the whole frame rounded up to in_chunk when that is
            smaller; a word holds W / in_chunk write lanes and W // simd read slices
    depth   2 * D words, D = words per frame: buffer ``b`` holds words b*D .. b*D + D - 1
    write   beat t of a frame -> word t // lanes, lane t % lanes (counters, no division); a
            frame's last word may hold fewer beats: they are moved down to its low lanes
    read    slice s of a frame -> word s // slices, codes (s % slices)*simd .. + simd - 1

A frame that is one word read as one slice (SF = 1, ``in_registers``) needs no memory: it is
kept in two word registers with no multiplexer in front of them (:meth:`FrameBuffer._registers`),
on every cycle whose read is used, the same data as the memory, and the same handshakes.

When ``simd`` is a multiple of ``in_chunk`` there is no read multiplexer; when ``in_chunk`` is a
multiple of ``simd`` there is one lane per word. Codes at and above ``cols`` are written as 0
(the frame's last word is masked on its way in), so the last slice reads 0 there, as the padding
rule of :mod:`hwqnn.bundle` requires, with no logic between the memory and ``data``. Every word
a frame's slices read is written by the frame: a word boundary ``k*W`` below ``SF*simd`` is a
multiple of ``simd`` under it, hence below ``cols``, hence below ``beats*in_chunk``.

Members
-------
i : In(stream.Signature(in_chunk * ka))   code ``j`` of a beat at bits ``j*ka``
avail : Out(1)      a whole frame is buffered and being read
en : In(1)          step on to the next slice this cycle (only while ``avail``)
release : In(1)     with ``en``: this is the frame's last read; the buffer is freed after it
ren : In(1)         the read port's enable: it reads the slice the counters point at
data : Out(simd * ka)   the slice read in the last cycle with ``ren``, held until the next one
                    (in registers: the one before it, ``data_latency``)

Latency: a frame is ``avail`` the cycle after its last beat is taken; the slice of a cycle with
``en`` (and ``ren``) is ``data`` one cycle later. ``ren`` is the consumer's clock enable, not
``en``: a cycle with ``ren`` but no ``en`` reads the next slice early (``data`` then is that slice,
which the consumer drops as a bubble), and ``en`` (which depends on the full flags) need not reach
the memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from hwqnn.intmath import ceil_div


@dataclass(frozen=True)
class BufferGeometry:
    """The layout of the module docstring, in codes and words."""

    beats: int  # beats of in_chunk codes per frame
    sf: int  # slices of simd codes per frame
    word: int  # codes per memory word
    lanes: int  # beats per word
    slices: int  # slices per word
    words_per_frame: int

    @property
    def depth(self) -> int:
        """Words of the memory (two frames)."""
        return 2 * self.words_per_frame

    def in_registers(self, reads_per_frame: int) -> bool:
        """A frame is one word read as one slice (SF = 1), at least twice: registers replace
        the memory (:meth:`FrameBuffer._registers`)."""
        return self.words_per_frame == 1 and self.slices == 1 and reads_per_frame >= 2


def buffer_geometry(cols: int, in_chunk: int, simd: int) -> BufferGeometry:
    """The frame buffer's layout for ``cols`` codes written ``in_chunk`` and read ``simd`` at a
    time (pure: the LUT model uses it without building hardware)."""
    beats, sf = ceil_div(cols, in_chunk), ceil_div(cols, simd)
    frame = max(beats * in_chunk, sf * simd)
    word = math.lcm(in_chunk, simd)
    if word > frame:  # one word holds the whole frame
        word = ceil_div(frame, in_chunk) * in_chunk
    lanes, slices = word // in_chunk, word // simd
    return BufferGeometry(
        beats, sf, word, lanes, slices, max(ceil_div(beats, lanes), ceil_div(sf, slices))
    )


class _Port:
    """A memory port's signals (``addr``, ``data``, ``en``) where there is no memory."""

    def __init__(self, addr_width: int, data_width: int) -> None:
        self.addr, self.data, self.en = Signal(addr_width), Signal(data_width), Signal()


def _counter(limit: int, name: str) -> Signal:
    return Signal(range(max(2, limit)), name=name)


class FrameBuffer(wiring.Component):
    """Double-buffered input frame, written in beats and read in SIMD slices."""

    def __init__(
        self, *, cols: int, ka: int, in_chunk: int, simd: int, reads_per_frame: int = 1
    ) -> None:
        for name, v in (("cols", cols), ("ka", ka), ("in_chunk", in_chunk), ("simd", simd)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if in_chunk > cols or simd > cols:
            raise ValueError(f"in_chunk ({in_chunk}) and simd ({simd}) must not exceed {cols}")
        self.cols, self.ka, self.in_chunk, self.simd = cols, ka, in_chunk, simd
        self.reads_per_frame = reads_per_frame  # en per frame (the consumer's NF * SF)
        g = buffer_geometry(cols, in_chunk, simd)
        self.beats, self.sf, self.word = g.beats, g.sf, g.word
        self.lanes, self.slices, self.words_per_frame = g.lanes, g.slices, g.words_per_frame
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(in_chunk * ka))),
                "avail": Out(1),
                "en": In(1),
                "release": In(1),
                "ren": In(1),
                "data": Out(simd * ka),
            }
        )

    @property
    def memory_bits(self) -> int:
        return 2 * self.words_per_frame * self.word * self.ka

    def elaborate(self, platform: object) -> Module:
        m = Module()
        ka, d = self.ka, self.words_per_frame
        # no_rw_check: a read that meets a write to the same word in the same cycle is never
        # used (a slice stepped to with ``en`` is in the buffer that is full, and the write goes
        # to the one that is not; a read with ``ren`` alone is a bubble's), so Yosys need not add
        # the bypass that makes a colliding read return the old word (on ECP5 a multiplexer on
        # every read bit, between the block RAM and the register behind it)
        full = Signal(2)
        if self.in_registers:
            wp, rp = _Port(1, self.word * ka), _Port(1, self.word * ka)
            last_of = self._write_side(m, wp, full)
            self._read_side(m, rp, full)
            self._registers(m, wp, rp, last_of)
            return m
        mem = Memory(shape=unsigned(self.word * ka), depth=2 * d, init=[], attrs={"no_rw_check": 1})
        m.submodules.mem = mem
        wp = mem.write_port()
        rp = mem.read_port()
        self._write_side(m, wp, full)
        self._read_side(m, rp, full)
        return m

    @property
    def in_registers(self) -> bool:
        """A frame is one word read as one slice (SF = 1), at least twice: the memory and the
        register behind its read port are replaced by registers (see :meth:`_registers`)."""
        return buffer_geometry(self.cols, self.in_chunk, self.simd).in_registers(
            self.reads_per_frame
        )

    @property
    def data_latency(self) -> int:
        """Cycles with ``ren`` from a read to its slice on ``data``: 1 from the memory's port,
        2 from the registers (``data`` is then what a register behind the port loaded with
        ``ren`` would hold)."""
        return 2 if self.in_registers else 1

    def _registers(
        self, m: Module, wp: _Port, rp: _Port, last_of: Callable[[Value], Value]
    ) -> None:
        """The two-word memory of a frame read as one slice, and the register behind its read
        port, as word registers with no multiplexer in front of them (a two-deep LUT RAM costs
        2/3 LUT a bit on xc7: 524 LUTs on the LFC shape's first layer; a flip-flop with an
        enable costs none).

        ``a`` holds the last frame written (buffer ``a_buf``; ``a_new``: not yet in ``h``), ``h``
        is ``data``: on a cycle with ``ren`` it takes the frame of the buffer read at the
        previous one (``prev``), which is ``a`` when ``a`` holds that buffer's frame and it is
        new, and otherwise already ``h`` (the reader reads buffers in the order they were
        written, a frame moves into ``h`` at the first ``ren`` after its first read, and only a
        full buffer's read is used). A frame completed while ``a`` still waits for that is the
        one case the two buffers of a memory hold more: its last beat is kept in ``lb`` (its
        other beats stay in the write side's shift register, which a frame's last beat does not
        shift, and the writer is then stopped by the full flags, since a frame is read at least
        twice before it is released) and moves into ``a`` the cycle after ``a`` moved into
        ``h`` (its first read comes later still). So ``data`` is, on every cycle that uses it,
        what a register behind the memory's port would hold, and the handshakes are the
        memory's. Only ``h``'s enable waits on ``ren``.
        """
        width = len(wp.data)
        a = Signal(width, name="a", reset_less=True)
        h = Signal(width, name="h", reset_less=True)
        lb = Signal(len(self.i.payload), name="lb", reset_less=True)
        a_buf, a_new, p_buf, p_new, prev = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.comb += rp.data.eq(h)
        with m.If(rp.en):
            m.d.sync += prev.eq(rp.addr)
        # the word a takes: the writer's, or the one held back (only its last beat differs)
        a_next = last_of(Mux(p_new, lb, self.i.payload))
        # h's enable is the only one that waits on ren (the consumer's clock enable, which
        # fans out to the whole unit): one gate after it; a's loads do not wait on it
        with m.If(rp.en & a_new & (a_buf == prev)):
            m.d.sync += [h.eq(a), a_new.eq(0)]
        with m.If(~a_new & p_new):  # the cycle after h took a: the held-back frame moves in
            m.d.sync += [a.eq(a_next), a_buf.eq(p_buf), a_new.eq(1)]
            with m.If(wp.en):  # (one beat a frame: the next one is held back at once)
                m.d.sync += [lb.eq(self.i.payload), p_buf.eq(wp.addr)]
            with m.Else():
                m.d.sync += p_new.eq(0)
        with m.Elif(wp.en):
            with m.If(a_new):
                m.d.sync += [lb.eq(self.i.payload), p_buf.eq(wp.addr), p_new.eq(1)]
            with m.Else():
                m.d.sync += [a.eq(a_next), a_buf.eq(wp.addr), a_new.eq(1)]

    def _write_side(
        self, m: Module, wp: WritePort | _Port, full: Signal
    ) -> Callable[[Value], Value]:
        """Beats of the producer into words of the buffer ``wsel`` being written; sets its full
        flag with the frame's last beat. Returns the frame's last word as a function of its last
        beat (the other beats are the shift register's)."""
        ka, d = self.ka, self.words_per_frame
        # ---- write side: beats shift into a word; whole words are written -------------------
        # (one write enable for the whole word, so a word of any width packs densely into block
        # RAM or LUT RAM; writing beat-wide lanes instead costs one LUT RAM per lane)
        wsel = Signal()
        beat, lane = _counter(self.beats, "beat"), _counter(self.lanes, "lane")
        # beat == beats - 1 and lane == lanes - 1, kept in registers (set one beat ahead), so the
        # write enable and the last word's multiplexer read flip-flops, not the counters' compare
        beat_end = Signal(init=int(self.beats == 1), name="beat_end")
        lane_end = Signal(init=int(self.lanes == 1), name="lane_end")
        # the write address itself is the register (buffer base + word, kept rather than added)
        waddr = _counter(2 * d, "waddr")
        bw = self.in_chunk * ka
        m.d.comb += [
            self.i.ready.eq(~full.bit_select(wsel, 1)),
            wp.addr.eq(waddr),
        ]
        # the frame's last word holds `keep` bits of codes below cols; the rest is written as 0
        # (pad or the producer's codes past the frame), so a read needs no mask after the memory
        last_word = ceil_div(self.beats, self.lanes) - 1
        keep = (self.cols - last_word * self.word) * ka
        if self.lanes == 1:
            word: Value = self.i.payload

            def last_of(beat: Value) -> Value:
                return beat[:keep]

        else:
            sipo = Signal((self.lanes - 1) * bw, name="sipo")  # beats 0 .. lanes-2 of the word
            shift = self.i.valid & self.i.ready
            if self.in_registers:  # the frame's last beat leaves it (a held-back frame's beats)
                shift = shift & ~beat_end
            with m.If(shift):
                m.d.sync += sipo.eq(Cat(sipo[bw:], self.i.payload))
            word = Cat(sipo, self.i.payload)
            # the frame's last word has k_last beats, in its top lanes: move them down
            k_last = self.beats - last_word * self.lanes

            def last_of(beat: Value) -> Value:
                return Cat(sipo, beat)[(self.lanes - k_last) * bw :][:keep]

        last = last_of(self.i.payload)
        if len(last) == len(word):
            m.d.comb += wp.data.eq(word)
        else:
            m.d.comb += wp.data.eq(Mux(beat_end, last, word))
        # (in registers a frame is one word: its last beat ends the word, and the enable of
        # the registers waits on one flag fewer)
        word_end = beat_end if self.in_registers else lane_end | beat_end
        with m.If(self.i.valid & self.i.ready):
            with m.If(word_end):
                m.d.comb += wp.en.eq(1)
            with m.If(beat_end):
                m.d.sync += [beat.eq(0), lane.eq(0), waddr.eq(Mux(wsel, 0, d)), wsel.eq(~wsel)]
                m.d.sync += [beat_end.eq(int(self.beats == 1)), lane_end.eq(int(self.lanes == 1))]
                with m.If(wsel):
                    m.d.sync += full[1].eq(1)
                with m.Else():
                    m.d.sync += full[0].eq(1)
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), beat_end.eq(beat == max(0, self.beats - 2))]
                with m.If(lane_end):
                    m.d.sync += [lane.eq(0), lane_end.eq(int(self.lanes == 1)), waddr.eq(waddr + 1)]
                with m.Else():
                    m.d.sync += [lane.eq(lane + 1), lane_end.eq(lane == max(0, self.lanes - 2))]
        return last_of

    def _read_side(self, m: Module, rp: ReadPort | _Port, full: Signal) -> None:
        """SF slices of SIMD codes of the buffer ``rsel`` being read, again for every neuron fold;
        clears its full flag on ``release``."""
        ka, d = self.ka, self.words_per_frame
        # ---- read side: SF slices of buffer rsel, again for every neuron fold ----------------
        rsel = Signal()
        # the read address itself is the register (buffer base + word, kept rather than added,
        # so no adder sits between it and the memory)
        sf, piece, raddr = (
            _counter(self.sf, "sf"),
            _counter(self.slices, "piece"),
            _counter(2 * d, "raddr"),
        )
        m.d.comb += [
            self.avail.eq(full.bit_select(rsel, 1)),
            rp.addr.eq(raddr),
            rp.en.eq(self.ren),
        ]
        piece_r = _counter(self.slices, "piece_r")  # the piece of the word the port holds
        with m.If(self.ren):
            m.d.sync += piece_r.eq(piece)
        with m.If(self.en):
            with m.If(sf == self.sf - 1):
                m.d.sync += [sf.eq(0), piece.eq(0), raddr.eq(Mux(rsel, d, 0))]
                with m.If(self.release):  # on to the other buffer's first word
                    m.d.sync += [rsel.eq(~rsel), raddr.eq(Mux(rsel, 0, d))]
                    # a write completing in this same cycle targets the other buffer
                    with m.If(rsel):
                        m.d.sync += full[1].eq(0)
                    with m.Else():
                        m.d.sync += full[0].eq(0)
            with m.Else():
                m.d.sync += sf.eq(sf + 1)
                with m.If(piece == self.slices - 1):
                    m.d.sync += [piece.eq(0), raddr.eq(raddr + 1)]
                with m.Else():
                    m.d.sync += piece.eq(piece + 1)

        # codes above cols are 0 in the memory (the write side), so the slice is the read data
        # as it leaves the memory: a register right behind the port can be the block RAM's own
        width = self.simd * ka
        chunk = rp.data.word_select(piece_r, width) if self.slices > 1 else rp.data[:width]
        m.d.comb += self.data.eq(chunk)
