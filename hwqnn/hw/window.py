"""The convolution input generator: an image in, its windows out in im2col order.

It is the front of a conv layer (``SlidingWindow -> MVTU``, as FINN pairs its input generator
with its MVAU) and of a max-pool layer (``SlidingWindow -> MaxReduce``). The window geometry and
the (ky, kx, c) order are :class:`hwqnn.layers.Window`'s, stated in :mod:`hwqnn.bundle`.

Data flow::

    i (stream, `in_chunk` codes per beat; `channels / in_chunk` beats per pixel, raster order)
        ─► line buffer (`rows` image rows, one pixel of `channels` codes per word, RAM)
        ─► o (stream, one pixel of `channels` codes per beat; `kernel**2` beats per window,
             (ky, kx) order, windows in raster order; positions outside the image read code 0)

Parameters
----------
window : Window     height, width, channels, kernel, stride, padding
bits                code width
in_chunk            codes per input beat; divides ``channels`` (the producer's PE, or the top's
                    input width)

Line buffer
-----------
Rows are numbered without end across images (image ``f``'s row ``y`` is ``f * height + y``) and
row ``r`` lives in slot ``r mod rows``. The writer fills a row's slot once every row below the
reader's current window row top (``F``) is free: ``r - F < rows``. The reader starts a window row
once the rows it reads are complete; when it finishes one it frees the rows above the next top,
and after an image's last window row it frees the whole image. With

    rows = kernel + stride + max(0, height - out_h * stride)

a writer that keeps up (the unit's input is never the bottleneck) always holds the rows the
reader needs next: ``kernel`` rows being read, ``stride`` rows filled for the next window row,
and at an image's end its unread bottom rows plus the next image's first ``kernel - pad`` rows.
So the cycles per frame are those of whole-image double buffering, with memory that grows with
the image's width, not its area.

Timing
------
With no back-pressure the reader gives a beat every cycle once its rows are in, ``positions *
kernel**2`` cycles per image, and the writer takes a beat every cycle, ``height * width *
channels / in_chunk`` per image; the unit's cycles per frame are the larger of the two. A window
row's reads start the cycle after its last row's last beat is written; the first beat leaves two
cycles later (address, then the memory's read register, which is the output register). Rows are
freed by the cycle that reads the last pixel of a window row.

Memory: ``rows * width`` words of ``channels * bits`` bits, one synchronous read port: it maps to
block RAM or LUT RAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from hwqnn.layers import Window


@dataclass(frozen=True)
class _Rows:
    """The line buffer's row numbers (modulo ``2**nbits``) and the cycle's row events, shared
    by the write side, the read side and the flags."""

    written: Signal  # rows complete = the row being written
    freed: Signal  # rows below this one may be overwritten (the reader's top row)
    need: Signal  # the last row the reader's current window row reads
    row_done: Signal  # a row is complete this cycle: written + 1 next
    window_row_done: Signal  # the reader finishes a window row: need, freed take need_n, freed_n
    need_n: Signal
    freed_n: Signal
    rows_in: Signal  # need < written, a register (SlidingWindow._flags)


def line_rows(window: Window) -> int:
    """Rows in a sliding window's line buffer (see the module docstring)."""
    w = window
    return w.kernel + w.stride + max(0, w.height - w.out_h * w.stride)


