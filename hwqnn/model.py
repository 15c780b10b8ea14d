"""The quantized net (and its float twin) in PyTorch, built from a spec like ``mlp:256x3`` or
``cnv`` (:mod:`hwqnn.arch`).

Layer ``i`` of the quantized net computes, with integer levels (see :mod:`hwqnn.quant`: a level
is the bundle's value of its code, whatever the encoding)::

    s = q_in @ q_w.T                    # exact integers held in float32 (|s| < 2**24)
    z = s / C                           # C = norm_in * norm_w: the normalised dot product
    y = (z - mean) / sqrt(var + eps) * gamma + beta     # BatchNorm, eval: separate float32 ops
    q_out = quantize_level(y, k_out, out_enc)

A convolution computes the same ``s`` at every window position (PyTorch's NCHW inside; codes
leave a layer flattened HWC, as in the bundle), with its input padded by the value of the
encoding's padding code (the lowest odd level, or 0). Max-pooling acts on the quantized levels.
The first layer takes 8-bit pixels ``x`` as the levels ``2*x - 255`` (odd) or ``x``
(unsigned). The last layer returns the integer class scores ``s`` (plus an integer bias ``b``
if the architecture has one); training feeds ``(s + b) * exp(log_scale) / C`` to the loss (a
positive scalar, so the argmax is that of the integer scores; ``b`` is a real parameter rounded
with a straight-through gradient).

In eval mode the BatchNorm is written as separate elementwise ops, each correctly rounded, so
the map ``s -> q_out`` is a fixed function of the integer ``s``: export evaluates it at every
possible ``s`` to fold it into thresholds, and the folded thresholds agree with this forward pass
on every input, exactly.
"""

from __future__ import annotations

import itertools
import math
from typing import cast

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from hwqnn.arch import (
    MAX_HIDDEN,
    MAX_WIDTH,
    Arch,
    Conv,
    Pool,
    features_out,
    image_shape,
    parse_arch,
)
from hwqnn.errors import InputError
from hwqnn.layers.conv import Window
from hwqnn.layers.encoding import ODD, Encoding
from hwqnn.quant import level_code, level_norm, quantize_level, round_ste, weight_code

INPUT_BITS = 8

__all__ = ["INPUT_BITS", "MAX_HIDDEN", "MAX_WIDTH", "Arch", "FloatNet", "QuantConv2d",
           "QuantDense", "QuantNet", "QuantPool", "build", "parse_arch"]  # fmt: skip


def _bn_eval(z: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm, dim: int) -> torch.Tensor:
    """Eval-mode BatchNorm as separate elementwise ops (each correctly rounded), channels on
    ``dim``; the same ops whatever the shape, so export's fold reproduces them exactly."""
    assert bn.running_mean is not None and bn.running_var is not None
    shape = [1] * (z.dim() - dim)
    shape[0] = -1
    mean, var = bn.running_mean.view(shape), bn.running_var.view(shape)
    std = torch.sqrt(var + bn.eps)
    return (z - mean) / std * bn.weight.view(shape) + bn.bias.view(shape)


class QuantDense(nn.Module):
    """A quantized dense layer: latent real weights in [-1, 1], k-bit weights, BN, k-bit output
    (or, last, integer scores and an optional integer bias); each tensor has its encoding."""

    def __init__(
        self,
        in_f: int,
        out_f: int,
        in_bits: int,
        w_bits: int,
        out_bits: int,
        *,
        in_enc: Encoding = ODD,
        w_enc: Encoding = ODD,
        out_enc: Encoding = ODD,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self._fields(in_f, out_f, (in_bits, w_bits, out_bits), (in_enc, w_enc, out_enc))
        self.weight = nn.Parameter(torch.empty(out_f, in_f).uniform_(-1.0, 1.0))
        if out_bits:
            self.bn: nn.modules.batchnorm._BatchNorm | None = nn.BatchNorm1d(out_f)
        else:
            self.bn = None
            self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(in_f)))
        # the last layer's score bias, in units of s / C (as the logits before exp(log_scale))
        self.bias = nn.Parameter(torch.zeros(out_f)) if bias and not out_bits else None

    def _fields(self, in_f: int, out_f: int, bits: tuple[int, int, int],
                encs: tuple[Encoding, Encoding, Encoding]) -> None:  # fmt: skip
        """Sizes, bits (in, weight, out) and encodings, and the normaliser ``C``."""
        self.in_features, self.out_features = in_f, out_f
        self.in_bits, self.w_bits, self.out_bits = bits
        self.in_enc, self.w_enc, self.out_enc = encs
        self.scale = float(level_norm(bits[0], encs[0]) * level_norm(bits[1], encs[1]))

    @property
    def is_last(self) -> bool:
        return self.out_bits == 0

    def weight_level(self) -> torch.Tensor:
        return quantize_level(self.weight, self.w_bits, self.w_enc)

    def weight_code(self) -> torch.Tensor:
        """Integer weight codes ``[out, in]`` exactly as the forward pass uses them."""
        return weight_code(self.weight, self.w_bits, self.w_enc)

    def score_bias(self) -> torch.Tensor | None:
        """The last layer's integer score bias (float32 integers, gradient straight through)."""
        return None if self.bias is None else round_ste(self.bias * self.scale)

    def preact(self, s: torch.Tensor) -> torch.Tensor:
        """The real values a hidden layer's quantizer reads: BatchNorm of ``s / C``."""
        assert self.bn is not None, "the last layer has no quantizer"
        z = s / self.scale if self.scale != 1.0 else s  # s / 1.0 is s: skip the pass
        return self.bn(z) if self.training else _bn_eval(z, self.bn, 1)

    def activate(self, s: torch.Tensor) -> torch.Tensor:
        """Integer dot products ``s`` -> output levels (hidden) or logits (last layer)."""
        if self.bn is None:
            b = self.score_bias()
            return (s if b is None else s + b) * (torch.exp(self.log_scale) / self.scale)
        return quantize_level(self.preact(s), self.out_bits, self.out_enc)

    def dot(self, q_in: torch.Tensor) -> torch.Tensor:
        """The integer dot products ``s`` of input levels ``[N, in]`` (or NCHW, read as HWC: the
        order of the bundle's columns)."""
        if q_in.dim() == 4:
            q_in = q_in.permute(0, 2, 3, 1)
        return q_in.flatten(1) @ self.weight_level().t()

    def forward(self, q_in: torch.Tensor) -> torch.Tensor:
        return self.activate(self.dot(q_in))

    def clip_(self) -> None:
        """Clip the latent real weights to [-1, 1] (after each optimizer step)."""
        with torch.no_grad():
            self.weight.clamp_(-1.0, 1.0)


