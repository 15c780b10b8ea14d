"""QONNX graphs (as Brevitas exports them, or as FINN streamlines them) folded exactly into a
bundle; anything that cannot be represented exactly is refused, naming the node and why.

The graph is cleaned with ``qonnx``'s own ``cleanup_model`` (shape inference, constant folding:
weight quantizers become quantized initializers) and then read as one chain from the input:

* **input stage**: elementwise nodes before the first weighted node. The graph's input is
  ``raw * input_scale + input_bias`` for raw values of ``raw_bits`` (8-bit pixels); the stage is
  evaluated by ``qonnx``'s executor on every raw value and becomes the bundle's input thresholds
  (or the identity, when every raw value keeps its own code);
* **weighted nodes** (``MatMul``, ``Gemm``, ``Conv`` with square kernels, equal strides, no groups
  or dilation; ``Pad`` with the zero code's value before it): each weight row must be a positive
  scale times odd levels (±1, or odd k-bit levels: odd weights), or, behind a ``Quant`` node,
  that node's scale times integers in its range (signed or unsigned weights, zero included);
* **activation stages**: elementwise nodes (``Add``, ``Sub``, ``Mul``, ``Div``,
  ``BatchNormalization``, ``Relu``, ``Identity``) ending in a quantizer (``BipolarQuant``, ``Quant``
  with per-tensor scale and zero point, ``MultiThreshold``). The stage is evaluated by the executor
  at every integer dot product ``s`` the layer can produce (the graph's value there is ``a_o * s +
  b_o``, exactly derived from the layer's input codes and weight scales), and each channel's codes
  must be monotone in ``s``: non-decreasing gives thresholds, non-increasing thresholds and a flip;
* ``MaxPool`` (square, no padding) on quantized values, or before the quantizer when no channel
  is flipped; ``Flatten``/``Reshape`` (with ``Transpose`` to NHWC or not: dense weights are
  reordered to the bundle's HWC order);
* **output stage**: after the last weighted node only affine nodes, so the graph's scores are
  ``z[o] = p[o] * s + r[o]`` with every ``p[o] > 0``. With one ``p`` for every class they are
  ``P * (s + bias[o]) + R``, where ``bias`` (the bundle's score bias) must be integers: a Brevitas
  bias quantized on the accumulator's scale (``Int32Bias``) is; any other is refused. With
  per-class ``p`` (a per-class BatchNorm, as BNN-PYNQ's LFC ends) the bundle gets a per-class
  score scale (version 5) in units ``u = 2**-F``: ``scale[o] = p[o]/u`` and ``bias[o] =
  r[o]/u``, rounded, so ``score[o] = scale[o] * s + bias[o]`` and ``u * score[o]`` differs from
  ``z[o]`` by at most ``e[o] = |scale[o]*u - p[o]| * |s| + |bias[o]*u - r[o]|``, where ``p``
  and ``r`` are read off the graph's own (float32) evaluation. ``F`` is the smallest at which
  both are exactly whole (the integers are then the map itself, ``e = 0``: hwqnn's own graphs,
  whose scale and bias are integer constants), else the largest at which every score fits
  ``score_bits`` signed bits (32 by default: the int32 the C library and the GPU path hold;
  fewer bits make the hardware's score path, collector and argmax narrower, at a larger
  bound). **The argmax condition**: where an image's two highest graph scores differ by more
  than :attr:`ImportResult.argmax_bound` ``= 2 * max_o e[o]`` over the dot products the layer
  can produce, the integer argmax is the graph's map's (a float32 executor adds its own
  rounding: a BatchNorm's float32 ops are not exactly affine); ``hwqnn import --check`` counts
  the test images closer than that (``margin_within_bound``) and compares every class anyway.

Codes take the encoding their quantizer states (:mod:`hwqnn.layers.encoding`): ``BipolarQuant``,
a signed 1-bit ``Quant`` and ``MultiThreshold`` odd levels; an unsigned ``Quant`` with zero
point 0 (``QuantReLU``) unsigned codes; a signed ``Quant`` of 2+ bits with zero point 0 signed
codes; any other ``Quant`` odd levels over its range (the graph is affine in the code, so the
folding is exact either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hwqnn.bundle import Bundle, InputQuant, make_layer, validate
from hwqnn.errors import HwqnnError, InputError, shown
from hwqnn.layers import Conv2d, Layer, MaxPool2d, NetLayer, Window
from hwqnn.layers.dense import MAX_BIAS, SUPPORTED_BITS
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED, Encoding
from hwqnn.onnxio.bounds import GraphBoundsError, check_model, metadata_json, read_model

WEIGHTED = {"MatMul", "Gemm", "Conv"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu", "Identity"}
QUANTIZERS = {"BipolarQuant", "Quant", "MultiThreshold"}
RESHAPES = {"Flatten", "Reshape", "Transpose"}
CHUNK = 8192  # dot-product values evaluated per executor call
REL = 1e-5  # relative tolerance when reading float weights and levels as integers


class UnrepresentableGraphError(InputError):
    """A QONNX graph that hwqnn cannot represent exactly; the message names the node."""


def _refuse(node: Any, why: str) -> UnrepresentableGraphError:
    name = f"{node.name or node.output[0]} ({node.op_type})" if node is not None else "graph"
    return UnrepresentableGraphError(f"node {name}: {why}")


@dataclass
class Levels:
    """How a stage's output values stand for codes: ``value = u * code + v0``, ``bits`` wide,
    the codes in the bundle's encoding ``enc``."""

    u: float
    v0: float
    bits: int
    enc: Encoding = ODD

    @property
    def zero_value(self) -> float:
        """The graph value of the code a convolution pads with."""
        return self.u * self.enc.zero_code(self.bits) + self.v0


