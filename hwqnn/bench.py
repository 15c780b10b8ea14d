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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from hwqnn.atomic import write_json
from hwqnn.bundle import Bundle, make_layer
from hwqnn.errors import InputError
from hwqnn.randnet import random_layer_params

if TYPE_CHECKING:
    from hwqnn.hw.folding import LayerFold

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
# the instruction-set flags that decide the C library's kernels (Linux /proc/cpuinfo names)
ISA_FLAGS = ("popcnt", "ssse3", "avx2", "fma", "avx512f", "avx512bw", "avx512vpopcntdq",
             "avx512_vnni", "avx_vnni", "asimd", "asimddp", "sve")  # fmt: skip


def cpu_flags() -> str:
    """The CPU's model name and the flags in :data:`ISA_FLAGS` it has (Linux; else the
    platform's machine name)."""
    import platform

    model, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "CPU part") and model == platform.machine():
                model = value.strip()
            if key in ("flags", "Features"):
                flags.update(value.split())
    except OSError:
        pass
    return f"{model}; " + " ".join(f for f in ISA_FLAGS if f in flags)


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
    kernel: str | None = None,
) -> int:
    """The C library vs torch fp32 (same shapes, the float twin's Linear/BatchNorm/ReLU in eval)
    vs the golden model, in one run; ratios > 1: the C library is faster. ``kernel`` forces a
    kernel family (default: the best this CPU has). Then every family this CPU runs, at batch
    256 on one thread, on this net and on a 1-bit net (BNN-PYNQ's LFC shape), against this
    core's measured XOR+POPCNT peak; and the C library's agreement with golden on the test set
    (or on 10,000 random images without a dataset)."""
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
    clib.set_isa(kernel)
    try:
        with clib.CNet(b) as net:
            isa = clib.isa()
            for threads in sorted({1, cores}):
                torch.set_num_threads(threads)
                for m in CPU_BATCHES[:2] if quick else CPU_BATCHES:
                    rec = _cpu_point(net, twin, b, m, threads, timed)
                    t_g = rec["golden_ms"]
                    rows.append([f"{threads}", f"{m}", f"{rec['c_ms']:.4f}",
                                 f"{rec['torch_fp32_ms']:.4f}",
                                 "-" if t_g is None else f"{t_g:.3f}", f"{rec['ratio']:.1f}x",
                                 "-" if t_g is None else f"{t_g / rec['c_ms']:.0f}x",
                                 f"{rec['binary_gmacs']:.0f}"])  # fmt: skip
                    records.append(rec)
            torch.set_num_threads(old_threads)
            kernels = _cpu_kernels(net, b, timed)
            try:  # HWC images for a ConvNet, checked against the bundle's input
                test = test_set(b, "the bundle", data)
                images, labels, what = test.images, test.labels, "test images"
            except (OSError, ValueError):
                images = random_codes(3, 10_000, b.in_features, b.quant.raw_bits)
                labels, what = None, "random images (no dataset)"
            c_scores = net.scores(images)
    finally:
        torch.set_num_threads(old_threads)
        clib.set_isa(None)
    g_scores = golden.scores(b, images)
    bad = int((c_scores != g_scores).any(axis=1).sum())
    forced = " (forced)" if kernel else ""
    print(f"network {b.arch()}; C kernel {isa}{forced} on {cores} cores; torch "
          f"{torch.__version__} fp32")  # fmt: skip
    print(f"CPU: {cpu_flags()}")
    header = ["threads", "batch", "C ms", "torch fp32 ms", "golden ms", "vs torch", "vs golden",
              "binary GMAC/s"]  # fmt: skip
    print(_fmt_table(header, rows))
    print(
        "kernels, batch 256, one thread (G binary MAC/s; an 8-bit x 1-bit MAC counts 8; "
        "peak: a bare XOR+POPCNT loop of the family on one core, sw/bench/peak.c):"
    )
    krows = []
    for k in kernels:
        peak = k["peak_gmacs"]
        krows.append([k["kernel"], f"{k['ms']:.2f}", f"{k['gmacs']:.0f}", f"{k['lfc_gmacs']:.0f}",
                      "-" if peak is None else f"{peak:.0f}",
                      "-" if peak is None else f"{k['lfc_gmacs'] / peak:.0%}"])  # fmt: skip
    print(_fmt_table(["kernel", "this net ms", "this net GMAC/s", "1-bit LFC GMAC/s",
                      "XOR+POPCNT peak", "LFC / peak"], krows))  # fmt: skip
    acc = "" if labels is None else f"; accuracy {float((c_scores.argmax(1) == labels).mean()):.4f}"
    print(f"C == golden ({isa}): {len(images)} {what}, {bad} mismatches{acc}")
    if json_out is not None:
        summary = {"images": len(images), "mismatches": bad, "isa": isa, "arch": b.arch(),
                   "cpu": cpu_flags(), "forced": bool(kernel)}  # fmt: skip
        write_json(json_out, {"rows": records, "kernels": kernels, **summary})
    return 0 if bad == 0 else 1


