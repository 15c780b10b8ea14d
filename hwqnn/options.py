"""Typed option records: what the stages take instead of ``argparse.Namespace`` (only
:mod:`hwqnn.cli` sees that). Each field has the default its command-line flag has."""

from __future__ import annotations

from dataclasses import dataclass, field

from hwqnn.hw.manifest import DEFAULT_AXIS_BITS


@dataclass(frozen=True)
class TrainOptions:
    """``hwqnn train``: the architecture and its encodings, the recipe (``None``: the
    architecture's default) and the data."""

    arch: str = "mlp:512x3"
    w_bits: int = 1
    a_bits: int = 1
    w_enc: str = "odd"
    a_enc: str = "odd"
    in_enc: str = "odd"
    bias: bool = False
    epochs: int | None = None
    batch_size: int = 100
    lr: float | None = None
    lr_end: float = 3e-4
    float_lr: float = 1e-3
    calibrate: bool = False
    float_epochs: int | None = None
    seed: int = 0
    float_twin: bool = False
    data: str | None = None


@dataclass(frozen=True)
class FoldOptions:
    """How to fold the design: one of ``fold`` (``PExSIMD,...``), ``target_cycles``,
    ``target_fps`` (at ``clock_mhz``) or ``lut_budget``, else the default balance; the width of
    ``s_axis_tdata``."""

    fold: str | None = None
    target_cycles: int | None = None
    axis_bits: int = DEFAULT_AXIS_BITS
    target_fps: float | None = None
    clock_mhz: float = 100.0
    lut_budget: int | None = None


@dataclass(frozen=True)
class SimOptions:
    """``hwqnn sim``: which images (``n`` from ``first`` on, or ``all``), which engine
    (``None``: cpp for ``all``, else cocotb), where to build and write, random stalls; the C++
    harness's shards (``jobs`` processes, 0: the machine's cores; or Ray tasks at ``ray``); a
    waveform of the run and a protocol test of the bench (``testcase``, or ``all``) besides
    the stream test (cocotb engines); ``rtl``: simulate the Verilog already in this directory
    (``hwqnn rtl``'s output, perhaps edited, perhaps from another bundle) instead of
    generating it; ``rtl_bundle``: generate the RTL from this other bundle (fault injection:
    its layers run alone name the first wrong one)."""

    hw: FoldOptions = field(default_factory=FoldOptions)
    data: str | None = None
    n: int = 200
    first: int = 0
    all: bool = False
    engine: str | None = None
    build_dir: str | None = None
    out: str | None = None
    seed: int = 1
    stalls: bool = False
    jobs: int = 0
    ray: str | None = None
    waves: bool = False
    testcase: str | None = None
    rtl: str | None = None
    rtl_bundle: str | None = None


@dataclass(frozen=True)
class FlowOptions:
    """``hwqnn flow``: the whole job into ``out`` (from ``bundle`` if given, else trained as
    ``train`` says); ``n`` images simulated (0: the whole test set)."""

    train: TrainOptions = field(default_factory=TrainOptions)
    hw: FoldOptions = field(default_factory=FoldOptions)
    out: str = "runs/flow"
    bundle: str | None = None
    n: int = 0
    engine: str | None = None
    jobs: int = 0
    ray: str | None = None
    synth: str = "xc7"
    part: str | None = None
    activity_images: int = 0
    rtl_bundle: str | None = None  # the Verilog from this other bundle (an injected fault)

    @property
    def data(self) -> str | None:
        return self.train.data
