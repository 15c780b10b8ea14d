"""``hwqnn prove``: generate a bundle's accelerator, put it in the formal harness beside the
reference, and run the tasks: a cover (the depth reaches the last frame's output) and a bounded
check of every assertion (equivalence and protocol) under every input frame and stall pattern.
A failure comes with its counterexample: the trace, the frame, and the first output that
differs from the reference."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

from hwqnn.bundle import Bundle
from hwqnn.formal.harness import (
    front_harness_verilog,
    harness_verilog,
    layer_harness_verilog,
    reduce_harness_verilog,
    window_harness_verilog,
)
from hwqnn.formal.reference import (
    WIDTH,
    layer_reference_verilog,
    quant_reference_verilog,
    reduce_reference_verilog,
    reference_verilog,
)
from hwqnn.formal.sby import Verdict, run_task
from hwqnn.hw.emit import generate_front, generate_layer, generate_reduce, generate_window
from hwqnn.hw.manifest import LayerManifest, Manifest
from hwqnn.hw.mvtu import MVTU
from hwqnn.hw.plan import Plan
from hwqnn.hw.stages import MatrixStage
from hwqnn.hw.window import MaxReduce, SlidingWindow
from hwqnn.layers.activation import Scores
from hwqnn.layers.conv import Conv2d, MaxPool2d

TASKS = ("net", "reset", "units")


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
          solver: str = "boolector", net: bool = True,
          reset: bool = False) -> list[dict[str, object]]:  # fmt: skip
    """Write the reference and the harnesses next to ``man``'s Verilog under ``out`` and run
    the tasks on the whole top; one row per task (its :class:`Verdict`, and the counterexample
    of a failure). ``net``: a cover and the ``equivalence+protocol`` check, with ``tlast`` left
    free (``frame_error`` must follow it exactly); ``reset``: the same with one reset pulse at
    any cycle, two frames, twice the depth of one, and a cover that reaches an output after a reset
    that followed an output."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference.v").write_text(reference_verilog(b))
    (out / "harness.sv").write_text(harness_verilog(b, man, frames, free_tlast=True))
    files = [man.verilog_path, out / "reference.v", out / "harness.sv"]
    d = depth or default_depth(man, frames)
    jobs = [("cover", "cover", files, frames, d), ("equivalence+protocol", "bmc", files, frames, d)]
    jobs = jobs if net else []
    if reset:
        (out / "reset").mkdir(exist_ok=True)
        (out / "reset" / "harness.sv").write_text(
            harness_verilog(b, man, 2, free_tlast=True, free_reset=True)
        )
        rfiles = [man.verilog_path, out / "reference.v", out / "reset" / "harness.sv"]
        rd = 2 * (depth or default_depth(man, 1))
        jobs += [
            ("reset cover", "cover", rfiles, 2, rd),
            ("reset+equivalence+protocol", "bmc", rfiles, 2, rd),
        ]
    rows: list[dict[str, object]] = []
    for name, mode, fs, fr, dd in jobs:
        task = name.replace("+", "_").replace(" ", "_")
        v: Verdict = run_task(task, mode, dd, fs, "hwqnn_formal", out, solver=solver)
        row: dict[str, object] = {"property": name, **asdict(v), "frames": fr}
        if v.status == "failed" and v.trace:
            row["counterexample"] = counterexample(Path(v.trace), man, fr)
        rows.append(row)
    return rows


def unit_depth(man: LayerManifest, frames: int) -> int:
    """Cycles from reset to the last frame's last output beat of one MVTU alone with no pause
    and no back-pressure, plus 5: the reset's two cycles, the input beats, the unit's latency,
    one interval per frame (its neuron folds' issues), one beat per neuron fold."""
    p = man.ports
    return 2 + frames * p.in_beats + man.latency + frames * man.cycles_per_frame + p.nf + 5