def _cpu_kernels(net: Any, b: Bundle, timed: Callable[..., float]) -> list[dict[str, Any]]:
    """Every kernel family this CPU runs at batch 256, one thread: on ``net`` and on a 1-bit
    784-1024-1024-1024-10 net (binarized input), with the family's XOR+POPCNT peak."""
    from hwqnn import clib
    from hwqnn.randnet import random_bundle, random_codes

    peaks = clib.peak_gmacs()
    lfc = random_bundle(0, 784, (1024, 1024, 1024), 10, in_bits=1)
    x = random_codes(2, 256, b.in_features, b.quant.raw_bits).astype(np.uint8)
    xl = random_codes(2, 256, lfc.in_features, 1).astype(np.uint8)
    out = np.empty((256, b.num_classes), dtype=np.int32)
    out_l = np.empty((256, lfc.num_classes), dtype=np.int32)
    found = []
    with clib.CNet(lfc) as lnet:
        for name in clib.available():
            clib.set_isa(name)
            t = timed(lambda: net.scores_into(x, out, 1), 5)
            t_l = timed(lambda: lnet.scores_into(xl, out_l, 1), 5)
            found.append({"kernel": name, "ms": t, "gmacs": binary_macs(b) * 256 / t / 1e6,
                          "lfc_gmacs": binary_macs(lfc) * 256 / t_l / 1e6,
                          "peak_gmacs": peaks.get(name)})  # fmt: skip
    return found


# Reference nets for synthesis before/after a hardware change (random weights: the cost does
# not depend on them beyond LUT-ROM contents; the seed fixes those too).
# (name, fan-in, hidden, classes, input bits, folding: a PExSIMD string, an int (the balanced
# folding at that many cycles per frame) or None (the default balanced folding))
Folding = str | int | None
SYNTH_NETS: tuple[tuple[str, int, tuple[int, ...], int, int, Folding], ...] = (
    ("small", 64, (128, 128), 4, 8, "1x8,1x16,1x1"),
    ("demo", 784, (512, 512, 512), 10, 8, None),
    # BNN-PYNQ's LFC-W1A1 shape, binarized input pixels as there: like for like with its point
    ("lfc", 784, (1024, 1024, 1024), 10, 1, None),
    # ... at BNN-PYNQ's own folding (bnn/src/network/lfcW1A1/hw/config.h: PE 32/64/32/16, SIMD
    # 64/32/64/8; its last layer pads 10 classes to 64 rows, here 10x2 keeps its 512 cycles)
    ("lfc-pynq", 784, (1024, 1024, 1024), 10, 1, "32x64,64x32,32x64,10x2"),
    # FINN's SFC shape (3x256), binarized input, at 256 cycles per frame
    ("sfc", 784, (256, 256, 256), 10, 1, 256),
)
# FINN's CNV (CIFAR-10: 32x32x3, 8-bit pixels, no padding)
FINN_CNV = "cnv:64c3-64c3-mp2-128c3-128c3-mp2-256c3-256c3-fc512-fc512"
# ConvNets: (name, --arch spec, image (H, W, C), classes, folding as above). "cnv" is the default
# ConvNet's shape on 28x28 images (hwqnn.arch.CNV_DEFAULT).
SYNTH_CONV_NETS: tuple[tuple[str, str, tuple[int, int, int], int, Folding], ...] = (
    ("cnv-small", "cnv:8c3-mp2-16c3-fc32", (12, 12, 1), 4, None),
    ("cnv", "cnv", (28, 28, 1), 10, None),
    # at BNN-PYNQ's folding (bnn/src/network/cnvW1A1/hw/config.h; SIMD over the window as
    # there, its last layer 4x1 over 64 padded rows becomes 1x1: fewer cycles)
    ("cnv-pynq", FINN_CNV, (32, 32, 3), 10, "16x3,32x32,16x32,16x32,4x32,1x32,1x4,1x8,1x1"),
    # at FINN CNV-max's cycles per frame (200 MHz / 21,906 frames/s)
    ("cnv-max", FINN_CNV, (32, 32, 3), 10, 9_130),
)
# The finn set: FINN's and BNN-PYNQ's nets, synthesized beside their published points
FINN_NETS = ("lfc-pynq", "sfc", "cnv-pynq", "cnv-max")


