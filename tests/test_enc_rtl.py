# amaranth: UnusedElaboratable=no
"""Slow tier: nets of every encoding (bundle version 4: unsigned and signed codes and weights, a
score bias; version 5: a per-class score scale) through the generated Verilog under Verilator,
against golden, with and without stalls; cycles per frame and latency as predicted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding, parse_folding
from hwqnn.hw.plan import plan
from hwqnn.layers.encoding import ENCODINGS
from hwqnn.randnet import Encodings, random_bundle, random_codes, random_net
from hwqnn.verify_rtl import verify_rtl

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Net:
    spec: str  # "mlp:70-33-20" style hidden widths, or a cnv: spec
    encs: tuple[str, str, str]  # input, weights, activations
    w_bits: int
    a_bits: int
    in_bits: int = 8
    fold: int | str | None = None
    image: tuple[int, int, int] | None = None
    scale: bool = False


NETS = [
    pytest.param(
        Net("33-20", ("unsigned", "signed", "unsigned"), 2, 2, fold="4x10,5x3,5x4"),
        id="w2a2-relu-signed-weights-offsets-in-memory",
    ),
    pytest.param(Net("24", ("signed", "signed", "signed"), 4, 4, fold=40), id="w4a4-signed"),
    pytest.param(
        Net(
            "cnv:6c3p1-mp2-5c3s2-fc9",
            ("signed", "signed", "signed"),
            2,
            2,
            in_bits=4,
            image=(9, 11, 1),
        ),
        id="conv-signed-padding",
    ),
    pytest.param(
        Net("cnv:4c3p1-mp2-fc7", ("unsigned", "odd", "unsigned"), 1, 2, image=(8, 8, 2), fold=200),
        id="conv-odd-weights-relu",
    ),
    pytest.param(
        Net("33-20", ("unsigned", "signed", "unsigned"), 2, 2, fold="4x10,5x3,1x4", scale=True),
        id="score-scale-in-memory",
    ),
    pytest.param(
        Net("24", ("odd", "odd", "odd"), 1, 1, fold=40, scale=True), id="score-scale-const"
    ),
]


def _net(n: Net) -> Bundle:
    e = Encodings(*(ENCODINGS[x] for x in n.encs), bias=True, scale=n.scale)
    if n.image is None:
        hidden = tuple(int(h) for h in n.spec.split("-"))
        return random_bundle(len(n.spec), 70, hidden, 5, n.w_bits, n.a_bits, n.in_bits, encodings=e)
    arch = parse_arch(n.spec, n.w_bits, n.a_bits)
    return random_net(len(n.spec), arch, n.image, 5, n.in_bits, encodings=e)


@pytest.mark.parametrize("net", NETS)
def test_encoded_net_rtl_equals_golden(tmp_path: Path, net: Net) -> None:
    b = _net(net)
    assert b.version == (5 if net.scale else 4)
    folds = parse_folding(net.fold, b) if isinstance(net.fold, str) else choose_folding(b, net.fold)
    design = plan(b, folds)
    man = generate(design, tmp_path / "rtl")
    n = 40
    x = random_codes(3, n, b.in_features, net.in_bits).astype(np.uint8)
    labels = np.zeros(n, np.int64)
    for stalls in (True, False):
        r = verify_rtl(b, design, man, x, labels, "cpp", tmp_path, stalls=stalls)
        assert r["images"] == n and r["mismatches"] == 0, r["first_mismatch"]
    assert r["cycles_per_frame_measured"] == man.pipeline.cycles_per_frame
    assert r["frames_off_interval"] == 0
    assert r["latency_cycles"] == man.pipeline.latency_cycles
