"""RTL versus golden: stream images through the simulated Verilog, compare every output, and on
a mismatch find the first layer whose hardware disagrees with its golden intermediate.

Localisation runs each layer's unit alone (its own small Verilog top) on the golden inputs of the
first mismatching image, so the layer it names is the first one whose hardware is wrong, not
merely the first one whose output differs downstream of a fault.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from hwqnn import golden
from hwqnn.bundle import Bundle
from hwqnn.errors import HwqnnError
from hwqnn.hw.emit import generate_layer
from hwqnn.hw.layerfold import LayerFold
from hwqnn.hw.manifest import Manifest
from hwqnn.hw.plan import Plan
from hwqnn.layers import Layer
from hwqnn.results import Fault, FirstMismatch, RtlCheck
from hwqnn.sim.engines import SimRun
from hwqnn.sim.engines import engine as engine_named
from hwqnn.sim.runner import SimError, run_harness
from hwqnn.sim.waves import write_gtkw

log = logging.getLogger(__name__)


def localize(rtl: Plan, gold: Bundle, image: np.ndarray, build: Path) -> Fault:
    """Run each stage's unit alone on golden inputs for one image (a convolution's MVTU on its
    im2col rows, one per window position); name the first that differs. A kind without a unit
    bench (max-pool) passes golden's output on."""
    x = image[None, :].astype(np.int64)

    def run(index: int, matrix: Layer, fold: LayerFold, chunk: int, rows: np.ndarray) -> np.ndarray:
        ldir = build / f"localize-layer{index}"
        man = generate_layer(matrix, fold, chunk, ldir / "rtl")
        return man.ports.unpack(run_harness(man, ldir, rows).beats, matrix.out_features)

    for st, glayer in zip(rtl.stages, gold.layers, strict=True):
        _, expected = golden.layer_forward(glayer, x)
        fault = st.localize(x, expected, run)
        if fault is not None:
            return Fault(layer=fault.layer, neuron=fault.neuron, golden=fault.golden,
                         rtl=fault.rtl, what=fault.what)  # fmt: skip
        x = expected
    return Fault(layer=None, note="every layer alone agrees; the fault is in the joins")


def within_shards(values: np.ndarray, shard_starts: tuple[int, ...]) -> np.ndarray:
    """Successive differences of ``values`` inside each shard (none across a shard's start)."""
    diffs = np.diff(values)
    keep = np.ones(len(diffs), dtype=bool)
    for s in shard_starts[1:]:
        if 0 < s <= len(diffs):
            keep[s - 1] = False
    return diffs[keep]


def shard_latencies(run: SimRun) -> list[int]:
    """Each shard's first frame: cycles from its first input beat to its output beat."""
    return [int(run.out_cycles[s] - run.in_first_cycles[s]) for s in run.shard_starts
            if s < len(run.out_cycles) and s < len(run.in_first_cycles)]  # fmt: skip


def waves_of_mismatch(
    manifest: Manifest,
    build: Path,
    images: np.ndarray,
    golden_scores: np.ndarray,
    fm: FirstMismatch,
    out_dir: Path,
) -> None:
    """Re-simulate the mismatching image alone on the cocotb bench (Verilator) with every
    signal recorded; add to ``fm`` the VCD, a GTKWave save file (stream ports, the failing
    layer's handshakes) and the simulation time of its output beat, or a note saying why not."""
    img = fm["image"]
    vcd = out_dir / f"mismatch-image{img}.vcd"
    try:
        one = engine_named("cocotb")(manifest, build, images[img : img + 1],
                                     golden_scores[img : img + 1], waves=vcd)  # fmt: skip
    except HwqnnError as e:
        fm["waves_note"] = f"no waveform: re-simulating image {img} failed ({e})"
        return
    at = float(one.out_times_ns[0]) if one.out_times_ns is not None else None
    layer = fm["first_bad_layer"].get("layer")
    fm["waves"] = str(vcd)
    fm["waves_gtkw"] = str(write_gtkw(vcd, vcd.with_suffix(".gtkw"), manifest.top, layer, at))
    if at is not None:
        fm["waves_time_ns"] = at
    if np.array_equal(one.scores[0], golden_scores[img]):
        fm["waves_note"] = (f"image {img} alone comes out right: the fault needs the frames "
                            "before it (pipeline state)")  # fmt: skip