@dataclass(frozen=True)
class Weights:
    """A weighted node's matrix: ``w[o] = alpha[o] * levels[o]`` with integer levels that are
    the values of ``bits``-bit codes under ``enc``."""

    alpha: np.ndarray
    levels: np.ndarray
    bits: int
    enc: Encoding

    def codes(self) -> np.ndarray:
        """The weight codes ``[rows, ...]`` whose values are ``levels``."""
        lv = self.levels
        if self.enc is ODD:
            return (lv + (2**self.bits - 1)) // 2
        return lv + 2 ** (self.bits - 1) if self.enc is SIGNED else lv


@dataclass(frozen=True)
class _Flat:
    """A MatMul or Gemm's geometry: its matrix is the layer."""

    spatial: ClassVar[bool] = False

    def wrap(self, matrix: Layer) -> NetLayer:
        return matrix


@dataclass(frozen=True)
class _Windowed:
    """A Conv's geometry: its matrix applied at every position of ``window``."""

    window: Window
    spatial: ClassVar[bool] = True

    def wrap(self, matrix: Layer) -> NetLayer:
        return Conv2d(self.window, matrix)


@dataclass
class _Stage:
    nodes: list[Any] = field(default_factory=list)
    pool: Any = None  # a MaxPool met before the quantizer


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _bits_for(n_codes: int) -> int | None:
    return next((b for b in SUPPORTED_BITS if n_codes <= 2**b), None)


