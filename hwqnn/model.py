"""The quantized MLP (and its float twin) in PyTorch, built from a short spec like ``mlp:256x3``.

Layer ``i`` of the quantized net computes, with integer levels (see :mod:`hwqnn.bundle`)::

    s = q_in @ q_w.T                    # exact integers held in float32 (|s| < 2**24)
    z = s / C                           # C = (2**k_in - 1)(2**k_w - 1): the normalised dot product
    y = (z - mean) / sqrt(var + eps) * gamma + beta     # BatchNorm, eval: separate float32 ops
    q_out = quantize_level(y, k_out)

The first layer takes 8-bit pixels ``x`` as the levels ``2*x - 255``. The last layer returns the
integer class scores ``s``; training feeds ``s * exp(log_scale) / C`` to the loss (a positive
scalar, so the argmax is that of the integer scores).

In eval mode the BatchNorm is written as separate elementwise ops, each correctly rounded, so
the map ``s -> q_out`` is a fixed function of the integer ``s``: export evaluates it at every
possible ``s`` to fold it into thresholds, and the folded thresholds agree with this forward pass
on every input, exactly.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from hwqnn.quant import quantize_code, quantize_level

INPUT_BITS = 8


@dataclass(frozen=True)
class Arch:
    """Hidden layer widths plus bit widths: weights, activations (0 = float twin)."""

    hidden: tuple[int, ...]
    w_bits: int = 1
    a_bits: int = 1

    @property
    def spec(self) -> str:
        return "mlp:" + "-".join(str(h) for h in self.hidden)


MAX_HIDDEN = 64  # hidden layers in an --arch (a bundle holds at most 256 layers)
MAX_WIDTH = 1 << 20  # neurons in one hidden layer


def parse_arch(spec: str, w_bits: int = 1, a_bits: int = 1) -> Arch:
    """Parse ``mlp:256x3`` (three hidden layers of 256) or ``mlp:256-128-64``."""
    m = re.fullmatch(r"mlp:(\d+)x(\d+)", spec) or re.fullmatch(r"mlp:(\d+(?:-\d+)*)", spec)
    if not m:
        raise ValueError(
            f"architecture must look like 'mlp:256x3' or 'mlp:256-128-64', not {spec!r}"
        )
    if "x" in spec:
        count = int(m.group(2))
        if not 1 <= count <= MAX_HIDDEN:
            raise ValueError(f"the layer count in {spec!r} must be in 1..{MAX_HIDDEN}")
        hidden = (int(m.group(1)),) * count
    else:
        hidden = tuple(int(v) for v in m.group(1).split("-"))
        if len(hidden) > MAX_HIDDEN:
            raise ValueError(f"{spec!r} has more than {MAX_HIDDEN} hidden layers")
    if any(not 1 <= h <= MAX_WIDTH for h in hidden):
        raise ValueError(f"layer widths must be in 1..{MAX_WIDTH} in {spec!r}")
    for name, b in (("weight", w_bits), ("activation", a_bits)):
        if b not in (1, 2, 4):
            raise ValueError(f"{name} bits must be 1, 2 or 4, not {b!r}")
    return Arch(hidden, w_bits, a_bits)


class QuantDense(nn.Module):
    """A quantized dense layer: latent real weights in [-1, 1], k-bit weights, BN, k-bit output."""

    def __init__(self, in_f: int, out_f: int, in_bits: int, w_bits: int, out_bits: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_f, out_f
        self.in_bits, self.w_bits, self.out_bits = in_bits, w_bits, out_bits
        self.weight = nn.Parameter(torch.empty(out_f, in_f).uniform_(-1.0, 1.0))
        self.scale = float((2**in_bits - 1) * (2**w_bits - 1))
        if out_bits:
            self.bn: nn.BatchNorm1d | None = nn.BatchNorm1d(out_f)
        else:
            self.bn = None
            self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(in_f)))

    @property
    def is_last(self) -> bool:
        return self.out_bits == 0

    def weight_level(self) -> torch.Tensor:
        return quantize_level(self.weight, self.w_bits)

    def weight_code(self) -> torch.Tensor:
        """Integer weight codes (0..2**w_bits-1) exactly as the forward pass uses them."""
        return quantize_code(self.weight.detach(), self.w_bits).to(torch.int64)

    def activate(self, s: torch.Tensor) -> torch.Tensor:
        """Integer dot products ``s`` -> output levels (hidden) or logits (last layer)."""
        if self.bn is None:
            return s * (torch.exp(self.log_scale) / self.scale)
        z = s / self.scale
        if self.training:
            y = self.bn(z)
        else:
            bn = self.bn
            assert bn.running_mean is not None and bn.running_var is not None
            std = torch.sqrt(bn.running_var + bn.eps)
            y = (z - bn.running_mean) / std * bn.weight + bn.bias
        return quantize_level(y, self.out_bits)

    def forward(self, q_in: torch.Tensor) -> torch.Tensor:
        return self.activate(q_in @ self.weight_level().t())

    def clip_(self) -> None:
        """Clip the latent real weights to [-1, 1] (after each optimizer step)."""
        with torch.no_grad():
            self.weight.clamp_(-1.0, 1.0)


class QuantMLP(nn.Module):
    """8-bit pixels in, integer class scores out; hidden layers quantized to ``a_bits``."""

    def __init__(self, in_features: int, classes: int, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        widths = [in_features, *arch.hidden, classes]
        layers = []
        for i in range(len(widths) - 1):
            in_bits = INPUT_BITS if i == 0 else arch.a_bits
            out_bits = 0 if i == len(widths) - 2 else arch.a_bits
            layers.append(QuantDense(widths[i], widths[i + 1], in_bits, arch.w_bits, out_bits))
        self.layers = nn.ModuleList(layers)

    @property
    def dense(self) -> list[QuantDense]:
        """The layers, typed (``nn.ModuleList`` hands out plain ``Module``)."""
        return [cast(QuantDense, m) for m in self.layers]

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = 2.0 * x.to(torch.float32) - 255.0
        for layer in self.dense[:-1]:
            q = layer(q)
        last = self.dense[-1]
        s = q @ last.weight_level().t()
        return s, last.activate(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for the loss (training)."""
        return self._run(x)[1]

    @torch.no_grad()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Integer class scores ``s`` (int64) of 8-bit images ``x[N, K]`` in eval mode."""
        return self._run(x)[0].to(torch.int64)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per hidden layer output codes (int64), for locating a disagreement."""
        q = 2.0 * x.to(torch.float32) - 255.0
        out = []
        for layer in self.dense[:-1]:
            q = layer(q)
            out.append(((q + float(2**layer.out_bits - 1)) / 2.0).to(torch.int64))
        return out

    def clip_(self) -> None:
        for layer in self.dense:
            layer.clip_()


class FloatMLP(nn.Module):
    """The float twin: same topology, float weights, BatchNorm and ReLU, float logits."""

    def __init__(self, in_features: int, classes: int, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        widths = [in_features, *arch.hidden]
        mods: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            mods += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU()]
        mods.append(nn.Linear(widths[-1], classes))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(torch.float32) / 127.5 - 1.0)

    def clip_(self) -> None:
        pass


def build(kind: str, in_features: int, classes: int, arch: Arch) -> nn.Module:
    """``kind`` is ``"quant"`` or ``"float"``."""
    if kind == "quant":
        return QuantMLP(in_features, classes, arch)
    if kind == "float":
        return FloatMLP(in_features, classes, arch)
    raise ValueError(f"model kind must be 'quant' or 'float', not {kind!r}")
