"""The collector behind the last layer: a frame's class scores in one beat, with their argmax.

The last unit gives a frame's scores as NF beats of PE scores (class ``n*PE + p`` in beat ``n``,
lane ``p``). The collector keeps beats 0..NF-2, and on the last beat registers the whole score
vector; a comparison tree then finds the argmax, two registered stages per level: the
comparison, then the selection (the argmax of ten scores as one chain of nine comparators was
the critical path of the whole design; later one comparison and its selection in one stage was,
on ECP5: the small net at 124 MHz, the demo shape at 110 MHz). Ties pick the lowest class:
each comparison puts the lower classes on the left and takes the right only when it is strictly
greater.

Stall rule: every stage moves when the output register is empty or being read
(``advance = ~o.valid | o.ready``), and so does ``i.ready``. Score and index registers have no
reset (only the valid bits do), so delay lines map to shift-register LUTs.

Latency: ``1 + 2 * ceil(log2(classes))`` cycles from the last score beat to ``o.valid``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.stream import Signature as StreamSignature
from amaranth.lib.wiring import In, Out


def argmax_levels(classes: int) -> int:
    """Comparison levels of the argmax tree (two registered stages each)."""
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
        self.latency = 1 + 2 * argmax_levels(classes)
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

        # two registered stages per comparison level: the comparison (its result and both
        # candidates registered), then the selection; the scores ride along
        def stage(values: list[Value], names: list[str]) -> list[Signal]:
            regs = [
                Signal(Value.cast(v).shape(), name=n, reset_less=True)
                for v, n in zip(values, names, strict=True)
            ]
            with m.If(advance):
                m.d.sync += [r.eq(v) for r, v in zip(regs, values, strict=True)]
            return regs

        for level in range(argmax_levels(self.classes)):
            pairs: list[tuple[Value, ...]] = []
            for j in range(0, len(cands) - 1, 2):
                (av, ai), (bv, bi) = cands[j], cands[j + 1]
                q = f"{level + 1}_{j // 2}"
                pairs.append(tuple(stage(
                    [bv > av, av, ai, bv, bi],
                    [f"right{q}", f"a{q}", f"ai{q}", f"b{q}", f"bi{q}"],
                )))  # fmt: skip
            odd = None
            if len(cands) % 2:  # the odd one out waits two stages
                q = f"{level + 1}_{len(pairs)}"
                odd = stage(list(cands[-1]), [f"c{q}", f"ci{q}"])
            valid, scores = self._ride(m, advance, valid, scores, 2 * level + 1)
            merged: list[tuple[Value, Value]] = []
            for j, (right, av, ai, bv, bi) in enumerate(pairs):
                q = f"{level + 1}_{j}"
                v, i = stage([Mux(right, bv, av), Mux(right, bi, ai)], [f"best{q}", f"arg{q}"])
                merged.append((v, i))
            if odd is not None:
                q = f"{level + 1}_{len(merged)}"
                v, i = stage(odd, [f"best{q}", f"arg{q}"])
                merged.append((v, i))
            valid, scores = self._ride(m, advance, valid, scores, 2 * level + 2)
            cands = merged

        assert len(cands) == 1
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.eq(Cat(scores, cands[0][1])),
        ]
        return m

    def _ride(
        self, m: Module, advance: Value, valid: Signal, scores: Signal, n: int
    ) -> tuple[Signal, Signal]:
        """The valid bit and the score vector one stage on (stage ``n``)."""
        nxt_valid = Signal(name=f"valid{n}")
        nxt_scores = Signal(len(scores), name=f"scores{n}", reset_less=True)
        with m.If(advance):
            m.d.sync += [nxt_valid.eq(valid), nxt_scores.eq(scores)]
        return nxt_valid, nxt_scores
