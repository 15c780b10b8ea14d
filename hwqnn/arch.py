"""Network architectures as short specs, shared by training (torch) and random nets (NumPy).

* ``mlp:256x3`` or ``mlp:256-128-64``: dense hidden layers, then the classifier.
* ``cnv:TOKEN-TOKEN-...``: a convolutional front, then dense layers and the classifier. Tokens:
  ``64c3`` (a 3x3 convolution to 64 channels, stride 1, no padding), ``64c3s2p1`` (stride 2,
  padding 1), ``mp2`` (2x2 max-pooling, stride 2), ``mp3s2`` (3x3, stride 2), ``fc256`` (a dense
  layer of 256). Convolutions and pooling come before the first ``fc``.
* ``cnv``: the default ConvNet for 28x28 images, :data:`CNV_DEFAULT`.

Every hidden layer is followed by BatchNorm and the activation quantizer; pooling acts on the
quantized codes (see :mod:`hwqnn.layers.conv`).

Beside the bit widths, an architecture names what its codes stand for
(:mod:`hwqnn.layers.encoding`): the weights (odd levels, or signed integers with zero), the
hidden activations (odd, unsigned as after a ReLU, or signed), the 8-bit pixels (odd ``2x - 255``
or unsigned ``x``), and whether the last layer has an integer score bias. The defaults are the
seed papers' odd levels without a bias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwqnn.errors import InputError
from hwqnn.layers.conv import MAX_KERNEL, MAX_STRIDE, Window
from hwqnn.layers.encoding import ENCODINGS, ODD, SIGNED, UNSIGNED, Encoding

MAX_HIDDEN = 64  # hidden layers in an --arch (a bundle holds at most 256 layers)
MAX_WIDTH = 1 << 20  # neurons (or channels) in one hidden layer
CNV_DEFAULT = "cnv:32c3-32c3-mp2-64c3-128c3-mp2-fc512"  # 20 epochs: 21 min on 2 cores


@dataclass(frozen=True)
class Conv:
    out: int
    kernel: int
    stride: int = 1
    pad: int = 0

    @property
    def token(self) -> str:
        geo = (f"s{self.stride}" if self.stride != 1 else "") + (f"p{self.pad}" if self.pad else "")
        return f"{self.out}c{self.kernel}{geo}"


@dataclass(frozen=True)
class Pool:
    kernel: int
    stride: int

    @property
    def token(self) -> str:
        return f"mp{self.kernel}" + (f"s{self.stride}" if self.stride != self.kernel else "")


Feature = Conv | Pool


@dataclass(frozen=True)
class Arch:
    """Dense hidden widths after an optional convolutional front, plus bit widths and
    encodings (see the module)."""

    hidden: tuple[int, ...]
    w_bits: int = 1
    a_bits: int = 1
    features: tuple[Feature, ...] = ()
    w_enc: Encoding = ODD
    a_enc: Encoding = ODD
    in_enc: Encoding = ODD
    bias: bool = False

    @property
    def quant(self) -> str:
        """Bit widths and encodings, e.g. ``w1a1`` (odd, no bias) or ``w2s-a2u-in_u+bias``."""
        if (self.w_enc, self.a_enc, self.in_enc, self.bias) == (ODD, ODD, ODD, False):
            return f"w{self.w_bits}a{self.a_bits}"
        return (f"w{self.w_bits}{self.w_enc.name[0]}-a{self.a_bits}{self.a_enc.name[0]}"
                f"-in_{self.in_enc.name[0]}" + ("+bias" if self.bias else ""))  # fmt: skip

    @property
    def spec(self) -> str:
        if not self.features:
            return "mlp:" + "-".join(str(h) for h in self.hidden)
        return "cnv:" + "-".join([f.token for f in self.features] + [f"fc{h}" for h in self.hidden])

    def windows(self, in_shape: tuple[int, int, int]) -> list[Window]:
        """The window of each feature layer, from the input image ``(height, width, channels)``;
        raises ``ValueError`` if a window does not fit its input."""
        out = []
        h, w, c = in_shape
        for i, f in enumerate(self.features):
            pad = f.pad if isinstance(f, Conv) else 0
            win = Window(h, w, c, f.kernel, f.stride, pad)
            if h + 2 * pad < f.kernel or w + 2 * pad < f.kernel:
                raise InputError(
                    f"{self.spec}: layer {i} ({f.token}) needs at least {f.kernel}x{f.kernel} "
                    f"inputs, it gets {h}x{w}"
                )
            out.append(win)
            h, w, c = win.out_h, win.out_w, (f.out if isinstance(f, Conv) else c)
        return out


def features_out(arch: Arch, image: tuple[int, int, int]) -> tuple[int, int, int]:
    """``(height, width, channels)`` after the convolutional front (``image`` without one)."""
    if not arch.features:
        return image
    last, f = arch.windows(image)[-1], arch.features[-1]
    return (last.out_h, last.out_w, f.out if isinstance(f, Conv) else last.channels)


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(height, width, channels)`` of an image shape ``(H, W)`` or ``(H, W, C)`` (HWC, what
    convolutions read: channel-major data is reordered first, :meth:`hwqnn.data.Split.hwc`)."""
    if len(input_shape) == 2:
        return (input_shape[0], input_shape[1], 1)
    if len(input_shape) == 3:
        return (input_shape[0], input_shape[1], input_shape[2])
    raise InputError(f"a conv net needs image-shaped input, not shape {list(input_shape)}")


