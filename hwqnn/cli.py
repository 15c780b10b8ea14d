"""The ``hwqnn`` command: one subcommand per stage, plus ``flow`` for the whole job.

The CLI holds no logic of its own: it parses arguments, calls the stage, prints a short result,
and turns a bad input into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from fractions import Fraction
from pathlib import Path
from typing import NoReturn, TypeVar

from hwqnn.hw.manifest import DEFAULT_AXIS_BITS
from hwqnn.options import FlowOptions, FoldOptions, SimOptions, TrainOptions

log = logging.getLogger("hwqnn")


class Parser(argparse.ArgumentParser):
    """argparse with hwqnn's error style: one line naming the flag, exit status 2 (``--help``
    still shows the usage)."""

    def error(self, message: str) -> NoReturn:
        from hwqnn.errors import shown

        self.exit(2, f"{self.prog}: error: {shown(message, 300)}\n")


def count(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer flag of at least ``lo`` (and at most ``hi``)."""

    def parse(text: str) -> int:
        if len(text) > 20:  # not a count anyone means; int() of 4,000 digits is slow to echo
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, found {len(text)} "
                                             "characters")  # fmt: skip
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {lo}, found {text!r}"
            ) from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, found {v}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, found {v}")
        return v

    parse.__name__ = f"integer >= {lo}"
    return parse


def _number(text: str) -> float:
    """A decimal number or a fraction (``2/255``)."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(Fraction(num.strip()) / Fraction(den.strip()))
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None


def positive(text: str) -> float:
    """A finite number > 0 (a rate, a clock, frames/s)."""
    v = _number(text)
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, found {text!r}")
    return v


def finite(text: str) -> float:
    """Any finite number (a bias)."""
    v = _number(text)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, found {text!r}")
    return v


def nonzero(text: str) -> float:
    """A finite number other than 0 (a scale)."""
    v = finite(text)
    if v == 0:
        raise argparse.ArgumentTypeError("expected a finite number other than 0, found 0")
    return v


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default=None,
        help="directory of IDX files (default: /usr/share/datasets/fashion-mnist), of CIFAR-10's "
        "binary batches (data_batch_*.bin, test_batch.bin), or 'synthetic'",
    )


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arch",
        default="mlp:512x3",
        help="e.g. mlp:256x3, mlp:256-128-64, cnv (the default ConvNet) or cnv:32c3-mp2-64c3-fc128",
    )
    p.add_argument("--w-bits", type=int, default=1, choices=(1, 2, 4), help="weight bits")
    p.add_argument("--a-bits", type=int, default=1, choices=(1, 2, 4), help="activation bits")
    p.add_argument("--w-enc", default="odd", choices=("odd", "signed"),
                   help="weights: odd levels (default; 1 bit: +-1) or signed integers with zero "
                   "(2 bits: -1, 0, 1; 4 bits: -7..7)")  # fmt: skip
    p.add_argument("--a-enc", default="odd", choices=("odd", "unsigned", "signed"),
                   help="hidden activations: odd levels (default), unsigned 0..2^k-1 (a quantized "
                   "ReLU) or signed integers with zero")  # fmt: skip
    p.add_argument("--in-enc", default="odd", choices=("odd", "unsigned"),
                   help="8-bit pixels x as the levels 2x-255 (default) or as x")  # fmt: skip
    p.add_argument("--bias", action="store_true",
                   help="an integer score bias per class on the last layer")  # fmt: skip
    p.add_argument(
        "--epochs", type=count(1), default=None, help="default: 6 for an mlp:, 20 for a cnv: net"
    )
    p.add_argument("--batch-size", type=count(1, 1 << 16), default=100, help="(1..65536)")
    p.add_argument(
        "--lr",
        type=positive,
        default=None,
        help="initial learning rate (Adam, latent weights; default: 0.1 mlp:, 0.03 cnv:)",
    )
    p.add_argument("--lr-end", type=positive, default=3e-4, help="final learning rate (> 0)")
    p.add_argument("--float-lr", type=positive, default=1e-3, help="float twin's initial rate")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="after training, set BatchNorm's statistics to the exact train-set ones (default: "
        "training's running averages)",
    )
    p.add_argument(
        "--float-epochs",
        type=count(1),
        default=None,
        help="float twin's epochs (default: --epochs if given, else 6)",
    )
    p.add_argument("--seed", type=count(0), default=0)
    p.add_argument("--float-twin", action="store_true", help="also train the float twin")
    _add_data(p)


T = TypeVar("T")


def _record(cls: type[T], args: argparse.Namespace, **given: object) -> T:
    """The option record ``cls`` from the parsed flags of the same names (``given`` for its
    nested records); a field without a flag keeps its default."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    found = {k: getattr(args, k) for k in names if hasattr(args, k) and k not in given}
    return cls(**found, **given)