@dataclass(frozen=True)
class Anchor:
    """A published accelerator of a reference net's shape: LUTs and cycles per frame (clock /
    frames per second) as its authors report them, and where; MACs per LUT per cycle follow
    from the net's MACs per frame, counted here the same way for both."""

    design: str
    source: str
    luts: int | None
    cycles_per_frame: float


ANCHORS: dict[str, Anchor] = {
    "lfc-pynq": Anchor(
        "BNN-PYNQ LFC-W1A1, Pynq-Z1 at 100 MHz",
        "BNN-PYNQ's published figures (28,360 LUTs, 2.80 us per frame: 280 cycles); its "
        "config.h folding is 512 cycles, which would make its figure 0.20",
        28_360,
        280,
    ),
    "sfc": Anchor(
        "FINN SFC-max, ZC706 at 200 MHz",
        "Umuroglu et al., FINN, FPGA 2017: 12.3 M frames/s (abstract), 91,131 LUTs",
        91_131,
        200e6 / 12.3e6,
    ),
    "cnv-max": Anchor(
        "FINN CNV-max, ZC706 at 200 MHz",
        "Umuroglu et al., FINN, FPGA 2017: 21,906 frames/s (abstract); its LUTs are not in "
        "the sources this project holds",
        None,
        200e6 / 21_906,
    ),
}
ANCHORS["lfc"] = ANCHORS["lfc-pynq"]  # the LFC shape at hwqnn's default folding, same point


def _folds(b: Bundle, fold: Folding) -> list[LayerFold]:
    from hwqnn.hw.folding import balance, parse_folds

    if isinstance(fold, str):
        return parse_folds(fold)
    return balance(b, fold)


