"""Convolution (kind ``"conv2d"``) and max-pooling (kind ``"maxpool2d"``) on HWC images of codes.

A convolution is a dense matrix (:class:`hwqnn.layers.dense.Layer`, ``rows = out_channels``,
``cols = kernel * kernel * in_channels``) applied at every window position; the window's codes are
read in im2col order (ky, kx, c), channel fastest, the order stated in :mod:`hwqnn.bundle`.
Padding positions hold the input encoding's zero code (code 0 of odd levels, the lowest level:
-1 for 1-bit codes, pixel 0 for 8-bit ones; the value 0 of unsigned and signed codes), a real
input of the convolution, so training computes exactly what the hardware does.

Max-pooling takes the largest code of each window, channel by channel. Codes are a
non-decreasing function of the value they quantize, so this equals quantizing the max-pooled
values; for 1-bit codes it is the OR of the window's bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hwqnn.errors import InputError
from hwqnn.layers._meta import Fail, int_field, keys
from hwqnn.layers._registry import register
from hwqnn.layers.dense import (
    ENC_VERSION,
    MAX_FEATURES,
    OUT_BITS,
    SUPPORTED_BITS,
    ArraySpecs,
    DenseHeader,
    Layer,
    check_matrix,
    enc_field,
    enc_meta,
    parse_encodings,
)
from hwqnn.layers.encoding import ENCODINGS, ODD, Encoding

MAX_SIDE = 1 << 12  # image height and width
MAX_KERNEL = 16
MAX_STRIDE = 8
CHUNK = 1 << 22  # window codes gathered at once by the golden model (bounds its memory)


@dataclass(frozen=True)
class Window:
    """A ``kernel x kernel`` window sliding by ``stride`` over an ``(height, width, channels)``
    image padded by ``pad`` positions of code 0 on every side (output size rounds down)."""

    height: int
    width: int
    channels: int
    kernel: int
    stride: int = 1
    pad: int = 0

    @property
    def out_h(self) -> int:
        return (self.height + 2 * self.pad - self.kernel) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.width + 2 * self.pad - self.kernel) // self.stride + 1

    @property
    def positions(self) -> int:
        return self.out_h * self.out_w

    @property
    def fan_in(self) -> int:
        return self.kernel * self.kernel * self.channels

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def patches(self, codes: np.ndarray, pad_code: int = 0) -> np.ndarray:
        """im2col: codes ``[N, height*width*channels]`` (HWC) -> ``[N, positions, fan_in]``,
        each row in (ky, kx, c) order; pad positions read ``pad_code``."""
        n = codes.shape[0]
        x = codes.reshape(n, self.height, self.width, self.channels)
        if self.pad:
            p = self.pad
            x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=pad_code)
        v = sliding_window_view(x, (self.kernel, self.kernel), axis=(1, 2))  # [N,H',W',C,k,k]
        v = v[:, :: self.stride, :: self.stride][:, : self.out_h, : self.out_w]
        return v.transpose(0, 1, 2, 4, 5, 3).reshape(n, self.positions, self.fan_in)

    def check(self, p: str, fail: Fail) -> None:
        if not 1 <= self.kernel <= MAX_KERNEL:
            fail(f"{p}.kernel", f"1..{MAX_KERNEL}", self.kernel)
        if not 1 <= self.stride <= MAX_STRIDE:
            fail(f"{p}.stride", f"1..{MAX_STRIDE}", self.stride)
        if not 0 <= self.pad < self.kernel:
            fail(f"{p}.padding", f"0..{self.kernel - 1} (less than the kernel)", self.pad)
        for name, side in (("height", self.height), ("width", self.width)):
            if not 1 <= side <= MAX_SIDE:
                fail(f"{p}.in_shape", f"a {name} in 1..{MAX_SIDE}", side)
            if side + 2 * self.pad < self.kernel:
                fail(f"{p}.in_shape", f"a padded {name} of at least the kernel", side)
        if not 1 <= self.channels <= MAX_FEATURES:
            fail(f"{p}.in_shape", f"channels in 1..{MAX_FEATURES}", self.channels)
        if self.height * self.width * self.channels > MAX_FEATURES:
            fail(f"{p}.in_shape", f"at most {MAX_FEATURES} inputs", list(self.in_shape))


def _in_shape(v: object, fld: str, fail: Fail) -> tuple[int, int, int]:
    if not isinstance(v, list) or len(v) != 3:
        fail(fld, "[height, width, channels]", f"{v!r}"[:60])
    assert isinstance(v, list)
    h, w, c = (int_field(d, fld, fail, range(1, MAX_FEATURES + 1)) for d in v)
    return h, w, c


def _window(m: dict[str, object], p: str, fail: Fail, kind: str, last: bool) -> Window:
    """The checked window of a ``conv2d`` or ``maxpool2d`` entry (pooling has no padding)."""
    h, w, c = _in_shape(m["in_shape"], f"{p}.in_shape", fail)
    pad = int_field(m["padding"], f"{p}.padding", fail, range(MAX_KERNEL)) if "padding" in m else 0
    window = Window(
        h,
        w,
        c,
        kernel=int_field(m["kernel"], f"{p}.kernel", fail, range(1, MAX_KERNEL + 1)),
        stride=int_field(m["stride"], f"{p}.stride", fail, range(1, MAX_STRIDE + 1)),
        pad=pad,
    )
    window.check(p, fail)
    if last:
        fail(f"{p}.kind", "a dense last layer (integer scores)", repr(kind))
    return window


@register("conv2d", since=2)
@dataclass(frozen=True)
class ConvHeader:
    """A ``conv2d`` entry of ``meta``, checked: ``matrix`` (the dense kind's header,
    ``out_channels`` rows over the window's ``fan_in``) applied at every position of ``window``,
    and every shape fact of the kind. Output: ``(out_h, out_w, out_channels)`` codes, HWC.
    :class:`Conv2d` is this with the matrix's arrays bound."""

    kind: ClassVar[str] = "conv2d"
    since: ClassVar[int]
    KEYS: ClassVar[set[str]] = {"kind", "in_shape", "out_channels", "kernel", "stride",
                                "padding", "in_bits", "w_bits", "out_bits"}  # fmt: skip
    OPTIONAL: ClassVar[set[str]] = {"in_enc", "w_enc", "out_enc"}  # version 4

    window: Window
    matrix: DenseHeader

    @classmethod
    def parse(cls, lm: object, p: str, fail: Fail, last: bool) -> ConvHeader:
        m = keys(lm, p, cls.KEYS | cls.OPTIONAL, fail, optional=cls.OPTIONAL)
        window = _window(m, p, fail, "conv2d", last)
        features = range(1, MAX_FEATURES + 1)
        out = int_field(m["out_channels"], f"{p}.out_channels", fail, features)
        if window.positions * out > MAX_FEATURES:
            fail(f"{p}.out_channels", f"at most {MAX_FEATURES} outputs", window.positions * out)
        matrix = DenseHeader(
            in_features=window.fan_in,
            out_features=out,
            in_bits=int_field(m["in_bits"], f"{p}.in_bits", fail, SUPPORTED_BITS),
            w_bits=int_field(m["w_bits"], f"{p}.w_bits", fail, SUPPORTED_BITS),
            out_bits=int_field(m["out_bits"], f"{p}.out_bits", fail, OUT_BITS),
            **parse_encodings(m, p, fail, last=False),
        )
        return cls(window, matrix)

    @property
    def version(self) -> int:
        return max(self.since, self.matrix.version)

    @property
    def in_enc(self) -> Encoding:
        return self.matrix.in_enc

    @property
    def out_enc(self) -> Encoding:
        return self.matrix.out_enc

    @property
    def in_bits(self) -> int:
        return self.matrix.in_bits

    @property
    def out_bits(self) -> int:
        return self.matrix.out_bits

    @property
    def w_bits(self) -> int:
        return self.matrix.w_bits

    @property
    def out_channels(self) -> int:
        return self.matrix.out_features

    @property
    def is_last(self) -> bool:
        return False

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.window.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.window.out_h, self.window.out_w, self.out_channels)

    @property
    def in_size(self) -> int:
        return self.window.height * self.window.width * self.window.channels

    @property
    def out_size(self) -> int:
        return self.window.positions * self.out_channels

    def label(self) -> str:
        w = self.window
        geo = (f"s{w.stride}" if w.stride != 1 else "") + (f"p{w.pad}" if w.pad else "")
        return f"{self.out_channels}c{w.kernel}{geo}({self.out_bits}b)"

    def meta(self) -> dict[str, object]:
        w = self.window
        return {
            "kind": self.kind,
            "in_shape": list(w.in_shape),
            "out_channels": self.out_channels,
            "kernel": w.kernel,
            "stride": w.stride,
            "padding": w.pad,
            "in_bits": self.in_bits,
            "w_bits": self.w_bits,
            "out_bits": self.out_bits,
            **self.matrix.enc_meta(),
        }

    def array_specs(self, i: int) -> ArraySpecs:
        return self.matrix.array_specs(i)

    def build(self, i: int, arrays: dict[str, np.ndarray]) -> Conv2d:
        return Conv2d(self.window, self.matrix.build(i, arrays))