def _hw(args: argparse.Namespace) -> FoldOptions:
    return _record(FoldOptions, args)


def cmd_train(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import train_stage

    metrics = train_stage(_record(TrainOptions, args), Path(args.out))
    accs = {"quant_acc": metrics.get("quant_acc"), "float_acc": metrics.get("float_acc")}
    print(json.dumps({k: v for k, v in accs.items() if v is not None}, indent=1))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import export_stage

    b = export_stage(Path(args.checkpoint), Path(args.output))
    print(f"wrote {args.output}: {b.arch()}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from hwqnn import bundle as bundle_io
    from hwqnn.verify import c_vs_golden, test_set, torch_vs_golden

    if args.checkpoint:
        res = torch_vs_golden(Path(args.bundle), Path(args.checkpoint), args.data, args.n)
        bad = res["mismatches"] + res["c"].get("mismatches", 0)
        print(json.dumps(res, indent=1))
    else:
        b = bundle_io.load(Path(args.bundle))
        test = test_set(b, args.bundle, args.data, args.n)
        c = c_vs_golden(b, test.images, test.labels)
        bad = c.get("mismatches", 0)
        print(json.dumps({"c": c}, indent=1))
    return 0 if bad == 0 else 1


def cmd_flat(args: argparse.Namespace) -> int:
    from hwqnn import bundle as bundle_io
    from hwqnn import flat

    b = bundle_io.load(Path(args.bundle))
    path = flat.write(b, Path(args.output))
    print(f"wrote {path}: {b.arch()}, {path.stat().st_size:,} bytes (run it with sw/)")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import export_onnx_stage

    res = export_onnx_stage(Path(args.bundle), Path(args.output), args.data, args.check)
    print(json.dumps(res, indent=1))
    if "images" in res and res["images_equal"] != res["images"]:
        print(f"hwqnn: qonnx != golden on {res['images'] - res['images_equal']} images",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import import_onnx_stage

    res = import_onnx_stage(Path(args.model), Path(args.output), args.data, args.check,
                            args.input_scale, args.input_bias, args.raw_bits,
                            args.score_bits)  # fmt: skip
    print(json.dumps(res, indent=1))
    if "images" in res and res["classes_differ_beyond_bound"]:  # (no bound: every class)
        print(f"hwqnn: qonnx and golden classes differ on "
              f"{res['classes_differ_beyond_bound']} images"
              + (" whose margin clears the argmax bound" if res["argmax_bound"] else ""),
              file=sys.stderr)  # fmt: skip
        return 1
    if "images" in res and res["classes_equal"] != res["images"]:  # a rounded per-class scale
        n = res["images"] - res["classes_equal"]
        print(f"hwqnn: note: classes differ on {n} images, each within the argmax bound "
              f"{res['argmax_bound']:.3g}", file=sys.stderr)  # fmt: skip
    if "images_exact" in res and res["images_exact"] != res["images"]:  # a warning: qonnx sums
        # in float32, and a sum within an ulp of a threshold can land on either side of it
        print(f"hwqnn: warning: qonnx's float32 scores differ from golden's integers on "
              f"{res['images'] - res['images_exact']} images, alone and in a batch",
              file=sys.stderr)  # fmt: skip
    return 0


def cmd_golden(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import golden_stage

    print(json.dumps(golden_stage(Path(args.bundle), args.data, args.n), indent=1))
    return 0


def cmd_rtl(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import rtl_stage

    manifest = rtl_stage(Path(args.bundle), Path(args.output), _hw(args))
    pipe = manifest.pipeline
    print(json.dumps(manifest.to_json()["pipeline"], indent=1))
    print(
        f"folding {','.join(manifest.folding)}: "
        f"{args.clock_mhz * 1e6 / pipe.cycles_per_frame:,.0f} frames/s at "
        f"{args.clock_mhz:g} MHz, about {manifest.estimated_luts:,} xc7 LUTs (model; "
        "hwqnn synth measures)"
    )
    return 0


def _prove_tasks(text: str) -> tuple[str, ...]:
    from hwqnn.formal.prove import TASKS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in TASKS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: tasks are a comma-separated list of "
                                         f"{', '.join(TASKS)}")  # fmt: skip
    return names


def cmd_prove(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import prove_stage

    rows = prove_stage(
        Path(args.bundle), Path(args.output), _hw(args), frames=args.frames, depth=args.depth,
        solver=args.solver, rtl_bundle=args.rtl_bundle, tasks=args.tasks, rtl=args.rtl,
    )  # fmt: skip
    from hwqnn.formal.prove import table

    print(table(rows))
    bad = [r for r in rows if r["status"] in ("failed", "unreached")]
    for r in bad:
        cex = r.get("counterexample")
        names = ", ".join(str(x) for x in r.get("failed") or ())  # type: ignore[attr-defined]
        print(f"hwqnn: {r['property']}: {r['status']} at step {r.get('step')}"
              + (f" ({names})" if names else "")
              + (f"; first differing output: {cex}" if cex else "")
              + (f"; trace {r['trace']}" if r.get("trace") else ""), file=sys.stderr)  # fmt: skip
    return 1 if bad else 0


def cmd_synth(args: argparse.Namespace) -> int:
    from hwqnn.hw.manifest import load_network
    from hwqnn.synth import summary_lines, synthesize

    res = synthesize(
        load_network(Path(args.rtl_dir)),
        Path(args.output),
        args.target,
        args.part,
        clock_mhz=args.clock_mhz,
        pnr=not args.no_pnr,
        breakdown=not args.no_breakdown,
    )
    print("\n".join(summary_lines(res)))
    if not res.fits:
        over = ", ".join(f"{k} {100 * v:.0f} %" for k, v in res.utilization.items() if v > 1.0)
        print(f"hwqnn: the design does not fit {res.part}: {over} of the part", file=sys.stderr)
        return 1
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import sim_stage

    res = sim_stage(Path(args.bundle), _record(SimOptions, args, hw=_hw(args)))
    print(json.dumps(res, indent=1))
    if res["first_mismatch"]:
        from hwqnn.report import mismatch_line

        print(f"hwqnn: {mismatch_line(res['first_mismatch'])}", file=sys.stderr)
    return 0 if res["mismatches"] == 0 else 1


def cmd_flow(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import flow

    opts = _record(FlowOptions, args, train=_record(TrainOptions, args), hw=_hw(args))
    report = flow(opts)
    return 0 if report["mismatches"] == 0 else 1


def cmd_ops(args: argparse.Namespace) -> int:
    from hwqnn.pipeline import ops_stage

    print(ops_stage(Path(args.bundle), args.rtl, args.chart, args.activity))
    return 0


def cmd_dse(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hwqnn.dse import explore

    bar = tqdm(desc="design points", unit="point", total=0)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        res = explore(
            Path(args.bundle), Path(args.output), min_cycles=args.min_cycles,
            max_cycles=args.max_cycles, axis_bits=args.axis_bits, target=args.target,
            clock_mhz=args.clock_mhz, jobs=args.jobs, progress=progress, ray_address=args.ray,
        )  # fmt: skip
    finally:
        bar.close()
    print(res["table_md"])
    print(f"plot: {Path(args.output) / 'pareto.png'}")
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    from hwqnn.errors import InputError

    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{flag} must be comma-separated integers, not {text!r}"[:200]) from None


def cmd_bench(args: argparse.Namespace) -> int:
    from hwqnn import bench
    from hwqnn import bundle as bundle_io

    b = bundle_io.load(Path(args.bundle)) if args.bundle else None
    json_out = Path(args.json) if args.json else None
    if args.what == "gpu":
        return bench.gpu(b, args.quick, args.interpret)
    if args.what == "cpu":
        return bench.cpu(b, args.quick, json_out, getattr(args, "data", None), args.kernel)
    if args.what == "synth" and args.units:
        return bench.synth_units(args.target or ["xc7"], _int_list(args.simd, "--simd"),
                                 _int_list(args.unit_bits, "--unit-bits"),
                                 json_out=json_out)  # fmt: skip
    if args.what == "synth":
        nets = tuple(args.nets.split(",")) if getattr(args, "nets", None) else None
        return bench.synth(args.target or ["xc7", "ecp5"], args.quick, b, json_out=json_out,
                           only=nets)  # fmt: skip
    return bench.golden_cpu(b, args.quick)


def _add_hw_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fold",
        default=None,
        help="per-layer PExSIMD, comma-separated, e.g. 16x49,16x64,16x64,10x64 (default: chosen)",
    )
    p.add_argument(
        "--target-cycles",
        type=count(1),
        default=None,
        help="cycles/frame the default folding balances every layer to",
    )
    p.add_argument(
        "--target-fps",
        type=positive,
        default=None,
        help="the cheapest folding reaching this many frames/s at --clock-mhz",
    )
    p.add_argument(
        "--lut-budget",
        type=count(1),
        default=None,
        help="the fastest folding whose estimated xc7 LUTs fit this budget",
    )
    p.add_argument(
        "--clock-mhz",
        type=positive,
        default=100.0,
        help="clock for --target-fps and frames/s figures (> 0)",
    )
    p.add_argument(
        "--axis-bits",
        type=count(8),
        default=DEFAULT_AXIS_BITS,
        help=f"width of s_axis_tdata (a multiple of 8 in 8..1024; default {DEFAULT_AXIS_BITS}), "
        "independent of the folding. A beat carries in_chunk raw values: as many as fit for a "
        "dense first layer, the largest divisor of the channels that fits for an image (a "
        "grayscale ConvNet: one pixel a beat); manifest.json's ports.in_chunk and "
        "ports.in_beats say both",
    )


def _add_sim_args(p: argparse.ArgumentParser, all_is_zero: bool = False) -> None:
    p.add_argument(
        "-n",
        type=count(0 if all_is_zero else 1),
        default=0 if all_is_zero else 100,
        help="test images to simulate" + (" (0: all)" if all_is_zero else " (>= 1)"),
    )
    p.add_argument("--all", action="store_true", help="the whole test set, through the C++ harness")
    p.add_argument(
        "--engine",
        choices=("cocotb", "cpp", "icarus"),
        default=None,
        help="cocotb (the cocotb bench on Verilator: Python per cycle, cocotbext-axi), icarus "
        "(the same bench on Icarus Verilog, the second simulator) or cpp (Verilator C++ "
        "harness, shardable); default: cpp with --all, else cocotb",
    )
    p.add_argument(
        "--jobs", type=count(1), default=0,
        help="cpp: split the images over N harness processes (default: the machine's cores); "
        "results merged in order, identical to one job",
    )  # fmt: skip
    p.add_argument(
        "--ray", default=None, metavar="ADDRESS",
        help="cpp: run the shards as Ray tasks (local: a Ray instance of --jobs CPUs here; "
        "HOST:PORT: that cluster; the harness executable travels with each task)",
    )  # fmt: skip
    p.add_argument("--build-dir", default=None, help="where to build (default: build/sim/<hash>)")


def _add_qonnx_check(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--check", type=count(0), nargs="?", const=0, default=None, metavar="N",
        help=f"run N test images (none given: all) through the graph with qonnx's executor and "
        f"compare {what} with the golden model",
    )  # fmt: skip
    _add_data(p)


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="hwqnn",
        description="Train, export, generate Verilog for, simulate and verify quantized networks.",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    _add_software_commands(add)
    _add_hardware_commands(add)
    _add_analysis_commands(add)
    return ap


Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _add_software_commands(add: Add) -> None:
    """train, export, verify, flat, export-onnx, import, golden."""
    p = add("train", cmd_train, "train a quantized MLP (and optionally its float twin)")
    _add_train_args(p)
    p.add_argument("--out", default="runs/train", help="directory for model.pt and metrics.json")

    p = add("export", cmd_export, "fold and pack a trained checkpoint into a bundle")
    p.add_argument("checkpoint", help="model.pt written by 'hwqnn train'")
    p.add_argument("-o", "--output", required=True, help="bundle path (.npz)")

    p = add(
        "verify",
        cmd_verify,
        "compare the torch model (with --checkpoint) and the C library with the golden model, "
        "integer-exact",
    )
    p.add_argument("bundle")
    p.add_argument("--checkpoint", default=None, help="model.pt: also compare torch")
    p.add_argument("-n", type=count(1), default=None, help="test images (default: all)")
    _add_data(p)

    p = add("flat", cmd_flat, "write a bundle as the C library's flat file (sw/)")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, help="flat file path, e.g. net.hwq")

    p = add("export-onnx", cmd_export_onnx, "write a bundle as a QONNX graph (for FINN, qonnx)")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, help="model path (.onnx)")
    _add_qonnx_check(p, "every score")

    p = add("import", cmd_import, "fold a QONNX graph (Brevitas, FINN) exactly into a bundle")
    p.add_argument("model", help="a QONNX .onnx file")
    p.add_argument("-o", "--output", required=True, help="bundle path (.npz)")
    p.add_argument("--input-scale", type=nonzero, default=1.0,
                   help="the graph's input is raw * SCALE + BIAS (e.g. 2/255 and -1 for pixels "
                   "scaled to [-1, 1]; default: raw pixels)")  # fmt: skip
    p.add_argument("--input-bias", type=finite, default=0.0)
    p.add_argument("--raw-bits", type=int, default=8, choices=range(1, 9),
                   help="bits of a raw input value (1..8)")  # fmt: skip
    p.add_argument("--score-bits", type=int, default=32, choices=range(8, 33), metavar="8..32",
                   help="a per-class score scale that must be rounded fills scores of this many "
                   "signed bits (default 32: the C library's int32; fewer: a narrower hardware "
                   "score path and a larger argmax bound)")  # fmt: skip
    _add_qonnx_check(p, "its classes and scores")

    p = add("golden", cmd_golden, "run the golden model on the test set and report accuracy")
    p.add_argument("bundle")
    p.add_argument("-n", type=count(1), default=None, help="test images (default: all)")
    _add_data(p)


def _add_hardware_commands(add: Add) -> None:
    """rtl, synth, sim, flow."""
    p = add("rtl", cmd_rtl, "generate Verilog and a manifest for a bundle")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, help="output directory, e.g. rtl/fmnist")
    _add_hw_args(p)

    p = add(
        "prove",
        cmd_prove,
        "formal: the accelerator equals the bundle's integer function for "
        "every input frame and stall pattern (bounded), and keeps the stream rules",
    )
    p.add_argument("bundle", help="the bundle whose integer function is the reference")
    p.add_argument("-o", "--output", required=True, help="directory: tasks, traces, prove.json")
    p.add_argument("--frames", type=count(1), default=2, help="input frames (free) in the harness")
    p.add_argument(
        "--depth", type=count(1), default=None,
        help="cycles to check (default: reset to the last frame's output with no stalls, + 4)",
    )  # fmt: skip
    p.add_argument("--solver", choices=("boolector", "z3"), default="boolector")
    p.add_argument(
        "--tasks", type=_prove_tasks, default=("net", "units"), metavar="LIST",
        help="comma-separated: net (the whole top: equivalence and the stream rules, any "
        "tlast), reset (the same with one reset pulse at any cycle, one frame, twice the depth: "
        "slow), units (each MVTU alone against its layer, each sliding window and max-reduce "
        "against its definition, an input rule's quantizer against the rule); default "
        "net,units",
    )  # fmt: skip
    p.add_argument(
        "--rtl-bundle", default=None, metavar="B.npz",
        help="prove the Verilog of this other bundle against this one (an injected fault must "
        "give a counterexample)",
    )  # fmt: skip
    p.add_argument(
        "--rtl", default=None, metavar="DIR",
        help="prove the Verilog in DIR (written by 'hwqnn rtl', perhaps edited) against the "
        "bundle; its folding is its manifest's",
    )  # fmt: skip
    _add_hw_args(p)

    p = add("synth", cmd_synth, "synthesize generated RTL with open tools: LUTs, FFs, RAM, Fmax")
    p.add_argument("rtl_dir", help="a directory written by 'hwqnn rtl' (manifest.json, Verilog)")
    p.add_argument("-o", "--output", required=True, help="directory for synth.json and the logs")
    p.add_argument("--target", choices=("xc7", "ecp5", "ice40"), default="xc7")
    p.add_argument("--part", default=None, help="device for the fit check and place-and-route")
    p.add_argument("--clock-mhz", type=positive, default=100.0, help="nextpnr's target clock")
    p.add_argument("--no-pnr", action="store_true", help="ecp5/ice40: skip place-and-route")
    p.add_argument(
        "--no-breakdown", action="store_true", help="skip the hierarchical per-layer run"
    )

    p = add("sim", cmd_sim, "simulate the RTL cycle-accurately and compare with the golden model")
    p.add_argument("bundle")
    _add_hw_args(p)
    _add_sim_args(p)
    _add_data(p)
    p.add_argument("--out", default=None, help="where sim.json goes (default: the build dir)")
    p.add_argument("--seed", type=count(0), default=1, help="seed of the random stalls (cocotb)")
    p.add_argument("--stalls", action="store_true", help="random input gaps and back-pressure")
    p.add_argument(
        "--first", type=count(0), default=0, help="start at this test image (with -n: a range)"
    )
    p.add_argument(
        "--waves", action="store_true",
        help="record every signal of the run into OUT/waves/run.vcd (cocotb, Verilator) or "
        "run.fst (icarus); a cocotb engine (default cocotb)",
    )  # fmt: skip
    p.add_argument(
        "--rtl", default=None, metavar="DIR",
        help="simulate the Verilog in DIR (hwqnn rtl's output: hwqnn_top.v, manifest.json; "
        "edited, or generated from another bundle) against this bundle's golden model, instead "
        "of generating it; its folding is read from its manifest",
    )  # fmt: skip
    p.add_argument(
        "--rtl-bundle", default=None, metavar="B.npz",
        help="generate the RTL from this other bundle and simulate it against this bundle's "
        "golden model (an injected fault: the report names the first wrong layer and neuron)",
    )  # fmt: skip
    p.add_argument(
        "--testcase", default=None,
        choices=("reset_mid_frame", "frame_error_is_sticky_until_reset", "all"),
        help="also run this protocol test of the cocotb bench (all: both) after the stream test; "
        "a cocotb engine (default cocotb)",
    )  # fmt: skip

    p = add("flow", cmd_flow, "train -> export -> golden -> Verilog -> simulation -> report")
    _add_train_args(p)
    _add_hw_args(p)
    _add_sim_args(p, all_is_zero=True)  # the flow simulates the whole test set by default
    p.add_argument("--out", default="runs/flow", help="run directory")
    p.add_argument("--bundle", default=None, help="skip training: start from this bundle")
    p.add_argument(
        "--rtl-bundle", default=None, metavar="B.npz",
        help="generate, simulate and synthesize the Verilog of this other bundle, checked "
        "against the golden model of the flow's own (an injected fault: the report names the "
        "image, layer, neuron and the waveform under OUT/waves)",
    )  # fmt: skip
    p.add_argument(
        "--synth",
        choices=("xc7", "ecp5", "ice40", "none"),
        default="xc7",
        help="synthesize the Verilog for this target for the report's Resources section "
        "(yowasp tools; default xc7; none: skip)",
    )
    p.add_argument("--part", default=None, help="device for --synth's fit check")
    p.add_argument(
        "--activity-images",
        type=count(0),
        default=0,
        help="also measure switching activity on N images (a toggle-coverage Verilator build: "
        "minutes for large nets; default 0: skip)",
    )


def _add_analysis_commands(add: Add) -> None:
    """ops, dse, bench."""
    p = add("ops", cmd_ops, "operation counts and energy estimate per layer")
    p.add_argument("bundle")
    p.add_argument("--rtl", default=None, help="sim.json of a run, for measured counts")
    p.add_argument("--chart", default=None, help="write a per-layer bar chart (PNG) here")
    p.add_argument(
        "--activity",
        type=count(0),
        default=0,
        help="measure toggles/cycle on N test images (needs --rtl)",
    )

    p = add("dse", cmd_dse, "sweep foldings, synthesize each, plot frames/s against LUTs")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, help="directory for dse.md/json, pareto.png")
    p.add_argument(
        "--min-cycles",
        type=count(1),
        default=None,
        help="fastest point (default: 1/4 of the default folding's)",
    )
    p.add_argument("--max-cycles", type=count(1), default=None, help="slowest point (default: 4x)")
    p.add_argument("--axis-bits", type=count(8), default=DEFAULT_AXIS_BITS)
    p.add_argument("--target", choices=("xc7", "ecp5", "ice40"), default="xc7")
    p.add_argument("--clock-mhz", type=positive, default=100.0)
    p.add_argument(
        "--jobs", type=count(1), default=None, help="parallel syntheses (default: cores)"
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the points as Ray tasks: 'local' (a Ray instance here) or a cluster address "
        "(needs the ray extra; nodes share the filesystem)",
    )

    p = add("bench", cmd_bench, "benchmarks that print a table")
    p.add_argument("what", choices=("gpu", "golden", "synth", "cpu"))
    p.add_argument("--bundle", default=None)
    p.add_argument("--quick", action="store_true", help="fewer batch sizes")
    p.add_argument(
        "--interpret",
        action="store_true",
        help="gpu: run the bench's code on tiny shapes in Triton's CPU interpreter (no timings)",
    )
    p.add_argument(
        "--target",
        action="append",
        choices=("xc7", "ecp5", "ice40"),
        help="synth: target (repeatable; default xc7 and ecp5)",
    )
    p.add_argument("--json", default=None, help="synth, cpu: write the results here")
    p.add_argument("--nets", default=None,
                   help="synth: reference nets by name, comma-separated (e.g. cnv; finn: FINN's "
                   "and BNN-PYNQ's nets beside their published points)")  # fmt: skip
    p.add_argument("--units", action="store_true",
                   help="synth: one MVTU per lane count and bit width, LUTs per lane")  # fmt: skip
    p.add_argument("--simd", default="32,64,128,256", help="synth --units: lane counts")
    p.add_argument("--kernel", default=None,
                   help="cpu: force the C library's kernel family: avx512, avx2, popcnt, neon, "
                   "portable (default: the best this CPU has; every family is also timed "
                   "alone)")  # fmt: skip
    p.add_argument("--unit-bits", default="1,2,4", help="synth --units: bit widths (1, 2, 4)")


def one_line(e: BaseException) -> str:
    """The message of ``e`` as one safe line. A tool's failure quotes the tool's output below
    its first line: that line is kept and the rest is behind ``-v``. Any other message is one
    line already, unless a file name or a field brought a control character: those are escaped
    (so a newline in a file name does not cut the field from the message)."""
    from hwqnn.errors import ToolError, printable, shown

    text = str(e).strip("\n") or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None:  # "[Errno 2] ...: 'name'", escaped
        return f"{printable(str(e.filename))}: {e.strerror or type(e).__name__}"
    if isinstance(e, ToolError) and "\n" in text:
        return shown(text.split("\n", 1)[0], 600) + " (rerun with -v for the details)"
    return shown(text, 600)


def main(argv: Sequence[str] | None = None) -> int:
    from hwqnn.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.fn(args))
    except USER_ERRORS as e:
        if args.verbose:
            logging.getLogger("hwqnn").exception("bad input")
        print(f"hwqnn: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwqnn: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless -v asks for more
        if args.verbose:
            raise
        msg = str(e).splitlines()[0][:300] if str(e) else ""
        print(
            f"hwqnn: internal error: {type(e).__name__}: {msg} (rerun with -v for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
