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
A convolution is its matrix's neurons over each position's window (positions in raster order,
window codes in (ky, kx, c) order, the input's zero code outside the image), a max-pool the
largest code of each window and channel; both index the image by the window's definition
(``y = oy * stride - pad + ky``), not by the hardware's line buffer.
No folding, no adder tree, no memory: one sum per neuron and position.
"""

from __future__ import annotations

import numpy as np

from hwqnn.bundle import Bundle
from hwqnn.errors import InputError
from hwqnn.layers import Window
from hwqnn.layers.activation import Scores, Thresholds
from hwqnn.layers.conv import Conv2d, MaxPool2d
from hwqnn.layers.dense import Layer
from hwqnn.layers.inputq import InputQuant

WIDTH = 40  # every accumulator and score, signed: far above any tiny net's range


def lit(v: int) -> str:
    """A signed ``WIDTH``-bit Verilog literal."""
    return f"{'-' if v < 0 else ''}{WIDTH}'sd{abs(int(v))}"


def supported(b: Bundle) -> str | None:
    """Why the reference cannot be written for ``b`` (``None``: it can)."""
    if not isinstance(b.layers[-1], Layer):
        return "the reference needs a dense last layer (the classifier)"
    return None


def _plane_term(op: str, x: str, w: int) -> str | None:
    """The plane product of input bit ``x`` and constant weight bit ``w`` as a 1-bit term
    (``None``: constant 0; ``!`` keeps the term 1 bit wide inside a wider sum)."""
    if op == "xnor":
        return x if w else f"!{x}"
    if op == "and":
        return x if w else None
    return None if w else f"!{x}"  # nor


def window_pixels(w: Window) -> list[int | None]:
    """The image pixel (``y * width + x``) each window beat reads, in the window unit's order
    (positions in raster order, then ``(ky, kx)``), ``None`` outside the image: from the
    window's definition, ``y = oy*stride - pad + ky`` and ``x = ox*stride - pad + kx``."""
    out: list[int | None] = []
    for oy in range(w.out_h):
        for ox in range(w.out_w):
            for ky in range(w.kernel):
                for kx in range(w.kernel):
                    y, x = oy * w.stride - w.pad + ky, ox * w.stride - w.pad + kx
                    inside = 0 <= y < w.height and 0 <= x < w.width
                    out.append(y * w.width + x if inside else None)
    return out


def window_bits(w: Window, xs: list[str], k: int, pad_code: int) -> list[list[str]]:
    """Per output position (raster order), its window's code bits in (ky, kx, c) order, ``k``
    bits a code: pixel ``P`` of :func:`window_pixels`, channel ``c`` is the image's element
    ``g = P * channels + c`` (HWC, bit ``n`` at ``xs[k*g+n]``), ``pad_code``'s bits outside."""
    pixels = window_pixels(w)
    kk = w.kernel**2
    rows = []
    for pos in range(w.positions):
        bits: list[str] = []
        for px in pixels[pos * kk : (pos + 1) * kk]:
            for c in range(w.channels):
                if px is None:
                    bits += [f"1'b{pad_code >> n & 1}" for n in range(k)]
                else:
                    g = px * w.channels + c
                    bits += xs[k * g : k * g + k]
        rows.append(bits)
    return rows


def _conv_lines(li: int, ly: Conv2d, xs: list[str], k: int) -> tuple[list[str], list[str]]:
    """A convolution: its matrix's neurons (:func:`_layer_lines`) over each position's window,
    the padding reading the input's zero code; out bits in HWC order."""
    lines: list[str] = []
    outs: list[str] = []
    pad = ly.matrix.in_enc.zero_code(k)
    for pos, bits in enumerate(window_bits(ly.window, xs, k, pad)):
        body, ys = _layer_lines(f"{li}_p{pos}", ly.matrix, bits, k)
        lines += body
        outs += ys
    return lines, outs


def _code(bits: list[str]) -> str:
    """A code's value from its bits, lowest first."""
    return "{" + ", ".join(reversed(bits)) + "}"


def _largest(tag: str, codes: list[str], k: int) -> tuple[list[str], str]:
    """Wires ``{tag}_m{j}``: the largest of ``codes`` (``k``-bit values) so far; the last."""
    lines: list[str] = []
    best = ""
    for j, code in enumerate(codes):
        name = f"{tag}_m{j}"
        rhs = code if not best else f"({code} > {best}) ? {code} : {best}"
        lines.append(f"  wire [{k - 1}:0] {name} = {rhs};")
        best = name
    return lines, best


def _pool_lines(li: int, ly: MaxPool2d, xs: list[str], k: int) -> tuple[list[str], list[str]]:
    """A max-pool: per position and channel the largest of the window's codes (codes are in
    value order in every encoding), a chain of comparisons."""
    lines: list[str] = []
    outs: list[str] = []
    w = ly.window
    for pos, bits in enumerate(window_bits(w, xs, k, 0)):  # no padding (refused when loaded)
        for c in range(w.channels):
            los = [k * (j * w.channels + c) for j in range(w.kernel**2)]
            body, best = _largest(f"l{li}_p{pos}_c{c}", [_code(bits[lo : lo + k]) for lo in los], k)
            lines += body
            outs += [f"{best}[{n}]" for n in range(k)]
    return lines, outs


def _layer_lines(li: int | str, ly: Layer, xs: list[str],
                 k_in: int) -> tuple[list[str], list[str]]:  # fmt: skip
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
        if isinstance(ly, Conv2d):
            body, xs = _conv_lines(li, ly, xs, k_in)
        elif isinstance(ly, MaxPool2d):
            body, xs = _pool_lines(li, ly, xs, k_in)
        else:
            assert isinstance(ly, Layer)
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
    lines = _module(name, n_in, q.raw_bits, n_in, q.bits)
    body, _ = _quant_lines(q, n_in)
    lines += body
    lines += [f"  assign y{g} = q{g}[{q.bits - 1}:0];" for g in range(n_in)]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _module(name: str, n_in: int, k_in: int, n_out: int, k_out: int) -> list[str]:
    """The head of a unit reference: ``inputs`` (``n_in`` codes of ``k_in`` bits), outputs
    ``y0 ..`` (``n_out`` codes of ``k_out``)."""
    lines = [f"module {name}(input wire [{n_in * k_in - 1}:0] inputs,"]
    lines += [f"  output wire [{k_out - 1}:0] y{o}" + ("," if o + 1 < n_out else ");")
              for o in range(n_out)]  # fmt: skip
    return lines


def reduce_reference_verilog(channels: int, k: int, group: int, groups: int,
                             name: str = "hwqnn_reduce_ref") -> str:  # fmt: skip
    """Module ``name`` for a max-reduce alone: input ``inputs``, ``groups * group`` pixels of
    ``channels`` codes of ``k`` bits; output ``y{g * channels + c}``, the largest code of
    channel ``c`` over group ``g``'s pixels."""
    n_in = groups * group * channels
    lines = _module(name, n_in, k, groups * channels, k)
    for g in range(groups):
        for c in range(channels):
            codes = []
            for j in range(group):
                e = (g * group + j) * channels + c
                codes.append(f"inputs[{k * e + k - 1}:{k * e}]")
            body, best = _largest(f"g{g}_c{c}", codes, k)
            lines += body
            lines.append(f"  assign y{g * channels + c} = {best};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