def _bits(w_bits: int, a_bits: int) -> None:
    for name, b in (("weight", w_bits), ("activation", a_bits)):
        if b not in (1, 2, 4):
            raise InputError(f"{name} bits must be 1, 2 or 4, not {b!r}")


TRAINABLE = {"weight": (ODD, SIGNED), "activation": (ODD, UNSIGNED, SIGNED),
             "input": (ODD, UNSIGNED)}  # fmt: skip


def encoding(name: str | Encoding, what: str, bits: int = 8) -> Encoding:
    """The :class:`Encoding` called ``name`` that a ``what`` (weight, activation or input) of
    ``bits`` bits can be trained with; a one-line error otherwise."""
    enc = ENCODINGS.get(name) if isinstance(name, str) else name
    allowed = TRAINABLE[what]
    if enc not in allowed:
        raise InputError(f"{what} encoding must be {' or '.join(e.name for e in allowed)}, "
                         f"not {name!r}"[:200])  # fmt: skip
    if enc is SIGNED and bits < 2:
        raise InputError(f"signed {what}s need at least 2 bits (1 bit is -1 and 0 only)")
    return enc


def _feature(tok: str, spec: str) -> Feature:
    m = re.fullmatch(r"(\d+)c(\d+)(?:s(\d+))?(?:p(\d+))?", tok)
    if m:
        out, k = int(m.group(1)), int(m.group(2))
        s, p = int(m.group(3) or 1), int(m.group(4) or 0)
        if not 1 <= out <= MAX_WIDTH:
            raise InputError(f"channels must be in 1..{MAX_WIDTH} in {spec!r} ({tok})")
        if not (1 <= k <= MAX_KERNEL and 1 <= s <= MAX_STRIDE and 0 <= p < k):
            raise InputError(
                f"{tok!r} in {spec!r}: kernel 1..{MAX_KERNEL}, stride 1..{MAX_STRIDE}, padding "
                "below the kernel"
            )
        return Conv(out, k, s, p)
    m = re.fullmatch(r"mp(\d+)(?:s(\d+))?", tok)
    if m:
        k = int(m.group(1))
        s = int(m.group(2) or k)
        if not (1 <= k <= MAX_KERNEL and 1 <= s <= MAX_STRIDE):
            raise InputError(f"{tok!r} in {spec!r}: kernel 1..{MAX_KERNEL}, stride 1..{MAX_STRIDE}")
        return Pool(k, s)
    raise InputError(f"{tok!r} in {spec!r} is not a layer: use e.g. 64c3, 64c3s2p1, mp2 or fc256")


def parse_arch(
    spec: str,
    w_bits: int = 1,
    a_bits: int = 1,
    *,
    w_enc: str | Encoding = ODD,
    a_enc: str | Encoding = ODD,
    in_enc: str | Encoding = ODD,
    bias: bool = False,
) -> Arch:
    """Parse an architecture spec (see the module docstring) with its bits and encodings."""
    _bits(w_bits, a_bits)
    w, a, i = (
        encoding(w_enc, "weight", w_bits),
        encoding(a_enc, "activation", a_bits),
        encoding(in_enc, "input"),
    )
    if spec == "cnv":
        spec = CNV_DEFAULT
    if spec.startswith("cnv:"):
        toks = spec[4:].split("-")
        if not 1 <= len(toks) <= MAX_HIDDEN:
            raise InputError(f"{spec!r} must have 1..{MAX_HIDDEN} layers")
        features: list[Feature] = []
        hidden: list[int] = []
        for tok in toks:
            m = re.fullmatch(r"fc(\d+)", tok)
            if m:
                if not 1 <= int(m.group(1)) <= MAX_WIDTH:
                    raise InputError(f"layer widths must be in 1..{MAX_WIDTH} in {spec!r}")
                hidden.append(int(m.group(1)))
            elif hidden:
                raise InputError(f"{tok!r} in {spec!r}: convolutions and pooling come before fc")
            else:
                features.append(_feature(tok, spec))
        if not any(isinstance(f, Conv) for f in features):
            raise InputError(f"{spec!r} has no convolution (write mlp:... for a dense net)")
        return Arch(tuple(hidden), w_bits, a_bits, tuple(features), w, a, i, bool(bias))
    m = re.fullmatch(r"mlp:(\d+)x(\d+)", spec) or re.fullmatch(r"mlp:(\d+(?:-\d+)*)", spec)
    if not m:
        raise InputError(
            f"architecture must look like 'mlp:256x3', 'mlp:256-128-64', 'cnv' or "
            f"'cnv:64c3-mp2-fc256', not {spec!r}"[:200]
        )
    if "x" in spec:
        count = int(m.group(2))
        if not 1 <= count <= MAX_HIDDEN:
            raise InputError(f"the layer count in {spec!r} must be in 1..{MAX_HIDDEN}")
        hidden_t = (int(m.group(1)),) * count
    else:
        hidden_t = tuple(int(v) for v in m.group(1).split("-"))
        if len(hidden_t) > MAX_HIDDEN:
            raise InputError(f"{spec!r} has more than {MAX_HIDDEN} hidden layers")
    if any(not 1 <= h <= MAX_WIDTH for h in hidden_t):
        raise InputError(f"layer widths must be in 1..{MAX_WIDTH} in {spec!r}")
    return Arch(hidden_t, w_bits, a_bits, (), w, a, i, bool(bias))