def stream_depth(man: LayerManifest, frames: int) -> int:
    """The same for a unit that streams (an input quantizer, a sliding window, a max-reduce:
    outputs while its input comes in): the reset's two cycles, its latency (for a window, a
    whole image written and read), one interval per frame, plus 5."""
    return 2 + man.latency + frames * man.cycles_per_frame + 5


def unit_counterexample(vcd: Path, man: LayerManifest, n_out: int, signed: bool, frames: int,
                        what: str = "neuron") -> dict[str, object] | None:  # fmt: skip
    """The first output beat of a failing unit trace that differs from the unit's reference
    (``n_out`` outputs a frame, ``signed`` scores or codes): frame, output beat (an MVTU's
    neuron fold), the free input frames (``codes``, frame ``f`` from bit ``f`` times a frame's
    bits; raw values for the quantizer), and the outputs
    that differ, each as ``what`` (``neuron``; the quantizer's ``element``) with both sides'
    values (a key ``neurons`` or ``elements``)."""
    p = man.ports
    names = {"take", "fo", "q", "m_data", "frame"}
    names |= {f"r{f}_y{o}" for f in range(frames) for o in range(n_out)}
    sig = _vcd_values(vcd, names)

    def at(name: str, t: int) -> int:
        vals = [v for tt, v in sig[name] if tt <= t]
        return vals[-1] if vals else 0

    ow = p.out_width
    for t, take in sig["take"]:
        f, q = at("fo", t), at("q", t)
        if not take or f >= frames:
            continue
        data = at("m_data", t)
        diffs = []
        for pp in range(p.pe):
            o = q * p.pe + pp
            if o >= n_out:
                continue
            rtl = data >> (ow * pp) & ((1 << ow) - 1)
            ref = at(f"r{f}_y{o}", t)
            if signed:
                rtl, ref = _signed(rtl, ow), _signed(ref, WIDTH)
            if rtl != ref:
                diffs.append({what: o, "rtl": rtl, "reference": ref})
        if diffs:
            return {"frame": f, "fold": q, "time": t, "codes": hex(at("frame", t)),
                    what + "s": diffs}  # fmt: skip
    return None


def window_counterexample(vcd: Path, man: LayerManifest) -> dict[str, object] | None:
    """The tracked output beat of a failing window trace: its frame and beat, the pixel it
    reads (``None``: padding), and the RTL's and the expected pixel (all channels, hex)."""
    names = {"take", "fo", "q", "jf", "jq", "m_data", "want", "want_pix", "want_pad"}
    sig = _vcd_values(vcd, names)

    def at(name: str, t: int) -> int:
        vals = [v for tt, v in sig[name] if tt <= t]
        return vals[-1] if vals else 0

    mask = (1 << (man.ports.pe * man.ports.out_width)) - 1
    for t, take in sig["take"]:
        if take and at("fo", t) == at("jf", t) and at("q", t) == at("jq", t):
            rtl, want = at("m_data", t) & mask, at("want", t)
            if rtl != want:
                return {"frame": at("jf", t), "beat": at("jq", t), "time": t,
                        "pixel": None if at("want_pad", t) else at("want_pix", t),
                        "rtl": hex(rtl), "expected": hex(want)}  # fmt: skip
    return None


