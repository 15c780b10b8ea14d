# amaranth: UnusedElaboratable=no
"""Slow tier: the whole flow on synthetic data, the C++ harness, and fault localisation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hwqnn.bundle import make_layer, unpack_codes
from hwqnn.cli import main
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.plan import plan
from hwqnn.ops import layer_ops
from hwqnn.randnet import random_bundle, random_codes
from hwqnn.verify_rtl import verify_rtl

pytestmark = pytest.mark.slow


def test_flow_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["flow", "--data", "synthetic", "--arch", "mlp:48x2", "--epochs", "2", "--out", str(out)]
    args += ["--activity-images", "50"]
    assert main(args) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["mismatches"] == 0 and r["images_simulated"] == 500
    assert r["torch_vs_golden_mismatches"] == 0
    assert r["c_vs_golden_mismatches"] == 0 and r["c_vs_golden_images"] == 500
    acc = r["accuracy"]
    assert acc["torch"] == acc["golden"] == acc["rtl"] == acc["c"] and acc["float"] is not None
    assert r["cycles_per_frame"] == r["cycles_per_frame_predicted"]
    assert r["latency_cycles"] == r["latency_cycles_predicted"]
    assert r["fps_at_clock"] > 0 and all(m["equal"] for m in r["ops"]["measured"])
    act = r["ops"]["activity"]["layers"]
    assert len(act) == 3 and all(a["toggles_per_cycle"] > 0 for a in act)
    for f in (
        "bundle.npz",
        "rtl/hwqnn_top.v",
        "rtl/manifest.json",
        "sim.json",
        "report.md",
        "ops.png",
    ):
        assert (out / f).is_file(), f
    assert not (out / "FAILED.txt").exists()
    res = r["resources"]  # synthesized (xc7 by default) for the report's Resources section
    assert res["target"] == "xc7" and res["luts"] > 0 and res["fits"] is True
    assert json.loads((out / "synth" / "synth.json").read_text())["luts"] == res["luts"]
    assert [p["mac_per_lut_cycle"] for p in res["reference_points"]] == [0.23, 0.37]
    text = capsys.readouterr().out
    assert "0 mismatches on 500 images" in text
    assert f"**{res['luts']:,} LUTs**" in text and "Umuroglu et al., FINN, FPGA 2017" in text


def _corrupt(b, layer: int, row: int):  # type: ignore[no-untyped-def]
    ly = b.layers[layer]
    codes = unpack_codes(ly.weights, ly.in_features)
    codes[row] = 1 - codes[row]  # flip every weight of one neuron
    bad = make_layer(codes, ly.in_bits, ly.w_bits, ly.out_bits, ly.thresholds, ly.flip)
    layers = list(b.layers)
    layers[layer] = bad
    return dataclasses.replace(b, layers=tuple(layers))


@pytest.mark.parametrize(("layer", "row"), [(1, 7), (2, 3)])
def test_fault_is_localised(tmp_path: Path, layer: int, row: int) -> None:
    b = random_bundle(1, 70, (33, 20), 5)
    bad = _corrupt(b, layer, row)
    folds = choose_folding(b, 40)
    design = plan(bad, folds)
    man = generate(design, tmp_path / "rtl")
    x = random_codes(3, 200, 70).astype(np.uint8)
    r = verify_rtl(b, design, man, x, np.zeros(200, np.int64), "cpp", tmp_path)
    assert r["mismatches"] > 0
    loc = r["first_mismatch"]["first_bad_layer"]
    assert (loc["layer"], loc["neuron"]) == (layer, row)


@pytest.mark.parametrize("axis", [8, 72, 1024])  # 1, 9 (100 = 11 x 9 + 1) and all 100 pixels
def test_harness_with_stalls_and_counters(tmp_path: Path, axis: int) -> None:
    b = random_bundle(4, 100, (64, 48), 10, 1, 2)
    folds = choose_folding(b, 64, axis)
    design = plan(b, folds, axis)
    man = generate(design, tmp_path / "rtl")
    x = random_codes(5, 300, 100).astype(np.uint8)
    labels = np.zeros(300, np.int64)
    r = verify_rtl(b, design, man, x, labels, "cpp", tmp_path, stalls=True)
    assert r["mismatches"] == 0
    ops = layer_ops(design)
    assert [c["issues"] for c in r["counters"]] == [o.issue_cycles * 300 for o in ops]
    assert [c["outputs"] for c in r["counters"]] == [
        f.nf(ly.out_features) * 300 for f, ly in zip(folds, b.layers, strict=True)
    ]