class QuantConv2d(QuantDense):
    """A quantized convolution over NCHW levels; the input is padded with the value of the
    encoding's padding code (:meth:`Encoding.zero_code`)."""

    def __init__(
        self,
        window: Window,
        out_ch: int,
        in_bits: int,
        w_bits: int,
        out_bits: int,
        *,
        in_enc: Encoding = ODD,
        w_enc: Encoding = ODD,
        out_enc: Encoding = ODD,
    ):
        nn.Module.__init__(self)
        self.window = window
        self._fields(window.fan_in, out_ch, (in_bits, w_bits, out_bits), (in_enc, w_enc, out_enc))
        k = window.kernel
        self.weight = nn.Parameter(torch.empty(out_ch, window.channels, k, k).uniform_(-1.0, 1.0))
        self.bias = None
        self.bn = nn.BatchNorm2d(out_ch)

    def weight_code(self) -> torch.Tensor:
        """Weight codes ``[out, kernel*kernel*channels]`` in im2col (ky, kx, c) order."""
        w = weight_code(self.weight, self.w_bits, self.w_enc)
        return w.permute(0, 2, 3, 1).reshape(self.out_features, -1)

    def dot(self, q_in: torch.Tensor) -> torch.Tensor:
        p = self.window.pad
        if p:
            enc, bits = self.in_enc, self.in_bits
            pad = enc.gain * enc.zero_code(bits) + enc.offset(bits)  # the padding code's value
            q_in = F.pad(q_in, (p, p, p, p), value=float(pad))
        return F.conv2d(q_in, self.weight_level(), stride=self.window.stride)


