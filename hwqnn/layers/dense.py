"""The dense layer (kind ``"dense"``): a matrix-vector product folded into thresholds.

It is also the arithmetic every weighted kind reuses: a convolution is this matrix applied at
each window position (:mod:`hwqnn.layers.conv`). The bit layout is in :mod:`hwqnn.bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, TypedDict

import numpy as np

from hwqnn.errors import InputError
from hwqnn.layers._meta import Fail, int_field, keys
from hwqnn.layers._registry import register
from hwqnn.layers.activation import Activation, Scores, Thresholds
from hwqnn.layers.encoding import ENCODINGS, ODD, Encoding, plane_product
from hwqnn.packing import WORD_BITS, level_scale, pack_codes, unpack_codes, words_for

SUPPORTED_BITS = (1, 2, 4, 8)  # input and weight bits
OUT_BITS = (1, 2, 4)  # hidden activations; 0 marks the last layer (integer scores)
MAX_FEATURES = 1 << 24
MAX_BIAS = 1 << 48  # |score bias|: scores stay far inside int64
ENC_VERSION = 4  # the bundle version that introduced encodings and the score bias
ENC_KEYS = frozenset({"in_enc", "w_enc", "out_enc", "bias", "enc"})  # version-4 meta keys
SCALE_VERSION = 5  # the bundle version that introduced the per-class score scale
SCALE_KEYS = frozenset({"scale"})  # version-5 meta keys
MAX_SCALE = 1 << 32  # a class's score scale is 1 .. MAX_SCALE - 1
MAX_SCORE = 1 << 62  # |score| over every accumulator: int64 with room
ArraySpecs = dict[str, tuple[np.dtype, tuple[int, ...]]]


def matrix_arrays(
    i: int,
    rows: int,
    cols: int,
    w_bits: int,
    out_bits: int,
    bias: bool = False,
    scale: bool = False,
) -> ArraySpecs:
    """The members of a weighted layer: name -> (dtype, shape)."""
    out: ArraySpecs = {f"layer{i}.weights": (np.dtype("<u8"), (rows, w_bits, words_for(cols)))}
    if out_bits:
        out[f"layer{i}.thresholds"] = (np.dtype("<i8"), (rows, 2**out_bits - 1))
        out[f"layer{i}.flip"] = (np.dtype("u1"), (rows,))
    if bias:
        out[f"layer{i}.bias"] = (np.dtype("<i8"), (rows,))
    if scale:
        out[f"layer{i}.scale"] = (np.dtype("<i8"), (rows,))
    return out


def enc_field(m: dict[str, object], key: str, fld: str, fail: Fail) -> Encoding:
    """The encoding named by ``m[key]`` (``ODD`` where the key is absent)."""
    if key not in m:
        return ODD
    v = m[key]
    if not isinstance(v, str) or v not in ENCODINGS:
        fail(fld, f"one of {', '.join(ENCODINGS)}", f"{v!r}"[:60])
    assert isinstance(v, str)
    return ENCODINGS[v]


def enc_meta(**encs: Encoding) -> dict[str, object]:
    """The ``meta`` keys of the encodings that are not :data:`ODD` (an odd-level net's entry is
    what it was before version 4)."""
    return {k: e.name for k, e in encs.items() if e is not ODD}


@register("dense", since=1)
@dataclass(frozen=True)
class DenseHeader:
    """A dense layer's ``meta`` entry, checked: ``out_features`` rows over ``in_features``
    inputs, and every shape fact of the kind. ``out_bits == 0`` marks the last layer (integer
    scores). :class:`Layer` is this with its arrays bound."""

    kind: ClassVar[str] = "dense"
    since: ClassVar[int]  # the bundle version that introduced the kind (set by register)
    KEYS: ClassVar[set[str]] = {"kind", "in_features", "out_features", "in_bits", "w_bits",
                                "out_bits"}  # fmt: skip
    OPTIONAL: ClassVar[set[str]] = {"in_enc", "w_enc", "out_enc", "bias", "scale"}  # 4, 5

    in_features: int
    out_features: int
    in_bits: int
    w_bits: int
    out_bits: int
    in_enc: Encoding = field(default=ODD, kw_only=True)
    w_enc: Encoding = field(default=ODD, kw_only=True)
    out_enc: Encoding = field(default=ODD, kw_only=True)  # ODD on the last layer (no codes)
    has_bias: bool = field(default=False, kw_only=True)  # the last layer's layer{i}.bias
    has_scale: bool = field(default=False, kw_only=True)  # the last layer's layer{i}.scale

    @classmethod
    def parse(cls, lm: object, p: str, fail: Fail, last: bool) -> DenseHeader:
        m = keys(lm, p, cls.KEYS | cls.OPTIONAL, fail, optional=cls.OPTIONAL)
        features = range(1, MAX_FEATURES + 1)
        return cls(
            in_features=int_field(m["in_features"], f"{p}.in_features", fail, features),
            out_features=int_field(m["out_features"], f"{p}.out_features", fail, features),
            in_bits=int_field(m["in_bits"], f"{p}.in_bits", fail, SUPPORTED_BITS),
            w_bits=int_field(m["w_bits"], f"{p}.w_bits", fail, SUPPORTED_BITS),
            out_bits=int_field(m["out_bits"], f"{p}.out_bits", fail, (0,) if last else OUT_BITS),
            **parse_encodings(m, p, fail, last),
        )

    @property
    def version(self) -> int:
        """The oldest bundle version that holds this entry."""
        if self.has_scale:
            return max(self.since, SCALE_VERSION)
        plain = self.encodings_odd and not self.has_bias
        return self.since if plain else max(self.since, ENC_VERSION)

    @property
    def encodings_odd(self) -> bool:
        return self.in_enc is ODD and self.w_enc is ODD and self.out_enc is ODD

    @property
    def is_last(self) -> bool:
        return self.out_bits == 0

    @property
    def scale(self) -> int:
        """``C``: the largest leaf value; the accumulator lies in ``0 .. C * in_features``."""
        return level_scale(self.in_bits, self.w_bits)

    @property
    def acc_max(self) -> int:
        return self.scale * self.in_features

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.out_features,)

    @property
    def in_size(self) -> int:
        return self.in_features

    @property
    def out_size(self) -> int:
        return self.out_features

    def label(self) -> str:
        """This layer in :meth:`hwqnn.bundle.Bundle.arch`: ``256(1b)``, or ``10`` (scores)."""
        return f"{self.out_features}" + ("" if self.is_last else f"({self.out_bits}b)")

    def meta(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "in_features": self.in_features,
            "out_features": self.out_features,
            "in_bits": self.in_bits,
            "w_bits": self.w_bits,
            "out_bits": self.out_bits,
            **self.enc_meta(),
        }

    def enc_meta(self) -> dict[str, object]:
        """The version-4 and -5 keys of this matrix (none for an odd-level one without a bias
        or a scale)."""
        return {
            **enc_meta(in_enc=self.in_enc, w_enc=self.w_enc, out_enc=self.out_enc),
            **({"bias": True} if self.has_bias else {}),
            **({"scale": True} if self.has_scale else {}),
        }

    def array_specs(self, i: int) -> ArraySpecs:
        return matrix_arrays(i, self.out_features, self.in_features, self.w_bits,
                             self.out_bits, self.has_bias, self.has_scale)  # fmt: skip

    def build(self, i: int, arrays: dict[str, np.ndarray]) -> Layer:
        return Layer(
            in_features=self.in_features,
            out_features=self.out_features,
            in_bits=self.in_bits,
            w_bits=self.w_bits,
            out_bits=self.out_bits,
            weights=arrays[f"layer{i}.weights"],
            thresholds=arrays.get(f"layer{i}.thresholds"),
            flip=arrays.get(f"layer{i}.flip"),
            in_enc=self.in_enc,
            w_enc=self.w_enc,
            out_enc=self.out_enc,
            has_bias=self.has_bias,
            bias=arrays.get(f"layer{i}.bias"),
            has_scale=self.has_scale,
            score_scale=arrays.get(f"layer{i}.scale"),
        )


class MatrixEncodings(TypedDict):
    in_enc: Encoding
    w_enc: Encoding
    out_enc: Encoding
    has_bias: bool
    has_scale: bool


def parse_encodings(m: dict[str, object], p: str, fail: Fail, last: bool) -> MatrixEncodings:
    """The version-4 and -5 keys of a weighted layer's entry (the caller checked the version):
    its encodings, and the score bias and scale flags of the last layer."""
    if last and "out_enc" in m:
        fail(f"{p}.out_enc", "no such key on the last layer (it gives scores)", "one")
    for key in ("bias", "scale"):
        if last and key in m and m[key] is not True:
            fail(f"{p}.{key}", f"true (the array layer{{i}}.{key} follows) or no key",
                 repr(m[key])[:60])  # fmt: skip
        if not last and key in m:
            fail(f"{p}.{key}", "no such key on a hidden layer (its thresholds hold it)", "one")
    return MatrixEncodings(
        in_enc=enc_field(m, "in_enc", f"{p}.in_enc", fail),
        w_enc=enc_field(m, "w_enc", f"{p}.w_enc", fail),
        out_enc=enc_field(m, "out_enc", f"{p}.out_enc", fail),
        has_bias="bias" in m,
        has_scale="scale" in m,
    )


@dataclass(frozen=True)
class Layer(DenseHeader):
    """A dense layer with its arrays. Also the matrix part of a convolution."""

    weights: np.ndarray  # uint64 [out, w_bits, words]
    thresholds: np.ndarray | None = None  # int64 [out, 2**out_bits - 1]
    flip: np.ndarray | None = None  # uint8 [out]
    bias: np.ndarray | None = field(default=None, kw_only=True)  # int64 [out], last layer only
    score_scale: np.ndarray | None = field(default=None, kw_only=True)  # int64 [out], last only

    @property
    def act(self) -> Activation:
        """The activation (:mod:`hwqnn.layers.activation`): scores, or thresholds and flips."""
        if self.out_bits == 0:
            return Scores(self.in_enc.gain, self.score_offsets(), self.score_scale)
        assert self.thresholds is not None and self.flip is not None
        return Thresholds(self.thresholds, self.flip, self.out_bits)

    def plane_ops(self) -> tuple[str, ...]:
        """How each weight plane meets the input planes (:meth:`Encoding.plane_op`)."""
        return tuple(self.w_enc.plane_op(m, self.w_bits) for m in range(self.w_bits))

    def dot_offsets(self) -> np.ndarray:
        """``D`` int64 ``[out]``: the dot product of the values is ``gain * A + D``, where
        ``gain`` is the input encoding's (2 odd, else 1). ``D = s0 - gain * A0``, with ``s0``
        and ``A0`` the dot product and the accumulator of the all-zero input code vector:
        every leaf differs from its product by a per-row constant (the bundle docstring).
        For odd inputs and weights ``D = -C*K``."""
        return self._dot_offsets

    @cached_property
    def _dot_offsets(self) -> np.ndarray:
        """Computed once per layer (golden asks at every batch), read-only."""
        if self.encodings_odd:
            d = np.full(self.out_features, -self.acc_max, dtype=np.int64)
        else:
            w = self.w_enc.value(self.weight_codes(), self.w_bits)  # [out, in]
            s0 = self.in_enc.offset(self.in_bits) * w.sum(axis=1)
            a0 = self.accumulate(np.zeros((1, self.in_features), dtype=np.int64))[0]
            d = s0 - self.in_enc.gain * a0
        d.setflags(write=False)
        return d

    def score_offsets(self) -> np.ndarray:
        """Per-class ``scale * D + bias`` int64 ``[out]``: score ``= scale * (gain * A + D) +
        bias`` (``scale`` 1 without ``layer{i}.scale``)."""
        d = self.dot_offsets()
        if self.score_scale is not None:
            d = self.score_scale * d
        return d if self.bias is None else d + self.bias

    def matrices(self) -> tuple[Layer, ...]:
        return (self,)

    def weight_codes(self) -> np.ndarray:
        """Unpacked weight codes ``int64[out, in]``."""
        return unpack_codes(self.weights, self.in_features)

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        out = {f"layer{i}.weights": self.weights}
        if not self.is_last:
            assert self.thresholds is not None and self.flip is not None
            out[f"layer{i}.thresholds"] = self.thresholds
            out[f"layer{i}.flip"] = self.flip
        if self.bias is not None:
            out[f"layer{i}.bias"] = self.bias
        if self.score_scale is not None:
            out[f"layer{i}.scale"] = self.score_scale
        return out

    def accumulate(self, codes: np.ndarray) -> np.ndarray:
        """Accumulators ``A`` int64 ``[N, out]`` of input codes ``[N, in]`` (XNOR-popcounts)."""
        if codes.ndim != 2 or codes.shape[1] != self.in_features:
            raise InputError(f"input must have shape [N, {self.in_features}], not {codes.shape}")
        a = pack_codes(codes, self.in_bits, pad=0)  # [N, ka, W]
        w = self.weights  # [O, kw, W]
        acc = np.zeros((codes.shape[0], self.out_features), dtype=np.int64)
        for m, op in enumerate(self.plane_ops()):
            for n in range(self.in_bits):
                prod = plane_product(op, a[:, n, None, :], w[None, :, m, :])
                pop = np.bitwise_count(prod).sum(axis=-1, dtype=np.int64)
                acc += pop << (n + m)
        return acc

    def activate(self, acc: np.ndarray) -> np.ndarray:
        """Output codes (hidden) or integer scores ``gain*A + D + bias`` (last) of
        accumulators."""
        return self.act.apply(acc, self.acc_max)

    def forward(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(acc, out)`` of input codes ``[N, in_size]``: the golden model of this layer."""
        acc = self.accumulate(codes)
        return acc, self.activate(acc)

    def check(self, i: int, fail: Fail) -> None:
        """Check the arrays against the fields (see the bundle docstring); ``fail`` names one."""
        check_matrix(self, f"layer{i}", fail)


