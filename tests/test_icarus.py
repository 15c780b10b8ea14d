# amaranth: UnusedElaboratable=no
"""Slow tier: Icarus Verilog, the second simulator, runs the same cocotb benches (cocotbext-axi
drives and takes the streams) on an MLP, a ConvNet and an input-quantized net, with random input
gaps and back-pressure, against the golden model; the two simulators agree cycle for cycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle, random_codes, random_net, with_input_thresholds
from hwqnn.sim.runner import run_cocotb
from hwqnn.verify_rtl import verify_rtl

# no skip when Icarus is missing: make setup installs it, and a missing simulator fails in one
# line (SimError) rather than passing unseen
pytestmark = pytest.mark.slow


def _mlp() -> Bundle:
    return random_bundle(1, 70, (33, 20), 5, 2, 2)


def _conv() -> Bundle:
    return random_net(7, parse_arch("cnv:5c3p1-mp2-4c3-fc6", 1, 1), (8, 8, 1), 5)


def _input_quantized() -> Bundle:  # 8-bit pixels thresholded into 2-bit codes in hardware
    return with_input_thresholds(random_bundle(31, 70, (33, 20), 5, in_bits=2), 2)


NETS = {
    "mlp-w2a2": (_mlp, 40, 64),
    "conv": (_conv, 200, 64),
    "input-quantized": (_input_quantized, 40, 8),
}


@pytest.mark.parametrize("name", list(NETS))
def test_icarus_equals_golden_under_stalls_and_reset(tmp_path: Path, name: str) -> None:
    make, cycles, axis = NETS[name]
    b = make()
    man = generate(plan(b, choose_folding(b, cycles, axis), axis), tmp_path / "rtl")
    x = random_codes(3, 16, b.in_features).astype(np.uint8)
    scores = golden.scores(b, x)
    r = run_cocotb(man, x, scores, tmp_path / "icarus", seed=4, idle_prob=0.3, stall_prob=0.4,
                   reset_test=True, simulator="icarus")  # fmt: skip
    assert r["failures"] == 0 and r["tests"] == 3, r.get("log_tail")
    out = np.array(r["outputs"])
    np.testing.assert_array_equal(out[:, :-1], scores)  # every frame, once, in order
    np.testing.assert_array_equal(out[:, -1], scores.argmax(1))


def test_icarus_and_verilator_agree_cycle_for_cycle(tmp_path: Path) -> None:
    """Without stalls and with the same seeded stalls, both simulators take every beat on the
    same cycle; without stalls one frame per predicted interval and the predicted latency."""
    b = _mlp()
    man = generate(plan(b, choose_folding(b, 40, 64), 64), tmp_path / "rtl")
    x = random_codes(5, 12, b.in_features).astype(np.uint8)
    scores = golden.scores(b, x)
    for idle, stall in ((0.0, 0.0), (0.3, 0.4)):
        runs = [
            run_cocotb(
                man,
                x,
                scores,
                tmp_path / sim,
                seed=9,
                idle_prob=idle,
                stall_prob=stall,
                simulator=sim,
            )
            for sim in ("icarus", "verilator")
        ]
        for key in ("outputs", "out_cycles", "in_first_cycles", "out_times_ns"):
            assert runs[0][key] == runs[1][key], key
    ii = man.pipeline.cycles_per_frame
    r = run_cocotb(man, x, scores, tmp_path / "icarus", simulator="icarus")
    assert set(np.diff(r["out_cycles"]).tolist()) == {ii}
    assert r["out_cycles"][0] - r["in_first_cycles"][0] == man.pipeline.latency_cycles


def test_icarus_engine_through_verify_rtl(tmp_path: Path) -> None:
    b = _conv()
    design = plan(b, choose_folding(b, 200))
    man = generate(design, tmp_path / "rtl")
    x = random_codes(6, 8, b.in_features).astype(np.uint8)
    r = verify_rtl(b, design, man, x, np.zeros(8, np.int64), "icarus", tmp_path, stalls=True)
    assert r["engine"] == "icarus" and r["mismatches"] == 0 and r["images"] == 8


def test_icarus_waveform(tmp_path: Path) -> None:
    b = _mlp()
    design = plan(b, choose_folding(b, 40, 64), 64)
    man = generate(design, tmp_path / "rtl")
    x = random_codes(2, 3, b.in_features).astype(np.uint8)
    r = verify_rtl(b, design, man, x, np.zeros(3, np.int64), "icarus", tmp_path,
                   waves=tmp_path / "w" / "run.vcd")  # fmt: skip
    fst = Path(r["waves"])
    assert fst == tmp_path / "w" / "run.fst" and fst.read_bytes()[:1] == b"\x00"  # FST header
    assert fst.stat().st_size > 1000
