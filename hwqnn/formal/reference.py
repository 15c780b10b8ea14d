"""The bundle's integer function as one combinational Verilog module, for a miter against the
accelerator.

It is written from the bundle's definitions, not from the hardware: an input rule's code of
element ``g`` is the number of channel ``g % C``'s thresholds its raw value reaches (one constant
comparison per threshold, :mod:`hwqnn.layers.inputq`); for each dense layer and
neuron ``o`` the accumulator is the direct sum over every input ``i``, input plane ``n`` and
weight plane ``m`` of the plane product (``xnor``/``and``/``nor`` of the input bit with the
constant weight bit) shifted by ``n + m`` (the bundle docstring's ``A``); a hidden layer's code
is the number of thresholds ``t`` with ``A' >= t`` (``A' = acc_max - A`` on a flipped channel);
the last layer's scores are ``scale * gain * A + offset``, its class the first of the largest.
No folding, no adder tree, no memory: one sum per neuron.
"""

from __future__ import annotations

import numpy as np

from hwqnn.bundle import Bundle
from hwqnn.errors import InputError
from hwqnn.layers.activation import Scores, Thresholds
from hwqnn.layers.dense import Layer
from hwqnn.layers.inputq import InputQuant

WIDTH = 40  # every accumulator and score, signed: far above any tiny net's range


def lit(v: int) -> str:
    """A signed ``WIDTH``-bit Verilog literal."""
    return f"{'-' if v < 0 else ''}{WIDTH}'sd{abs(int(v))}"


def supported(b: Bundle) -> str | None:
    """Why the reference cannot be written for ``b`` (``None``: it can)."""
    if not all(isinstance(ly, Layer) for ly in b.layers):
        return "only dense layers (MLPs) have a reference so far"
    return None


def _plane_term(op: str, x: str, w: int) -> str | None:
    """The plane product of input bit ``x`` and constant weight bit ``w`` as a 1-bit term
    (``None``: constant 0; ``!`` keeps the term 1 bit wide inside a wider sum)."""
    if op == "xnor":
        return x if w else f"!{x}"
    if op == "and":
        return x if w else None
    return None if w else f"!{x}"  # nor


def _layer_lines(li: int, ly: Layer, xs: list[str], k_in: int) -> tuple[list[str], list[str]]:
    """Layer ``li``'s wires over input bits ``xs`` (input ``i``'s plane ``n`` at ``k_in*i+n``):
    ``l{li}_acc{o}``, then a hidden layer's codes ``l{li}_y{o}`` (returned as bits, the next
    layer's ``xs``) or the last layer's ``score{o}`` assignments."""
    lines: list[str] = []
    w = ly.weight_codes()  # [out, in]
    ops = ly.plane_ops()
    outs: list[str] = []
    for o in range(ly.out_features):
        planes = []
        for m, op in enumerate(ops):
            for n in range(k_in):
                col = range(ly.in_features)
                bits = [(xs[k_in * i + n], int(w[o, i]) >> m & 1) for i in col]
                terms = [t for x, wb in bits if (t := _plane_term(op, x, wb))]
                if terms:
                    planes.append(f"(({' + '.join(terms)}) << {n + m})")
        acc = f"l{li}_acc{o}"
        lines.append(f"  wire signed [{WIDTH - 1}:0] {acc} = {' + '.join(planes) or '0'};")
        act = ly.act
        if isinstance(act, Thresholds):
            a = f"l{li}_a{o}"
            flip = bool(act.flip[o])
            lines.append(f"  wire signed [{WIDTH - 1}:0] {a} = "
                         + (f"{lit(ly.acc_max)} - {acc};" if flip else f"{acc};"))  # fmt: skip
            cmps = [f"({a} >= {lit(t)})" for t in np.asarray(act.table)[o].tolist()]
            y = f"l{li}_y{o}"
            lines.append(f"  wire [{act.levels.bit_length()}:0] {y} = {' + '.join(cmps)};")
            outs += [f"{y}[{n}]" for n in range(ly.out_bits)]
        else:
            assert isinstance(act, Scores)
            scale = 1 if act.scale is None else int(act.scale[o])
            lines.append(f"  assign score{o} = {lit(scale * act.gain)} * {acc} + "
                         f"{lit(int(act.offset[o]))};")  # fmt: skip
    return lines, outs