def verify_rtl(
    gold: Bundle,
    rtl: Plan,
    manifest: Manifest,
    images: np.ndarray,
    labels: np.ndarray,
    engine: str,
    build: Path,
    *,
    stalls: bool = False,
    seed: int = 1,
    clock_mhz: float = 100.0,
    jobs: int = 1,
    ray: str | None = None,
    waves: Path | None = None,
    mismatch_waves: Path | None = None,
    also: tuple[str, ...] = (),
    units: bool = True,
) -> RtlCheck:
    """Simulate ``images`` through the RTL ``manifest`` describes (generated from the plan
    ``rtl``, built under ``build``) with ``engine`` (:data:`hwqnn.sim.engines.ENGINES`; the
    C++ harness on ``jobs`` shards at once, or as Ray tasks at ``ray``) and compare every score
    and class with ``gold`` (normally the plan's bundle; another injects a fault). A mismatch is
    localised to the first layer whose unit alone disagrees, and its image re-simulated alone
    with every signal recorded into ``mismatch_waves`` (a directory), if given. ``waves``: a
    waveform of the whole run, ``also``: the bench's protocol tests to run besides (cocotb
    engines). ``units=False``: the RTL did not come from ``rtl`` (Verilog given as is), so its
    layers cannot be run alone; the waveform is the place to look."""
    simulate = engine_named(engine)
    t0 = time.perf_counter()
    trace = golden.run(gold, images, keep=False)  # scores only: localisation reruns one image
    assert trace.scores is not None
    golden_s = time.perf_counter() - t0
    run = simulate(manifest, build, images, trace.scores, seed=seed, stalls=stalls, jobs=jobs,
                   ray=ray, waves=waves, also=also)  # fmt: skip
    if run.scores.shape != trace.scores.shape:
        raise SimError(f"RTL gave {run.scores.shape[0]} frames for {len(images)} images")
    differ = run.scores != trace.scores
    bad = np.flatnonzero(differ.any(axis=1) | (run.classes != trace.predictions))
    predicted = manifest.pipeline
    diffs = within_shards(run.out_cycles, run.shard_starts)
    steady = bool(len(diffs)) and bool((diffs == diffs[0]).all())
    lats = shard_latencies(run)
    if len(set(lats)) > 1 and not stalls:  # each shard starts from reset: the same latency
        raise SimError(f"the shards' first frames took different latencies: {lats}")
    lat = predicted.latency_cycles
    res = RtlCheck(
        engine=engine,
        images=len(images),
        mismatches=int(bad.size),
        first_mismatch=None,
        accuracy_rtl=float((run.classes == labels).mean()) if len(labels) else None,
        accuracy_golden=float((trace.predictions == labels).mean()) if len(labels) else None,
        sim_cycles=run.cycles,
        sim_seconds=round(run.seconds, 3),
        build_seconds=round(run.build_seconds, 1),
        golden_seconds=round(golden_s, 2),
        sim_cycles_per_s=round(run.cycles / run.seconds) if run.seconds > 0 else None,
        stalls=stalls,
        folding=[str(f) for f in rtl.folds],
        clock_mhz=clock_mhz,
        counters=list(run.counters),
        rtl_dir=str(manifest.dir),
        build_dir=str(build),
        cycles_per_frame_measured=int(diffs[0])
        if steady
        else (float(diffs.mean()) if len(diffs) else float("nan")),
        cycles_per_frame_predicted=predicted.cycles_per_frame,
        frames_off_interval=int((diffs != predicted.cycles_per_frame).sum()),
        latency_cycles=lats[0] if lats else None,
        latency_cycles_predicted=lat,
        fps_at_clock=round(clock_mhz * 1e6 / predicted.cycles_per_frame, 1),
        latency_us_at_clock=None if lat is None else round(lat / clock_mhz, 3),
        shards=len(run.shard_starts),
    )
    if run.waves is not None:
        res["waves"] = run.waves
    if bad.size:
        img = int(bad[0])
        k = int(np.flatnonzero(differ[img])[0]) if differ[img].any() else None
        fm = res["first_mismatch"] = FirstMismatch(
            image=img,
            output=k,
            golden_score=None if k is None else int(trace.scores[img, k]),
            rtl_score=None if k is None else int(run.scores[img, k]),
            first_bad_layer=localize(rtl, gold, images[img], build)
            if units
            else Fault(
                layer=None,
                note="the given Verilog's layers cannot be run alone (hwqnn sim "
                "--rtl-bundle BUNDLE can, from the bundle the RTL came from): see the waveform",
            ),
        )
        if mismatch_waves is not None:
            waves_of_mismatch(manifest, build, images, trace.scores, fm, mismatch_waves)
        log.warning("RTL mismatch on %d image(s); first: %s", bad.size, res["first_mismatch"])
    return res
