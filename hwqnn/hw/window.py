"""The convolution input generator: an image in, its windows out in im2col order.

It is the front of a conv layer (``SlidingWindow -> MVTU``, as FINN pairs its input generator
with its MVAU) and of a max-pool layer (``SlidingWindow -> MaxReduce``). The window geometry and
the (ky, kx, c) order are :class:`hwqnn.layers.Window`'s, stated in :mod:`hwqnn.bundle`.

Data flow::

    i (stream, `in_chunk` codes per beat; `channels / in_chunk` beats per pixel, raster order)
        ─► pixel memory (two images, one pixel of `channels` codes per word, RAM)
        ─► o (stream, one pixel of `channels` codes per beat; `kernel**2` beats per window,
             (ky, kx) order, windows in raster order; positions outside the image read code 0)

Parameters
----------
window : Window     height, width, channels, kernel, stride, padding
bits                code width
in_chunk            codes per input beat; divides ``channels`` (the producer's PE, or the top's
                    input width)

Timing
------
The memory holds two images: while one is read the next is written, so with no back-pressure
the reader gives a beat every cycle, ``positions * kernel**2`` cycles per image, and the writer
takes a beat every cycle, ``height * width * channels / in_chunk`` per image; the unit's cycles
per frame are the larger of the two. Reading an image starts the cycle after its last beat is
written; the first window's first beat leaves two cycles later (address, then the memory's
read register, which is the output register). A frame's buffer is freed by the cycle that
reads its last pixel.

Memory: ``2 * height * width`` words of ``channels * bits`` bits, one synchronous read port: it
maps to block RAM or LUT RAM and grows with the image, not with its square.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwqnn.layers import Window


class SlidingWindow(wiring.Component):
    """Windows of an image stream, one pixel per beat (see the module docstring)."""

    def __init__(self, *, window: Window, bits: int, in_chunk: int) -> None:
        if not 1 <= in_chunk <= window.channels or window.channels % in_chunk:
            raise ValueError(
                f"in_chunk must divide the {window.channels} channels, not {in_chunk!r}"
            )
        if bits not in (1, 2, 4, 8):
            raise ValueError(f"bits must be 1, 2, 4 or 8, not {bits!r}")
        self.window, self.bits, self.in_chunk = window, bits, in_chunk
        self.beats_per_pixel = window.channels // in_chunk
        self.pixels = window.height * window.width
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(in_chunk * bits))),
                "o": Out(stream.Signature(unsigned(window.channels * bits))),
            }
        )

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
        win, n = self.window, self.pixels
        pix_bits = win.channels * self.bits
        m.submodules.mem = mem = Memory(shape=unsigned(pix_bits), depth=2 * n, init=[])
        wr = mem.write_port()
        rd = mem.read_port()
        full = Signal(2)  # image b is complete and not yet read out
        set_full = Signal(2)
        clear_full = Signal(2)
        m.d.sync += full.eq((full | set_full) & ~clear_full)

        # ---- write side: gather a pixel, write it, count pixels, swap banks per image
        w_bank = Signal()
        w_pix = Signal(range(max(2, n)))
        w_lane = Signal(range(max(2, self.beats_per_pixel)))
        gather = Signal(pix_bits)
        chunk_bits = self.in_chunk * self.bits
        last_lane = w_lane == self.beats_per_pixel - 1
        m.d.comb += self.i.ready.eq(~full.bit_select(w_bank, 1))
        if self.beats_per_pixel == 1:
            word = self.i.payload
        else:  # beats shift in from the top: the first beat ends at the low bits
            word = Cat(gather[chunk_bits:], self.i.payload)
        m.d.comb += [wr.addr.eq(Cat(w_pix, w_bank) if n & (n - 1) == 0 else w_bank * n + w_pix),
                     wr.data.eq(word)]  # fmt: skip
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += gather.eq(word)
            m.d.sync += w_lane.eq(Mux(last_lane, 0, w_lane + 1))
            with m.If(last_lane):
                m.d.comb += wr.en.eq(1)
                m.d.sync += w_pix.eq(Mux(w_pix == n - 1, 0, w_pix + 1))
                with m.If(w_pix == n - 1):
                    m.d.comb += set_full.bit_select(w_bank, 1).eq(1)
                    m.d.sync += w_bank.eq(~w_bank)

        # ---- read side: (oy, ox, ky, kx) counters -> address -> memory read register = output
        r_bank = Signal()
        k, s, p = win.kernel, win.stride, win.pad
        oy = Signal(range(max(2, win.out_h)))
        ox = Signal(range(max(2, win.out_w)))
        ky = Signal(range(max(2, k)))
        kx = Signal(range(max(2, k)))
        y = Signal(range(-p, win.height + k + 1))  # oy*s - p + ky, kept by additions
        x0 = Signal(range(-p, win.width + k + 1), init=-p)  # ox*s - p: the window's left column
        x = Signal(range(-p, win.width + k + 1))  # x0 + kx
        m.d.comb += x.eq(x0 + kx)
        y0 = Signal(range(-p, win.height + k + 1), init=-p)  # oy*s - p: its top row
        m.d.comb += y.eq(y0 + ky)
        checks = []  # only the bounds a window can cross (no constant compares in the Verilog)
        if p:
            checks += [y >= 0, x >= 0]
        if (win.out_h - 1) * s - p + k - 1 >= win.height:
            checks.append(y < win.height)
        if (win.out_w - 1) * s - p + k - 1 >= win.width:
            checks.append(x < win.width)
        inside = Const(1, 1)
        for c in checks:
            inside = inside & c
        advance = ~self.o.valid | self.o.ready  # the output register may take a new pixel
        issue = Signal()
        m.d.comb += issue.eq(full.bit_select(r_bank, 1) & advance)
        out_valid = Signal()
        oob = Signal()  # the output pixel lies outside the image: code 0
        m.d.comb += [
            rd.en.eq(advance),
            rd.addr.eq(r_bank * n + Mux(inside, y * win.width + x, 0)),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(Mux(oob, Const(0, pix_bits), rd.data)),
        ]
        with m.If(advance):
            m.d.sync += [out_valid.eq(issue), oob.eq(~inside)]
        last_kx, last_ky = kx == k - 1, ky == k - 1
        last_ox, last_oy = ox == win.out_w - 1, oy == win.out_h - 1
        with m.If(issue):
            m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
            with m.If(last_kx):
                m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
                with m.If(last_ky):
                    m.d.sync += [ox.eq(Mux(last_ox, 0, ox + 1)),
                                 x0.eq(Mux(last_ox, -p, x0 + s))]  # fmt: skip
                    with m.If(last_ox):
                        m.d.sync += [oy.eq(Mux(last_oy, 0, oy + 1)),
                                     y0.eq(Mux(last_oy, -p, y0 + s))]  # fmt: skip
                        with m.If(last_oy):  # the image's last pixel is read this cycle
                            m.d.comb += clear_full.bit_select(r_bank, 1).eq(1)
                            m.d.sync += r_bank.eq(~r_bank)
        return m


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
