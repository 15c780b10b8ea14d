"""The typed results the stages return and the report reads: JSON-ready dicts (``TypedDict``),
written as ``sim.json``, ``ops.json``, ``report.json``, ``dse.json`` and printed by the CLI, with
every key and its type stated once here."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class EnergySplit(TypedDict):
    """Picojoules per inference of one design (binary, or a float32/fp16/int8 twin)."""

    compute_pj: float
    memory_pj: float
    total_pj: float


class Energy(TypedDict):
    """Energy per inference (:func:`hwqnn.ops.energy`): per layer and in total, each keyed by
    design (``binary``, ``float32``, ``fp16``, ``int8``)."""

    layers: list[dict[str, EnergySplit]]
    total: dict[str, EnergySplit]
    ratio_float32_to_binary: float
    memory_model: str
    source: str


class MeasuredOps(TypedDict):
    """One MVTU's counters (issue cycles) against the analytic counts, over ``frames``."""

    layer: int
    issue_cycles_measured: int
    issue_cycles_analytic: int
    lane_cycles_measured: int
    lane_cycles_analytic: int
    weight_words_measured: int
    weight_words_analytic: int
    equal: bool


class LayerActivity(TypedDict):
    layer: int
    toggles: int
    signal_bits: int
    toggles_per_cycle: float
    activity_factor: float


class Activity(TypedDict):
    """Switching activity from Verilator toggle coverage (:mod:`hwqnn.sim.activity`)."""

    images: int
    cycles: int
    build_seconds: float
    layers: list[LayerActivity]


CriticalPath = TypedDict(
    "CriticalPath",
    {
        "from": str | None,
        "to": str | None,
        "logic_ns": float,
        "routing_ns": float,
        "steps": int,
        "start_cell": str | None,
        "end_cell": str | None,
    },
)
"""nextpnr's critical path: its ends, delay split and cells (``"from"`` is not a name)."""


class ReferencePoint(TypedDict):
    """A published accelerator, for scale (:data:`hwqnn.synth.REFERENCE_POINTS`)."""

    design: str
    source: str
    luts: int
    mac_per_lut_cycle: float


class Resources(TypedDict, total=False):
    """The flow's synthesis figures (a subset of ``synth.json``) beside the published points,
    or why there are none (``skipped``)."""

    skipped: str
    target: str
    part: str
    luts: int
    luts_logic: int
    luts_ram: int
    ffs: int
    bram: int
    bram_unit: str
    dsps: int
    fits: bool
    utilization: dict[str, float]
    macs_per_cycle: float
    mac_per_lut_cycle: float
    fmax_mhz: float | None
    critical_path: CriticalPath | None
    wall_s: float
    tool_versions: dict[str, str]
    reference_points: list[ReferencePoint]


class Fault(TypedDict, total=False):
    """The first layer whose unit, run alone on golden inputs, disagrees (``layer`` None: every
    layer alone agrees, ``note`` says so)."""

    layer: int | None
    neuron: int
    golden: int
    rtl: int
    what: str
    note: str


class FirstMismatch(TypedDict):
    image: int
    output: int | None
    golden_score: int | None
    rtl_score: int | None
    first_bad_layer: Fault
    waves: NotRequired[str]  # the image re-simulated alone with every signal recorded
    waves_gtkw: NotRequired[str]  # a GTKWave save file: stream ports, the failing layer
    waves_time_ns: NotRequired[float]  # when its first differing output beat was taken
    waves_note: NotRequired[str]  # why there is no waveform, or what it shows


class RtlCheck(TypedDict):
    """RTL against golden (:func:`hwqnn.verify_rtl.verify_rtl`; ``sim.json``)."""

    engine: str
    images: int
    mismatches: int
    first_mismatch: FirstMismatch | None
    accuracy_rtl: float | None
    accuracy_golden: float | None
    sim_cycles: int
    sim_seconds: float
    build_seconds: float
    golden_seconds: float
    sim_cycles_per_s: int | None
    stalls: bool
    folding: list[str]
    clock_mhz: float
    counters: list[dict[str, int]]
    rtl_dir: str
    build_dir: str
    cycles_per_frame_measured: int | float
    cycles_per_frame_predicted: int
    frames_off_interval: int
    latency_cycles: int | None
    latency_cycles_predicted: int | None
    fps_at_clock: float
    latency_us_at_clock: float | None
    shards: NotRequired[int]  # simulator processes (or Ray tasks) the images were split over
    waves: NotRequired[str]  # the waveform of the run, when asked for


class CCheck(TypedDict, total=False):
    """The C library against golden, or why it was not run (``skipped``)."""

    images: int
    mismatches: int
    first_mismatch: str | None
    accuracy_c: float | None
    kernel: str
    skipped: str


class TorchCheck(TypedDict):
    """Torch (eval, quantized) against golden, and the C library's check on the same images."""

    images: int
    mismatches: int
    first_mismatch: str | None
    accuracy_torch: float
    accuracy_golden: float
    c: CCheck


class TrainMetrics(TypedDict, total=False):
    """``metrics.json`` of ``hwqnn train``: the fits' histories under ``quant`` and ``float``."""

    arch: str
    w_bits: int
    a_bits: int
    quantization: str  # bits and encodings, :attr:`hwqnn.arch.Arch.quant`
    quant_acc: float
    quant: dict[str, Any]
    float_acc: float
    float: dict[str, Any]


class OpsSummary(TypedDict, total=False):
    """Op counts and energy (:func:`hwqnn.ops.summarize`; ``ops.json``)."""

    layers: list[dict[str, int | str]]  # hwqnn.hw.opcount.LayerOps, as JSON
    energy: Energy
    table_md: str
    measured: list[MeasuredOps]
    chart: str
    activity: Activity


class Report(TypedDict):
    """``report.json`` of a flow (:func:`hwqnn.report.build_report`)."""

    arch: str
    accuracy: dict[str, float | None]
    torch_vs_golden_mismatches: int | None
    torch_vs_golden_images: int | None
    c_vs_golden_mismatches: int | None
    c_vs_golden_images: int | None
    c_kernel: str | None
    c_skipped: str | None
    mismatches: int
    first_mismatch: FirstMismatch | None
    images_simulated: int
    engine: str
    folding: list[str]
    layers: list[dict[str, Any]]
    cycles_per_frame: int | float
    cycles_per_frame_predicted: int
    latency_cycles: int | None
    latency_cycles_predicted: int | None
    clock_mhz: float
    fps_at_clock: float
    latency_us_at_clock: float | None
    sim_cycles_per_s: int | None
    model_bits: dict[str, int]
    compression_vs_float32: float
    ops: OpsSummary | None
    resources: Resources | None
    seconds: dict[str, float]


class DsePoint(TypedDict, total=False):
    """One design point of ``hwqnn dse``: its folding and timing, and what synthesis measured
    (or the ``error`` that stopped it)."""

    folding: list[str]
    cycles_per_frame: int
    fps: float
    estimated_luts: int
    dir: str
    error: str
    luts: int
    ffs: int
    bram: int
    fits: bool
    fmax_mhz: float | None
    mac_per_lut_cycle: float
    wall_s: float
    peak_rss_mb: float
