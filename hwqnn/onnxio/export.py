"""A bundle as a QONNX graph that ``qonnx``'s executor runs to the golden model's integer scores
(the patterns are listed in :mod:`hwqnn.onnxio`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np

from hwqnn import atomic
from hwqnn.bundle import Bundle, validate
from hwqnn.errors import InputError
from hwqnn.layers import Conv2d, Layer, MaxPool2d, NetLayer
from hwqnn.layers.activation import Scores
from hwqnn.layers.encoding import ODD, SIGNED, Encoding

QONNX_DOMAIN = "qonnx.custom_op.general"
FLOAT_EXACT = 2**24  # float32 holds every integer below this exactly
OPSET = 13


class ExportError(InputError):
    """The bundle cannot be written as an exact float32 graph; the message names the layer."""


class _Graph:
    """Nodes and initializers under construction, with fresh tensor names."""

    def __init__(self) -> None:
        import onnx.helper as oh

        self.oh = oh
        self.nodes: list[object] = []
        self.inits: list[object] = []
        self.dtypes: dict[str, str] = {}  # tensor -> qonnx datatype annotation
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, hint: str, value: np.ndarray | np.generic, dtype: str | None = None) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        if dtype:
            self.dtypes[name] = dtype
        return name

    def node(
        self, op: str, inputs: list[str], hint: str, qonnx: bool = False, **attrs: object
    ) -> str:
        out = self.name(hint)
        domain = QONNX_DOMAIN if qonnx else ""
        self.nodes.append(self.oh.make_node(op, inputs, [out], domain=domain, **attrs))  # type: ignore[arg-type]
        return out


def _weights(g: _Graph, levels: np.ndarray, w_bits: int, hint: str, enc: Encoding = ODD) -> str:
    """Weight values behind the quantizer that states their datatype (exact on them): odd
    levels as a bipolar or offset Quant, signed and unsigned integers as a Quant of scale 1 and
    zero point 0 (what Brevitas writes)."""
    w = g.const(hint, levels.astype(np.float32))
    if enc is ODD and w_bits == 1:
        return g.node("BipolarQuant", [w, g.const("one", np.float32(1.0))], hint + "_q", True)
    if enc is ODD:
        n = 2**w_bits - 1
        ins = [w, g.const("scale", np.float32(2.0)), g.const("zeropt", np.float32(n / 2)),
               g.const("bits", np.float32(w_bits))]  # fmt: skip
        return g.node("Quant", ins, hint + "_q", True, signed=0, narrow=0, rounding_mode="ROUND")
    signed = enc is SIGNED
    bits = max(w_bits, 2) if signed else w_bits  # a signed 1-bit Quant reads as bipolar
    ins = [w, g.const("scale", np.float32(1.0)), g.const("zeropt", np.float32(0.0)),
           g.const("bits", np.float32(bits))]  # fmt: skip
    return g.node("Quant", ins, hint + "_q", True, signed=int(signed), narrow=0,
                  rounding_mode="ROUND")  # fmt: skip


def _activation(g: _Graph, x: str, m: Layer, hint: str, spatial: bool) -> str:
    """The activation on the dot product ``x`` (``[N, C]``, or ``[N, C, H, W]`` if
    ``spatial``): the scores themselves (last layer), or thresholds giving levels."""
    act = m.act
    shape = (1, m.out_features, 1, 1) if spatial else (1, m.out_features)
    if isinstance(act, Scores):
        if m.score_scale is not None:  # integers times integers: exact below 2**24
            scale = m.score_scale.astype(np.float32).reshape(shape)
            x = g.node("Mul", [x, g.const("score_scale", scale)], hint + "_scale")
        if m.bias is None:
            return x
        bias = m.bias.astype(np.float32).reshape(shape)
        return g.node("Add", [x, g.const("score_bias", bias)], hint + "_bias")
    ck, gain = m.acc_max, m.in_enc.gain
    d = m.dot_offsets()[:, None]  # s = gain * A + d: A' >= T  <=>  s' >= tau
    flipped = act.flip[:, None] == 1
    tau = np.where(flipped, gain * act.table - gain * ck - d, gain * act.table + d)
    sign = np.where(act.flip == 1, -1.0, 1.0).astype(np.float32)
    x = g.node("Mul", [x, g.const("flip_sign", sign.reshape(shape))], hint + "_flip")
    e = m.out_enc
    return g.node("MultiThreshold", [x, g.const("thresholds", tau.astype(np.float32))],
                  hint + "_act", True, out_dtype=_level_type(act.bits, e),
                  out_scale=float(e.gain), out_bias=float(e.offset(act.bits)))  # fmt: skip


def _level_type(bits: int, enc: Encoding = ODD) -> str:
    """The qonnx datatype that holds the values of ``bits``-bit codes under ``enc`` (odd:
    ``|q| < 2**bits``)."""
    if enc is ODD:
        return "BIPOLAR" if bits == 1 else f"INT{bits + 1}"
    return f"INT{max(bits, 2)}" if enc is SIGNED else f"UINT{bits}"


def _check_exact(i: int, m: Layer) -> None:
    lo, hi = m.act.bounds(m.acc_max) if isinstance(m.act, Scores) else (0, 0)
    if m.acc_max + 2 >= FLOAT_EXACT or max(-lo, hi) + 2 >= FLOAT_EXACT:
        raise ExportError(
            f"layer {i}: dot products up to {m.acc_max} are not exact in float32 (2**24); "
            "the QONNX graph would round them"
        )


def _input(g: _Graph, bundle: Bundle, x: str, nchw: bool) -> str:
    q = bundle.quant
    e = bundle.layers[0].in_enc
    if q.thresholds is None:
        x = g.node("Mul", [x, g.const("two", np.float32(e.gain))], "in_scale")
        return g.node("Add", [x, g.const("minus_top", np.float32(e.offset(q.bits)))], "in_level")
    t = q.thresholds.astype(np.float32)
    if not nchw and q.channels > 1:  # element g takes channel g % C's row
        t = np.tile(t, (-(-bundle.in_features // q.channels), 1))[: bundle.in_features]
    return g.node("MultiThreshold", [x, g.const("in_thresholds", t)], "in_quant", True,
                  out_dtype=_level_type(q.bits, e), out_scale=float(e.gain),
                  out_bias=float(e.offset(q.bits)))  # fmt: skip


def to_model(bundle: Bundle, batch: int = 1) -> object:
    """The QONNX ``ModelWrapper`` of ``bundle`` for ``batch`` images at a time (FINN takes 1),
    with its shapes and datatypes inferred."""
    import onnx
    import onnx.helper as oh
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    validate(bundle)
    g = _Graph()
    first = bundle.layers[0]
    nchw = len(first.in_shape) == 3  # an image-shaped first layer takes NCHW images
    if nchw:
        h, w, c = first.in_shape
        in_shape = [batch, c, h, w]
    else:
        in_shape = [batch, bundle.in_features]
    x = _input(g, bundle, "global_in", nchw)
    for i, ly in enumerate(bundle.layers):
        x, nchw = _layer(g, i, ly, x, nchw)
    graph = oh.make_graph(
        g.nodes,  # type: ignore[arg-type]
        "hwqnn",
        [oh.make_tensor_value_info("global_in", onnx.TensorProto.FLOAT, in_shape)],
        [oh.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [batch, bundle.num_classes])],
        initializer=g.inits,  # type: ignore[arg-type]
    )
    proto = oh.make_model(
        graph,
        producer_name="hwqnn",
        opset_imports=[oh.make_opsetid("", OPSET), oh.make_opsetid(QONNX_DOMAIN, 1)],
    )
    props = {
        "hwqnn.classes": json.dumps(list(bundle.classes)),
        "hwqnn.info": json.dumps(bundle.info, sort_keys=True),
        "hwqnn.input_shape": json.dumps(list(bundle.input_shape)),
    }
    oh.set_model_props(proto, props)
    model = ModelWrapper(proto)
    model.set_tensor_datatype("global_in", DataType[f"UINT{bundle.raw_bits}"])
    for name, dt in g.dtypes.items():
        model.set_tensor_datatype(name, DataType[dt])
    model = model.transform(InferShapes())
    return model.transform(InferDataTypes())


def _pool(g: _Graph, i: int, ly: NetLayer, x: str, nchw: bool) -> tuple[str, bool]:
    w = cast(MaxPool2d, ly).window
    return g.node("MaxPool", [x], f"pool{i}", kernel_shape=[w.kernel] * 2,
                  strides=[w.stride] * 2), True  # fmt: skip


def _conv(g: _Graph, i: int, ly: NetLayer, x: str, nchw: bool) -> tuple[str, bool]:
    conv = cast(Conv2d, ly)
    w, m = conv.window, conv.matrix
    _check_exact(i, m)
    levels = m.w_enc.value(m.weight_codes(), m.w_bits)
    k = levels.reshape(m.out_features, w.kernel, w.kernel, w.channels).transpose(0, 3, 1, 2)
    wt = _weights(g, k, m.w_bits, f"conv{i}_w", m.w_enc)
    if w.pad:  # hwqnn's padding: the zero code's value (odd: code 0, the lowest level)
        e = m.in_enc
        low = np.float32(e.value(np.array(e.zero_code(m.in_bits)), m.in_bits))
        pads = g.const("pads", np.array([0, 0, w.pad, w.pad, 0, 0, w.pad, w.pad], np.int64))
        x = g.node("Pad", [x, pads, g.const("pad_value", low)], f"conv{i}_pad",
                   mode="constant")  # fmt: skip
    s = g.node("Conv", [x, wt], f"conv{i}", kernel_shape=[w.kernel] * 2,
               strides=[w.stride] * 2)  # fmt: skip
    return _activation(g, s, m, f"conv{i}", True), True


def _dense(g: _Graph, i: int, ly: NetLayer, x: str, nchw: bool) -> tuple[str, bool]:
    m = cast(Layer, ly)
    _check_exact(i, m)
    if nchw:  # the bundle flattens HWC
        x = g.node("Transpose", [x], f"dense{i}_nhwc", perm=[0, 2, 3, 1])
        x = g.node("Reshape", [x, g.const("shape", np.array([-1, m.in_features], np.int64))],
                   f"dense{i}_flat")  # fmt: skip
    levels = m.w_enc.value(m.weight_codes(), m.w_bits)
    wt = _weights(g, levels.T, m.w_bits, f"dense{i}_w", m.w_enc)  # [in, out] for MatMul
    s = g.node("MatMul", [x, wt], f"dense{i}")
    return _activation(g, s, m, f"dense{i}", False), False


# The graph nodes of each layer kind: (graph, index, layer, input, NCHW?) -> (output, NCHW?)
WRITERS: dict[str, Callable[[_Graph, int, NetLayer, str, bool], tuple[str, bool]]] = {
    "dense": _dense,
    "conv2d": _conv,
    "maxpool2d": _pool,
}


def _layer(g: _Graph, i: int, ly: NetLayer, x: str, nchw: bool) -> tuple[str, bool]:
    writer = WRITERS.get(ly.kind)
    if writer is None:
        raise ExportError(f"layer {i}: QONNX export has no {ly.kind!r} layers")
    return writer(g, i, ly, x, nchw)


def save_onnx(bundle: Bundle, path: str | os.PathLike[str], batch: int = 1) -> Path:
    """Write ``bundle`` as a QONNX ``.onnx`` file, atomically."""
    model = to_model(bundle, batch)
    data = model.model.SerializeToString()  # type: ignore[attr-defined]
    return atomic.write_bytes(path, lambda f: f.write(data))
