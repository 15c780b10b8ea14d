"""Power-oriented operation counts and an energy estimate per inference, per layer.

Counts follow the hardware as generated (:mod:`hwqnn.hw.plan`: one MVTU per dense layer, a
sliding window and an MVTU per convolution, run once per window position, a sliding window and a
max-reduce per max-pool), per frame; a convolution's counts are its matrix's times its
``vectors`` (window positions):

* ``xnor_bits``: useful bit products, ``rows * cols * in_bits * w_bits``: XNORs for odd-level
  weights, ANDs (NORs on a signed weight's top plane) for the others
  (:meth:`hwqnn.layers.dense.Layer.plane_ops`);
* ``lane_cycles``: bit-product lanes driven, ``PE * SIMD * NF * SF`` (pad lanes included);
* ``issue_cycles``: ``NF * SF``, each reading one weight word per PE (measured by the design's
  ``perf_issues`` counter);
* ``adds``: adder-tree additions (``SIMD - 1`` per PE per issue, widths as built) plus one
  accumulate per PE per issue; ``add_bits`` weights each by its width;
* ``compares``: threshold compares, ``PE * NF * (2**k - 1)``, of the accumulator's width; a
  max-pool's code compares, ``positions * channels * (k*k - 1)``, of the code's width; layer 0
  also counts the input front end's compares of raw values (:mod:`hwqnn.hw.inputq`: one per
  element and threshold strictly between 0 and ``2**raw_bits``), of the raw value's width;
* ``weight_bits_read``: ``PE * SIMD * w_bits`` per issue; ``act_bits_read``: ``SIMD * in_bits``
  per issue from the input buffer.

The same network in float32, fp16 and int8 is counted as ``rows * cols`` multiply-accumulates,
weights read once each at their width, each input read once per output (like a PE = 1 unit),
and BatchNorm + activation as one multiply, one add and one compare per output. Weight memory
costs by the total size of the weights (SRAM up to 1 MB, DRAM beyond), input buffers by their
own size. Energies per operation come from ``data/energy_45nm.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import TypedDict

from hwqnn.atomic import write_bytes
from hwqnn.bundle import Bundle
from hwqnn.hw.opcount import LayerOps
from hwqnn.hw.plan import Plan
from hwqnn.results import Energy, EnergySplit, MeasuredOps, OpsSummary


class MemoryRow(TypedDict):
    max_bytes: int | None  # None: any size
    pj: float  # per 64-bit read
    what: str


class Derived(TypedDict):
    bit_add_pj: float
    note: str


class EnergyTable(TypedDict):
    """``hwqnn/data/energy_45nm.json``: Horowitz's figures, and what is derived from them."""

    source: str
    ops_pj: dict[str, float]
    memory_pj_per_64bit: list[MemoryRow]
    derived: Derived


def energy_table() -> EnergyTable:
    text = resources.files("hwqnn").joinpath("data/energy_45nm.json").read_text()
    table: EnergyTable = json.loads(text)
    return table


def memory_pj_per_bit(total_bytes: float, table: EnergyTable) -> tuple[float, str]:
    for row in table["memory_pj_per_64bit"]:
        if row["max_bytes"] is None or total_bytes <= row["max_bytes"]:
            return row["pj"] / 64.0, row["what"]
    raise AssertionError("the table ends with an unbounded row")


def layer_ops(p: Plan) -> list[LayerOps]:
    """The counts of every stage of ``p`` (each kind counts itself: :mod:`hwqnn.hw.stages`)."""
    return _with_input_compares([st.ops() for st in p.stages], p.bundle)


