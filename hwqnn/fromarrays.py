"""Build a bundle from plain NumPy arrays: for nets trained anywhere (±1 matrices and thresholds).

Describe each layer with :func:`dense`, :func:`conv2d` or :func:`maxpool2d`, then call
:func:`build_bundle` (and :func:`hwqnn.bundle.save`)::

    from hwqnn.fromarrays import build_bundle, dense
    from hwqnn.bundle import save

    net = build_bundle(
        [dense(w1, thresholds=t1), dense(w2, thresholds=t2), dense(w3)],
        input_shape=(28, 28), input_bits=1, input_thresholds=[128],   # pixel >= 128 -> +1
    )
    save(net, "net.npz")

Weights are *levels*: ±1 for 1-bit weights, odd integers in ``±(2**w_bits - 1)`` for ``w_bits``
of 2, 4 or 8 (``-3, -1, 1, 3`` for 2 bits). A dense layer's weights are ``[out, in]`` over the
input in HWC order; a convolution's are ``[out, kernel, kernel, in_channels]``. Thresholds are in
the *dot-product* domain ``s = sum_j q_in[j] * q_w[j]`` (input levels times weight levels; an 8-bit
pixel ``x`` is the level ``2*x - 255``): a neuron's output code is ``sum_i [s >= t[i]]`` with
``2**out_bits - 1`` ascending thresholds per row (real thresholds are allowed: ``s >= t`` is
``s >= ceil(t)``), or ``sum_i [-s >= t[i]]`` where ``flip`` is set (BatchNorm with gamma < 0). The
last layer has no thresholds: its output is the integer score ``s``. The input quantization
(``input_thresholds`` on the raw values, see :mod:`hwqnn.layers.inputq`) is optional: without it
the raw values are layer 0's codes (8-bit pixels).

Every array is checked as the loader checks a file (:func:`hwqnn.bundle.validate`); a bad one is
refused with a :class:`hwqnn.bundle.BundleError` naming the layer and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hwqnn.bundle import Bundle, BundleError, InputQuant, make_layer, validate
from hwqnn.bundle_schema import refuse
from hwqnn.layers import Conv2d, MaxPool2d, NetLayer, Window
from hwqnn.layers._meta import Fail
from hwqnn.packing import level_scale

__all__ = ["LayerArrays", "build_bundle", "conv2d", "dense", "maxpool2d"]


@dataclass(frozen=True)
class LayerArrays:
    """One layer as given: its kind, weight levels, dot-product thresholds and geometry."""

    kind: str
    weights: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    flip: np.ndarray | None = None
    w_bits: int = 1
    kernel: int = 1
    stride: int = 1
    padding: int = 0


def _opt(a: ArrayLike | None) -> np.ndarray | None:
    return None if a is None else np.asarray(a)


def dense(
    weights: ArrayLike,
    thresholds: ArrayLike | None = None,
    flip: ArrayLike | None = None,
    w_bits: int = 1,
) -> LayerArrays:
    """A dense layer: weight levels ``[out, in]``; ``thresholds`` ``[out, 2**out_bits - 1]``
    (``[out]`` for 1-bit outputs) unless it is the last layer."""
    return LayerArrays("dense", np.asarray(weights), _opt(thresholds), _opt(flip), w_bits)


def conv2d(
    weights: ArrayLike,
    thresholds: ArrayLike | None = None,
    flip: ArrayLike | None = None,
    w_bits: int = 1,
    stride: int = 1,
    padding: int = 0,
) -> LayerArrays:
    """A convolution: weight levels ``[out, kernel, kernel, in_channels]``; positions outside
    the image read code 0 (level -1 for 1-bit input, pixel 0 for 8-bit)."""
    w = np.asarray(weights)
    k = int(w.shape[1]) if w.ndim == 4 else 0
    return LayerArrays("conv2d", w, _opt(thresholds), _opt(flip), w_bits, k, stride, padding)


def maxpool2d(kernel: int, stride: int | None = None) -> LayerArrays:
    """Max-pooling of codes over ``kernel x kernel`` windows (stride: the kernel)."""
    return LayerArrays("maxpool2d", kernel=kernel, stride=kernel if stride is None else stride)


def _codes(levels: np.ndarray, bits: int, fld: str, fail: Fail) -> np.ndarray:
    """Weight codes of odd levels in ``±(2**bits - 1)``."""
    top = 2**bits - 1
    if levels.dtype.kind not in "iuf" or levels.size == 0:
        fail(fld, "a non-empty numeric array of levels", str(levels.dtype))
    if levels.dtype.kind == "f" and not np.all(levels == np.round(levels)):
        fail(fld, "integer levels", "a fraction")
    q = levels.astype(np.int64)
    if np.any(np.abs(q) > top) or np.any(q % 2 == 0):
        want = "±1" if bits == 1 else f"odd levels in -{top}..{top} (w_bits={bits})"
        fail(fld, want, "another value")
    return (q + top) // 2


def _acc_thresholds(t: np.ndarray, rows: int, scale_k: int, fld: str, fail: Fail) -> np.ndarray:
    """Dot-product thresholds ``[rows, n]`` -> accumulator thresholds ``A >= ceil((t + CK)/2)``
    (``s = 2A - CK``), clamped to ``0 .. CK + 1`` (always met / never met)."""
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] != rows or t.dtype.kind not in "iuf":
        fail(fld, f"a numeric array [{rows}, 2**out_bits - 1]", f"{t.dtype} {list(t.shape)}")
    if t.dtype.kind == "f":
        if not np.all(np.isfinite(t)):
            fail(fld, "finite values", "inf or nan")
        t = np.ceil(t)
    s = t.astype(object)  # exact for any size, then back to int64 after the clamp
    a = np.vectorize(lambda v: -(-(int(v) + scale_k) // 2), otypes=[object])(s)
    return np.clip(a, 0, scale_k + 1).astype(np.int64)


def _out_bits(t: np.ndarray | None, fld: str, fail: Fail) -> int:
    if t is None:
        return 0
    n = 1 if t.ndim == 1 else int(t.shape[-1])
    bits = {1: 1, 3: 2, 15: 4}.get(n)
    if bits is None:
        fail(fld, "1, 3 or 15 thresholds per row (1-, 2- or 4-bit outputs)", n)
    assert bits is not None
    return bits


def _matrix(spec: LayerArrays, levels: np.ndarray, in_bits: int, p: str, fail: Fail) -> object:
    rows = levels.shape[0]
    codes = _codes(levels, spec.w_bits, f"{p}.weights", fail).reshape(rows, -1)
    out_bits = _out_bits(spec.thresholds, f"{p}.thresholds", fail)
    thr = flip = None
    if spec.thresholds is not None:
        ck = level_scale(in_bits, spec.w_bits) * codes.shape[1]
        thr = _acc_thresholds(spec.thresholds, rows, ck, f"{p}.thresholds", fail)
        flip = np.zeros(rows, np.uint8) if spec.flip is None else np.asarray(spec.flip)
        if flip.shape != (rows,) or not np.isin(flip, (0, 1)).all():
            fail(f"{p}.flip", f"{rows} values of 0 or 1", list(flip.shape))
        flip = flip.astype(np.uint8)
    try:
        return make_layer(codes, in_bits, spec.w_bits, out_bits, thr, flip)
    except BundleError as e:
        raise BundleError(str(e).replace("<memory>", "<arrays>").replace("layer-1", p)) from e


Image = tuple[int, int, int] | None  # (H, W, C) of the codes a layer is fed, if image-shaped


def _dense_layer(spec: LayerArrays, bits: int, image: Image, p: str, fail: Fail) -> NetLayer:
    assert spec.weights is not None
    w = spec.weights
    if w.ndim != 2:
        fail(f"{p}.weights", "a 2-D array [out, in]", list(w.shape))
    return _matrix(spec, w, bits, p, fail)  # type: ignore[return-value]


def _image(spec: LayerArrays, image: Image, p: str, fail: Fail) -> tuple[int, int, int]:
    if image is None:
        fail(f"{p}.kind", "an image-shaped input ([H, W] or [H, W, C])", spec.kind)
    assert image is not None
    return image


def _conv_layer(spec: LayerArrays, bits: int, image: Image, p: str, fail: Fail) -> NetLayer:
    h, wd, c = _image(spec, image, p, fail)
    assert spec.weights is not None
    w = spec.weights
    if w.ndim != 4 or w.shape[1] != w.shape[2] or w.shape[3] != c:
        fail(f"{p}.weights", f"[out, k, k, {c}] (input channels {c})", list(w.shape))
    win = Window(h, wd, c, spec.kernel, spec.stride, spec.padding)
    win.check(p, fail)
    return Conv2d(win, _matrix(spec, w, bits, p, fail))  # type: ignore[arg-type]


def _pool_layer(spec: LayerArrays, bits: int, image: Image, p: str, fail: Fail) -> NetLayer:
    h, wd, c = _image(spec, image, p, fail)
    win = Window(h, wd, c, spec.kernel, spec.stride, 0)
    win.check(p, fail)
    return MaxPool2d(win, bits)


# One builder per layer kind: (spec, input bits, input image or None, field prefix, fail)
_BUILDERS: dict[str, Callable[[LayerArrays, int, Image, str, Fail], NetLayer]] = {
    "dense": _dense_layer,
    "conv2d": _conv_layer,
    "maxpool2d": _pool_layer,
}


def build_bundle(
    layers: Sequence[LayerArrays],
    input_shape: Sequence[int],
    classes: Sequence[str] | None = None,
    input_bits: int = 8,
    input_thresholds: ArrayLike | None = None,
    raw_bits: int = 8,
    info: dict[str, object] | None = None,
) -> Bundle:
    """A validated :class:`Bundle` of ``layers`` (see the module docstring).

    ``input_shape`` is ``[features]``, ``[H, W]`` or ``[H, W, C]`` (HWC). Without
    ``input_thresholds`` raw values are layer 0's codes of ``input_bits``; with them (``[levels]``
    for one rule, or ``[channels, levels]``, ``levels = 2**input_bits - 1``) raw values of
    ``raw_bits`` are quantized to ``input_bits``."""
    where = "<arrays>"
    fail = refuse(where, BundleError)
    shape = tuple(int(d) for d in input_shape)
    if not layers:
        fail("layers", "at least one layer", 0)
    quant = InputQuant.identity(input_bits)
    if input_thresholds is not None:
        t = np.asarray(input_thresholds)
        if t.dtype.kind not in "iu":
            fail("input.thresholds", "integers (raw values are integers)", str(t.dtype))
        quant = InputQuant(raw_bits, input_bits, np.atleast_2d(t).astype(np.int64))
    image = shape if len(shape) == 3 else (*shape, 1) if len(shape) == 2 else None
    bits = input_bits
    out: list[NetLayer] = []
    for i, spec in enumerate(layers):
        p = f"layer{i}"
        last = i == len(layers) - 1
        if spec.thresholds is None and not last and spec.weights is not None:
            fail(f"{p}.thresholds", "an array (only the last layer gives scores)", "nothing")
        if spec.thresholds is not None and last:
            fail(f"{p}.thresholds", "nothing (the last layer gives integer scores)", "an array")
        build = _BUILDERS.get(spec.kind)
        if build is None:
            fail(f"{p}.kind", ", ".join(_BUILDERS), repr(spec.kind))
        assert build is not None
        ly = build(spec, bits, image, p, fail)
        image = ly.out_shape if len(ly.out_shape) == 3 else None  # type: ignore[assignment]
        out.append(ly)
        bits = ly.out_bits
    n_cls = out[-1].out_size
    names = tuple(classes) if classes is not None else tuple(str(k) for k in range(n_cls))
    bundle = Bundle(tuple(out), shape, names, dict(info or {}), quant)
    validate(bundle, where)
    return bundle