class QuantPool(nn.Module):
    """Max-pooling of NCHW levels (exact: quantization is monotone); in a net it pools the real
    values the previous quantizer reads (see :meth:`QuantNet._hidden`)."""

    bn = None
    is_last = False

    def __init__(self, window: Window, bits: int, enc: Encoding = ODD) -> None:
        super().__init__()
        self.window, self.out_bits, self.out_enc = window, bits, enc

    def forward(self, q_in: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(q_in, self.window.kernel, self.window.stride)

    def clip_(self) -> None:
        pass


class QuantNet(nn.Module):
    """8-bit pixels in, integer class scores out; hidden layers quantized to ``a_bits``, with
    the encodings of ``arch``.

    Images come flattened ``[N, H*W*C]`` (HWC); a conv front needs ``image = (H, W, C)``."""

    def __init__(
        self,
        in_features: int,
        classes: int,
        arch: Arch,
        image: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.arch, self.image = arch, image
        layers: list[nn.Module] = []
        in_bits, a, in_enc = INPUT_BITS, arch.a_bits, arch.in_enc
        encs = {"w_enc": arch.w_enc, "out_enc": arch.a_enc}
        if arch.features:
            if image is None or image[0] * image[1] * image[2] != in_features:
                raise InputError(f"{arch.spec}: needs the input image shape, not {image}")
            for f, win in zip(arch.features, arch.windows(image), strict=True):
                if isinstance(f, Conv):
                    layers.append(QuantConv2d(win, f.out, in_bits, arch.w_bits, a,
                                              in_enc=in_enc, **encs))  # fmt: skip
                    in_bits, in_enc = a, arch.a_enc
                else:
                    layers.append(QuantPool(win, in_bits, in_enc))
            h, w, c = features_out(arch, image)
            in_features = h * w * c
        widths = [in_features, *arch.hidden, classes]
        for i in range(len(widths) - 1):
            last = i == len(widths) - 2
            layers.append(QuantDense(widths[i], widths[i + 1], in_bits, arch.w_bits,
                                     0 if last else a, in_enc=in_enc,
                                     bias=last and arch.bias, **encs))  # fmt: skip
            in_bits, in_enc = a, arch.a_enc
        self.layers = nn.ModuleList(layers)

    @property
    def dense(self) -> list[QuantDense]:
        """The dense layers, typed (``nn.ModuleList`` hands out plain ``Module``)."""
        return [cast(QuantDense, m) for m in self.layers if type(m) is QuantDense]

    def _levels(self, x: torch.Tensor) -> torch.Tensor:
        q = x.to(torch.float32)
        if self.arch.in_enc is ODD:
            q = 2.0 * q - 255.0
        if self.image is not None and self.arch.features:
            h, w, c = self.image
            q = q.reshape(-1, h, w, c).permute(0, 3, 1, 2)
        return q

    def _hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The levels after each hidden layer (NCHW for image-shaped ones).

        A max-pool after a layer with a quantizer pools the real values that quantizer reads,
        and quantizes after. The levels are the same as pooling the levels (a quantizer is
        monotone, so it commutes with max: the bundle's max-pool on codes), but training's
        gradient reaches the window's largest value rather than one of its many tied levels
        (why BinaryNet pools before BatchNorm and sign, and XNOR-Net pools right after the
        convolution: Courbariaux, Hubara et al. 2016; Rastegari et al. 2016, sec. 3.2)."""
        q, out = self._levels(x), []
        pre: torch.Tensor | None = None  # the real values the last quantizer read, pooled along
        bits, enc = 0, ODD
        for layer in self.layers[:-1]:
            if isinstance(layer, QuantPool):
                if pre is None:  # pooling the pixels: nothing was quantized yet
                    q = layer(q)
                else:
                    pre = layer(pre)
                    q = quantize_level(pre, bits, enc)
            else:
                dense = cast(QuantDense, layer)
                pre, bits, enc = dense.preact(dense.dot(q)), dense.out_bits, dense.out_enc
                q = quantize_level(pre, bits, enc)
            out.append(q)
        return out

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self._hidden(x)
        q = hidden[-1] if hidden else self._levels(x)
        last = cast(QuantDense, self.layers[-1])
        s = last.dot(q)
        return s, last.activate(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the loss (training)."""
        return self._run(x)[1]

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Integer class scores ``s + b`` (int64) of 8-bit images ``x[N, K]`` in eval mode."""
        s = self._run(x)[0].to(torch.int64)
        b = cast(QuantDense, self.layers[-1]).score_bias()
        return s if b is None else s + b.to(torch.int64)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per hidden layer output codes (int64, flattened HWC), for locating a disagreement."""
        out = []
        for layer, q in zip(self.layers[:-1], self._hidden(x), strict=False):
            hidden = cast(QuantDense, layer)
            c = level_code(q, hidden.out_bits, hidden.out_enc)
            out.append(c.permute(0, 2, 3, 1).flatten(1) if c.dim() == 4 else c)
        return out

    def clip_(self) -> None:
        for layer in self.layers:
            cast(QuantDense, layer).clip_()


class FloatNet(nn.Module):
    """The float twin: same topology, float weights, BatchNorm and ReLU, float logits."""

    def __init__(
        self,
        in_features: int,
        classes: int,
        arch: Arch,
        image: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.arch, self.image = arch, image
        mods: list[nn.Module] = []
        if arch.features:
            if image is None:
                raise InputError(f"{arch.spec}: needs the input image shape")
            for f, win in zip(arch.features, arch.windows(image), strict=True):
                if isinstance(f, Conv):
                    conv = nn.Conv2d(win.channels, f.out, f.kernel, f.stride, f.pad, bias=False)
                    mods += [conv, nn.BatchNorm2d(f.out), nn.ReLU()]
                else:
                    assert isinstance(f, Pool)
                    mods.append(nn.MaxPool2d(f.kernel, f.stride))
            mods.append(nn.Flatten())
            h, w, c = features_out(arch, image)
            in_features = h * w * c
        widths = [in_features, *arch.hidden]
        for a, b in itertools.pairwise(widths):
            mods += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU()]
        mods.append(nn.Linear(widths[-1], classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32) / 127.5 - 1.0
        if self.image is not None and self.arch.features:
            h, w, c = self.image
            x = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)
        return cast(torch.Tensor, self.net(x))

    def clip_(self) -> None:
        pass


def build(
    kind: str, in_features: int, classes: int, arch: Arch, input_shape: tuple[int, ...] = ()
) -> nn.Module:
    """``kind`` is ``"quant"`` or ``"float"``; a conv ``arch`` needs the data's ``input_shape``."""
    image = image_shape(input_shape) if arch.features else None
    if kind == "quant":
        return QuantNet(in_features, classes, arch, image)
    if kind == "float":
        return FloatNet(in_features, classes, arch, image)
    raise InputError(f"model kind must be 'quant' or 'float', not {kind!r}")
