# amaranth: UnusedElaboratable=no
"""Slow tier: bundles that quantize their raw input (binarized pixels as in FINN's LFC, 2-bit
per-channel thresholds) through the generated Verilog under Verilator: raw pixels in through the
host driver and the front end, every score equal to golden, with and without stalls; cycles per
frame and latency as predicted."""

from __future__ import annotations

from dataclasses import replace
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

pytestmark = pytest.mark.slow


def _lfc_like() -> Bundle:
    return with_input_thresholds(random_bundle(31, 70, (33, 20), 5, in_bits=1), 1)


def _dense_rgb() -> Bundle:  # 4x5x3 input, 8 values a beat: beats cut across pixels and frames
    b = replace(random_bundle(32, 60, (17,), 4, in_bits=2), input_shape=(4, 5, 3))
    return with_input_thresholds(b, 2, channels=3)


def _conv_8bit_codes() -> Bundle:  # 255 thresholds per value: the front end's balanced sum
    b = random_net(34, parse_arch("cnv:4c3-mp2-fc6", 1, 1), (6, 6, 1), 4, in_bits=8)
    return with_input_thresholds(b, 4)


def _conv_rgb() -> Bundle:
    b = random_net(33, parse_arch("cnv:5c3p1-mp2-fc6", 1, 1), (6, 6, 3), 4, in_bits=2)
    return with_input_thresholds(b, 3, channels=3)


@pytest.mark.parametrize(
    ("make", "axis", "target"),
    [(_lfc_like, 64, 40), (_dense_rgb, 64, 30), (_conv_rgb, 16, 200), (_conv_8bit_codes, 64, 100)],
    ids=["binarized-mlp", "dense-3ch", "conv-3ch", "conv-8bit-codes"],
)
def test_quantized_input_rtl_equals_golden(
    tmp_path: Path, make: object, axis: int, target: int
) -> None:
    b = make()  # type: ignore[operator]
    folds = choose_folding(b, target, axis)
    design = plan(b, folds, axis)
    man = generate(design, tmp_path / "rtl")
    assert man.ports.in_bits == 8
    x = random_codes(4, 40, b.in_features).astype(np.uint8)
    labels = np.zeros(len(x), np.int64)
    for stalls in (True, False):
        r = verify_rtl(b, design, man, x, labels, "cpp", tmp_path, stalls=stalls)
        assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["cycles_per_frame_measured"] == man.pipeline.cycles_per_frame
    assert r["frames_off_interval"] == 0
    assert r["latency_cycles"] == man.pipeline.latency_cycles  # conv-3ch: the timing model


def test_cocotb_bench_with_binarized_input(tmp_path: Path) -> None:
    b = _lfc_like()
    folds = choose_folding(b, 40, 8)
    man = generate(plan(b, folds, 8), tmp_path / "rtl")
    x = random_codes(9, 20, b.in_features).astype(np.uint8)
    scores = golden.scores(b, x)
    r = run_cocotb(man, x, scores, tmp_path / "build", seed=5, idle_prob=0.3,
                   stall_prob=0.4, reset_test=True)  # fmt: skip
    assert r["failures"] == 0, r.get("log_tail")
    out = np.array(r["outputs"])
    np.testing.assert_array_equal(out[:, :-1], scores)
