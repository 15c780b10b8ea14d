"""Train FINN's SFC recipe with Brevitas on Fashion-MNIST and export it as QONNX, as a FINN user
would (binarized input pixels, three dense W1A1 layers of 256 with BatchNorm, binary scores).

    python examples/brevitas_sfc.py runs/qonnx/sfc.onnx [--epochs 5]
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
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from torch import nn
from tqdm import tqdm

from hwqnn.data import load_dataset

BINARY_WEIGHTS = SignedBinaryWeightPerTensorConst


def sfc(hidden: int = 256, layers: int = 3, classes: int = 10) -> nn.Module:
    mods: list[nn.Module] = [qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
    width = 784
    for _ in range(layers):
        mods += [
            qnn.QuantLinear(
                width, hidden, bias=False, weight_quant=SignedBinaryWeightPerTensorConst
            ),
            nn.BatchNorm1d(hidden),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        ]
        width = hidden
    mods.append(qnn.QuantLinear(width, classes, bias=False, weight_quant=BINARY_WEIGHTS))
    return nn.Sequential(*mods)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the .onnx file to write")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.005, help="Adam, decaying 100x over the run")
    ap.add_argument("--data", default=None, help="Fashion-MNIST IDX directory (default: hwqnn's)")
    args = ap.parse_args()
    torch.manual_seed(0)
    train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    x = torch.from_numpy(train.images).float() * (2 / 255) - 1
    y = torch.from_numpy(train.labels)
    xt = torch.from_numpy(test.images).float() * (2 / 255) - 1
    model = sfc()
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
                    if isinstance(m, qnn.QuantLinear):
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
