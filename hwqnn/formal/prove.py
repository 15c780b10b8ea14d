"""``hwqnn prove``: generate a bundle's accelerator, put it in the formal harness beside the
reference, and run the tasks: a cover (the depth reaches the last frame's output) and a bounded
check of every assertion (equivalence and protocol) under every input frame and stall pattern.
A failure comes with its counterexample: the trace, the frame, and the first output that
differs from the reference."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from hwqnn.bundle import Bundle
from hwqnn.formal.harness import harness_verilog
from hwqnn.formal.reference import WIDTH, reference_verilog
from hwqnn.formal.sby import Verdict, run_task
from hwqnn.hw.manifest import Manifest


def default_depth(man: Manifest, frames: int) -> int:
    """Cycles from reset to the last frame's output beat with no pause and no back-pressure,
    plus 4: the frames' input beats, the pipeline's latency, one interval per later frame."""
    p = man.pipeline
    assert p.latency_cycles is not None  # modelled for every dense pipeline
    return p.latency_cycles + (frames - 1) * p.cycles_per_frame + frames * man.ports.in_beats + 4


def _vcd_values(vcd: Path, names: set[str]) -> dict[str, list[tuple[int, int]]]:
    """``name -> [(time, value)]`` for the top-level harness signals ``names`` of a trace."""
    text = vcd.read_text()
    ids: dict[str, str] = {}
    scope: list[str] = []
    for m in re.finditer(r"\$scope \S+ (\S+) \$end|\$upscope|\$var \S+ \d+ (\S+) (\S+)", text):
        if m.group(1):
            scope.append(m.group(1))
        elif m.group(0).startswith("$upscope"):
            scope.pop()
        elif len(scope) == 1 and m.group(3) in names:
            ids.setdefault(m.group(2), m.group(3))
    out: dict[str, list[tuple[int, int]]] = {n: [] for n in names}
    t = 0
    for line in text[text.index("$enddefinitions") :].splitlines():
        if line.startswith("#"):
            t = int(line[1:])
        elif line.startswith("b"):
            v, i = line[1:].split()
            if i in ids:
                out[ids[i]].append((t, int(v.replace("x", "0"), 2)))
        elif len(line) > 1 and line[1:] in ids and line[0] in "01":
            out[ids[line[1:]]].append((t, int(line[0])))
    return out


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def counterexample(vcd: Path, man: Manifest, frames: int) -> dict[str, object] | None:
    """The first output beat of a failing trace that differs from the reference: the frame's
    index, its pixels (hex), the class scores and classes of both sides."""
    p = man.ports
    names = {"take", "outs", "m_data", "frame"} | {f"r{f}_s{j}" for f in range(frames)
                                                  for j in range(p.classes)}  # fmt: skip
    names |= {f"r{f}_cls" for f in range(frames)}
    sig = _vcd_values(vcd, names)

    def at(name: str, t: int) -> int:
        vals = [v for tt, v in sig[name] if tt <= t]
        return vals[-1] if vals else 0

    for t, take in sig["take"]:
        if not take:
            continue
        f = at("outs", t)
        if f >= frames:
            continue
        data = at("m_data", t)
        sw = p.score_width
        rtl = [_signed(data >> (sw * j) & ((1 << sw) - 1), sw) for j in range(p.classes)]
        ref = [_signed(at(f"r{f}_s{j}", t), WIDTH) for j in range(p.classes)]
        rtl_cls = data >> (sw * p.classes) & ((1 << p.class_bits) - 1)
        ref_cls = at(f"r{f}_cls", t)
        if rtl != ref or rtl_cls != ref_cls:
            return {
                "frame": f, "time": t, "pixels": hex(at("frame", t)), "rtl_scores": rtl,
                "reference_scores": ref, "rtl_class": rtl_cls, "reference_class": ref_cls,
            }  # fmt: skip
    return None


def prove(b: Bundle, man: Manifest, out: Path, frames: int = 2, depth: int | None = None,
          solver: str = "boolector") -> list[dict[str, object]]:  # fmt: skip
    """Write the reference and the harness next to ``man``'s Verilog under ``out`` and run the
    tasks; one row per task (its :class:`Verdict`, and the counterexample of a failure)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference.v").write_text(reference_verilog(b))
    (out / "harness.sv").write_text(harness_verilog(b, man, frames))
    files = [man.verilog_path, out / "reference.v", out / "harness.sv"]
    d = depth or default_depth(man, frames)
    rows: list[dict[str, object]] = []
    for name, mode in (("cover", "cover"), ("equivalence+protocol", "bmc")):
        task = name.replace("+", "_")
        v: Verdict = run_task(task, mode, d, files, "hwqnn_formal", out, solver=solver)
        row: dict[str, object] = {"property": name, **asdict(v), "frames": frames}
        if v.status == "failed" and v.trace:
            row["counterexample"] = counterexample(Path(v.trace), man, frames)
        rows.append(row)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """The verdicts as a Markdown table."""
    lines = ["| property | mode | verdict | depth (cycles) | step | seconds | frames |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        verdict = str(r["status"])
        if r.get("failed"):
            verdict += ": " + ", ".join(str(x) for x in r["failed"])  # type: ignore[attr-defined]
        step = "" if r.get("step") is None else str(r["step"])
        lines.append(f"| {r['property']} | {r['mode']} | {verdict} | {r['depth']} | {step} | "
                     f"{r['seconds']} | {r['frames']} |")  # fmt: skip
    return "\n".join(lines)