@dataclass(frozen=True)
class Conv2d(ConvHeader):
    """A convolution with its matrix's arrays (a :class:`Layer`)."""

    matrix: Layer

    def matrices(self) -> tuple[Layer, ...]:
        return (self.matrix,)

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        return self.matrix.arrays(i)

    def check(self, i: int, fail: Fail) -> None:
        self.window.check(f"layer{i}", fail)
        if self.matrix.in_features != self.window.fan_in:
            fail(f"layer{i}.weights", f"{self.window.fan_in} columns", self.matrix.in_features)
        if self.matrix.is_last:
            fail(f"layer{i}.out_bits", "1, 2 or 4 (a convolution is not the last layer)", 0)
        check_matrix(self.matrix, f"layer{i}", fail)

    def forward(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(acc, out)``, each ``[N, out_size]`` in HWC order."""
        if codes.ndim != 2 or codes.shape[1] != self.in_size:
            raise InputError(f"input must have shape [N, {self.in_size}], not {codes.shape}")
        n, p, o = codes.shape[0], self.window.positions, self.out_channels
        step = max(1, CHUNK // max(1, p * self.window.fan_in))
        accs, outs = [], []
        pad = self.in_enc.zero_code(self.in_bits)
        for s in range(0, n, step):
            cols = self.window.patches(codes[s : s + step], pad).reshape(-1, self.window.fan_in)
            acc, out = self.matrix.forward(cols)
            accs.append(acc.reshape(-1, p * o))
            outs.append(out.reshape(-1, p * o))
        if not accs:
            return np.zeros((0, p * o), np.int64), np.zeros((0, p * o), np.int64)
        return np.concatenate(accs), np.concatenate(outs)


@register("maxpool2d", since=2)
@dataclass(frozen=True)
class PoolHeader:
    """A ``maxpool2d`` entry of ``meta``, checked: max-pooling of ``bits``-bit codes over
    ``window`` (no padding), channel by channel, and every shape fact of the kind."""

    kind: ClassVar[str] = "maxpool2d"
    since: ClassVar[int]
    KEYS: ClassVar[set[str]] = {"kind", "in_shape", "kernel", "stride", "bits"}
    OPTIONAL: ClassVar[set[str]] = {"enc"}  # version 4: the codes' encoding (kept)
    IN_ENC_KEY: ClassVar[str] = "enc"

    window: Window
    bits: int
    enc: Encoding = ODD

    @classmethod
    def parse(cls, lm: object, p: str, fail: Fail, last: bool) -> PoolHeader:
        m = keys(lm, p, cls.KEYS | cls.OPTIONAL, fail, optional=cls.OPTIONAL)
        window = _window(m, p, fail, "maxpool2d", last)
        bits = int_field(m["bits"], f"{p}.bits", fail, OUT_BITS)
        return cls(window, bits, enc_field(m, "enc", f"{p}.enc", fail))

    @property
    def version(self) -> int:
        return self.since if self.enc is ODD else max(self.since, ENC_VERSION)

    @property
    def in_enc(self) -> Encoding:
        return self.enc

    @property
    def out_enc(self) -> Encoding:
        return self.enc

    @property
    def in_bits(self) -> int:
        return self.bits

    @property
    def out_bits(self) -> int:
        return self.bits

    @property
    def is_last(self) -> bool:
        return False

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.window.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.window.out_h, self.window.out_w, self.window.channels)

    @property
    def in_size(self) -> int:
        return self.window.height * self.window.width * self.window.channels

    @property
    def out_size(self) -> int:
        return self.window.positions * self.window.channels

    def label(self) -> str:
        w = self.window
        return f"mp{w.kernel}" + (f"s{w.stride}" if w.stride != w.kernel else "")

    def meta(self) -> dict[str, object]:
        w = self.window
        return {
            "kind": self.kind,
            "in_shape": list(w.in_shape),
            "kernel": w.kernel,
            "stride": w.stride,
            "bits": self.bits,
            **enc_meta(enc=self.enc),
        }

    def array_specs(self, i: int) -> ArraySpecs:
        return {}

    def build(self, i: int, arrays: dict[str, np.ndarray]) -> MaxPool2d:
        return MaxPool2d(self.window, self.bits, self.enc)


@dataclass(frozen=True)
class MaxPool2d(PoolHeader):
    """Max-pooling as a layer of the bundle (no arrays): the golden forward pass."""

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        return {}

    def matrices(self) -> tuple[Layer, ...]:
        return ()

    def check(self, i: int, fail: Fail) -> None:
        self.window.check(f"layer{i}", fail)
        if self.window.pad:
            fail(f"layer{i}.padding", "0 (pooling does not pad)", self.window.pad)
        if self.bits not in OUT_BITS:
            fail(f"layer{i}.bits", "1, 2 or 4", self.bits)
        if ENCODINGS.get(getattr(self.enc, "name", None)) is not self.enc:  # type: ignore[arg-type]
            fail(f"layer{i}.enc", f"one of {', '.join(ENCODINGS)}", self.enc)

    def forward(self, codes: np.ndarray) -> tuple[None, np.ndarray]:
        """``(None, out)``: the largest code of each window, ``[N, out_size]`` in HWC order."""
        if codes.ndim != 2 or codes.shape[1] != self.in_size:
            raise InputError(f"input must have shape [N, {self.in_size}], not {codes.shape}")
        w = self.window
        x = codes.reshape(-1, w.height, w.width, w.channels)
        v = sliding_window_view(x, (w.kernel, w.kernel), axis=(1, 2))  # [N, H', W', C, k, k]
        v = v[:, :: w.stride, :: w.stride][:, : w.out_h, : w.out_w]
        return None, v.max(axis=(4, 5)).reshape(len(codes), self.out_size).astype(np.int64)
