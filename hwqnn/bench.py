"""Benchmarks that print a table. Every speed is a ratio to a baseline measured in the same run.

``gpu``: the Triton XNOR-popcount kernel vs the deliberately naive Triton kernel vs
``torch.matmul`` in fp32 and fp16 (cuBLAS) on the bundle's layer shapes and on the BNN paper's
8192 x 8192 x 8192, for batch sizes 1 to 4096; with a bundle, whole-net GPU inference is checked
against the golden model on the whole test set. Without a CUDA GPU nothing is measured.

``golden``: the NumPy golden model against a float32 BLAS forward of the same shapes (CPU).

``cpu``: the C library (``sw/``) against torch fp32 (the float twin's layers, eval) and the golden
model, single thread and all threads, at batch 1, 64 and 1024; then C == golden on the test set.

``synth``: the reference nets (and a bundle) through ``hwqnn rtl`` and ``hwqnn synth``: the
figures to compare before and after a change under ``hwqnn/hw/``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from hwqnn.atomic import write_json
from hwqnn.bundle import Bundle, make_layer
from hwqnn.errors import InputError
from hwqnn.randnet import random_layer_params

BATCHES = (1, 64, 256, 1024, 4096)
PAPER_SHAPE = (8192, 8192)  # N x K, binary, as in Courbariaux et al. 2016 (GTX 750)


def _fmt_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _timer(cuda: bool) -> Callable[[Callable[[], Any], int], float]:
    """Median milliseconds of ``fn`` after a warm-up: CUDA events on a GPU, else wall time."""
    import torch

    def run(fn: Callable[[], Any], reps: int = 10) -> float:
        fn()
        if cuda:
            torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            if cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return run


def gpu(bundle: Bundle | None, quick: bool = False, interpret: bool = False) -> int:
    """The GPU table. ``interpret``: run the same code on tiny shapes in Triton's CPU
    interpreter (exercises the bench; its timings mean nothing)."""
    import torch

    cuda = torch.cuda.is_available() and not interpret
    if not cuda and not interpret:
        print(
            "no CUDA GPU on this machine: nothing measured. The Triton kernels are tested for "
            "bit-exactness on the CPU with TRITON_INTERPRET=1 (tests/test_gpu.py)."
        )
        return 0
    from hwqnn.gpu.infer import DeviceLayer, layer_gemm, pack_codes

    dev = torch.device("cuda" if cuda else "cpu")
    timed = _timer(cuda)
    rng = np.random.default_rng(0)
    shapes: list[tuple[str, int, int, int]] = []
    if bundle is not None:
        for i, ly in enumerate(bundle.dense("the benchmark")):
            shapes.append((f"layer{i}", ly.out_features, ly.in_features, ly.in_bits))
    shapes.append(("paper-8192", *PAPER_SHAPE, 1))
    batches: tuple[int, ...] = (1, 64, 4096) if quick else BATCHES
    if interpret:
        shapes = [(nm, min(n, 40), min(k, 70), b) for nm, n, k, b in shapes]
        batches = (1, 3)
    rows = []
    for name, n, k, in_bits in shapes:
        w, t, f = random_layer_params(rng, n, k, in_bits, 1, 1)
        dl = DeviceLayer.from_layer(make_layer(w, in_bits, 1, 1, t, f), dev)
        wf32 = torch.randn(n, k, device=dev)
        wf16 = wf32.half()
        for m in batches:
            codes = torch.randint(0, 2**in_bits, (m, k), device=dev)
            acts = pack_codes(codes, in_bits, dl.weights.shape[2])
            xf32 = torch.randn(m, k, device=dev)
            xf16 = xf32.half()
            reps = 1 if interpret else 10
            t_tri = timed(lambda: layer_gemm(acts, dl), reps)  # noqa: B023
            naive_ok = m * n * dl.weights.shape[2] * in_bits <= 2**31
            t_naive = (
                timed(lambda: layer_gemm(acts, dl, naive=True), min(reps, 3)) if naive_ok else None  # noqa: B023
            )
            t32 = timed(lambda: xf32 @ wf32.t(), reps)  # noqa: B023
            t16 = timed(lambda: xf16 @ wf16.t(), reps)  # noqa: B023
            rows.append(
                [
                    name, f"{m}x{n}x{k}", f"{in_bits}", f"{t_tri:.4f}",
                    "-" if t_naive is None else f"{t_naive:.4f}", f"{t32:.4f}", f"{t16:.4f}",
                    "-" if t_naive is None else f"{t_naive / t_tri:.1f}x",
                    f"{t32 / t_tri:.2f}x", f"{t16 / t_tri:.2f}x",
                ]
            )  # fmt: skip
    header = ["shape", "MxNxK", "in bits", "triton ms", "naive ms", "fp32 ms", "fp16 ms",
              "vs naive", "vs fp32", "vs fp16"]  # fmt: skip
    where = torch.cuda.get_device_name(0) if cuda else "CPU interpreter: timings mean nothing"
    print(f"device: {where}; ratios > 1: the Triton kernel is faster")
    print(_fmt_table(header, rows))
    if bundle is not None and cuda:
        _gpu_whole_net(bundle)
    return 0


def _gpu_whole_net(bundle: Bundle) -> None:
    from hwqnn import golden
    from hwqnn.data import load_dataset
    from hwqnn.gpu.infer import infer, to_device

    test = load_dataset(None, "test")
    layers = to_device(bundle)
    t0 = time.perf_counter()
    scores = infer(bundle, test.images, layers=layers)
    t_gpu = time.perf_counter() - t0
    g = golden.scores(bundle, test.images)
    bad = int((scores != g).any(axis=1).sum())
    print(f"whole-net GPU inference: {len(test)} images, {bad} mismatches vs golden, {t_gpu:.3f} s")


def golden_cpu(bundle: Bundle | None, quick: bool = False) -> int:
    """NumPy golden (XNOR-popcount) vs float32 BLAS on the same layer shapes (CPU)."""
    from hwqnn import golden
    from hwqnn.randnet import random_bundle, random_codes

    b = bundle or random_bundle(0, 784, (512, 512, 512), 10)
    batches = (1, 64, 1024) if quick else (1, 64, 1024, 4096)
    rows = []
    ws = [
        np.random.default_rng(0).standard_normal((ly.out_features, ly.in_features), np.float32)
        for ly in b.dense("the benchmark")
    ]
    for m in batches:
        x = random_codes(1, m, b.in_features).astype(np.uint8)
        reps = max(1, 2048 // m)
        t0 = time.perf_counter()
        for _ in range(reps):
            golden.scores(b, x, batch=1024)
        t_g = (time.perf_counter() - t0) / reps
        xf = x.astype(np.float32)
        t0 = time.perf_counter()
        for _ in range(reps):
            h = xf
            for w in ws:
                h = np.maximum(h @ w.T, 0)
        t_f = (time.perf_counter() - t0) / reps
        macs = sum(ly.in_features * ly.out_features for ly in b.dense("the benchmark")) * m
        rows.append([f"{m}", f"{t_g * 1e3:.2f}", f"{t_f * 1e3:.2f}", f"{t_f / t_g:.2f}x",
                     f"{macs / t_g / 1e9:.1f}", f"{macs / t_f / 1e9:.1f}"])  # fmt: skip
    print(f"network {b.arch()}; golden: np.bitwise_count on packed words (truth, not speed)")
    print(
        _fmt_table(
            [
                "batch",
                "golden ms",
                "fp32 BLAS ms",
                "golden speed ratio",
                "golden GMAC/s",
                "fp32 GMAC/s",
            ],
            rows,
        )
    )
    return 0


CPU_BATCHES = (1, 64, 1024)
# Measured on this project's 2-core machine (shared/reference/hardware-notes.md): XOR+POPCNT
# loops on one core, binary MACs per second.
POPCNT_PEAK_GMACS = {"avx512": 830.0, "scalar": 258.0}


def binary_macs(b: Bundle) -> int:
    """Binary (1-bit x 1-bit) MACs per image: each k-bit x m-bit MAC is k*m of them (a
    convolution's matrix counts once per output pixel)."""
    return sum(
        m.in_bits * m.w_bits * m.in_features * ly.out_size for ly in b.layers for m in ly.matrices()
    )


def float_twin(b: Bundle) -> Any:
    """The float net of ``b``'s topology (conv/BatchNorm/ReLU, max-pool, linear; eval mode):
    what ``bench cpu`` times the C library against."""
    from hwqnn.arch import Arch, Conv, Feature, Pool
    from hwqnn.layers import Conv2d, MaxPool2d
    from hwqnn.model import FloatNet

    features: list[Feature] = []
    hidden: list[int] = []
    for ly in b.layers[:-1]:
        if isinstance(ly, Conv2d):
            w = ly.window
            features.append(Conv(ly.out_channels, w.kernel, w.stride, w.pad))
        elif isinstance(ly, MaxPool2d):
            features.append(Pool(ly.window.kernel, ly.window.stride))
        else:
            hidden.append(ly.out_size)
    arch = Arch(tuple(hidden), features=tuple(features))
    # layer 0's image (H, W, C): a grayscale bundle's input shape may be [H, W]
    image = cast(tuple[int, int, int], b.layers[0].in_shape) if features else None
    return FloatNet(b.in_features, b.num_classes, arch, image).eval()


def _cpu_point(
    net: Any, twin: Any, b: Bundle, m: int, threads: int, timed: Callable[..., float]
) -> dict[str, Any]:
    """One row of ``bench cpu``: C, torch fp32 and (one thread) golden at batch ``m``."""
    import torch

    from hwqnn import golden
    from hwqnn.randnet import random_codes

    x = random_codes(1, m, b.in_features, b.quant.raw_bits).astype(np.uint8)
    xt = torch.from_numpy(x)
    out = np.empty((m, b.num_classes), dtype=np.int32)
    reps = max(5, min(200, 4096 // m))

    def run_torch() -> None:
        with torch.inference_mode():
            twin(xt)

    t_c = timed(lambda: net.scores_into(x, out, threads), reps)
    t_t = timed(run_torch, reps)
    t_g = (
        timed(lambda: golden.scores(b, x, batch=1024), max(1, reps // 10)) if threads == 1 else None
    )
    return {"batch": m, "threads": threads, "c_ms": t_c, "torch_fp32_ms": t_t,
            "golden_ms": t_g, "ratio": t_t / t_c,
            "binary_gmacs": binary_macs(b) * m / t_c / 1e6}  # fmt: skip


def cpu(
    bundle: Bundle | None,
    quick: bool = False,
    json_out: Path | None = None,
    data: str | None = None,
) -> int:
    """The C library vs torch fp32 (same shapes, the float twin's Linear/BatchNorm/ReLU in eval)
    vs the golden model, in one run; ratios > 1: the C library is faster. Then the C library's
    agreement with golden on the test set (or on 10,000 random images without a dataset)."""
    import os

    import torch

    from hwqnn import clib, golden
    from hwqnn.randnet import random_bundle, random_codes
    from hwqnn.verify import test_set

    b = bundle or random_bundle(0, 784, (512, 512, 512), 10)
    twin = float_twin(b)
    timed = _timer(False)
    cores = os.cpu_count() or 1
    old_threads = torch.get_num_threads()
    rows, records = [], []
    with clib.CNet(b) as net:
        isa = clib.isa()
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            for m in CPU_BATCHES[:2] if quick else CPU_BATCHES:
                rec = _cpu_point(net, twin, b, m, threads, timed)
                t_g = rec["golden_ms"]
                rows.append([f"{threads}", f"{m}", f"{rec['c_ms']:.4f}",
                             f"{rec['torch_fp32_ms']:.4f}", "-" if t_g is None else f"{t_g:.3f}",
                             f"{rec['ratio']:.1f}x",
                             "-" if t_g is None else f"{t_g / rec['c_ms']:.0f}x",
                             f"{rec['binary_gmacs']:.0f}"])  # fmt: skip
                records.append(rec)
        per_isa = []
        x = random_codes(2, 256, b.in_features, b.quant.raw_bits).astype(np.uint8)
        out = np.empty((256, b.num_classes), dtype=np.int32)
        for name in clib.available():
            clib.set_isa(name)
            per_isa.append((name, timed(lambda: net.scores_into(x, out, 1), 5)))
        clib.set_isa(None)
        try:  # HWC images for a ConvNet, checked against the bundle's input
            test = test_set(b, "the bundle", data)
            images, labels, what = test.images, test.labels, "test images"
        except (OSError, ValueError):
            images = random_codes(3, 10_000, b.in_features, b.quant.raw_bits)
            labels, what = None, "random images (no dataset)"
        c_scores = net.scores(images)
    torch.set_num_threads(old_threads)
    g_scores = golden.scores(b, images)
    bad = int((c_scores != g_scores).any(axis=1).sum())
    print(f"network {b.arch()}; C kernel {isa} on {cores} cores; torch {torch.__version__} fp32")
    header = ["threads", "batch", "C ms", "torch fp32 ms", "golden ms", "vs torch", "vs golden",
              "binary GMAC/s"]  # fmt: skip
    print(_fmt_table(header, rows))
    base = dict(per_isa)[isa]
    print("kernels, batch 256, one thread: " + ", ".join(
        f"{n} {t:.2f} ms ({t / base:.1f}x)" for n, t in per_isa))  # fmt: skip
    best = max(r["binary_gmacs"] for r in records if r["threads"] == 1)
    peak = POPCNT_PEAK_GMACS["avx512" if isa == "avx512" else "scalar"]
    print(f"one thread reaches {best:.0f} G binary MAC/s, {best / peak:.0%} of the {peak:.0f} G "
          f"XOR+POPCNT loop measured in shared/reference/hardware-notes.md")  # fmt: skip
    acc = "" if labels is None else f"; accuracy {float((c_scores.argmax(1) == labels).mean()):.4f}"
    print(f"C == golden: {len(images)} {what}, {bad} mismatches{acc}")
    if json_out is not None:
        summary = {"images": len(images), "mismatches": bad, "isa": isa, "arch": b.arch()}
        write_json(json_out, {"rows": records, "kernels_ms": dict(per_isa), **summary})
    return 0 if bad == 0 else 1


# Reference nets for synthesis before/after a hardware change (random weights: the cost does
# not depend on them beyond LUT-ROM contents; the seed fixes those too).
# (name, fan-in, hidden, classes, input bits, folding or None for the default)
SYNTH_NETS: tuple[tuple[str, int, tuple[int, ...], int, int, str | None], ...] = (
    ("small", 64, (128, 128), 4, 8, "1x8,1x16,1x1"),
    ("demo", 784, (512, 512, 512), 10, 8, None),
    # BNN-PYNQ's LFC-W1A1 shape, binarized input pixels as there: like for like with its point
    ("lfc", 784, (1024, 1024, 1024), 10, 1, None),
)
# ConvNets: (name, --arch spec, image (H, W, C), classes, folding or None). "cnv" is the default
# ConvNet's shape on 28x28 images (hwqnn.arch.CNV_DEFAULT).
SYNTH_CONV_NETS: tuple[tuple[str, str, tuple[int, int, int], int, str | None], ...] = (
    ("cnv-small", "cnv:8c3-mp2-16c3-fc32", (12, 12, 1), 4, None),
    ("cnv", "cnv", (28, 28, 1), 10, None),
)


def reference_nets(
    quick: bool = False, only: Sequence[str] | None = None
) -> list[tuple[str, Bundle, str | None]]:
    """``(name, bundle, folding or None for the default)`` of the reference nets (random weights,
    seed 1): all, the small MLP and the small ConvNet (``quick``), or those named in ``only``."""
    from hwqnn.arch import parse_arch
    from hwqnn.randnet import random_bundle, random_net

    known = [n[0] for n in SYNTH_NETS] + [n[0] for n in SYNTH_CONV_NETS]
    if only is not None and not set(only) <= set(known):
        raise InputError(f"unknown reference net in {','.join(only)}: known are {known}")
    dense = SYNTH_NETS[: 1 if quick else None]
    conv = SYNTH_CONV_NETS[: 1 if quick else None]
    if only is not None:
        dense = tuple(n for n in SYNTH_NETS if n[0] in only)
        conv = tuple(n for n in SYNTH_CONV_NETS if n[0] in only)
    nets: list[tuple[str, Bundle, str | None]] = [
        (name, random_bundle(1, k, hidden, classes, in_bits=in_bits), fold)
        for name, k, hidden, classes, in_bits, fold in dense
    ]
    nets += [
        (name, random_net(1, parse_arch(spec, 1, 1), image, classes), fold)
        for name, spec, image, classes, fold in conv
    ]
    return nets


UNIT_SIMDS = (32, 64, 128, 256)
UNIT_BITS = (1, 2, 4)
UNIT_ROWS, UNIT_FOLDS = 8, 4  # the unit's neurons (PE 1: NF 8) and input folds (SF 4)


def unit_net(simd: int, bits: int) -> Bundle:
    """The unit micro-benchmark's net: one MVTU of ``bits``-bit inputs, weights and outputs at
    PE 1 and ``simd`` lanes (``UNIT_ROWS`` neurons over ``UNIT_FOLDS * simd`` inputs, random
    weights, seed 1), then a small last layer that synthesis keeps apart (the breakdown's
    layer 1)."""
    from hwqnn.randnet import random_bundle

    return random_bundle(1, UNIT_FOLDS * simd, (UNIT_ROWS,), 2, bits, bits, in_bits=bits)


def synth_units(
    targets: Sequence[str],
    simds: Sequence[int] = UNIT_SIMDS,
    bits: Sequence[int] = UNIT_BITS,
    out: Path = Path("runs/bench/units"),
    json_out: Path | None = None,
) -> int:
    """Synthesize one MVTU per lane count and bit width (:func:`unit_net`) for each target and
    print what it costs per lane: layer 0's LUTs (weights, accumulators, thresholds and control
    included: the whole unit, from the hierarchical synthesis) over ``simd``, and over
    ``simd * bits * bits``, its 1-bit x 1-bit products; and the marginal cost of a lane, the
    LUTs added from the previous lane count over the lanes added (the fixed cost of control
    and thresholds cancels)."""
    from hwqnn.hw.emit import generate
    from hwqnn.hw.folding import parse_folds
    from hwqnn.hw.plan import plan
    from hwqnn.synth import synthesize

    for v in simds:
        if not 1 <= v <= 4096:
            raise InputError(f"unit SIMD must be in 1..4096, not {v}")
    for v in bits:
        if v not in UNIT_BITS:
            raise InputError(f"unit bits must be 1, 2 or 4, not {v}")
    rows, records = [], []
    prev: dict[tuple[str, int], tuple[int, int]] = {}  # (target, bits) -> (simd, LUTs)
    for b_ in bits:
        for simd in sorted(simds):
            net = unit_net(simd, b_)
            name = f"w{b_}a{b_}-simd{simd}"
            man = generate(plan(net, parse_folds(f"1x{simd},1x{UNIT_ROWS}")), out / name / "rtl")
            for target in targets:
                r = synthesize(man, out / name / target, target, pnr=False)
                unit = next(x for x in r.per_layer if x["layer"] == 0)
                luts, ffs = int(unit["luts"]), int(unit["ffs"])
                if luts == 0:  # the target's hierarchical run keeps no layer modules apart
                    raise InputError(f"{target}: no per-layer breakdown, so the unit's LUTs "
                                     "cannot be told apart (use --target xc7)")  # fmt: skip
                last = prev.get((target, b_))
                marginal = None if last is None else (luts - last[1]) / (simd - last[0])
                prev[(target, b_)] = (simd, luts)
                rows.append([target, f"{b_}", f"{simd}", f"{luts:,}", f"{ffs:,}",
                             f"{unit.get('bram', 0)}", f"{luts / simd:.2f}",
                             f"{luts / (simd * b_ * b_):.3f}",
                             "-" if marginal is None else f"{marginal:.2f}",
                             f"{r.wall_s:.0f}"])  # fmt: skip
                records.append({"target": target, "bits": b_, "simd": simd, "unit": unit,
                                "luts_per_lane": luts / simd,
                                "luts_per_bit_product": luts / (simd * b_ * b_),
                                "marginal_luts_per_lane": marginal,
                                "total_luts": r.luts})  # fmt: skip
    header = ["target", "bits (in = w = out)", "SIMD", "unit LUTs", "unit FFs", "block RAM",
              "LUTs per lane", "LUTs per 1x1-bit product", "LUTs per added lane",
              "wall s"]  # fmt: skip
    print(_fmt_table(header, rows))
    print(
        f"one MVTU at PE 1: {UNIT_ROWS} neurons over {UNIT_FOLDS} x SIMD inputs, random "
        "weights; its LUTs from the hierarchical synthesis (layer 0)"
    )
    if json_out is not None:
        write_json(json_out, {"rows": records})
    return 0


def synth(
    targets: Sequence[str],
    quick: bool = False,
    bundle: Bundle | None = None,
    out: Path = Path("runs/bench/synth"),
    json_out: Path | None = None,
    only: Sequence[str] | None = None,
) -> int:
    """Synthesize the reference nets (``quick``: the small MLP and the small ConvNet only) and
    ``bundle`` if given, for each target; print LUTs, FFs, block RAM, Fmax and MACs per LUT per
    cycle."""
    from hwqnn.hw.emit import generate
    from hwqnn.hw.folding import balance, parse_folds
    from hwqnn.hw.plan import plan
    from hwqnn.synth import synthesize

    nets = reference_nets(quick, only)
    if bundle is not None:
        nets.append(("bundle", bundle, None))
    rows, records = [], []
    for name, b, fold in nets:
        rtl = out / name / "rtl"
        manifest = generate(plan(b, parse_folds(fold) if fold else balance(b)), rtl)
        for target in targets:
            r = synthesize(manifest, out / name / target, target, breakdown=False)
            fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-"
            rows.append([name, b.arch(), ",".join(manifest.folding), target, f"{r.luts:,}",
                         f"{r.ffs:,}", f"{r.bram}", fmax, f"{r.mac_per_lut_cycle:.3f}",
                         f"{r.wall_s:.0f}"])  # fmt: skip
            records.append({"net": name, "arch": b.arch(), "folding": list(manifest.folding),
                            **r.to_json()})  # fmt: skip
    header = ["net", "arch", "folding", "target", "LUTs", "FFs", "block RAM", "Fmax MHz",
              "MAC/LUT/cycle", "wall s"]  # fmt: skip
    print(_fmt_table(header, rows))
    print("block RAM in each target's unit (xc7: RAMB18, ecp5: DP16KD, ice40: SB_RAM40_4K)")
    if json_out is not None:
        write_json(json_out, {"rows": records})
    return 0
