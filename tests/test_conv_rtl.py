# amaranth: UnusedElaboratable=no
"""Slow tier: random ConvNets through the generated Verilog (sliding windows, max-pool units and
MVTUs) against golden, under Verilator (C++ harness and the cocotb bench), with stalls and
back-pressure, cycle counts and fault localisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle, make_layer, unpack_codes
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding, parse_folding
from hwqnn.hw.plan import plan
from hwqnn.layers import Conv2d
from hwqnn.ops import layer_ops
from hwqnn.randnet import random_codes, random_net
from hwqnn.sim.runner import run_cocotb
from hwqnn.verify_rtl import verify_rtl

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Net:
    spec: str
    image: tuple[int, int, int]
    w_bits: int = 1
    a_bits: int = 1
    in_bits: int = 8
    axis: int = 64
    fold: int | str | None = None


NETS = [
    pytest.param(Net("cnv:6c3p1-mp2-5c3s2-fc9", (9, 11, 1)), id="k3p1-mp2-k3s2-odd"),
    pytest.param(
        Net("cnv:5c5p2-mp3s2-7c1", (10, 9, 2), 2, 2, axis=64, fold=300), id="k5-mp3s2-k1-w2a2"
    ),
    pytest.param(Net("cnv:4c3-3c3", (7, 7, 3), 1, 4, in_bits=1, axis=24), id="no-pool-a4-1bit"),
    pytest.param(
        Net("cnv:8c1-mp2s1-6c3s2p1-fc10", (8, 8, 4), in_bits=2, axis=8, fold=100),
        id="k1-overlapping-pool-2bit-in",
    ),
    pytest.param(Net("cnv:6c3-mp2-fc7", (8, 8, 1), fold="3x1,7x4,5x7"), id="simd1-fc-uneven"),
]


def _net(n: Net, seed: int) -> Bundle:
    return random_net(seed, parse_arch(n.spec, n.w_bits, n.a_bits), n.image, 5, n.in_bits)


def _folds(b: Bundle, n: Net) -> list:  # type: ignore[type-arg]
    if isinstance(n.fold, str):
        return parse_folding(n.fold, b)
    return choose_folding(b, n.fold, n.axis)


@pytest.mark.parametrize("net", NETS)
def test_conv_net_rtl_equals_golden(tmp_path: Path, net: Net) -> None:
    """Every score of every frame equal to golden, with and without random input gaps and output
    back-pressure; without them one frame per predicted interval and the first frame's latency
    as predicted, exactly; the design's counters equal the analytic issue counts of every
    MVTU."""
    b = _net(net, len(net.spec))
    folds = _folds(b, net)
    design = plan(b, folds, net.axis)
    man = generate(design, tmp_path / "rtl")
    n = 40
    x = random_codes(3, n, b.in_features, net.in_bits).astype(np.uint8)
    labels = np.zeros(n, np.int64)
    for stalls in (False, True):
        r = verify_rtl(b, design, man, x, labels, "cpp", tmp_path, stalls=stalls)
        assert r["mismatches"] == 0, r["first_mismatch"]
        ops = [o for o in layer_ops(design) if o.rows]
        assert [c["issues"] for c in r["counters"]] == [o.issue_cycles * n for o in ops]
    r = verify_rtl(b, design, man, x, labels, "cpp", tmp_path)
    assert r["cycles_per_frame_measured"] == man.pipeline.cycles_per_frame
    assert r["frames_off_interval"] == 0
    assert r["latency_cycles"] == man.pipeline.latency_cycles  # the timing model, exactly


def test_cocotb_bench_on_a_conv_net(tmp_path: Path) -> None:
    b = _net(Net("cnv:5c3p1-mp2-4c3-fc6", (8, 8, 1)), 7)
    folds = choose_folding(b, 200)
    man = generate(plan(b, folds), tmp_path / "rtl")
    x = random_codes(8, 24, b.in_features).astype(np.uint8)
    scores = golden.scores(b, x)
    r = run_cocotb(man, x, scores, tmp_path / "build", seed=3, idle_prob=0.3,
                   stall_prob=0.4, reset_test=True)  # fmt: skip
    assert r["failures"] == 0, r.get("log_tail")
    out = np.array(r["outputs"])
    np.testing.assert_array_equal(out[:, :-1], scores)  # every frame, once, in order
    np.testing.assert_array_equal(out[:, -1], scores.argmax(1))


def _corrupt_conv(b: Bundle, layer: int, channel: int) -> Bundle:
    conv = b.layers[layer]
    assert isinstance(conv, Conv2d)
    m = conv.matrix
    codes = unpack_codes(m.weights, m.in_features)
    codes[channel] = 1 - codes[channel]  # flip every weight of one output channel
    bad = make_layer(codes, m.in_bits, m.w_bits, m.out_bits, m.thresholds, m.flip)
    layers = list(b.layers)
    layers[layer] = Conv2d(conv.window, bad)
    return dataclasses.replace(b, layers=tuple(layers))


@pytest.mark.parametrize(("layer", "channel"), [(0, 3), (2, 1)])
def test_fault_in_a_conv_layer_is_localised(tmp_path: Path, layer: int, channel: int) -> None:
    b = _net(Net("cnv:6c3p1-mp2-5c3-fc8", (8, 8, 1)), 11)
    bad = _corrupt_conv(b, layer, channel)
    folds = choose_folding(b, 300)
    design = plan(bad, folds)
    man = generate(design, tmp_path / "rtl")
    x = random_codes(4, 30, b.in_features).astype(np.uint8)
    r = verify_rtl(b, design, man, x, np.zeros(30, np.int64), "cpp", tmp_path)
    assert r["mismatches"] > 0
    loc = r["first_mismatch"]["first_bad_layer"]
    conv = b.layers[layer]
    assert isinstance(conv, Conv2d)
    # the neuron is position * channels + channel in the layer's HWC output
    assert loc["layer"] == layer and loc["neuron"] % conv.out_channels == channel


def test_flow_on_a_conv_net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """train -> export -> torch==golden -> C==golden -> Verilog -> simulation -> synthesis ->
    ops -> report, for a ConvNet."""
    import json

    from hwqnn.cli import main

    out = tmp_path / "run"
    args = ["flow", "--data", "synthetic", "--arch", "cnv:6c3p1-mp2-5c3-fc12", "--epochs", "2"]
    assert main([*args, "--out", str(out), "--activity-images", "20"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["mismatches"] == 0 and r["images_simulated"] == 500
    assert r["torch_vs_golden_mismatches"] == 0
    acc = r["accuracy"]
    assert acc["torch"] == acc["golden"] == acc["rtl"] == acc["c"]
    assert r["c_vs_golden_mismatches"] == 0 and r["c_vs_golden_images"] == 500
    assert not r["c_skipped"]
    assert r["cycles_per_frame"] == r["cycles_per_frame_predicted"]
    assert [ly["kind"] for ly in r["layers"]] == ["conv2d", "maxpool2d", "conv2d", "dense", "dense"]
    assert all(m["equal"] for m in r["ops"]["measured"])
    assert len(r["ops"]["activity"]["layers"]) == 5
    assert r["resources"]["luts"] > 0
    text = capsys.readouterr().out
    assert "0 mismatches on 500 images" in text and "C library: not run" not in text
    assert "vs golden: 0 of 500 images differ" in text
