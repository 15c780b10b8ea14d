"""Small Brevitas nets in FINN's style (SFC/LFC MLPs, a CNV-like ConvNet), trained for a few steps
and given random BatchNorm statistics (negative and zero gamma included), exported to QONNX by
Brevitas itself: what a user of FINN would bring to ``hwqnn import``."""

from __future__ import annotations

from pathlib import Path

import brevitas.nn as qnn
import torch
from brevitas.export import export_qonnx
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Int32Bias,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from torch import nn

BINARY_W = SignedBinaryWeightPerTensorConst


def bipolar() -> nn.Module:
    return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def relu(bits: int) -> nn.Module:
    return qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits)


class SFC(nn.Module):
    """FINN's SFC/LFC shape: a binarized input, dense W1 layers with BatchNorm, binary scores;
    with ``final_bn`` a per-class BatchNorm on the scores, as BNN-PYNQ's LFC ends."""

    def __init__(self, k: int = 64, hidden: int = 32, classes: int = 10, a_bits: int = 1,
                 w2_bits: int = 1, last_act_bits: int = 1, in_bits: int = 1,
                 final_bn: bool = False) -> None:  # fmt: skip
        super().__init__()
        w2 = (dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=w2_bits)
              if w2_bits > 1 else dict(weight_quant=BINARY_W))  # fmt: skip
        self.net = nn.Sequential(
            bipolar() if in_bits == 1 else qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat),
            qnn.QuantLinear(k, hidden, bias=False, weight_quant=BINARY_W),
            nn.BatchNorm1d(hidden),
            bipolar() if a_bits == 1 else relu(a_bits),
            qnn.QuantLinear(hidden, hidden, bias=False, **w2),
            nn.BatchNorm1d(hidden),
            bipolar() if last_act_bits == 1 else relu(last_act_bits),
            qnn.QuantLinear(hidden, classes, bias=False, weight_quant=BINARY_W),
            *([nn.BatchNorm1d(classes)] if final_bn else []),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class CNV(nn.Module):
    """FINN's CNV pattern in small: unpadded W1A1 convolutions, BatchNorm, pool after the
    activation, a dense classifier on the flattened NCHW tensor."""

    def __init__(self, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            bipolar(),
            qnn.QuantConv2d(channels, 8, 3, bias=False, weight_quant=BINARY_W),
            nn.BatchNorm2d(8),
            bipolar(),
            nn.MaxPool2d(2),
            qnn.QuantConv2d(8, 16, 3, bias=False, weight_quant=BINARY_W),
            nn.BatchNorm2d(16),
            bipolar(),
        )
        self.fc = qnn.QuantLinear(16 * 3 * 3, classes, bias=False, weight_quant=BINARY_W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class IntSFC(nn.Module):
    """FINN's SFC recipe with integer weights (FINN's TFC/SFC-W2A2): an 8-bit input, k-bit
    signed weights with zero on every layer (narrow range or not, per tensor or per output
    channel), BatchNorm, ReLU (unsigned) or signed k-bit activations; optionally a bias on the
    last layer, quantized on the accumulator's scale (``Int32Bias``)."""

    def __init__(self, k: int = 64, hidden: int = 32, classes: int = 10, w_bits: int = 2,
                 a_bits: int = 2, bias: bool = False, signed_acts: bool = False,
                 narrow: bool = False, per_channel: bool = False,
                 last_per_channel: bool = False) -> None:  # fmt: skip
        super().__init__()
        wq = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
        w = dict(weight_quant=wq, weight_bit_width=w_bits, weight_narrow_range=narrow)
        w_last = w if last_per_channel else dict(w, weight_quant=Int8WeightPerTensorFloat)

        def act() -> nn.Module:
            if signed_acts:
                return qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=a_bits,
                                         return_quant_tensor=True)  # fmt: skip
            return qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=a_bits,
                                 return_quant_tensor=True)  # fmt: skip

        self.net = nn.Sequential(
            qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
            qnn.QuantLinear(k, hidden, bias=False, **w),
            nn.BatchNorm1d(hidden),
            act(),
            qnn.QuantLinear(hidden, hidden, bias=False, **w),
            nn.BatchNorm1d(hidden),
            act(),
            qnn.QuantLinear(
                hidden, classes, bias=bias, bias_quant=Int32Bias if bias else None, **w_last
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class IntCNV(nn.Module):
    """A small CNV-W2A2: 8-bit input, k-bit signed weights, ReLU k-bit activations, pooling."""

    def __init__(self, channels: int = 1, classes: int = 10, bits: int = 2) -> None:
        super().__init__()
        w = dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=bits)
        self.features = nn.Sequential(
            qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
            qnn.QuantConv2d(channels, 8, 3, bias=False, **w),
            nn.BatchNorm2d(8),
            qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits),
            nn.MaxPool2d(2),
            qnn.QuantConv2d(8, 16, 3, bias=False, **w),
            nn.BatchNorm2d(16),
            qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits),
        )
        self.fc = qnn.QuantLinear(16 * 3 * 3, classes, bias=False, **w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def train_a_little(model: nn.Module, shape: tuple[int, ...], steps: int = 10) -> None:
    """A few Adam steps on random data (learned quantizer scales move), then random BatchNorm
    statistics so that thresholds, flips (gamma < 0) and constant channels (gamma = 0) occur."""
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(steps):
        x = torch.rand(32, *shape) * 2 - 1
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 10, (32,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-5, 5)
                m.running_var.uniform_(0.5, 20)
                m.weight.uniform_(-1, 1)
                m.bias.uniform_(-1, 1)
                m.weight[0] = 0.0
    model.eval()


def export(model: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    export_qonnx(model, torch.randn(1, *shape), str(path))
    return path


def positive_final_bn(model: nn.Module, seed: int = 0) -> None:
    """Make the last BatchNorm's gammas positive and distinct (a per-class scale that keeps
    each class's order: what a trained LFC's final BatchNorm has)."""
    gen = torch.Generator().manual_seed(seed)
    last = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)][-1]
    with torch.no_grad():
        n = last.weight.numel()
        last.weight.copy_(torch.rand(n, generator=gen) * 1.5 + 0.2)
        last.bias.copy_((torch.rand(n, generator=gen) - 0.5) * 4)