def _with_input_compares(ops: list[LayerOps], bundle: Bundle) -> list[LayerOps]:
    """Layer 0's counts plus the input front end's comparators (none for an identity input)."""
    q = bundle.quant
    if q.thresholds is None or not ops:
        return ops
    live = (q.thresholds > 0) & (q.thresholds < 2**q.raw_bits)  # the comparators built
    cmp = int(live.sum()) * (bundle.in_features // q.channels)  # channels divide the input
    first = ops[0]
    bits = first.compare_bits + cmp * q.raw_bits
    return [replace(first, compares=first.compares + cmp, compare_bits=bits), *ops[1:]]


def energy(ops: list[LayerOps], bundle: Bundle) -> Energy:
    """Energy per inference (pJ) of the binary design and of float32 / fp16 / int8 twins."""
    t = energy_table()
    e, bit = t["ops_pj"], t["derived"]["bit_add_pj"]
    # the weights' size (a convolution reads its weights once per window position)
    weight_bytes = sum(o.weight_bits_read // max(1, o.vectors) for o in ops if o.rows) / 8
    mem_bit, mem_what = memory_pj_per_bit(weight_bytes, t)
    layers: list[dict[str, EnergySplit]] = []
    for o, ly in zip(ops, bundle.layers, strict=True):
        compute = o.xnor_bits * bit + o.add_bits * bit + o.compare_bits * bit
        # the input buffer is small (two frames of codes): charged at its own size's cost
        buf_codes = 2 * ly.in_size  # a frame buffer holds two frames, a window unit two images
        buf_bit, _ = memory_pj_per_bit(buf_codes * ly.in_bits / 8, t)
        memory = o.weight_bits_read * mem_bit + o.act_bits_read * buf_bit
        bn = o.activations
        twins: dict[str, EnergySplit] = {}
        for name, w_bits, mult, add in (
            ("float32", 32, e["fp32_mult"], e["fp32_add"]),
            ("fp16", 16, e["fp16_mult"], e["fp16_add"]),
            ("int8", 8, e["int8_mult"], e["int32_add"]),
        ):
            tw_bytes = sum(x.macs // max(1, x.vectors) for x in ops) * w_bits / 8  # the weights
            tw_mem_bit, _ = memory_pj_per_bit(tw_bytes, t)
            tw_buf_bit, _ = memory_pj_per_bit(buf_codes * w_bits / 8, t)
            c = o.macs * (mult + add) + bn * (mult + 2 * add) + o.compares * add * (not o.rows)
            # each weight read once; each input read once per output neuron (as a PE = 1 unit)
            m = o.macs * w_bits * tw_mem_bit + (o.macs or o.compares) * w_bits * tw_buf_bit
            twins[name] = EnergySplit(compute_pj=c, memory_pj=m, total_pj=c + m)
        binary = EnergySplit(compute_pj=compute, memory_pj=memory, total_pj=compute + memory)
        layers.append({"binary": binary, **twins})
    total = {
        k: EnergySplit(
            compute_pj=sum(ly[k]["compute_pj"] for ly in layers),
            memory_pj=sum(ly[k]["memory_pj"] for ly in layers),
            total_pj=sum(ly[k]["total_pj"] for ly in layers),
        )
        for k in ("binary", "float32", "fp16", "int8")
    }
    return {
        "layers": layers,
        "total": total,
        "ratio_float32_to_binary": total["float32"]["total_pj"] / total["binary"]["total_pj"],
        "memory_model": mem_what,
        "source": t["source"],
    }


def table_markdown(ops: list[LayerOps], en: Energy) -> str:
    rows = [
        "| layer | bit-ops (XNOR/AND/NOR) | lane-cycles | adds | compares | weight bits read | "
        "binary pJ | float32 pJ | fp16 pJ | int8 pJ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, e in zip(ops, en["layers"], strict=True):
        rows.append(
            f"| {o.title} | {o.xnor_bits:,} | {o.lane_cycles:,} | {o.adds:,} | {o.compares:,} | "
            f"{o.weight_bits_read:,} | {e['binary']['total_pj']:,.0f} | "
            f"{e['float32']['total_pj']:,.0f} | {e['fp16']['total_pj']:,.0f} | "
            f"{e['int8']['total_pj']:,.0f} |"
        )
    tot = en["total"]
    rows.append(
        f"| total | {sum(o.xnor_bits for o in ops):,} | {sum(o.lane_cycles for o in ops):,} | "
        f"{sum(o.adds for o in ops):,} | {sum(o.compares for o in ops):,} | "
        f"{sum(o.weight_bits_read for o in ops):,} | {tot['binary']['total_pj']:,.0f} | "
        f"{tot['float32']['total_pj']:,.0f} | {tot['fp16']['total_pj']:,.0f} | "
        f"{tot['int8']['total_pj']:,.0f} |"
    )
    rows += [
        "",
        f"Energy per inference: binary {tot['binary']['total_pj'] / 1e3:,.1f} nJ "
        f"(compute {tot['binary']['compute_pj'] / 1e3:,.2f} nJ, weights from {en['memory_model']}) "
        f"vs float32 {tot['float32']['total_pj'] / 1e3:,.1f} nJ: "
        f"**{en['ratio_float32_to_binary']:,.0f}x less**. Source: {en['source']}",
    ]
    return "\n".join(rows)


def measured_vs_analytic(
    ops: list[LayerOps], counters: list[dict[str, int]], frames: int
) -> list[MeasuredOps]:
    """Per layer: issue cycles and weight words counted by the design vs the analytic counts."""
    out: list[MeasuredOps] = []
    weighted = [o for o in ops if o.rows]  # the design counts per MVTU
    for o, c in zip(weighted, counters, strict=True):
        out.append(
            MeasuredOps(
                layer=o.layer,
                issue_cycles_measured=c["issues"],
                issue_cycles_analytic=o.issue_cycles * frames,
                lane_cycles_measured=c["issues"] * o.pe * o.simd,
                lane_cycles_analytic=o.lane_cycles * frames,
                weight_words_measured=c["issues"] * o.pe,
                weight_words_analytic=o.issue_cycles * o.pe * frames,
                equal=c["issues"] == o.issue_cycles * frames,
            )
        )
    return out


def bar_chart(ops: list[LayerOps], en: Energy, path: str | os.PathLike[str]) -> Path:
    """Per-layer energy (log scale) of the binary design and its float32/fp16/int8 twins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kinds = ["binary", "int8", "fp16", "float32"]
    x = np.arange(len(ops))
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, k in enumerate(kinds):
        vals = [ly[k]["total_pj"] / 1e3 for ly in en["layers"]]
        ax.bar(x + (j - 1.5) * 0.2, vals, 0.2, label=k)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"layer {o.layer}\n{o.rows}x{o.cols}" if o.rows else f"layer {o.layer}\npool"
                      for o in ops])  # fmt: skip
    ax.set_ylabel("energy per inference (nJ, log)")
    ax.set_title("Energy per layer (Horowitz 45 nm)")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=120))  # atomic
    plt.close(fig)
    return path


def summarize(
    p: Plan,
    counters: list[dict[str, int]] | None = None,
    frames: int = 0,
    chart: str | os.PathLike[str] | None = None,
) -> OpsSummary:
    ops = layer_ops(p)
    en = energy(ops, p.bundle)
    res = OpsSummary(layers=[asdict(o) for o in ops], energy=en, table_md=table_markdown(ops, en))
    if counters is not None:
        res["measured"] = measured_vs_analytic(ops, counters, frames)
    if chart is not None:
        res["chart"] = str(bar_chart(ops, en, chart))
    return res
