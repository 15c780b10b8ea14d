"""The collector behind the last layer: a frame's class scores in one beat, with their argmax.

The last unit gives a frame's scores as NF beats of PE scores (class ``n*PE + p`` in beat ``n``,
lane ``p``). The collector keeps beats 0..NF-2, and on the last beat registers the whole score
vector; a comparison tree then finds the argmax, one registered level per comparison (the
argmax of ten scores as one chain of nine comparators was the critical path of the whole
design). Ties pick the lowest class: each comparison puts the lower classes on the left and
takes the right only when it is strictly greater.

Stall rule: every stage moves when the output register is empty or being read
(``advance = ~o.valid | o.ready``), and so does ``i.ready``. Score and index registers have no
reset (only the valid bits do), so delay lines map to shift-register LUTs.

Latency: ``1 + ceil(log2(classes))`` cycles from the last score beat to ``o.valid``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.stream import Signature as StreamSignature
from amaranth.lib.wiring import In, Out


def argmax_levels(classes: int) -> int:
    """Comparison levels of the argmax tree (one registered stage each)."""
    return max(0, (classes - 1).bit_length())


def result_layout(classes: int, score_width: int, class_bits: int) -> data.StructLayout:
    """The result beat (``m_axis_tdata``): ``classes`` signed scores of ``score_width`` bits,
    class ``k`` at bit ``k * score_width``, then the argmax class of ``class_bits`` bits. The
    manifest's :class:`hwqnn.hw.manifest.Ports` (and so the driver header) take their widths
    and offsets from it."""
    return data.StructLayout(
        {"scores": data.ArrayLayout(signed(score_width), classes), "cls": unsigned(class_bits)}
    )


class Collector(wiring.Component):
    """Gathers the last layer's NF beats of PE scores into one frame and appends the argmax."""

    def __init__(self, *, pe: int, nf: int, classes: int, score_width: int) -> None:
        self.pe, self.nf, self.classes, self.score_width = pe, nf, classes, score_width
        self.class_bits = max(1, (classes - 1).bit_length())
        self.latency = 1 + argmax_levels(classes)
        self.layout = result_layout(classes, score_width, self.class_bits)
        super().__init__(
            {
                "i": In(StreamSignature(pe * score_width)),
                "o": Out(StreamSignature(self.layout)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        sw, cb, nf = self.score_width, self.class_bits, self.nf
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        take = self.i.valid & advance

        # beats 0 .. NF-2 of the frame being gathered
        earlier = [Signal(self.pe * sw, name=f"fold{n}", reset_less=True) for n in range(nf - 1)]
        cnt = Signal(range(max(2, nf)))
        last_beat = cnt == nf - 1
        with m.If(take):
            m.d.sync += cnt.eq(Mux(last_beat, 0, cnt + 1))
            for n, reg in enumerate(earlier):
                with m.If(cnt == n):
                    m.d.sync += reg.eq(self.i.payload)

        # stage 0: the whole score vector
        n_scores = self.classes * sw
        valid = Signal(name="valid0")
        scores = Signal(n_scores, name="scores0", reset_less=True)
        with m.If(advance):
            m.d.sync += [
                valid.eq(take & last_beat),
                scores.eq(Cat(*earlier, self.i.payload)[:n_scores]),
            ]
        cands: list[tuple[Value, Value]] = [
            (scores[k * sw : (k + 1) * sw].as_signed(), Const(k, cb)) for k in range(self.classes)
        ]

        # one registered comparison level per stage; the scores ride along
        for level in range(argmax_levels(self.classes)):
            merged: list[tuple[Value, Value]] = []
            for j in range(0, len(cands) - 1, 2):
                (av, ai), (bv, bi) = cands[j], cands[j + 1]
                right = bv > av
                v = Signal(signed(sw), name=f"best{level + 1}_{j // 2}", reset_less=True)
                i = Signal(cb, name=f"arg{level + 1}_{j // 2}", reset_less=True)
                with m.If(advance):
                    m.d.sync += [v.eq(Mux(right, bv, av)), i.eq(Mux(right, bi, ai))]
                merged.append((v, i))
            if len(cands) % 2:  # the odd one out waits a stage
                ov, oi = cands[-1]
                v = Signal(signed(sw), name=f"best{level + 1}_{len(merged)}", reset_less=True)
                i = Signal(cb, name=f"arg{level + 1}_{len(merged)}", reset_less=True)
                with m.If(advance):
                    m.d.sync += [v.eq(ov), i.eq(oi)]
                merged.append((v, i))
            nxt_valid = Signal(name=f"valid{level + 1}")
            nxt_scores = Signal(n_scores, name=f"scores{level + 1}", reset_less=True)
            with m.If(advance):
                m.d.sync += [nxt_valid.eq(valid), nxt_scores.eq(scores)]
            cands, valid, scores = merged, nxt_valid, nxt_scores

        assert len(cands) == 1
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.eq(Cat(scores, cands[0][1])),
        ]
        return m