def reference_nets(
    quick: bool = False, only: Sequence[str] | None = None
) -> list[tuple[str, Bundle, Folding]]:
    """``(name, bundle, folding)`` of the reference nets (random weights, seed 1): all but the
    finn set (:data:`FINN_NETS`), the small MLP and the small ConvNet (``quick``), or those
    named in ``only`` (``finn``: the finn set)."""
    from hwqnn.arch import parse_arch
    from hwqnn.randnet import random_bundle, random_net

    known = [n[0] for n in SYNTH_NETS] + [n[0] for n in SYNTH_CONV_NETS]
    if only is not None and "finn" in only:
        only = [*(n for n in only if n != "finn"), *FINN_NETS]
    if only is not None and not set(only) <= set(known):
        raise InputError(f"unknown reference net in {','.join(only)}: known are {known}")
    dense = tuple(n for n in SYNTH_NETS[: 1 if quick else None] if n[0] not in FINN_NETS)
    conv = tuple(n for n in SYNTH_CONV_NETS[: 1 if quick else None] if n[0] not in FINN_NETS)
    if only is not None:
        dense = tuple(n for n in SYNTH_NETS if n[0] in only)
        conv = tuple(n for n in SYNTH_CONV_NETS if n[0] in only)
    nets: list[tuple[str, Bundle, Folding]] = [
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
                sites = unit.get("lut6_sites")  # xc7: the LUT6_2 estimate (hwqnn.lut_sites)
                rows.append([target, f"{b_}", f"{simd}", f"{luts:,}", f"{ffs:,}",
                             f"{unit.get('bram', 0)}", f"{luts / simd:.2f}",
                             "-" if sites is None else f"{int(sites) / simd:.2f}",
                             f"{luts / (simd * b_ * b_):.3f}",
                             "-" if marginal is None else f"{marginal:.2f}",
                             f"{r.wall_s:.0f}"])  # fmt: skip
                records.append({"target": target, "bits": b_, "simd": simd, "unit": unit,
                                "luts_per_lane": luts / simd,
                                "lut6_sites_per_lane": None if sites is None
                                else int(sites) / simd,
                                "luts_per_bit_product": luts / (simd * b_ * b_),
                                "marginal_luts_per_lane": marginal,
                                "total_luts": r.luts})  # fmt: skip
    header = ["target", "bits (in = w = out)", "SIMD", "unit LUTs", "unit FFs", "block RAM",
              "LUTs per lane", "LUT6 sites per lane", "LUTs per 1x1-bit product",
              "LUTs per added lane", "wall s"]  # fmt: skip
    print(_fmt_table(header, rows))
    print(
        f"one MVTU at PE 1: {UNIT_ROWS} neurons over {UNIT_FOLDS} x SIMD inputs, random "
        "weights; its LUTs from the hierarchical synthesis (layer 0)"
    )
    if json_out is not None:
        write_json(json_out, {"rows": records})
    return 0


def _beside(
    name: str, luts: int, cycles: int, macs_per_frame: int, sites: int | None = None
) -> tuple[list[str], dict[str, Any]]:
    """A row of the side-by-side table and its record: a reference net synthesized here beside
    its published point (:data:`ANCHORS`); ``sites``: its LUT6 sites (``hwqnn.lut_sites``), the
    unit the published (Vivado) figures count in."""
    a = ANCHORS[name]
    ours = macs_per_frame / cycles / luts
    theirs = None if a.luts is None else macs_per_frame / a.cycles_per_frame / a.luts
    per_site = None if sites is None else macs_per_frame / cycles / sites
    row = [name, f"{luts:,}", f"{cycles:,}", f"{ours:.3f}", a.design,
           "-" if a.luts is None else f"{a.luts:,}", f"{a.cycles_per_frame:,.0f}",
           "-" if theirs is None else f"{theirs:.3f}",
           "-" if theirs is None else f"{ours / theirs:.2f}x",
           "-" if per_site is None else f"{sites:,}: {per_site:.3f}",
           "-" if theirs is None or per_site is None else f"{per_site / theirs:.2f}x",
           a.source]  # fmt: skip
    rec = {"net": name, "luts": luts, "cycles_per_frame": cycles, "mac_per_lut_cycle": ours,
           "lut6_sites": sites, "mac_per_lut6_site_cycle": per_site,
           "published": a.design, "published_luts": a.luts,
           "published_cycles_per_frame": a.cycles_per_frame,
           "published_mac_per_lut_cycle": theirs, "source": a.source}  # fmt: skip
    return row, rec


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
    from hwqnn.hw.plan import plan
    from hwqnn.synth import synthesize

    nets = reference_nets(quick, only)
    if bundle is not None:
        nets.append(("bundle", bundle, None))
    rows, records, beside = [], [], []
    for name, b, fold in nets:
        rtl = out / name / "rtl"
        manifest = generate(plan(b, _folds(b, fold)), rtl)
        for target in targets:
            r = synthesize(manifest, out / name / target, target, breakdown=False)
            fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-"
            sites = "-" if r.lut6_sites is None else f"{r.lut6_sites:,}"
            rows.append([name, b.arch(), ",".join(manifest.folding), target, f"{r.luts:,}",
                         sites, f"{r.ffs:,}", f"{r.bram}", fmax, f"{r.cycles_per_frame:,}",
                         f"{r.mac_per_lut_cycle:.3f}", f"{r.wall_s:.0f}"])  # fmt: skip
            records.append({"net": name, "arch": b.arch(), "folding": list(manifest.folding),
                            **r.to_json()})  # fmt: skip
            if name in ANCHORS and target == "xc7":
                beside.append(
                    _beside(name, r.luts, r.cycles_per_frame, r.macs_per_frame, r.lut6_sites)
                )
    header = ["net", "arch", "folding", "target", "LUTs", "LUT6 sites", "FFs", "block RAM",
              "Fmax MHz", "cycles/frame", "MAC/LUT/cycle", "wall s"]  # fmt: skip
    print(_fmt_table(header, rows))
    print(
        "block RAM in each target's unit (xc7: RAMB18, ecp5: DP16KD, ice40: SB_RAM40_4K); "
        "LUTs: Yosys's LUT cells; LUT6 sites (xc7): the sites they need once two functions of "
        "the same five inputs share a LUT6_2, as Vivado counts (an estimate, hwqnn.lut_sites)"
    )
    if beside:
        header = ["net", "hwqnn LUTs (xc7)", "cycles/frame", "MAC/LUT/cycle", "published",
                  "its LUTs", "its cycles/frame", "its MAC/LUT/cycle", "hwqnn / it",
                  "hwqnn LUT6 sites: MAC/site/cycle", "hwqnn sites / it", "source"]  # fmt: skip
        print("\nbeside the published points (random weights here; MACs per frame of the same "
              "shape for both)")  # fmt: skip
        print(_fmt_table(header, [row for row, _ in beside]))
    if json_out is not None:
        write_json(json_out, {"rows": records, "published": [rec for _, rec in beside]})
    return 0
