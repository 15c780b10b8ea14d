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
from hwqnn.hw.emit import generate_layer
from hwqnn.hw.layerfold import LayerFold
from hwqnn.hw.manifest import Manifest
from hwqnn.hw.plan import Plan
from hwqnn.layers import Layer
from hwqnn.results import Fault, FirstMismatch, RtlCheck
from hwqnn.sim.engines import engine as engine_named
from hwqnn.sim.runner import SimError, run_harness

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
) -> RtlCheck:
    """Simulate ``images`` through the RTL ``manifest`` describes (generated from the plan
    ``rtl``, built under ``build``) with ``engine`` (:data:`hwqnn.sim.engines.ENGINES`) and
    compare every score and class with ``gold`` (normally the plan's bundle; another injects a
    fault); a mismatch is localised to the first layer whose unit alone disagrees."""
    simulate = engine_named(engine)
    t0 = time.perf_counter()
    trace = golden.run(gold, images, keep=False)  # scores only: localisation reruns one image
    assert trace.scores is not None
    golden_s = time.perf_counter() - t0
    run = simulate(manifest, build, images, trace.scores, seed=seed, stalls=stalls)
    if run.scores.shape != trace.scores.shape:
        raise SimError(f"RTL gave {run.scores.shape[0]} frames for {len(images)} images")
    differ = run.scores != trace.scores
    bad = np.flatnonzero(differ.any(axis=1) | (run.classes != trace.predictions))
    predicted = manifest.pipeline
    diffs = np.diff(run.out_cycles)
    steady = bool(len(diffs)) and bool((diffs == diffs[0]).all())
    oc, first = run.out_cycles, run.in_first_cycles
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
        latency_cycles=int(oc[0] - first[0]) if len(oc) and len(first) else None,
        latency_cycles_predicted=lat,
        fps_at_clock=round(clock_mhz * 1e6 / predicted.cycles_per_frame, 1),
        latency_us_at_clock=None if lat is None else round(lat / clock_mhz, 3),
    )
    if bad.size:
        img = int(bad[0])
        k = int(np.flatnonzero(differ[img])[0]) if differ[img].any() else None
        res["first_mismatch"] = FirstMismatch(
            image=img,
            output=k,
            golden_score=None if k is None else int(trace.scores[img, k]),
            rtl_score=None if k is None else int(run.scores[img, k]),
            first_bad_layer=localize(rtl, gold, images[img], build),
        )
        log.warning("RTL mismatch on %d image(s); first: %s", bad.size, res["first_mismatch"])
    return res