def _quant_lines(q: InputQuant, n_in: int) -> tuple[list[str], list[str]]:
    """Wires ``q{g}``, element ``g``'s code of raw value ``inputs[raw_bits*g +: raw_bits]``,
    and the codes' bits (element ``g``'s bit ``n`` at ``bits*g+n``)."""
    lines: list[str] = []
    rb, k = q.raw_bits, q.bits
    assert q.thresholds is not None
    for g in range(n_in):
        x = f"inputs[{rb * g + rb - 1}:{rb * g}]"
        t = q.thresholds[g % q.channels].tolist()
        cmps = [f"({x} >= {rb + 1}'d{int(v)})" for v in t]  # 2**raw_bits: never met
        lines.append(f"  wire [{k}:0] q{g} = {' + '.join(cmps)};")
    return lines, [f"q{g}[{n}]" for g in range(n_in) for n in range(k)]


def reference_verilog(b: Bundle, name: str = "hwqnn_ref") -> str:
    """Module ``name``: input ``inputs``, the frame's raw values (element ``i`` at bits
    ``R*i``, ``R`` the bundle's ``raw_bits``; codes of layer 0's ``in_bits`` for an identity
    input), outputs ``score{c}`` (signed ``WIDTH`` bits) and ``cls``."""
    why = supported(b)
    if why is not None:
        raise InputError(f"hwqnn prove: {why}")
    n_in = b.in_features
    lines = [f"module {name}(input wire [{n_in * b.raw_bits - 1}:0] inputs,"]
    lines += [f"  output wire signed [{WIDTH - 1}:0] score{c}," for c in range(b.num_classes)]
    lines += ["  output wire [31:0] cls);"]
    k_in = b.layers[0].in_bits
    if b.quant.is_identity:
        xs = [f"inputs[{k_in * i + n}]" for i in range(n_in) for n in range(k_in)]
    else:
        body, xs = _quant_lines(b.quant, n_in)
        lines += body
    for li, ly in enumerate(b.layers):
        assert isinstance(ly, Layer)  # supported() said so
        body, xs = _layer_lines(li, ly, xs, k_in)
        lines += body
        k_in = ly.out_bits
    best, top = "0", "score0"  # the first of the largest: only a strictly greater one moves on
    for c in range(1, b.num_classes):
        lines.append(f"  wire [31:0] best{c} = (score{c} > {top}) ? {c} : {best};")
        lines.append(f"  wire signed [{WIDTH - 1}:0] top{c} = "
                     f"(score{c} > {top}) ? score{c} : {top};")  # fmt: skip
        best, top = f"best{c}", f"top{c}"
    lines.append(f"  assign cls = {best};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def layer_reference_verilog(ly: Layer, name: str = "hwqnn_layer_ref") -> str:
    """Module ``name`` for one dense layer alone: input ``inputs`` (code ``i`` at bits
    ``in_bits*i``), outputs ``y{o}``, neuron ``o``'s code (thresholds) or score (signed
    ``WIDTH`` bits)."""
    n, k = ly.in_features, ly.in_bits
    scores = isinstance(ly.act, Scores)
    width = f"signed [{WIDTH - 1}:0]" if scores else f"[{ly.out_bits - 1}:0]"
    lines = [f"module {name}(input wire [{n * k - 1}:0] inputs,"]
    lines += [f"  output wire {width} y{o}" + ("," if o + 1 < ly.out_features else ");")
              for o in range(ly.out_features)]  # fmt: skip
    if scores:
        lines += [f"  wire signed [{WIDTH - 1}:0] score{o};" for o in range(ly.out_features)]
    xs = [f"inputs[{k * i + b}]" for i in range(n) for b in range(k)]
    body, _ = _layer_lines(0, ly, xs, k)
    lines += body
    for o in range(ly.out_features):
        src = f"score{o}" if scores else f"l0_y{o}[{ly.out_bits - 1}:0]"
        lines.append(f"  assign y{o} = {src};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def quant_reference_verilog(q: InputQuant, n_in: int, name: str = "hwqnn_quant_ref") -> str:
    """Module ``name`` for an input rule alone: input ``inputs`` (raw value ``g`` at bits
    ``raw_bits*g``), outputs ``y{g}``, element ``g``'s code."""
    lines = [f"module {name}(input wire [{n_in * q.raw_bits - 1}:0] inputs,"]
    lines += [f"  output wire [{q.bits - 1}:0] y{g}" + ("," if g + 1 < n_in else ");")
              for g in range(n_in)]  # fmt: skip
    body, _ = _quant_lines(q, n_in)
    lines += body
    lines += [f"  assign y{g} = q{g}[{q.bits - 1}:0];" for g in range(n_in)]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