def prove_units(p: Plan, out: Path, frames: int = 1, solver: str = "boolector",
                depth: int | None = None, reference: Bundle | None = None,
                ) -> list[dict[str, object]]:  # fmt: skip
    """Each stage's units alone, built from ``p``'s bundle, against the definitions of
    ``reference``'s (``p``'s own if not given; another: a fault injected into ``p``'s bundle),
    for every input and stall pattern, a cover and a bounded check each: an MVTU (frame buffer,
    weight and threshold memories, datapath and output unit, at the plan's folding and input
    beat width) against its layer's reference, one frame (one vector of a convolution); a
    sliding window's every output beat against the pixel its window reads (or the padding
    code), two frames; a max-reduce against the largest codes, two frames; and a net's input
    quantizer against its rule, two frames."""
    ref = reference or p.bundle
    rows: list[dict[str, object]] = []

    def run(udir: Path, files: list[Path], d: int, where: str, fr: int,
            cex: Callable[[Path], dict[str, object] | None]) -> None:  # fmt: skip
        for name, mode in (("cover", "cover"), ("equivalence+protocol", "bmc")):
            task = name.replace("+", "_")
            v = run_task(task, mode, d, files, "hwqnn_layer_formal", udir, solver=solver)
            row: dict[str, object] = {"property": f"{where}: {name}", **asdict(v), "frames": fr}
            if v.status == "failed" and v.trace:
                row["counterexample"] = cex(Path(v.trace))
            rows.append(row)

    def write(udir: Path, man: LayerManifest, harness: str, reference_v: str = "") -> list[Path]:
        files = [man.verilog_path]
        if reference_v:
            (udir / "reference.v").write_text(reference_v)
            files.append(udir / "reference.v")
        (udir / "harness.sv").write_text(harness)
        return [*files, udir / "harness.sv"]

    q = ref.quant
    if not q.is_identity:  # the quantizer of p's bundle against the rule of ref's
        udir = out / "front"
        man = generate_front(p.bundle.quant, p.in_chunk, p.in_beats, udir / "rtl")
        n_in = ref.in_features
        files = write(udir, man, front_harness_verilog(q, n_in, man, 2),
                      quant_reference_verilog(q, n_in))  # fmt: skip
        run(udir, files, depth or stream_depth(man, 2), f"input quantizer {q.label()} "
            f"x{p.in_chunk}", 2, partial(unit_counterexample, man=man, n_out=n_in,
                                          signed=False, frames=2, what="element"))  # fmt: skip
    for st in p.stages:
        layer = ref.layers[st.index]
        for name, unit in st.units().named:
            udir = out / f"unit{st.index}" if isinstance(unit, MVTU) else out / name
            if isinstance(unit, SlidingWindow):  # ref's window geometry, its padding code
                assert isinstance(layer, Conv2d | MaxPool2d)
                w, k = layer.window, layer.in_bits
                man = generate_window(unit, udir / "rtl")
                pad = layer.matrix.in_enc.zero_code(k) if isinstance(layer, Conv2d) else 0
                files = write(udir, man, window_harness_verilog(w, man, pad, 2))
                where = (f"layer {st.index} window {w.kernel}x{w.kernel}/{w.stride} pad {w.pad} "
                         f"on {w.height}x{w.width}x{w.channels}")  # fmt: skip
                run(udir, files, depth or stream_depth(man, 2), where, 2,
                    partial(window_counterexample, man=man))  # fmt: skip
            elif isinstance(unit, MaxReduce):
                assert isinstance(layer, MaxPool2d)
                w = layer.window
                man = generate_reduce(unit, w.positions, udir / "rtl")
                text = reduce_reference_verilog(w.channels, layer.in_bits, w.kernel**2,
                                                w.positions)  # fmt: skip
                files = write(udir, man, reduce_harness_verilog(w.kernel**2, man, 2), text)
                run(udir, files, depth or stream_depth(man, 2),
                    f"layer {st.index} max-reduce of {w.kernel**2}", 2,
                    partial(unit_counterexample, man=man, n_out=w.positions * w.channels,
                            signed=False, frames=2, what="output"))  # fmt: skip
            else:
                assert isinstance(unit, MVTU) and isinstance(st, MatrixStage)
                ly = type(st).matrix_of(layer)  # the reference's weights and thresholds
                man = generate_layer(st.matrix, st.fold, st.mv_chunk, udir / "rtl", unit)
                files = write(udir, man, layer_harness_verilog(ly, man, frames),
                              layer_reference_verilog(ly))  # fmt: skip
                run(udir, files, depth or unit_depth(man, frames),
                    f"layer {st.index} MVTU {st.fold} in {st.mv_chunk}", frames,
                    partial(unit_counterexample, man=man, n_out=ly.out_features,
                            signed=isinstance(ly.act, Scores), frames=frames))  # fmt: skip
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
