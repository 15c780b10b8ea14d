"""RTL versus golden: stream images through the simulated Verilog, compare every output, and on
a mismatch find the first layer whose hardware disagrees with its golden intermediate.

Localisation runs each layer's unit alone (its own small Verilog top) on the golden inputs of the
first mismatching image, so the layer it names is the first one whose hardware is wrong, not
merely the first one whose output differs downstream of a fault.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn import golden
from hwqnn.bundle import Bundle
from hwqnn.errors import InputError
from hwqnn.hw.emit import generate_layer
from hwqnn.hw.layerfold import LayerFold
from hwqnn.hw.plan import Plan
from hwqnn.layers import Layer
from hwqnn.sim.runner import SimError, run_cocotb, run_harness, unpack_fields

log = logging.getLogger(__name__)


def decode_outputs(words: np.ndarray, ports: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Network output beats -> (scores ``[N, classes]``, argmax ``[N]``)."""
    c, sw = ports["classes"], ports["score_width"]
    scores = unpack_fields(words, sw, c, signed=True)
    arg = unpack_fields(words, ports["class_bits"], 1, signed=False, offset=c * sw)[:, 0]
    return scores, arg


def _timing(
    out_cycles: np.ndarray, in_first: np.ndarray, predicted: dict[str, Any]
) -> dict[str, Any]:
    oc = np.asarray(out_cycles, dtype=np.int64)
    diffs = np.diff(oc)
    measured = float(diffs.mean()) if len(diffs) else float("nan")
    return {
        "cycles_per_frame_measured": int(diffs[0])
        if len(diffs) and (diffs == diffs[0]).all()
        else measured,
        "cycles_per_frame_predicted": predicted["cycles_per_frame"],
        "frames_off_interval": int((diffs != predicted["cycles_per_frame"]).sum()),
        "latency_cycles": int(oc[0] - in_first[0]) if len(oc) and len(in_first) else None,
        "latency_cycles_predicted": predicted["latency_cycles"],
    }


def localize(rtl: Plan, gold: Bundle, image: np.ndarray, build: Path) -> dict[str, Any]:
    """Run each stage's unit alone on golden inputs for one image (a convolution's MVTU on its
    im2col rows, one per window position); name the first that differs. A kind without a unit
    bench (max-pool) passes golden's output on."""
    x = image[None, :].astype(np.int64)

    def run(index: int, matrix: Layer, fold: LayerFold, chunk: int, rows: np.ndarray) -> np.ndarray:
        ldir = build / f"localize-layer{index}"
        man = generate_layer(matrix, fold, chunk, ldir / "rtl")
        p = man["ports"]
        r = run_harness(ldir / "rtl", ldir, rows, p["nf"], in_bits=matrix.in_bits)
        return unpack_fields(r["words"], p["out_width"], p["pe"], p["signed"])

    for st, glayer in zip(rtl.stages, gold.layers, strict=True):
        _, expected = golden.layer_forward(glayer, x)
        fault = st.localize(x, expected, run)
        if fault is not None:
            return asdict(fault)
        x = expected
    return {"layer": None, "note": "every layer alone agrees; the fault is in the joins"}


def verify_rtl(
    gold: Bundle,
    rtl: Plan,
    images: np.ndarray,
    labels: np.ndarray,
    engine: str,
    rtl_dir: Path,
    build: Path,
    *,
    stalls: bool = False,
    seed: int = 1,
    clock_mhz: float = 100.0,
) -> dict[str, Any]:
    """Simulate ``images`` through the RTL in ``rtl_dir`` (generated from the plan ``rtl``, built
    under ``build``) and compare with ``gold`` (normally the plan's bundle; another injects a
    fault)."""
    import json

    manifest = json.loads((rtl_dir / "manifest.json").read_text())
    ports, predicted = manifest["ports"], manifest["pipeline"]
    t0 = time.perf_counter()
    trace = golden.run(gold, images, keep=False)  # scores only: localisation reruns one image
    assert trace.scores is not None
    golden_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if engine == "cpp":
        r = run_harness(
            rtl_dir, build, images, 1, seed=seed,
            idle_pct=30 if stalls else 0, stall_pct=40 if stalls else 0,
        )  # fmt: skip
        scores, arg = decode_outputs(r["words"], ports)
        drv = r["driver_results"]
        if drv is not None and not np.array_equal(drv, np.column_stack([scores, arg])):
            raise RuntimeError(
                f"hwqnn_driver.h and the manifest's port layout decode m_axis differently "
                f"(first frame: {drv[0].tolist()} against {[*scores[0].tolist(), int(arg[0])]})"
            )
        sim_s, build_s = r["seconds"], r["build_seconds"]
        perf = r.get("perf", [])
        counters = [
            {"issues": perf[2 * i], "outputs": perf[2 * i + 1]} for i in range(len(perf) // 2)
        ]
    elif engine == "cocotb":
        counters = []
        r = run_cocotb(
            rtl_dir, images, trace.scores, build / "cocotb", seed=seed,
            idle_prob=0.3 if stalls else 0.0, stall_prob=0.4 if stalls else 0.0,
        )  # fmt: skip
        outs = np.array(r["outputs"], dtype=np.int64).reshape(-1, ports["classes"] + 1)
        scores, arg = outs[:, :-1], outs[:, -1]
        sim_s = r["seconds"]
        build_s = time.perf_counter() - t1 - sim_s
    else:
        raise InputError(f"engine must be 'cpp' or 'cocotb', not {engine!r}")
    if scores.shape != trace.scores.shape:
        raise SimError(f"RTL gave {scores.shape[0]} frames for {len(images)} images")
    bad = np.flatnonzero((scores != trace.scores).any(axis=1) | (arg != trace.predictions))
    res: dict[str, Any] = {
        "engine": engine,
        "images": len(images),
        "mismatches": int(bad.size),
        "first_mismatch": None,
        "accuracy_rtl": float((arg == labels).mean()) if len(labels) else None,
        "accuracy_golden": float((trace.predictions == labels).mean()) if len(labels) else None,
        "sim_cycles": int(r["cycles"]),
        "sim_seconds": round(float(sim_s), 3),
        "build_seconds": round(float(build_s), 1),
        "golden_seconds": round(golden_s, 2),
        "sim_cycles_per_s": round(r["cycles"] / sim_s) if sim_s > 0 else None,
        "stalls": stalls,
        "folding": [str(f) for f in rtl.folds],
        "clock_mhz": clock_mhz,
        "counters": counters,
        "rtl_dir": str(rtl_dir),
        "build_dir": str(build),
        **_timing(np.asarray(r["out_cycles"]), np.asarray(r["in_first_cycles"]), predicted),
    }
    res["fps_at_clock"] = round(clock_mhz * 1e6 / predicted["cycles_per_frame"], 1)
    lat = predicted["latency_cycles"] if predicted["latency_cycles"] is not None else None
    res["latency_us_at_clock"] = None if lat is None else round(lat / clock_mhz, 3)
    if bad.size:
        img = int(bad[0])
        k = (
            int(np.flatnonzero(scores[img] != trace.scores[img])[0])
            if (scores[img] != trace.scores[img]).any()
            else None
        )
        loc = localize(rtl, gold, images[img], build)
        res["first_mismatch"] = {
            "image": img,
            "output": k,
            "golden_score": None if k is None else int(trace.scores[img, k]),
            "rtl_score": None if k is None else int(scores[img, k]),
            "first_bad_layer": loc,
        }
        log.warning("RTL mismatch on %d image(s); first: %s", bad.size, res["first_mismatch"])
    return res