def _check_array(
    arr: np.ndarray, fld: str, dtype: np.dtype | type, shape: tuple[int, ...], fail: Fail
) -> None:
    if arr.dtype != np.dtype(dtype):
        fail(fld, f"dtype {np.dtype(dtype)}", arr.dtype)
    if arr.shape != shape:
        fail(fld, f"shape {shape}", arr.shape)


def check_matrix(layer: Layer, p: str, fail: Fail) -> None:
    """Field and array checks of a weighted layer's matrix part, named under ``p``."""
    for name in ("in_bits", "w_bits"):
        v = getattr(layer, name)
        if v not in SUPPORTED_BITS:
            fail(f"{p}.{name}", f"one of {SUPPORTED_BITS}", v)
    for name in ("in_enc", "w_enc", "out_enc"):
        e = getattr(layer, name)
        if ENCODINGS.get(getattr(e, "name", None)) is not e:  # type: ignore[arg-type]
            fail(f"{p}.{name}", f"one of {', '.join(ENCODINGS)}", e)
    if layer.out_bits not in (0, *OUT_BITS):
        fail(f"{p}.out_bits", "0, 1, 2 or 4", layer.out_bits)
    if layer.in_features <= 0:
        fail(f"{p}.in_features", "> 0", layer.in_features)
    if layer.out_features <= 0:
        fail(f"{p}.out_features", "> 0", layer.out_features)
    shape = (layer.out_features, layer.w_bits, words_for(layer.in_features))
    _check_array(layer.weights, f"{p}.weights", np.uint64, shape, fail)
    # pad bits above in_features must be 1 (see the padding rule)
    pad = layer.in_features % WORD_BITS
    if pad:
        high = np.uint64(((1 << 64) - 1) ^ ((1 << pad) - 1))
        if not bool(np.all((layer.weights[..., -1] & high) == high)):
            fail(f"{p}.weights", "pad bits above in_features set to 1", "a 0 pad bit")
    if _last_layer_array(layer, layer.bias, layer.has_bias, f"{p}.bias", fail):
        assert layer.bias is not None
        if layer.bias.size and int(np.abs(layer.bias).max()) >= MAX_BIAS:
            fail(f"{p}.bias", f"values of magnitude below 2**{MAX_BIAS.bit_length() - 1}",
                 "a larger one")  # fmt: skip
    if _last_layer_array(layer, layer.score_scale, layer.has_scale, f"{p}.scale", fail):
        sc = layer.score_scale
        assert sc is not None
        if sc.size and not (int(sc.min()) >= 1 and int(sc.max()) < MAX_SCALE):
            fail(f"{p}.scale", f"values 1 .. 2**{MAX_SCALE.bit_length() - 1} - 1",
                 f"{int(sc.min())}..{int(sc.max())}")  # fmt: skip
        _check_score_range(layer, p, fail)
    if layer.is_last:
        if layer.out_enc is not ODD:
            fail(f"{p}.out_enc", "none on the last layer (it gives scores)", layer.out_enc)
        return
    if layer.thresholds is None:
        fail(f"{p}.thresholds", "an array", "nothing")
    if layer.flip is None:
        fail(f"{p}.flip", "an array", "nothing")
    assert layer.thresholds is not None and layer.flip is not None
    n_t = 2**layer.out_bits - 1
    _check_array(layer.thresholds, f"{p}.thresholds", np.int64, (layer.out_features, n_t), fail)
    _check_array(layer.flip, f"{p}.flip", np.uint8, (layer.out_features,), fail)
    t = layer.thresholds
    if not (t.size == 0 or (t.min() >= 0 and t.max() <= layer.acc_max + 1)):
        fail(f"{p}.thresholds", f"values in 0..{layer.acc_max + 1}", "outside")
    if not bool(np.all(np.diff(t, axis=1) >= 0)):
        fail(f"{p}.thresholds", "ascending per row", "a descending pair")
    if not bool(np.all(layer.flip <= 1)):
        fail(f"{p}.flip", "0 or 1", "other values")