class _Reader:
    def __init__(self, model: Any, ctx: dict[str, np.ndarray]) -> None:
        self.model = model
        self.ctx = ctx  # every tensor's value for one probe input (constants included)
        self.inits = {i.name for i in model.graph.initializer}

    def const(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return np.asarray(self.model.get_initializer(name))
        return None

    def constant(self, name: str) -> bool:
        """The tensor does not depend on the graph's input."""
        if name in self.inits or not name:
            return True
        prod = self.model.find_producer(name)
        return prod is not None and all(self.constant(i) for i in prod.input)

    def weights(self, name: str) -> tuple[np.ndarray | None, int | None, Any]:
        """A weight tensor's value (after its quantizer), the quantizer's declared width, and
        its ``Quant`` node (``None`` for another producer)."""
        if not self.constant(name):
            return None, None, None
        prod = self.model.find_producer(name)
        bits = None
        if prod is not None and prod.op_type == "BipolarQuant":
            bits = 1
        elif prod is not None and prod.op_type == "Quant":
            bw = self.const(prod.input[3])
            bits = int(bw.reshape(-1)[0]) if bw is not None else None
        quant = prod if prod is not None and prod.op_type == "Quant" else None
        return np.asarray(self.ctx[name]), bits, quant

    def consumer(self, tensor: str) -> Any:
        users = self.model.find_consumers(tensor) or []
        if len(users) > 1:
            raise _refuse(users[1], f"tensor {tensor} feeds {len(users)} nodes: only chains")
        return users[0] if users else None

    def levels_of(self, node: Any) -> Levels:
        """The code-to-value map of a quantizer node."""
        op = node.op_type
        if op == "BipolarQuant":
            beta = self.const(node.input[1])
            if beta is None or beta.size != 1 or float(beta.reshape(-1)[0]) <= 0:
                raise _refuse(node, "its scale must be one positive constant")
            b = float(beta.reshape(-1)[0])
            return Levels(2 * b, -b, 1)
        if op == "Quant":
            from qonnx.custom_op.general.quant import max_int, min_int

            scale, zp, bw = (self.const(n) for n in node.input[1:4])
            if scale is None or zp is None or bw is None or scale.size != 1 or zp.size != 1:
                raise _refuse(
                    node,
                    "per-channel scales or zero points: codes would differ "
                    "per channel (only per-tensor activation quantizers)",
                )
            signed, narrow = bool(_attr(node, "signed", 1)), bool(_attr(node, "narrow", 0))
            width = int(bw.reshape(-1)[0])
            s, z = float(scale.reshape(-1)[0]), float(zp.reshape(-1)[0])
            if width == 1 and signed:
                return Levels(2 * s, -s, 1)  # qonnx reads a signed 1-bit Quant as bipolar
            lo, hi = int(min_int(signed, narrow, width)), int(max_int(signed, narrow, width))
            bits = _bits_for(hi - lo + 1)
            if bits is None or s <= 0:
                raise _refuse(node, f"{width}-bit activations: hwqnn takes 1, 2, 4 or 8")
            if z == 0 and bits == width and not signed:  # QuantReLU: value = s * code
                return Levels(s, 0.0, bits, UNSIGNED)
            if z == 0 and bits == width and signed:  # two's complement, narrow or not
                return Levels(s, -(2 ** (bits - 1)) * s, bits, SIGNED)
            return Levels(s, (lo - z) * s, bits)
        if op == "MultiThreshold":
            t = self.const(node.input[1])
            o_scale = float(_attr(node, "out_scale", 1.0))
            o_bias = float(_attr(node, "out_bias", 0.0))
            bits = _bits_for(t.shape[1] + 1) if t is not None and t.ndim == 2 else None
            if bits is None or o_scale <= 0:
                raise _refuse(node, "thresholds must be a constant [C, 2**k - 1] and out_scale > 0")
            return _affine_levels(o_scale, o_bias, bits)
        raise _refuse(node, "the activation must end in a quantizer (BipolarQuant, Quant, "
                            "MultiThreshold)")  # fmt: skip

    def evaluate(self, nodes: list[Any], x_name: str, x: np.ndarray) -> np.ndarray:
        """Run ``nodes`` (a chain from ``x_name``) on ``x`` with qonnx's executor."""
        import onnx
        import onnx.helper as oh
        from onnx import numpy_helper
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes

        chain = []
        prev = x_name
        for n in nodes:  # rewired in order: reshapes and pools between them are left out
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.input[0] = prev
            chain.append(c)
            prev = c.output[0]
        nodes = chain
        produced = {o for n in nodes for o in n.output}
        inits: list[Any] = []
        for n in nodes:
            for i in n.input[1:]:
                if i and i not in produced and i not in {t.name for t in inits}:
                    inits.append(numpy_helper.from_array(np.asarray(self.ctx[i]), i))
        out = nodes[-1].output[0]
        graph = oh.make_graph(
            list(nodes), "stage",
            [oh.make_tensor_value_info(x_name, onnx.TensorProto.FLOAT, list(x.shape))],
            [oh.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
            initializer=inits,
        )  # fmt: skip
        proto = oh.make_model(graph, opset_imports=list(self.model.model.opset_import))
        sub = ModelWrapper(proto).transform(InferShapes())
        return np.asarray(execute_onnx(sub, {x_name: x.astype(np.float32)})[out], np.float64)


def _affine_levels(u: float, v0: float, bits: int) -> Levels:
    """Codes whose values are ``u * code + v0``, labelled with the encoding that has that form
    up to the scale ``u``: unsigned (``v0 = 0``), signed (``v0 = -2**(bits-1) * u``), or odd
    levels (any other; the folding is exact whatever the label)."""
    if v0 == 0:
        return Levels(u, v0, bits, UNSIGNED)
    if bits > 1 and abs(v0 + 2 ** (bits - 1) * u) <= REL * abs(v0):
        return Levels(u, v0, bits, SIGNED)
    return Levels(u, v0, bits)


def _codes(values: np.ndarray, lv: Levels, node: Any) -> np.ndarray:
    c = (values - lv.v0) / lv.u
    r = np.rint(c)
    if np.any(np.abs(c - r) > 1e-3) or r.min() < 0 or r.max() > 2**lv.bits - 1:
        raise _refuse(node, "its outputs are not the quantizer's levels")
    return r.astype(np.int64)


def _quant_weights(w: np.ndarray, node: Any, quant: Any, rd: _Reader) -> Weights:
    """Weights behind a ``Quant`` node: its scale (per tensor or per output channel) times
    integers in its range, as signed (offset-binary) or unsigned codes."""
    from qonnx.custom_op.general.quant import max_int, min_int

    scale, zp, bw = (rd.const(n) for n in quant.input[1:4])
    if scale is None or zp is None or bw is None or np.any(zp != 0):
        raise _refuse(node, "weights behind a Quant need a constant scale and zero point 0")
    signed, narrow = bool(_attr(quant, "signed", 1)), bool(_attr(quant, "narrow", 0))
    width = int(bw.reshape(-1)[0])
    if width not in SUPPORTED_BITS:
        raise _refuse(node, f"{width}-bit weights: hwqnn takes 1, 2, 4 or 8")
    rows = w.shape[0]
    sc = np.asarray(scale, np.float64).reshape(-1)
    if sc.size not in (1, rows) or np.any(sc <= 0):
        raise _refuse(node, "weight scales must be positive, per tensor or per output channel")
    alpha = np.broadcast_to(sc, (rows,)).copy()
    flat = w.reshape(rows, -1).astype(np.float64) / alpha[:, None]
    lv = np.rint(flat)
    lo, hi = int(min_int(signed, narrow, width)), int(max_int(signed, narrow, width))
    if (
        np.any(np.abs(flat - lv) > REL * np.maximum(1.0, np.abs(flat)))
        or lv.min() < lo
        or (lv.max() > hi)
    ):
        raise _refuse(node, "weights are not its Quant's scale times integers in its range")
    enc = SIGNED if signed else UNSIGNED
    return Weights(alpha, lv.astype(np.int64).reshape(w.shape), width, enc)


def _weight_levels(
    w: np.ndarray, node: Any, declared: int | None = None, quant: Any = None,
    rd: _Reader | None = None,
) -> Weights:  # fmt: skip
    """The weights as ``alpha[o] * levels[o]``: odd levels where every row is a scale times odd
    integers (``w_bits`` the quantizer's own width where it states one), else the integers of
    the weights' ``Quant`` node (signed or unsigned codes)."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    zp = None if quant is None or rd is None else rd.const(quant.input[2])
    integer_quant = (
        zp is not None
        and bool(np.all(zp == 0))
        and (declared is not None and (declared >= 2 or not _attr(quant, "signed", 1)))
    )  # a Quant of integers (Brevitas's weights): its own scale and range, not odd levels
    if np.any(flat == 0) or integer_quant:
        if quant is not None and rd is not None:
            return _quant_weights(w, node, quant, rd)
        raise _refuse(
            node,
            "a weight of 0 is not an odd level, and no Quant node states the weights' "
            "integers (hwqnn reads signed integer weights from their Quant's scale)",
        )
    small = np.abs(flat).min(axis=1)
    alpha = np.zeros(len(flat))
    levels = np.zeros(flat.shape, np.int64)
    for o, row in enumerate(flat):  # the row's smallest magnitude is an odd level m * alpha
        for m in range(1, 256, 2):
            lv = row / (small[o] / m)
            r = np.rint(lv)
            if np.all(np.abs(lv - r) <= REL * np.abs(lv)) and np.all(r.astype(np.int64) % 2):
                alpha[o], levels[o] = small[o] / m, r.astype(np.int64)
                break
        else:
            if quant is not None and rd is not None:
                return _quant_weights(w, node, quant, rd)
            raise _refuse(node, f"row {o}: weights are not a scale times odd integer levels")
    need = _bits_for(int(np.abs(levels).max()) + 1)
    bits = declared if declared is not None and need is not None and declared >= need else need
    if bits is None or bits not in SUPPORTED_BITS:
        raise _refuse(node, "weight levels beyond 8 bits")
    return Weights(alpha, levels.reshape(w.shape), bits, ODD)


def _thresholds(codes: np.ndarray, node: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, codes over ``A = 0..CK`` -> ``(codes over A' [A, C], flip [C])``: A' = A, or
    ``CK - A`` where the codes fall (flip)."""
    d = np.diff(codes, axis=0)
    up, down = (d >= 0).all(axis=0), (d <= 0).all(axis=0)
    bad = np.flatnonzero(~(up | down))
    if bad.size:
        raise _refuse(node, f"channel {int(bad[0])}: the activation is not "
                            "monotone in the dot product")  # fmt: skip
    flip = np.asarray(~up, np.uint8)
    seq = np.where(flip[None, :] == 1, codes[::-1], codes)  # codes over A' = CK - A
    return seq, flip


def _first_reaching(seq: np.ndarray, levels: int) -> np.ndarray:
    """Thresholds int64 ``[C, levels]`` of non-decreasing codes ``seq [positions, C]``: per
    channel, the first position whose code is at least ``i + 1`` (``positions`` if none)."""
    return np.array(
        [np.searchsorted(col, np.arange(1, levels + 1), side="left") for col in seq.T], np.int64
    ).reshape(seq.shape[1], levels)


@dataclass
class ImportResult:
    bundle: Bundle
    # the graph's scores are score_scale * s + score_bias: one float each (every class), where s
    # is the bundle's score; or per-class arrays p, r (the bundle then has a score scale, and s
    # is its dot product, (score - bias) / scale)
    score_scale: float | np.ndarray
    score_bias: float | np.ndarray
    input_scale: float
    input_bias: float
    argmax_bound: float = 0.0  # see the module: 0 when the integers are the map itself

    @property
    def per_class(self) -> bool:
        return isinstance(self.score_scale, np.ndarray)

    def graph_dot(self, z: np.ndarray) -> np.ndarray:
        """The graph's scores ``z`` read back as the integers golden gives (rounded)."""
        return np.rint((z - self.score_bias) / self.score_scale)

    def golden_dot(self, scores: np.ndarray) -> np.ndarray:
        """Golden's scores as what :meth:`graph_dot` reads: themselves, or the dot products."""
        if not self.per_class:
            return scores
        (m,) = self.bundle.layers[-1].matrices()
        assert m.score_scale is not None
        b = 0 if m.bias is None else m.bias
        return (scores - b) // m.score_scale

    def describe(self) -> str:
        if not self.per_class:
            return f"{self.score_scale:.9g} * s + {self.score_bias:.9g}"
        p, r = np.asarray(self.score_scale), np.asarray(self.score_bias)
        return (f"p[o] * s + r[o] per class (p {p.min():.6g}..{p.max():.6g}, r "
                f"{r.min():.6g}..{r.max():.6g}); bundle scale[o] * s + bias[o], argmax bound "
                f"{self.argmax_bound:.3g}")  # fmt: skip


SCORE_BITS = range(8, 33)  # the signed score widths a rounded per-class scale may fill


def class_scale(
    p: np.ndarray, r: np.ndarray, lo: np.ndarray, hi: np.ndarray, node: Any, score_bits: int = 32
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(scale, bias, argmax_bound)`` of a per-class affine map ``z = p*s + r`` over dot
    products ``lo[o] .. hi[o]`` (the module's rule: the smallest exact ``F``, else the largest
    that keeps every score in ``score_bits`` signed bits)."""
    top_score = 2 ** (score_bits - 1) - 1

    def ints(f: int) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        u = 2.0**-f
        m, b = p / u, r / u
        mi, bi = np.rint(m), np.rint(b)
        whole = bool(np.all(m == mi) and np.all(b == bi))  # exactly: no tolerance hides a loss
        top = np.maximum(np.abs(mi * lo + bi), np.abs(mi * hi + bi))
        fits = bool(mi.min() >= 1 and mi.max() < 2**32 and top.max() <= top_score)
        if not fits:  # (possibly beyond int64: not cast)
            return mi, bi, whole, False
        return mi.astype(np.int64), bi.astype(np.int64), whole, fits

    best: int | None = None
    for f in range(-32, 64):
        mi, bi, whole, fits = ints(f)
        if whole and fits:
            return mi, bi, 0.0
        if fits:
            best = f
        elif best is not None:
            break
    if best is None:
        raise _refuse(node, f"per-class score scales {p.min():.3g}..{p.max():.3g} cannot share "
                            f"one integer unit within {score_bits}-bit scores")  # fmt: skip
    mi, bi, _, _ = ints(best)
    u = 2.0**-best
    err = np.abs(mi * u - p) * np.maximum(np.abs(lo), np.abs(hi)) + np.abs(bi * u - r)
    return mi, bi, float(2 * err.max())


def import_qonnx(
    model_or_path: Any,
    input_scale: float = 1.0,
    input_bias: float = 0.0,
    raw_bits: int = 8,
    classes: list[str] | None = None,
    score_bits: int = 32,
) -> ImportResult:
    """Fold a QONNX graph into a validated :class:`Bundle` (see the module docstring;
    ``score_bits``: the widest scores a rounded per-class scale may fill, 8..32)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    if raw_bits not in range(1, 9):
        raise InputError(f"raw_bits must be in 1..8, not {raw_bits!r}")
    if score_bits not in SCORE_BITS:
        raise InputError(f"score_bits must be in 8..32, not {score_bits!r}")
    if not (math.isfinite(input_scale) and input_scale != 0 and math.isfinite(input_bias)):
        raise InputError(f"the input mapping must be finite with a scale other than 0, not "
                         f"scale {input_scale!r}, bias {input_bias!r}")  # fmt: skip
    model = model_or_path
    if isinstance(model, ModelWrapper):
        where = "<model>"
        check_model(model.model, where)
    else:
        where = shown(model_or_path)
        model = ModelWrapper(read_model(model_or_path))
    props = {p.key: p.value for p in model.model.metadata_props}  # hwqnn's own export
    if classes is None and "hwqnn.classes" in props:
        named = metadata_json(props["hwqnn.classes"], "hwqnn.classes", where)
        if not isinstance(named, list) or not all(isinstance(c, str) for c in named):
            raise GraphBoundsError(f"{where}: metadata 'hwqnn.classes': not a list of names")
        classes = named
    info = (
        metadata_json(props["hwqnn.info"], "hwqnn.info", where) if "hwqnn.info" in props else None
    )
    if info is not None and not isinstance(info, dict):
        raise GraphBoundsError(f"{where}: metadata 'hwqnn.info': not a JSON object")
    shape = metadata_json(props.get("hwqnn.input_shape", "null"), "hwqnn.input_shape", where)
    try:
        model = cleanup_model(model.transform(ChangeBatchSize(1)))
        inp = model.graph.input[0]
        in_shape = tuple(int(d) for d in model.get_tensor_shape(inp.name))
        probe = np.zeros(in_shape, np.float32) + np.float32(input_bias)
        ctx = execute_onnx(model, {inp.name: probe}, return_full_exec_context=True)
    except Exception as e:  # onnx, onnxruntime and qonnx raise their own kinds on bad graphs
        first = str(e).strip().split("\n", 1)[0]
        raise UnrepresentableGraphError(
            f"{where}: the graph does not run ({type(e).__name__}: {shown(first)})"
        ) from e
    rd = _Reader(model, ctx)
    try:
        result = _Builder(rd, in_shape, input_scale, input_bias, raw_bits, score_bits).run(
            classes, info
        )
    except HwqnnError as e:
        if isinstance(e, UnrepresentableGraphError) and not str(e).startswith(where):
            raise UnrepresentableGraphError(f"{where}: {e}") from e
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        # a node whose attributes or inputs are not of the types ONNX gives them: foreign input
        raise UnrepresentableGraphError(
            f"{where}: a malformed graph ({type(e).__name__}: {shown(e)})"
        ) from e
    if isinstance(shape, list) and all(type(d) is int for d in shape):  # the shape hwqnn wrote
        b = result.bundle
        named = Bundle(b.layers, tuple(shape), b.classes, b.info, b.input_quant)
        try:
            validate(named, "<qonnx>")
            result.bundle = named
        except ValueError:
            pass  # the graph's own shape stands
    return result


class _Builder:
    def __init__(self, rd: _Reader, in_shape: tuple[int, ...], scale: float, bias: float,
                 raw_bits: int, score_bits: int = 32) -> None:  # fmt: skip
        self.rd, self.scale, self.bias, self.raw_bits = rd, scale, bias, raw_bits
        self.score_bits = score_bits
        if len(in_shape) == 4:
            _, c, h, w = in_shape
            self.image: tuple[int, int, int] | None = (h, w, c)
            self.input_shape: tuple[int, ...] = (h, w, c) if c > 1 else (h, w)
        elif len(in_shape) == 2:
            self.image, self.input_shape = None, (in_shape[1],)
        else:
            raise _refuse(None, f"input of shape {list(in_shape)}: [N, K] or [N, C, H, W]")
        self.layout = "nchw" if self.image else "flat"  # flat order: "hwc" (or "chw")
        self.flat_order = "hwc"
        self.layers: list[NetLayer] = []

    # ---- the input stage --------------------------------------------------------------------
    def _input(self, nodes: list[Any], x_name: str) -> tuple[InputQuant, Levels]:
        n_raw = 2**self.raw_bits
        arith = [n for n in nodes if n.op_type not in RESHAPES]
        chans = self.image[2] if self.image else 1
        raw = np.arange(n_raw, dtype=np.float64)
        x = np.repeat((raw * self.scale + self.bias)[:, None], chans, axis=1)
        if self.image:
            x = x[:, :, None, None]
        identity = InputQuant.identity(self.raw_bits)
        if not any(n.op_type in QUANTIZERS for n in arith):
            if not arith:
                return identity, Levels(self.scale, self.bias, self.raw_bits)
            vals = self.rd.evaluate(arith, x_name, x).reshape(n_raw, chans)
            u, v0 = vals[1] - vals[0], vals[0]
            fit = np.abs(vals - (v0 + u * raw[:, None])) <= REL * (np.abs(vals).max() + 1)
            if not fit.all() or (u <= 0).any() or np.ptp(u) > REL * u.max() or np.ptp(v0) > REL:
                raise _refuse(arith[-1], "unquantized input arithmetic that is not one "
                                         "increasing affine map for every channel")  # fmt: skip
            return identity, _affine_levels(float(u[0]), float(v0[0]), self.raw_bits)
        quantizer = [n for n in arith if n.op_type in QUANTIZERS][-1]
        if arith[-1] is not quantizer:
            raise _refuse(arith[-1], "only reshapes may follow the input's quantizer")
        lv = self.rd.levels_of(quantizer)
        vals = self.rd.evaluate(arith, x_name, x).reshape(n_raw, chans)
        codes = _codes(vals, lv, quantizer)
        if np.any(np.diff(codes, axis=0) < 0):
            raise _refuse(quantizer, "the input's codes decrease as the raw value grows")
        if lv.bits == self.raw_bits and (codes == raw[:, None]).all():
            return InputQuant.identity(self.raw_bits), lv
        t = _first_reaching(codes, 2**lv.bits - 1)  # n_raw: never reached
        if (t == t[0]).all():
            t = t[:1]
        return InputQuant(self.raw_bits, lv.bits, t), lv

    # ---- the chain ---------------------------------------------------------------------------
    def run(self, classes: list[str] | None, info: dict[str, Any] | None) -> ImportResult:
        rd = self.rd
        x_name = rd.model.graph.input[0].name
        node = rd.consumer(x_name)
        pre: list[Any] = []
        while node is not None and node.op_type not in WEIGHTED | {"Pad"}:
            if node.op_type not in ELEMENTWISE | QUANTIZERS | RESHAPES:
                raise _refuse(node, "not supported before the first weighted layer")
            if node.op_type in RESHAPES:
                self._reshape(node)
            pre.append(node)
            node = rd.consumer(node.output[0])
        if node is None:
            raise _refuse(None, "no MatMul, Gemm or Conv")
        quant, lv = self._input(pre, x_name)
        in_lv = lv
        bits_in = quant.bits
        score = (1.0, 0.0)
        while node is not None:
            pad = 0
            if node.op_type == "Pad":
                pad = self._pad(node, in_lv)
                node = rd.consumer(node.output[0])
                if node is None or node.op_type != "Conv":
                    raise _refuse(node, "a Pad must feed a Conv")
            if node.op_type not in WEIGHTED:
                raise _refuse(node, "expected a weighted layer here")
            wnode = node
            wt, geo, bias = self._weights(wnode, pad, in_lv)
            rows = wt.levels.shape[0]
            codes_w = wt.codes().reshape(rows, -1)
            encs = dict(in_enc=in_lv.enc, w_enc=wt.enc)
            # the graph's value is a * s + b, s the bundle's integer dot product of the values
            # (in_enc: value = gain * code + beta; the graph's input value = u * code + v0)
            g_in, beta_in = in_lv.enc.gain, in_lv.enc.offset(bits_in)
            lv_sum = wt.levels.reshape(rows, -1).sum(axis=1).astype(np.float64)
            a = wt.alpha * in_lv.u / g_in
            b = wt.alpha * (in_lv.v0 - in_lv.u * beta_in / g_in) * lv_sum + bias
            probe = make_layer(codes_w, bits_in, wt.bits, 0, **encs)  # type: ignore[arg-type]
            ck, d = probe.acc_max, probe.dot_offsets()  # s = g_in * A + d[o], A in 0..ck
            stage, end = self._stage(rd.consumer(wnode.output[0]))
            if end is None:  # the last layer: scores
                dots = (d.astype(np.float64), (g_in * ck + d).astype(np.float64))
                score, sbias, sscale, bound = self._scores(stage, wnode, a, b, dots)
                last = make_layer(codes_w, bits_in, wt.bits, 0, bias=sbias, scale=sscale,
                                  **encs)  # type: ignore[arg-type]  # fmt: skip
                self._append(geo, last, None)
                break
            lv_out = rd.levels_of(stage.nodes[-1])
            thr, flip = self._fold(stage, wnode, a, b, (g_in, d, ck), rows, lv_out, geo.spatial)
            if stage.pool is not None and flip.any():
                raise _refuse(
                    stage.pool,
                    "max-pooling before a quantizer whose channels are "
                    "flipped (BatchNorm gamma < 0) is not the pool of codes",
                )
            layer = make_layer(codes_w, bits_in, wt.bits, lv_out.bits, thr, flip,
                               out_enc=lv_out.enc, **encs)  # type: ignore[arg-type]  # fmt: skip
            self._append(geo, layer, stage.pool)
            in_lv, bits_in = lv_out, lv_out.bits
            node = end
            while node is not None and node.op_type in RESHAPES | {"MaxPool"}:
                if node.op_type == "MaxPool":
                    self._append_pool(node)
                else:
                    self._reshape(node)
                node = rd.consumer(node.output[0])
        names = (
            tuple(classes) if classes else tuple(str(i) for i in range(self.layers[-1].out_size))
        )
        if info is None:
            info = {"imported_from": "qonnx", "input_scale": self.scale, "input_bias": self.bias}
        bundle = Bundle(tuple(self.layers), self.input_shape, names, info, quant)
        validate(bundle, "<qonnx>")
        return ImportResult(bundle, score[0], score[1], self.scale, self.bias, bound)

    def _reshape(self, node: Any) -> None:
        if node.op_type == "Transpose":
            perm = list(_attr(node, "perm", []))
            if self.layout != "nchw" or perm != [0, 2, 3, 1]:
                raise _refuse(node, "only the NCHW -> NHWC transpose before a flatten")
            self.layout = "nhwc"
            return
        if self.layout in ("nchw", "nhwc"):
            self.flat_order = "hwc" if self.layout == "nhwc" or self._channels() == 1 else "chw"
            self.layout = "flat"

    def _channels(self) -> int:
        shape = self._shape()
        return shape[2] if shape else 1

    def _shape(self) -> tuple[int, int, int] | None:
        if not self.layers:
            return self.image
        out = self.layers[-1].out_shape
        return (out[0], out[1], out[2]) if len(out) == 3 else None

    def _pad(self, node: Any, lv: Levels) -> int:
        pads = self.rd.const(node.input[1])
        value = self.rd.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        v = float(value.reshape(-1)[0]) if value is not None else 0.0
        if _attr(node, "mode", b"constant") not in (b"constant", "constant") or pads is None:
            raise _refuse(node, "only constant padding")
        p = pads.reshape(-1).tolist()
        if len(p) != 8 or p[0] or p[1] or p[4] or p[5] or len(set(p[2:4] + p[6:8])) != 1:
            raise _refuse(node, "only equal spatial padding")
        if abs(v - lv.zero_value) > REL * max(1.0, abs(lv.zero_value)):
            raise _refuse(node, f"pads with {v}, not the value of the zero code ({lv.zero_value})")
        return int(p[2])

    def _weights(self, node: Any, pad: int, lv: Levels) -> tuple[Any, ...]:
        rd = self.rd
        w, declared, quant = rd.weights(node.input[1])
        if w is None:
            raise _refuse(node, "its weights are not constant")
        bias = np.zeros(1)
        if node.op_type == "Gemm":
            if int(_attr(node, "transA", 0)):
                raise _refuse(node, "transA")
            w = w if int(_attr(node, "transB", 0)) else w.T
            w = w * float(_attr(node, "alpha", 1.0))
            if len(node.input) > 2 and node.input[2]:
                if not rd.constant(node.input[2]):
                    raise _refuse(node, "a bias that is not constant")
                cb = np.asarray(rd.ctx[node.input[2]], np.float64)  # a Quant's output too
                bias = float(_attr(node, "beta", 1.0)) * np.broadcast_to(cb, (w.shape[0],))
        elif node.op_type == "MatMul":
            w = w.T
        if node.op_type == "Conv":
            shape = self._shape()
            if shape is None or self.layout != "nchw":
                raise _refuse(node, "a Conv needs an NCHW image")
            k = list(_attr(node, "kernel_shape", w.shape[2:]))
            s = list(_attr(node, "strides", [1, 1]))
            pads = list(_attr(node, "pads", [0, 0, 0, 0]))
            plain = int(_attr(node, "group", 1)) == 1 and list(
                _attr(node, "dilations", [1, 1])
            ) == [1, 1]
            if not plain or k[0] != k[1] or s[0] != s[1] or len(set(pads)) > 1:
                raise _refuse(node, "only square kernels, equal strides and pads, no groups")
            if pads[0] and (pad or abs(lv.zero_value) > REL * max(1.0, abs(lv.v0))):
                raise _refuse(node, "zero padding of an input whose zero code is not 0 (hwqnn "
                                    "pads with the zero code)")  # fmt: skip
            pad = pad or int(pads[0])
            if len(node.input) > 2 and node.input[2]:
                raise _refuse(node, "a Conv bias (fold it into the BatchNorm)")
            h, wd, c = shape
            win = Window(h, wd, c, int(k[0]), int(s[0]), pad)
            wt = _weight_levels(w, node, declared, quant, rd)
            levels = wt.levels.transpose(0, 2, 3, 1)  # [out, C, k, k] -> im2col (ky, kx, c)
            return Weights(wt.alpha, levels, wt.bits, wt.enc), _Windowed(win), bias
        if self.layout != "flat" and (self.layers or self.image):
            raise _refuse(node, "a dense layer needs a flattened input")
        wt = _weight_levels(w, node, declared, quant, rd)
        levels = wt.levels
        shape = self._shape() if self.layers else self.image
        if self.flat_order == "chw" and shape is not None:
            h, wd, c = shape
            levels = levels.reshape(-1, c, h, wd).transpose(0, 2, 3, 1).reshape(levels.shape[0], -1)
        return Weights(wt.alpha, levels, wt.bits, wt.enc), _Flat(), bias

    def _stage(self, node: Any) -> tuple[_Stage, Any]:
        """Nodes after a weighted node up to its quantizer; returns the stage and the node after
        it (``None``: the graph's output)."""
        st = _Stage()
        while node is not None:
            op = node.op_type
            if op in WEIGHTED | RESHAPES | {"Pad"}:
                raise _refuse(node, "a weighted layer's output must pass a quantizer first")
            if op == "MaxPool":
                st.pool = node
            elif op in ELEMENTWISE | QUANTIZERS:
                st.nodes.append(node)
            else:
                raise _refuse(node, "not a supported node")
            nxt = self.rd.consumer(node.output[0])
            if op in QUANTIZERS:
                if nxt is None:
                    raise _refuse(node, "the graph ends in a quantizer: hwqnn's last layer gives "
                                        "integer scores")  # fmt: skip
                return st, nxt
            node = nxt
        return st, None

    def _y(self, a: np.ndarray, b: np.ndarray, s: np.ndarray, spatial: bool) -> np.ndarray:
        """The graph's values ``a * s + b`` at dot products ``s`` (``[n]``, or ``[n, rows]``)."""
        y = (s if s.ndim == 2 else s[:, None]) * a[None, :] + b[None, :]
        return y[:, :, None, None] if spatial else y

    def _fold(self, st: _Stage, wnode: Any, a: np.ndarray, b: np.ndarray,
              dot: tuple[int, np.ndarray, int], rows: int, lv: Levels,
              spatial: bool) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Thresholds and flips: the stage evaluated at the dot product ``s = gain * A + d[o]``
        of every accumulator ``A`` in ``0..ck`` (``dot = (gain, d, ck)``)."""
        gain, d, ck = dot
        plain = gain == 2 and bool(np.all(d == -ck))  # odd levels: s = 2A - CK, shared

        def dots(acc: np.ndarray) -> np.ndarray:
            if plain:
                return (2 * acc - ck).astype(np.float64)
            return (gain * acc[:, None] + d[None, :]).astype(np.float64)

        codes = np.zeros((ck + 1, rows), np.int16)  # codes < 256; a signed diff below
        for start in range(0, ck + 1, CHUNK):
            acc = np.arange(start, min(ck + 1, start + CHUNK))
            vals = self.rd.evaluate(st.nodes, wnode.output[0], self._y(a, b, dots(acc), spatial))
            codes[start : start + len(acc)] = _codes(vals.reshape(len(acc), rows), lv, st.nodes[-1])
        falling = np.zeros(rows, bool)  # the pre-quantizer value's direction in s
        if len(st.nodes) > 1:
            ends = dots(np.array([0, ck]))
            pre = self.rd.evaluate(st.nodes[:-1], wnode.output[0], self._y(a, b, ends, spatial))
            pre = pre.reshape(2, rows)
            falling = pre[1] < pre[0]
        const = (codes == codes[:1]).all(axis=0)
        codes = np.where(const[None, :] & falling[None, :], codes[::-1], codes)  # tie: direction
        seq, flip = _thresholds(codes, st.nodes[-1])
        flip = np.where(const, falling, flip).astype(np.uint8)
        seq = np.where(const[None, :], codes, seq)
        return _first_reaching(seq, 2**lv.bits - 1), flip  # ck + 1: never reached

    def _scores(
        self,
        st: _Stage,
        wnode: Any,
        a: np.ndarray,
        b: np.ndarray,
        dots: tuple[np.ndarray, np.ndarray],
    ) -> tuple[tuple[Any, Any], np.ndarray | None, np.ndarray | None, float]:
        """``((P, R), bias, None, 0)``: the graph's scores are ``P * (s + bias[o]) + R``, with
        ``bias`` ``None`` where every class has the same offset; or, with per-class ``p`` (the
        dot products ``s`` of class ``o`` lying in ``dots[0][o] .. dots[1][o]``), ``((p, r),
        bias, scale, argmax_bound)`` (:func:`class_scale`)."""
        if st.pool is not None:
            raise _refuse(st.pool, "max-pooling after the last layer")
        s = np.array([-3.0, 0.0, 5.0])
        if st.nodes:
            z = self.rd.evaluate(st.nodes, wnode.output[0], self._y(a, b, s, False))
        else:
            z = self._y(a, b, s, False)
        z = z.reshape(3, -1)
        p = (z[2] - z[1]) / 5.0
        r = z[1]
        lin = np.abs(z[0] - (r - 3 * p)) <= REL * (np.abs(z).max() + 1)
        if not lin.all() or (p <= 0).any():
            raise _refuse(st.nodes[-1] if st.nodes else wnode, "the scores are not an increasing "
                          "affine function of the dot product")  # fmt: skip
        tol = REL * (np.abs(z).max() + 1)
        node = st.nodes[-1] if st.nodes else wnode
        if np.ptp(p) > REL * abs(p).max():  # a per-class scale (a per-class BatchNorm)
            scale, bias, bound = class_scale(p, r, dots[0], dots[1], node, self.score_bits)
            return (p, r), (bias if bias.any() else None), scale, bound
        pm = float(p.mean())
        if np.ptp(r) <= tol:
            return (pm, float(r.mean())), None, None, 0.0
        # per-class offsets: the score bias, in units of the dot product; all of the offset
        # where it is whole (R = 0: a bias on the accumulator's scale), else beyond class 0's
        r0 = 0.0 if np.all(np.abs(r / pm - np.rint(r / pm)) <= 1e-3) else float(r[0])
        q = (r - r0) / pm
        bias = np.rint(q)
        if np.any(np.abs(q - bias) > 1e-3) or np.abs(bias).max() >= MAX_BIAS:
            raise _refuse(node, "the classes' scores differ by offsets that are not integer "
                                "multiples of the score scale (a bias not quantized on the "
                                "accumulator's scale): not integer scores of one net")  # fmt: skip
        return (pm, r0), bias.astype(np.int64), None, 0.0

    def _append(self, geo: _Flat | _Windowed, layer: Layer, pool: Any) -> None:
        self.layers.append(geo.wrap(layer))
        if pool is not None:
            self._append_pool(pool)

    def _append_pool(self, node: Any) -> None:
        shape = self._shape()
        k = list(_attr(node, "kernel_shape", []))
        s = list(_attr(node, "strides", k))
        if (shape is None or len(k) != 2 or k[0] != k[1] or s[0] != s[1]
                or any(_attr(node, "pads", [0]))):  # fmt: skip
            raise _refuse(node, "only square max-pooling without padding on an image")
        if int(_attr(node, "ceil_mode", 0)):
            raise _refuse(node, "ceil_mode")
        h, w, c = shape
        prev = self.layers[-1]
        self.layers.append(MaxPool2d(Window(h, w, c, int(k[0]), int(s[0]), 0), prev.out_bits,
                                     prev.out_enc))  # fmt: skip
