# amaranth: UnusedElaboratable=no
"""Slow tier: sharded simulation (the C++ harness on several processes, or as Ray tasks) gives
exactly what one process gives; a mismatch comes with the waveform of its image."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from hwqnn.bundle import Bundle, make_layer, save, unpack_codes
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.manifest import from_ints
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle, random_codes
from hwqnn.sim.engines import shard_bounds, simulate_cpp
from hwqnn.sim.waves import vcd_signals
from hwqnn.verify_rtl import verify_rtl

pytestmark = pytest.mark.slow


def test_shard_bounds_cover_every_image_once() -> None:
    for n, jobs in [(101, 3), (5, 8), (1, 2), (0, 4), (10_000, 2), (7, 1)]:
        b = shard_bounds(n, jobs)
        assert b[0][0] == 0 and b[-1][1] == n
        assert all(x[1] == y[0] for x, y in itertools.pairwise(b))  # contiguous, in order
        sizes = [hi - lo for lo, hi in b]
        assert len(b) == max(1, min(jobs, n)) and (n == 0 or max(sizes) - min(sizes) <= 1)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, object, object, Path]:
    d = tmp_path_factory.mktemp("mlp")
    b = random_bundle(1, 70, (33, 20), 5, 2, 2)
    design = plan(b, choose_folding(b, 40))
    return b, design, generate(design, d / "rtl"), d


@pytest.mark.parametrize("stalls", [False, True])
def test_three_shards_equal_one_job(mlp: tuple, stalls: bool) -> None:
    from hwqnn import golden

    b, design, man, d = mlp
    x = random_codes(3, 101, 70).astype(np.uint8)  # 33 + 34 + 34
    s = golden.scores(b, x)
    one = simulate_cpp(man, d, x, s, stalls=stalls)
    three = simulate_cpp(man, d, x, s, stalls=stalls, jobs=3)
    assert three.shard_starts == (0, 33, 67) and one.shard_starts == (0,)
    np.testing.assert_array_equal(three.scores, one.scores)
    np.testing.assert_array_equal(three.classes, one.classes)
    np.testing.assert_array_equal(three.scores, s)
    # the perf counters count the same issue cycles and output beats
    assert three.counters == one.counters
    labels = np.zeros(len(x), np.int64)
    r1 = verify_rtl(b, design, man, x, labels, "cpp", d, stalls=stalls)
    r3 = verify_rtl(b, design, man, x, labels, "cpp", d, stalls=stalls, jobs=3)
    assert r1["mismatches"] == r3["mismatches"] == 0 and r3["shards"] == 3
    if not stalls:  # one frame per predicted interval inside every shard; the same latency
        for r in (r1, r3):
            assert r["cycles_per_frame_measured"] == man.pipeline.cycles_per_frame
            assert r["frames_off_interval"] == 0
            assert r["latency_cycles"] == man.pipeline.latency_cycles


def test_ray_shards_on_a_local_instance_equal_one_job(mlp: tuple) -> None:
    from hwqnn import golden

    b, _, man, d = mlp
    x = random_codes(4, 40, 70).astype(np.uint8)
    s = golden.scores(b, x)
    one = simulate_cpp(man, d, x, s)
    ray = simulate_cpp(man, d, x, s, jobs=2, ray="local")
    assert ray.shard_starts == (0, 20)
    np.testing.assert_array_equal(ray.scores, one.scores)
    np.testing.assert_array_equal(ray.out_cycles[:20], one.out_cycles[:20])


def _flip_neuron(b: Bundle, layer: int, row: int) -> Bundle:
    ly = b.layers[layer]
    codes = unpack_codes(ly.weights, ly.in_features)
    codes[row] = 1 - codes[row]  # flip every weight of one neuron
    layers = list(b.layers)
    layers[layer] = make_layer(codes, ly.in_bits, ly.w_bits, ly.out_bits, ly.thresholds, ly.flip)
    return dataclasses.replace(b, layers=tuple(layers))


def _value_at(vcd: Path, name: str, t_ps: int) -> int:
    """The value signal ``name`` holds at time ``t_ps`` in the VCD (the last change at or
    before it)."""
    text = vcd.read_text()
    ident = None
    for m in re.finditer(r"\$var\s+\S+\s+\d+\s+(\S+)\s+(\S+)", text):
        if m.group(2) == name.rpartition(".")[2]:
            ident = m.group(1)
            break
    assert ident is not None, name
    value, now = 0, 0
    body = text[text.index("$enddefinitions") :]
    for line in body.splitlines():
        if line.startswith("#"):
            now = int(line[1:])
            if now > t_ps:
                break
        elif line.startswith("b") and line.split()[1] == ident:
            value = int(line.split()[0][1:].replace("x", "0").replace("z", "0"), 2)
        elif line[1:] == ident and line[0] in "01":
            value = int(line[0])
    return value


def test_a_mismatch_comes_with_its_waveform(tmp_path: Path) -> None:
    """A neuron's weights flipped in the RTL only: the report names the image, the layer, the
    neuron, a VCD and a GTKWave file; in the VCD, at the time the report gives, the output beat
    is being taken and carries the RTL's wrong score."""
    b = random_bundle(1, 70, (33, 20), 5)
    bad = _flip_neuron(b, 1, 7)
    design = plan(bad, choose_folding(b, 40))
    man = generate(design, tmp_path / "rtl")
    x = random_codes(3, 60, 70).astype(np.uint8)
    r = verify_rtl(b, design, man, x, np.zeros(60, np.int64), "cpp", tmp_path, jobs=2,
                   mismatch_waves=tmp_path / "waves")  # fmt: skip
    fm = r["first_mismatch"]
    assert r["mismatches"] > 0 and fm is not None
    assert (fm["first_bad_layer"]["layer"], fm["first_bad_layer"]["neuron"]) == (1, 7)
    vcd = Path(fm["waves"])
    assert vcd == tmp_path / "waves" / f"mismatch-image{fm['image']}.vcd" and "waves_note" not in fm
    gtkw = Path(fm["waves_gtkw"]).read_text()
    names = [n for n, _ in vcd_signals(vcd)[0]]
    for port in ("s_axis_tdata", "m_axis_tvalid", "m_axis_tdata"):
        assert f"hwqnn_top.{port}" in gtkw and f"hwqnn_top.{port}" in names
    assert "hwqnn_top.net.layer1.o__valid" in gtkw
    t_ps = round(fm["waves_time_ns"] * 1000)
    assert _value_at(vcd, "hwqnn_top.m_axis_tvalid", t_ps) == 1
    assert _value_at(vcd, "hwqnn_top.m_axis_tready", t_ps) == 1
    word = _value_at(vcd, "hwqnn_top.m_axis_tdata", t_ps)
    scores, _ = man.ports.unpack(from_ints([word], man.ports.m_tdata_bits))
    assert int(scores[0, fm["output"]]) == fm["rtl_score"] != fm["golden_score"]


def test_cli_sim_all_with_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hwqnn.cli import main

    bundle = tmp_path / "b.npz"
    save(random_bundle(2, 64, (16,), 4), bundle)
    args = [
        "sim",
        str(bundle),
        "--all",
        "--jobs",
        "2",
        "--data",
        "synthetic",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    res = json.loads((tmp_path / "sim.json").read_text())
    assert res["shards"] == 2 and res["images"] == 500 and res["mismatches"] == 0
    assert res["latency_cycles"] == res["latency_cycles_predicted"]
