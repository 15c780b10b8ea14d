"""Train FINN's SFC recipe with Brevitas on Fashion-MNIST and export it as QONNX, as a FINN user
would: binarized input pixels, three dense W1A1 layers of 256 with BatchNorm, binary scores; or,
with ``--w-bits/--a-bits`` above 1, FINN's integer recipe (TFC/SFC-W2A2 style): an 8-bit input,
k-bit signed weights with zero (``Int8WeightPerTensorFloat``), k-bit ReLU activations
(``QuantReLU``), and with ``--bias`` a last-layer bias quantized on the accumulator's scale
(``Int32Bias``). ``--final-bn`` ends the net in a per-class BatchNorm on the scores, as BNN-PYNQ's
LFC does (imported with a per-class score scale, bundle version 5).

    python examples/brevitas_sfc.py runs/qonnx/sfc.onnx [--epochs 5] [--w-bits 2 --a-bits 2]
    hwqnn import runs/qonnx/sfc.onnx -o runs/qonnx/sfc.npz --input-scale 0.00784313725490196 \\
        --input-bias -1 --check
    hwqnn flow --bundle runs/qonnx/sfc.npz --out runs/qonnx

The graph takes pixels scaled to [-1, 1] (``x * 2/255 - 1``), hence the import's input scale and
bias. Needs ``pip install -e '.[onnx,brevitas]'`` (``make setup`` installs both).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import brevitas.nn as qnn
import torch
from brevitas.export import export_qonnx
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFloat,
    Int32Bias,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from torch import nn
from tqdm import tqdm

from hwqnn.data import load_dataset

BINARY_WEIGHTS = SignedBinaryWeightPerTensorConst


def sfc(
    hidden: int = 256, layers: int = 3, classes: int = 10, w_bits: int = 1, a_bits: int = 1,
    bias: bool = False, final_bn: bool = False,
) -> nn.Module:  # fmt: skip
    """The W1A1 SFC, or with more bits FINN's integer recipe (see the module docstring)."""
    if w_bits == 1:
        w: dict[str, object] = dict(weight_quant=BINARY_WEIGHTS)
    else:
        w = dict(weight_quant=Int8WeightPerTensorFloat, weight_bit_width=w_bits)

    def act() -> nn.Module:
        if a_bits == 1:
            return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        return qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=a_bits,
                             return_quant_tensor=True)  # fmt: skip

    if w_bits == 1:
        first: nn.Module = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    else:
        first = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
    mods: list[nn.Module] = [first]
    width = 784
    for _ in range(layers):
        mods += [qnn.QuantLinear(width, hidden, bias=False, **w), nn.BatchNorm1d(hidden), act()]
        width = hidden
    mods.append(qnn.QuantLinear(width, classes, bias=bias,
                                bias_quant=Int32Bias if bias else None, **w))  # fmt: skip
    if final_bn:
        mods.append(nn.BatchNorm1d(classes))
    return nn.Sequential(*mods)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the .onnx file to write")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.005, help="Adam, decaying 100x over the run")
    ap.add_argument("--data", default=None, help="Fashion-MNIST IDX directory (default: hwqnn's)")
    ap.add_argument("--w-bits", type=int, default=1, choices=(1, 2, 4, 8))
    ap.add_argument("--a-bits", type=int, default=1, choices=(1, 2, 4, 8))
    ap.add_argument("--bias", action="store_true", help="a bias on the last layer (Int32Bias)")
    ap.add_argument("--final-bn", action="store_true",
                    help="a per-class BatchNorm on the scores (BNN-PYNQ's LFC ending)")  # fmt: skip
    args = ap.parse_args()
    torch.manual_seed(0)
    train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    x = torch.from_numpy(train.images).float() * (2 / 255) - 1
    y = torch.from_numpy(train.labels)
    xt = torch.from_numpy(test.images).float() * (2 / 255) - 1
    model = sfc(w_bits=args.w_bits, a_bits=args.a_bits, bias=args.bias, final_bn=args.final_bn)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * (len(x) // 100)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(0.01) ** (1 / steps))
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in tqdm(range(0, len(x) - 99, 100), desc=f"epoch {epoch + 1}", leave=False):
            idx = perm[i : i + 100]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():  # BinaryNet: latent weights clipped to [-1, 1]
                for m in model.modules():
                    if isinstance(m, qnn.QuantLinear) and args.w_bits == 1:
                        m.weight.clamp_(-1, 1)
        model.eval()
        with torch.no_grad():
            acc = (model(xt).argmax(1).numpy() == test.labels).mean()
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} ({time.perf_counter() - t0:.0f} s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, torch.zeros(1, 784), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