class SlidingWindow(wiring.Component):
    """Windows of an image stream, one pixel per beat (see the module docstring)."""

    def __init__(self, *, window: Window, bits: int, in_chunk: int, pad_code: int = 0) -> None:
        if not 1 <= in_chunk <= window.channels or window.channels % in_chunk:
            raise ValueError(
                f"in_chunk must divide the {window.channels} channels, not {in_chunk!r}"
            )
        if bits not in (1, 2, 4, 8):
            raise ValueError(f"bits must be 1, 2, 4 or 8, not {bits!r}")
        self.window, self.bits, self.in_chunk = window, bits, in_chunk
        self.pad_code = pad_code  # the code a padded position reads (the input's zero code)
        self.beats_per_pixel = window.channels // in_chunk
        self.pixels = window.height * window.width
        self.rows = line_rows(window)
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(in_chunk * bits))),
                "o": Out(stream.Signature(unsigned(window.channels * bits))),
            }
        )

    @property
    def _pad_pixel(self) -> int:
        """A padded pixel: ``pad_code`` in every channel."""
        return sum(self.pad_code << (c * self.bits) for c in range(self.window.channels))

    @property
    def write_cycles(self) -> int:
        """Input beats per image."""
        return self.pixels * self.beats_per_pixel

    @property
    def read_cycles(self) -> int:
        """Output beats per image."""
        return self.window.positions * self.window.kernel**2

    @property
    def cycles_per_frame(self) -> int:
        return max(self.write_cycles, self.read_cycles)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        win, rows = self.window, self.rows
        k, width = win.kernel, win.width
        pix_bits = win.channels * self.bits
        # no_rw_check: a read that meets a write to the same word in the same cycle is never
        # used: an issued read's rows are complete (``need < written``), so the row being
        # written is not among them, and a read whose word is not used (a padded position's,
        # at address 0, or one while nothing issues) may return anything. So Yosys need not
        # add the bypass that makes a colliding read return the old word.
        mem = Memory(
            shape=unsigned(pix_bits), depth=rows * width, init=[], attrs={"no_rw_check": 1}
        )
        m.submodules.mem = mem
        wr = mem.write_port()
        rd = mem.read_port()
        # Row numbers without end, kept modulo 2**nbits: every difference compared below lies
        # in -(height + kernel + 1) .. rows + 1, well inside half the range.
        nbits = (2 * (win.height + k + rows + 2)).bit_length() + 1
        r = _Rows(
            written=Signal(nbits),
            freed=Signal(nbits),
            need=Signal(nbits, init=min(k - 1 - win.pad, win.height - 1) % 2**nbits),
            row_done=Signal(),
            window_row_done=Signal(),
            freed_n=Signal(nbits),
            need_n=Signal(nbits),
            rows_in=Signal(),
        )
        self._write_side(m, wr, r)
        self._read_side(m, rd, r)
        self._flags(m, r)
        return m

    def _flags(self, m: Module, r: _Rows) -> None:
        """``i.ready`` (``written - freed < rows``: a slot is free) and ``rows_in`` (``need <
        written``: the window row's rows are complete) as registers, each computed a cycle
        ahead from the four outcomes of the cycle's two row events: the handshakes start at a
        flip-flop, not at a subtraction, and the flags hold the same value on every cycle as
        the subtractions would."""
        nbits = len(r.written)

        def diff(a: Value, b: Value) -> Signal:  # a - b, nbits-bit two's complement
            d = Signal(nbits)
            m.d.comb += d.eq(a - b)
            return d

        def below(d: Signal, limit: int) -> Value:  # d < limit, d signed
            return d[-1] | (d < limit) if limit > 0 else d[-1]

        def next_flag(now: tuple[Value, Value], then: tuple[Value, Value]) -> Value:
            # now/then: without/with the window row's event; [0]/[1]: without/with a new row
            return Mux(r.window_row_done, Mux(r.row_done, then[1], then[0]),
                       Mux(r.row_done, now[1], now[0]))  # fmt: skip

        # written + 1 - freed < rows is written - freed < rows - 1; need - (written + 1) < 0 is
        # need - written <= 0: one subtraction for both outcomes of a new row
        ahead, ahead_n = diff(r.written, r.freed), diff(r.written, r.freed_n)
        room = Signal(init=1)  # at reset written - freed = 0 < rows
        rows = self.rows
        m.d.sync += room.eq(
            next_flag(
                (below(ahead, rows), below(ahead, rows - 1)),
                (below(ahead_n, rows), below(ahead_n, rows - 1)),
            )
        )
        m.d.comb += self.i.ready.eq(room)
        missing, missing_n = diff(r.need, r.written), diff(r.need_n, r.written)
        rows_in = Signal(init=(r.need.init >> (nbits - 1)) & 1)  # at reset need - 0 < 0
        m.d.sync += rows_in.eq(next_flag((below(missing, 0), below(missing, 1)),
                                         (below(missing_n, 0), below(missing_n, 1))))  # fmt: skip
        m.d.comb += r.rows_in.eq(rows_in)

    def _write_side(self, m: Module, wr: WritePort, r: _Rows) -> None:
        """Gather a pixel, write it into its row's slot, count the rows complete (``i.ready``,
        low while every slot holds a row the reader still needs, is :meth:`_flags`')."""
        win, rows = self.window, self.rows
        width = win.width
        pix_bits = win.channels * self.bits
        # ---- write side: gather a pixel, write it into its row's slot, count rows
        w_addr = Signal(range(max(2, rows * width)))  # slot * width + w_x, counted
        w_x = Signal(range(max(2, width)))
        w_lane = Signal(range(max(2, self.beats_per_pixel)))
        gather = Signal(pix_bits)
        chunk_bits = self.in_chunk * self.bits
        last_lane = w_lane == self.beats_per_pixel - 1
        if self.beats_per_pixel == 1:
            word = self.i.payload
        else:  # beats shift in from the top: the first beat ends at the low bits
            word = Cat(gather[chunk_bits:], self.i.payload)
        m.d.comb += [wr.addr.eq(w_addr), wr.data.eq(word)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += gather.eq(word)
            m.d.sync += w_lane.eq(Mux(last_lane, 0, w_lane + 1))
            with m.If(last_lane):
                m.d.comb += wr.en.eq(1)
                m.d.sync += w_x.eq(Mux(w_x == width - 1, 0, w_x + 1))
                # the next pixel's word: the next column, or the next slot's first (a row's
                # slot follows the previous one's, the first after the last)
                m.d.sync += w_addr.eq(Mux(w_addr == rows * width - 1, 0, w_addr + 1))
                # the row is complete (readable next cycle)
                m.d.comb += r.row_done.eq(w_x == width - 1)
        with m.If(r.row_done):
            m.d.sync += r.written.eq(r.written + 1)

    def _read_side(self, m: Module, rd: ReadPort, r: _Rows) -> None:
        """(oy, ox, ky, kx) counters -> read address register -> the memory's read register =
        the output pixel (``pad_code`` outside the image); waits until every row a window row
        reads is in.

        What the memory and the handshake read are registers: when a beat issues, the read
        address of the *next* position (and whether it lies inside the image) is computed from
        row addresses kept as multiples of ``width`` (no multiplier), and the row numbers
        ``need`` and ``freed`` move with the window row. So the memory's path is register ->
        memory -> register and the handshake's starts at the ``rows_in`` register
        (:meth:`_flags`); the unit's cycle behaviour is that of its counters alone."""
        win, rows = self.window, self.rows
        k, s, p, width, height = win.kernel, win.stride, win.pad, win.width, win.height
        pix_bits = win.channels * self.bits
        depth = rows * width
        oy = Signal(range(max(2, win.out_h)))
        ox = Signal(range(max(2, win.out_w)))
        ky = Signal(range(max(2, k)))
        kx = Signal(range(max(2, k)))
        x0 = Signal(range(-p, width + k + 1), init=-p)  # ox*s - p: the window's left column
        y0 = Signal(range(-p, height + k + 1), init=-p)  # oy*s - p: its top row
        x = Signal(range(-p, width + k + 1), init=-p)  # x0 + kx: the position to issue
        y = Signal(range(-p, height + k + 1), init=-p)  # y0 + ky
        base = Signal(len(r.written))  # the image's row 0
        # row addresses: a row's slot (its number mod rows) times width
        top_addr = Signal(range(max(2, depth)), init=((-p) % rows) * width)  # row y0's
        row_addr = Signal(range(max(2, depth)), init=((-p) % rows) * width)  # row y's
        next_top0 = Signal(range(max(2, depth)), init=((height - p) % rows) * width)
        addr = Signal(range(max(2, depth)))  # row_addr + x, or 0 outside the image
        inside = Signal(init=int(p == 0))  # the position to issue lies inside the image

        def wrap(v: Value) -> Value:  # v mod depth for 0 <= v < 2 * depth
            return Mux(v >= depth, v - depth, v)

        def bottom(top: Value) -> Value:  # the last row a window row from `top` reads
            return Mux(top + (k - 1) > height - 1, height - 1, top + (k - 1))

        def floor0(top: Value) -> Value:  # max(top, 0); top < 0 only with padding
            return Mux(top < 0, 0, top) if p else top

        def inside_at(yv: Value, xv: Value) -> Value:
            checks = []  # only the bounds a window can cross (no constant compares)
            if p:
                checks += [yv >= 0, xv >= 0]
            if (win.out_h - 1) * s - p + k - 1 >= height:
                checks.append(yv < height)
            if (win.out_w - 1) * s - p + k - 1 >= width:
                checks.append(xv < width)
            v: Value = Const(1, 1)
            for c in checks:
                v = v & c
            return v

        rows_in = r.rows_in  # need < written: every row the window row reads is complete
        advance = ~self.o.valid | self.o.ready  # the output register may take a new pixel
        issue = Signal()
        m.d.comb += issue.eq(rows_in & advance)
        out_valid = Signal()
        oob = Signal()  # the output pixel lies outside the image: code 0
        m.d.comb += [
            rd.en.eq(advance),
            rd.addr.eq(addr),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(Mux(oob, Const(self._pad_pixel, pix_bits), rd.data)),
        ]
        with m.If(advance):
            m.d.sync += [out_valid.eq(issue), oob.eq(~inside)]
        last_kx, last_ky = kx == k - 1, ky == k - 1
        last_ox, last_oy = ox == win.out_w - 1, oy == win.out_h - 1
        # the next position: its column, row and row address
        x_n = Signal.like(x)
        y_n = Signal.like(y)
        row_n = Signal.like(row_addr)
        next_x0, next_y0 = x0 + s, y0 + s  # the next window's left column, top row
        next_top = Signal.like(top_addr)  # the next window row's top row address
        m.d.comb += next_top.eq(wrap(top_addr + (s % rows) * width))
        with m.If(~last_kx):
            m.d.comb += [x_n.eq(x + 1), y_n.eq(y), row_n.eq(row_addr)]
        with m.Elif(~last_ky):
            m.d.comb += [x_n.eq(x0), y_n.eq(y + 1), row_n.eq(wrap(row_addr + width))]
        with m.Elif(~last_ox):
            m.d.comb += [x_n.eq(next_x0), y_n.eq(y0), row_n.eq(top_addr)]
        with m.Elif(~last_oy):
            m.d.comb += [x_n.eq(-p), y_n.eq(next_y0), row_n.eq(next_top)]
        with m.Else():
            m.d.comb += [x_n.eq(-p), y_n.eq(-p), row_n.eq(next_top0)]
        inside_n = Signal()
        m.d.comb += inside_n.eq(inside_at(y_n, x_n))
        # need and freed after the window row: the next one's, or after the image's last, the
        # whole image freed and the next image's first window row (need as at reset). They
        # depend on y0, oy and base alone, which change only when a window row ends; a window
        # row takes at least two cycles (``k * k * out_w >= 2``), so they are registered (from
        # the previous cycle's state, the same as this cycle's whenever a window row ends):
        # that keeps their adders out of the flags' paths.
        nb = base + height
        need_n = Mux(last_oy, nb + r.need.init, base + bottom(next_y0))
        freed_n = Mux(last_oy, nb, base + floor0(next_y0))
        if k * k * win.out_w >= 2:
            m.d.sync += [r.need_n.eq(need_n), r.freed_n.eq(freed_n)]
        else:
            m.d.comb += [r.need_n.eq(need_n), r.freed_n.eq(freed_n)]
        with m.If(issue):
            m.d.sync += [x.eq(x_n), y.eq(y_n), row_addr.eq(row_n), inside.eq(inside_n),
                         addr.eq(Mux(inside_n, row_n + x_n, 0))]  # fmt: skip
            m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
            with m.If(last_kx):
                m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
                with m.If(last_ky):
                    m.d.sync += [ox.eq(Mux(last_ox, 0, ox + 1)),
                                 x0.eq(Mux(last_ox, -p, next_x0))]  # fmt: skip
                    with m.If(last_ox):  # the window row's last pixel is read this cycle
                        m.d.comb += r.window_row_done.eq(1)
                        m.d.sync += oy.eq(Mux(last_oy, 0, oy + 1))
                        with m.If(last_oy):  # and the image's: on to the next
                            m.d.sync += [
                                y0.eq(-p),
                                base.eq(nb),
                                top_addr.eq(next_top0),
                                next_top0.eq(wrap(next_top0 + (height % rows) * width)),
                            ]
                        with m.Else():
                            m.d.sync += [y0.eq(next_y0), top_addr.eq(next_top)]
        with m.If(r.window_row_done):
            m.d.sync += [r.need.eq(r.need_n), r.freed.eq(r.freed_n)]


class MaxReduce(wiring.Component):
    """The largest code per channel over each group of ``group`` pixel beats: behind a
    :class:`SlidingWindow` it is max-pooling (for 1-bit codes, the OR of the window).

    Members: ``i``, ``o``: one pixel of ``channels`` codes per beat. Latency: the result leaves
    the cycle after the group's last beat (an output register)."""

    def __init__(self, *, channels: int, bits: int, group: int) -> None:
        if group < 1:
            raise ValueError(f"group must be at least 1, not {group!r}")
        self.channels, self.bits, self.group = channels, bits, group
        width = channels * bits
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(width))),
                "o": Out(stream.Signature(unsigned(width))),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        b, g = self.bits, self.group
        acc = Signal(self.channels * b)
        count = Signal(range(max(2, g)))
        first, last = count == 0, count == g - 1
        merged = []
        for c in range(self.channels):
            new, old = self.i.payload[c * b : (c + 1) * b], acc[c * b : (c + 1) * b]
            merged.append(Mux(first | (new > old), new, old))
        nxt = Cat(*merged)
        out_valid = Signal()
        m.d.comb += [self.i.ready.eq(~out_valid | self.o.ready), self.o.valid.eq(out_valid)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
            m.d.sync += acc.eq(nxt)
            with m.If(last):
                m.d.sync += out_valid.eq(1)
        m.d.comb += self.o.payload.eq(acc)
        return m
