# amaranth: UnusedElaboratable=no
"""Slow tier: generated Verilog built with Verilator and driven by the cocotb benches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwqnn import golden
from hwqnn.hw.emit import generate, generate_layer
from hwqnn.hw.folding import LayerFold, choose_folding, parse_folding
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle, random_codes
from hwqnn.sim.runner import WAIVERS, lint, run_bench, run_cocotb

pytestmark = pytest.mark.slow

# (seed, fan-in, hidden, classes, w_bits, a_bits, folding or target cycles, idle, stall, the
# s_axis width: 64 bits = 8 pixels, a partial last beat of 70; 8 bits = one pixel a beat, slow
# enough that frame 0's scores wait at m_axis when the bench resets mid-frame; 24 bits = 3
# pixels against SIMD 7; 512 and 1024 bits: the whole frame in one beat)
NETS = [
    (1, 70, (33, 20), 5, 1, 1, 40, 0.0, 0.0, 64),
    (2, 70, (33, 20), 5, 1, 1, "1x70,20x1,5x20", 0.3, 0.4, 8),  # PE=1 / SIMD=1 / NF=SF=1 mix
    (3, 100, (64, 64), 10, 1, 1, "3x7,5x9,4x13", 0.2, 0.2, 24),  # nothing divides evenly
    (4, 64, (40,), 4, 2, 2, 30, 0.1, 0.3, 512),  # 2-bit weights and activations
    (5, 50, (24, 16), 3, 1, 4, 25, 0.0, 0.0, 1024),  # 4-bit activations, binary weights
]


@pytest.mark.parametrize(
    ("seed", "k", "hidden", "classes", "wb", "ab", "fold", "idle", "stall", "axis"), NETS
)
def test_network_bit_exact(
    tmp_path: Path,
    seed: int,
    k: int,
    hidden: tuple,
    classes: int,
    wb: int,
    ab: int,
    fold: int | str,
    idle: float,
    stall: float,
    axis: int,
) -> None:
    b = random_bundle(seed, k, hidden, classes, wb, ab)
    folds = choose_folding(b, fold, axis) if isinstance(fold, int) else parse_folding(fold, b)
    manifest = generate(plan(b, folds, axis), tmp_path / "rtl")
    assert manifest.ports.s_tdata_bits == axis
    x = random_codes(seed, 60, k).astype(np.uint8)
    scores = golden.scores(b, x)
    r = run_cocotb(
        manifest,
        x,
        scores,
        tmp_path / "build",
        seed=seed,
        idle_prob=idle,
        stall_prob=stall,
        reset_test=True,
    )
    assert r["failures"] == 0, r.get("log_tail")
    out = np.array(r["outputs"])
    np.testing.assert_array_equal(out[:, :-1], scores)  # every frame, once, in order
    np.testing.assert_array_equal(out[:, -1], scores.argmax(1))
    if idle == 0 and stall == 0:  # no bubbles: one frame per predicted interval, exactly
        ii = manifest.pipeline.cycles_per_frame
        assert set(np.diff(r["out_cycles"]).tolist()) == {ii}
        assert r["out_cycles"][0] - r["in_first_cycles"][0] == manifest.pipeline.latency_cycles


UNIT = [  # (layer, PE, SIMD, chunk): the six foldings of the unit bench
    (0, 1, 70, 7),
    (0, 33, 1, 70),
    (0, 4, 16, 10),
    (1, 5, 9, 33),
    (1, 20, 33, 11),
    (2, 2, 5, 4),
]


@pytest.mark.parametrize(("li", "pe", "simd", "chunk"), UNIT)
def test_mvtu_unit_bench(tmp_path: Path, li: int, pe: int, simd: int, chunk: int) -> None:
    b = random_bundle(10 + li, 70, (33, 20), 5)
    x = random_codes(2, 25, 70)
    for layer in b.layers[:li]:
        _, x = golden.layer_forward(layer, x)
    layer = b.layers[li]
    _, expected = golden.layer_forward(layer, x)
    man = generate_layer(layer, LayerFold(pe, simd), chunk, tmp_path / "rtl")
    r = run_bench(
        man,
        tmp_path / "build",
        "hwqnn.sim.bench_mvtu",
        {"inputs": x.astype(np.int64), "expected": expected},
        {"seed": pe, "idle_prob": 0.25, "stall_prob": 0.35},
    )
    assert r["failures"] == 0, r.get("log_tail")
    np.testing.assert_array_equal(np.array(r["outputs"]), expected)


def test_relative_build_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    b = random_bundle(9, 40, (16,), 3)
    man = generate(plan(b, choose_folding(b, 20)), Path("rtl"))
    x = random_codes(9, 5, 40).astype(np.uint8)
    r = run_cocotb(man, x, golden.scores(b, x), Path("build"))
    assert r["failures"] == 0 and len(r["outputs"]) == 5


def test_lint_wall_with_named_waivers(tmp_path: Path) -> None:
    b = random_bundle(7, 70, (33, 20), 5, 2, 2)
    generate(plan(b, choose_folding(b, 40)), tmp_path)
    res = lint(tmp_path / "hwqnn_top.v", "hwqnn_top")
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(WAIVERS) <= 6 and all(WAIVERS.values())  # short, each explained


def test_a_testbench_with_its_own_timescale_compiles_without_a_warning(tmp_path: Path) -> None:
    """The generated file has a timescale of its own: a testbench that sets one does not get a
    TIMESCALEMOD warning per module (nor a mixed-timescale error)."""
    import subprocess

    from hwqnn.sim.runner import setup_env, waiver_args

    b = random_bundle(7, 40, (16,), 3)
    generate(plan(b, choose_folding(b, 20)), tmp_path)
    assert (tmp_path / "hwqnn_top.v").read_text().splitlines()[2:4] == [
        "`default_nettype none",
        "`timescale 1ns / 1ps",
    ]
    (tmp_path / "tb.sv").write_text(
        "`timescale 1ns / 1ps\nmodule tb(input wire aclk, input wire aresetn);\n"
        "  hwqnn_top dut(.aclk(aclk), .aresetn(aresetn));\nendmodule\n"
    )
    setup_env()
    cmd = ["verilator", "--lint-only", "-Wall", *waiver_args(), "-Wno-PINMISSING",
           "--top-module", "tb", "tb.sv", "hwqnn_top.v"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "TIMESCALE" not in res.stderr, res.stderr[-2000:]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    b = random_bundle(8, 40, (16,), 3)
    f = choose_folding(b, 20)
    generate(plan(b, f), tmp_path / "a")
    generate(plan(b, f), tmp_path / "b")
    for name in ("hwqnn_top.v", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