def _last_layer_array(
    layer: Layer, arr: np.ndarray | None, declared: bool, fld: str, fail: Fail
) -> bool:
    """A last-layer array (the bias or the scale): present exactly where meta declares it, on
    the last layer only, int64 ``[out]``. Whether there is one to check further."""
    what = fld.rsplit(".", 1)[1]
    if declared != (arr is not None):
        fail(fld, f"an array exactly where meta says {what}", "a mismatch")
    if arr is None:
        return False
    if not layer.is_last:
        fail(fld, f"a {what} on the last layer only", "one on a hidden layer")
    _check_array(arr, fld, np.int64, (layer.out_features,), fail)
    return True


def _check_score_range(layer: Layer, p: str, fail: Fail) -> None:
    """Scaled scores ``scale * (gain*A + D) + bias`` stay within ``|score| < 2**62`` over every
    accumulator (Python integers: no overflow while checking)."""
    assert layer.score_scale is not None
    d = layer.dot_offsets().tolist()
    b = [0] * len(d) if layer.bias is None else layer.bias.tolist()
    top = layer.in_enc.gain * layer.acc_max
    for o, (m, d_o, b_o) in enumerate(zip(layer.score_scale.tolist(), d, b, strict=True)):
        lo, hi = m * d_o + b_o, m * (top + d_o) + b_o
        if max(-lo, hi) >= MAX_SCORE:
            fail(f"{p}.scale", f"scores of magnitude below 2**{MAX_SCORE.bit_length() - 1}",
                 f"class {o} reaching {lo}..{hi}")  # fmt: skip
