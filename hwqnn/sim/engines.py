"""The simulation engines behind ``hwqnn sim`` and the flow, each one function with one typed
result: stream raw images through the network top described by a :class:`Manifest` and return
every frame's scores and class as the RTL gave them, with the cycle of every handshake.

* ``cpp``: the Verilator C++ harness (whole test sets, no Python per cycle), frames packed and
  results unpacked by the generated driver header, checked against the manifest's ports;
* ``cocotb``: the cocotb bench on Verilator (one Python await per cycle; it also compares with
  the golden scores itself and tests a reset mid-frame when asked).

A third engine is a function of the same signature added to :data:`ENGINES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwqnn.errors import InputError
from hwqnn.hw.manifest import Manifest
from hwqnn.sim.runner import run_cocotb, run_harness


@dataclass(frozen=True)
class SimRun:
    """One simulation of a network top: what the RTL gave, and when."""

    engine: str
    scores: np.ndarray  # int64 [N, classes]
    classes: np.ndarray  # int64 [N], the argmax the RTL computed
    out_cycles: np.ndarray  # the cycle each output beat was taken
    in_first_cycles: np.ndarray  # the cycle each frame's first input beat was taken
    cycles: int
    seconds: float  # simulation alone
    build_seconds: float
    counters: tuple[dict[str, int], ...]  # per MVTU: issue cycles, output beats (if read)


def simulate_cpp(man: Manifest, build: Path, images: np.ndarray, golden_scores: np.ndarray, *,
                 seed: int = 1, stalls: bool = False) -> SimRun:  # fmt: skip
    r = run_harness(
        man, build, images, seed=seed, idle_pct=30 if stalls else 0, stall_pct=40 if stalls else 0
    )
    scores, cls = man.ports.unpack(r.beats)
    drv = r.driver_results
    if drv is not None and not np.array_equal(drv, np.column_stack([scores, cls])):
        raise RuntimeError(
            f"hwqnn_driver.h and the manifest's port layout decode m_axis differently "
            f"(first frame: {drv[0].tolist()} against {[*scores[0].tolist(), int(cls[0])]})"
        )
    perf = r.perf
    counters = tuple(
        {"issues": perf[2 * i], "outputs": perf[2 * i + 1]} for i in range(len(perf) // 2)
    )
    return SimRun("cpp", scores, cls, r.out_cycles, r.in_first_cycles, r.cycles, r.seconds,
                  r.build_seconds, counters)  # fmt: skip


def simulate_cocotb(man: Manifest, build: Path, images: np.ndarray, golden_scores: np.ndarray,
                    *, seed: int = 1, stalls: bool = False) -> SimRun:  # fmt: skip
    t0 = time.perf_counter()
    r = run_cocotb(
        man, images, golden_scores, build / "cocotb", seed=seed,
        idle_prob=0.3 if stalls else 0.0, stall_prob=0.4 if stalls else 0.0,
    )  # fmt: skip
    outs = np.array(r["outputs"], dtype=np.int64).reshape(-1, man.ports.classes + 1)
    sim_s = float(r["seconds"])
    return SimRun(
        "cocotb", outs[:, :-1], outs[:, -1], np.asarray(r["out_cycles"], np.int64),
        np.asarray(r["in_first_cycles"], np.int64), int(r["cycles"]), sim_s,
        time.perf_counter() - t0 - sim_s, (),
    )  # fmt: skip


Engine = Callable[..., SimRun]
ENGINES: dict[str, Engine] = {"cpp": simulate_cpp, "cocotb": simulate_cocotb}


def engine(name: str) -> Engine:
    if name not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    return ENGINES[name]
