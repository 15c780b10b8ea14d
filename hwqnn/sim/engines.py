"""The simulation engines behind ``hwqnn sim`` and the flow, each one function with one typed
result: stream raw images through the network top described by a :class:`Manifest` and return
every frame's scores and class as the RTL gave them, with the cycle of every handshake.

* ``cpp``: the Verilator C++ harness (whole test sets, no Python per cycle), frames packed and
  results unpacked by the generated driver header, checked against the manifest's ports; the
  images split into shards run by ``jobs`` harness processes at once, or as Ray tasks;
* ``cocotb``: the cocotb bench on Verilator (one Python await per cycle; cocotbext-axi drives
  the stream ports; it also compares with the golden scores itself);
* ``icarus``: the same bench on Icarus Verilog, the second, independent simulator.

A further engine is a function of the same signature added to :data:`ENGINES`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwqnn.errors import InputError
from hwqnn.hw.manifest import Manifest, words
from hwqnn.sim.runner import (
    WAVES_SUFFIX,
    HarnessJob,
    HarnessRun,
    SimError,
    build_harness,
    cocotb_build_dir,
    execute_harness,
    run_cocotb,
)


@dataclass(frozen=True)
class SimRun:
    """One simulation of a network top: what the RTL gave, and when. A sharded run's shards
    follow one another on the cycle axis (each starts where the one before it ended); frames
    ``shard_starts[i]`` on came from shard ``i``."""

    engine: str
    scores: np.ndarray  # int64 [N, classes]
    classes: np.ndarray  # int64 [N], the argmax the RTL computed
    out_cycles: np.ndarray  # the cycle each output beat was taken
    in_first_cycles: np.ndarray  # the cycle each frame's first input beat was taken
    cycles: int
    seconds: float  # simulation alone (wall time: shards run side by side)
    build_seconds: float
    counters: tuple[dict[str, int], ...]  # per MVTU: issue cycles, output beats (if read)
    shard_starts: tuple[int, ...] = (0,)
    out_times_ns: np.ndarray | None = None  # cocotb engines: simulation time of each output
    waves: str | None = None  # the waveform file written, if asked for


def shard_bounds(n: int, jobs: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each of at most ``jobs`` contiguous, near-equal shards of ``n``."""
    jobs = max(1, min(jobs, n)) if n else 1
    edges = [n * i // jobs for i in range(jobs + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a] or [(0, 0)]


def _ray_harness(exe_bytes: bytes, data: bytes, job: HarnessJob) -> HarnessRun:
    """A Ray task: write the harness executable where this worker runs, run it on one shard."""
    import tempfile

    with tempfile.TemporaryDirectory() as td:
        exe = Path(td) / "Vharness"
        exe.write_bytes(exe_bytes)
        exe.chmod(0o755)
        return execute_harness(exe, data, job, Path(td))


def _map_shards(exe: Path, build: Path, datas: list[bytes], jobs_of: list[HarnessJob],
                workers: int, ray_address: str | None) -> list[HarnessRun]:  # fmt: skip
    if ray_address is None:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # each shard is a process
            pairs = zip(datas, jobs_of, strict=True)
            futures = [pool.submit(execute_harness, exe, d, j, build) for d, j in pairs]
            return [f.result() for f in futures]
    from hwqnn.cluster import ray_session

    with ray_session(ray_address, workers) as ray:
        task = ray.remote(num_cpus=1)(_ray_harness)
        exe_ref = ray.put(exe.read_bytes())
        refs = [task.remote(exe_ref, d, j) for d, j in zip(datas, jobs_of, strict=True)]
        return list(ray.get(refs))


def simulate_cpp(man: Manifest, build: Path, images: np.ndarray, golden_scores: np.ndarray, *,
                 seed: int = 1, stalls: bool = False, jobs: int = 1, ray: str | None = None,
                 waves: Path | None = None, also: tuple[str, ...] = ()) -> SimRun:  # fmt: skip
    """The C++ harness, on ``jobs`` shards of ``images`` at once (or as Ray tasks at ``ray``):
    shard ``i`` streams with stall seed ``seed + i``."""
    if waves is not None or also:
        what = "waveforms" if waves is not None else "the bench's protocol tests"
        raise InputError(f"{what} come from the cocotb engines: --engine cocotb or icarus")
    t0 = time.perf_counter()
    exe = build_harness(man, build)
    build_s = time.perf_counter() - t0
    bounds = shard_bounds(len(images), jobs)
    codes = np.ascontiguousarray(images, dtype=np.uint8)
    datas = [codes[a:b].tobytes() for a, b in bounds]
    jobs_of = [
        HarnessJob(
            frames=b - a,
            outs_per_frame=1,
            m_words=words(man.ports.m_tdata_bits),
            network=True,
            seed=seed + i,
            idle_pct=30 if stalls else 0,
            stall_pct=40 if stalls else 0,
        )
        for i, (a, b) in enumerate(bounds)
    ]
    t1 = time.perf_counter()
    runs = _map_shards(exe, build, datas, jobs_of, len(bounds), ray)
    wall = time.perf_counter() - t1
    beats = np.concatenate([r.beats for r in runs])
    scores, cls = man.ports.unpack(beats)
    drv = np.concatenate([r.driver_results for r in runs if r.driver_results is not None])
    if not np.array_equal(drv, np.column_stack([scores, cls])):
        raise RuntimeError(
            f"hwqnn_driver.h and the manifest's port layout decode m_axis differently "
            f"(first frame: {drv[0].tolist()} against {[*scores[0].tolist(), int(cls[0])]})"
        )
    if any(r.frame_error for r in runs):
        raise SimError("frame_error set on well-formed input (C++ harness)")
    offsets = np.cumsum([0, *[r.cycles for r in runs[:-1]]])
    perf = np.sum([r.perf for r in runs], axis=0).astype(int).tolist() if runs[0].perf else []
    counters = tuple(
        {"issues": perf[2 * i], "outputs": perf[2 * i + 1]} for i in range(len(perf) // 2)
    )
    return SimRun(
        "cpp", scores, cls,
        np.concatenate([r.out_cycles + o for r, o in zip(runs, offsets, strict=True)]),
        np.concatenate([r.in_first_cycles + o for r, o in zip(runs, offsets, strict=True)]),
        sum(r.cycles for r in runs), wall if len(runs) > 1 else runs[0].seconds, build_s,
        counters, tuple(a for a, _ in bounds),
    )  # fmt: skip


def _simulate_bench(simulator: str) -> Callable[..., SimRun]:
    def simulate(man: Manifest, build: Path, images: np.ndarray, golden_scores: np.ndarray, *,
                 seed: int = 1, stalls: bool = False, jobs: int = 1, ray: str | None = None,
                 waves: Path | None = None, also: tuple[str, ...] = ()) -> SimRun:  # fmt: skip
        if jobs != 1 or ray is not None:
            raise InputError("--jobs and --ray shard the C++ harness: use --engine cpp")
        if waves is not None and waves.suffix != WAVES_SUFFIX[simulator]:
            waves = waves.with_suffix(WAVES_SUFFIX[simulator])
        t0 = time.perf_counter()
        r = run_cocotb(
            man, images, golden_scores, cocotb_build_dir(build, simulator, waves is not None),
            seed=seed, idle_prob=0.3 if stalls else 0.0, stall_prob=0.4 if stalls else 0.0,
            simulator=simulator, waves=waves, also=also,
        )  # fmt: skip
        broken = [t for t in r.get("failed_tests", []) if t != "stream_test_set"]
        if broken:  # the stream test's own failure is a mismatch, which the caller reports
            raise SimError(f"{simulator}: the bench's {', '.join(broken)} failed:\n"
                           f"{r.get('log_tail', '')[-2000:]}")  # fmt: skip
        outs = np.array(r["outputs"], dtype=np.int64).reshape(-1, man.ports.classes + 1)
        sim_s = float(r["seconds"])
        return SimRun(
            name, outs[:, :-1], outs[:, -1], np.asarray(r["out_cycles"], np.int64),
            np.asarray(r["in_first_cycles"], np.int64), int(r["cycles"]), sim_s,
            time.perf_counter() - t0 - sim_s, (),
            out_times_ns=np.asarray(r["out_times_ns"], np.float64),
            waves=None if waves is None else str(waves),
        )  # fmt: skip

    name = "cocotb" if simulator == "verilator" else simulator
    simulate.__name__ = f"simulate_{name}"
    simulate.__doc__ = f"The cocotb bench on {simulator.capitalize()}."
    return simulate


simulate_cocotb = _simulate_bench("verilator")
simulate_icarus = _simulate_bench("icarus")

Engine = Callable[..., SimRun]
ENGINES: dict[str, Engine] = {
    "cpp": simulate_cpp,
    "cocotb": simulate_cocotb,
    "icarus": simulate_icarus,
}


def engine(name: str) -> Engine:
    if name not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    return ENGINES[name]
