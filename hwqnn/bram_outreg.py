"""Absorb the register behind an ECP5 block RAM read into the block RAM's own output register.

An ECP5 ``DP16KD`` read costs 5.6-5.8 ns from the clock to its data pins without its output
register (``REGMODE = "NOREG"``) and about 1 ns with it (``"OUTREG"``: one more cycle of read
latency; prjtrellis timing database, nextpnr issue #422). Yosys's ECP5 memory mapping never
sets ``OUTREG`` (Yosys issue #5814: "only available through explicit primitive instantiation"),
so every read of the generated accelerator ends in a fabric register placed after 5.7 ns, and
that path bounds Fmax. The accelerator registers every memory read with the read's own enable
and no reset (``hwqnn.hw.mvtu``: the weight, slice, threshold and offset registers), which is
exactly the primitive's output register; this pass moves such registers into the primitive on
Yosys's JSON netlist, before nextpnr places it.

A memory deeper than one block RAM holds at its width is several blocks whose data pins meet in
a multiplexer (``LUT4``, ``PFUMX``, ``L6MUX21``) selected by address bits that Yosys registered
with the read; the register is then behind the multiplexer. Moving it back through the
multiplexer is the same circuit when the multiplexer's select inputs are delayed by one more
register on the same enable: with ``q`` the old register, ``o`` the output registers, ``s`` a
select and ``s'`` its new register, all loading on enable ``e``, ``q[n+1] = e ? mux(do[n],
s[n]) : q[n]`` and ``mux(o[n+1], s'[n+1])`` is the same by induction, as long as both start
equal: every register powers up at 0, so the multiplexer must give 0 from all-zero inputs
(checked on its LUT contents).

A group of read ports (A or B of ``DP16KD`` cells: those whose data pins meet in one
multiplexer) is absorbed only when all of these hold, so the netlist's behaviour is unchanged
cycle for cycle:

- every data pin ``DOXn`` that drives anything drives only multiplexer cells and ``DI`` pins of
  ``TRELLIS_FF`` cells, and so does every multiplexer output it reaches (no module output, no
  other logic: a pin that also feeds logic needs the unregistered value); a net that feeds a
  flip-flop feeds only that flip-flop;
- those flip-flops share one clock (every port's own clock net, non-inverted on all), one clock
  enable (``CEMUX = "CE"`` on one net, or ``"1"``), have no set/reset (``LSR`` constant 0 or
  ``LSRMUX`` off) and power up at 0 (``REGSET = "RESET"``, ``GSR`` disabled), as the output
  register does;
- every port's reset ``RSTX`` is constant 0 (a reset would then clear the new register as well)
  and every port is in ``NOREG`` mode;
- the multiplexer gives 0 on every flip-flop's input when its data pins and selects are all 0.

Each port then gets ``REGMODE_X = "OUTREG"`` and ``OCEX`` = the flip-flops' enable; each select
gets a new flip-flop on that enable (the first flip-flop's settings); the net that fed a
flip-flop (a data pin's, or a multiplexer output's) takes over its ``Q`` net and the flip-flop
is removed. Without a multiplexer (one block RAM) that is the data pin's register moved inside.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwqnn.atomic import write_json

Bit = int | str  # a net number, or a constant "0"/"1"/"x"/"z"

_FF_OK = {"CLKMUX": "CLK", "GSR": "DISABLED", "REGSET": "RESET"}
# the multiplexer cells a register moves back through: their inputs and their output
_MUX_CELLS = {
    "LUT4": (("A", "B", "C", "D"), "Z"),
    "PFUMX": (("ALUT", "BLUT", "C0"), "Z"),
    "L6MUX21": (("D0", "D1", "SD"), "Z"),
}


@dataclass(frozen=True)
class Absorbed:
    """One read port whose output register took over the register behind it."""

    cell: str
    port: str  # "A" or "B"
    bits: int  # data pins now registered in the block RAM
    # multiplexer cells the register moved back through (0: it was right behind the pins) and
    # the select flip-flops added for them: the same for every port of one group, numbered
    mux_cells: int = 0
    select_ffs: int = 0
    group: int = 0


@dataclass
class _Group:
    """Read ports whose data pins meet in one multiplexer, and what lies behind them."""

    clock: Bit
    ports: dict[tuple[str, str], int] = field(default_factory=dict)  # -> data pins used
    cone: set[str] = field(default_factory=set)  # multiplexer cells
    ends: set[str] = field(default_factory=set)  # the flip-flops to remove
    data: set[Bit] = field(default_factory=set)  # nets that carry read data


def _param(cell: Mapping[str, Any], key: str, default: str) -> str:
    """A string parameter (Yosys's JSON writes one that looks like a bit string, such as
    ``"1"``, with a space after it)."""
    value = cell["parameters"].get(key, default)
    return value.rstrip(" ") if isinstance(value, str) else str(value)


def _ff_enable(ff: Mapping[str, Any]) -> Bit | None:
    """The flip-flop's clock enable as a bit (``"1"`` when always enabled), or None if its
    enable is inverted or constant off."""
    mux = _param(ff, "CEMUX", "CE")
    if mux == "1":
        return "1"
    if mux == "CE":
        return ff["connections"]["CE"][0]
    return None


def _ff_unreset(ff: Mapping[str, Any]) -> bool:
    """True when the flip-flop has no set/reset that could ever act."""
    mux = _param(ff, "LSRMUX", "LSR")
    return mux == "0" or (mux == "LSR" and ff["connections"].get("LSR", ["0"])[0] == "0")


def _port_clock(cell: Mapping[str, Any], port: str) -> Bit | None:
    """The read port's clock net if the port could take an output register (``NOREG``, no
    reset, non-inverted clock on a net), else None."""
    conn = cell["connections"]
    if _param(cell, f"REGMODE_{port}", "NOREG") != "NOREG":
        return None
    if conn.get(f"RST{port}", ["0"])[0] != "0":
        return None
    if _param(cell, f"RST{port}MUX", f"RST{port}") != f"RST{port}":
        return None
    if _param(cell, f"CLK{port}MUX", f"CLK{port}") != f"CLK{port}":
        return None
    clock = conn.get(f"CLK{port}", ["0"])[0]
    return None if isinstance(clock, str) else clock


def _data_pins(cell: Mapping[str, Any], port: str) -> list[tuple[str, Bit]]:
    """``(pin, net)`` of the port's data outputs."""
    return [(pin, bits[0]) for pin, bits in cell["connections"].items()
            if pin.startswith(f"DO{port}") and pin[3:].isdigit()]  # fmt: skip


def _lut_value(cell: Mapping[str, Any], ins: list[int]) -> int:
    """A ``LUT4``'s output for inputs A..D (``INIT`` is written most significant bit first)."""
    init = _param(cell, "INIT", "")
    index = sum(v << i for i, v in enumerate(ins))
    if len(init) != 16 or set(init) - {"0", "1"}:
        raise ValueError(f"LUT4 INIT {init!r} is not 16 bits")
    return int(init[15 - index])


class _Netlist:
    """One module's cells with each net's loads and driver."""

    def __init__(self, module: dict[str, Any]) -> None:
        self.cells: dict[str, Any] = module["cells"]
        self.loads: dict[Bit, list[tuple[str, str]]] = defaultdict(list)
        self.driver: dict[Bit, tuple[str, str]] = {}
        for cname, c in self.cells.items():
            for pin, bits in c["connections"].items():
                out = c.get("port_directions", {}).get(pin) == "output"
                for b in bits:
                    if out:
                        self.driver[b] = (cname, pin)
                    else:
                        self.loads[b].append((cname, pin))
        for port_name, p in module.get("ports", {}).items():
            if p["direction"] != "input":
                for b in p["bits"]:
                    self.loads[b].append((f"<port {port_name}>", "port"))

    def group(self, start: tuple[str, str]) -> _Group | None:
        """The read ports reached from ``start`` through multiplexers, if they can all take an
        output register together (module docstring), else None."""
        clock = _port_clock(self.cells[start[0]], start[1])
        if clock is None:
            return None
        g = _Group(clock)
        todo_ports, todo_nets = [start], list[Bit]()
        while todo_ports or todo_nets:
            if todo_ports:
                cname, port = todo_ports.pop()
                cell = self.cells[cname]
                if (cname, port) in g.ports:
                    continue
                if _port_clock(cell, port) != clock:
                    return None
                used = [net for _, net in _data_pins(cell, port) if self.loads.get(net)]
                g.ports[(cname, port)] = len(used)
                g.data.update(used)
                todo_nets += used
                continue
            net = todo_nets.pop()
            sinks = self.loads.get(net, [])
            for lname, lpin in sinks:
                lc = self.cells.get(lname)
                if lc is None:  # a module output
                    return None
                if lc["type"] == "TRELLIS_FF" and lpin == "DI" and len(sinks) == 1:
                    g.ends.add(lname)
                elif lc["type"] in _MUX_CELLS and lname not in g.cone:
                    ins, out = _MUX_CELLS[lc["type"]]
                    if lpin not in ins or out not in lc["connections"]:
                        return None
                    g.cone.add(lname)
                    g.data.add(lc["connections"][out][0])
                    todo_nets.append(lc["connections"][out][0])
                    # a data pin of another read port into the multiplexer joins the group
                    for pin in ins:
                        d = self.driver.get(lc["connections"].get(pin, ["0"])[0])
                        if d is not None and self.cells[d[0]]["type"] == "DP16KD":
                            port = d[1][2]
                            if not (d[1].startswith("DO") and d[1][3:].isdigit()):
                                return None
                            todo_ports.append((d[0], port))
                elif lc["type"] not in _MUX_CELLS:
                    return None
        return g

    def enable(self, g: _Group) -> Bit | None:
        """The flip-flops' common enable if they are all plain registers on the ports' clock,
        else None."""
        enable: Bit | None = None
        for name in g.ends:
            ff = self.cells[name]
            if ff["connections"]["CLK"][0] != g.clock:
                return None
            if any(_param(ff, k, v) != v for k, v in _FF_OK.items()) or not _ff_unreset(ff):
                return None
            en = _ff_enable(ff)
            if en is None or (enable is not None and en != enable):
                return None
            enable = en
        return enable

    def selects(self, g: _Group) -> list[Bit]:
        """The nets into the multiplexer that do not carry read data (constants aside)."""
        found: set[Bit] = set()
        for name in g.cone:
            cell = self.cells[name]
            for pin in _MUX_CELLS[cell["type"]][0]:
                b = cell["connections"].get(pin, ["0"])[0]
                if b not in g.data and not isinstance(b, str):
                    found.add(b)
        return sorted(found, key=str)

    def zero_at_power_up(self, g: _Group) -> bool:
        """True when the multiplexer gives 0 into every flip-flop while its data pins and
        selects are 0 (all registers, old and new, power up at 0)."""
        memo: dict[Bit, int | None] = {}

        def value(b: Bit) -> int | None:
            if isinstance(b, str):
                return {"0": 0, "1": 1}.get(b)
            if b not in memo:
                d = self.driver.get(b)
                if d is None or d[0] not in g.cone:
                    memo[b] = 0  # a data pin or a select: its register powers up at 0
                else:
                    cell = self.cells[d[0]]
                    ins = [value(cell["connections"].get(p, ["0"])[0])
                           for p in _MUX_CELLS[cell["type"]][0]]  # fmt: skip
                    if any(v is None for v in ins):
                        memo[b] = None
                    elif cell["type"] == "LUT4":
                        memo[b] = _lut_value(cell, [int(v or 0) for v in ins])
                    else:  # PFUMX: C0 ? ALUT : BLUT; L6MUX21: SD ? D1 : D0
                        a, b_, sel = ins
                        memo[b] = (
                            (a if sel else b_) if cell["type"] == "PFUMX" else (b_ if sel else a)
                        )
            return memo[b]

        return all(value(self.cells[n]["connections"]["DI"][0]) == 0 for n in g.ends)


def _next_net(netlist: dict[str, Any]) -> int:
    """One more than the highest net number anywhere in the netlist."""
    top = 1
    for mod in netlist["modules"].values():
        for c in mod.get("cells", {}).values():
            for bits in c["connections"].values():
                top = max([top, *(b for b in bits if isinstance(b, int))])
        for p in mod.get("ports", {}).values():
            top = max([top, *(b for b in p["bits"] if isinstance(b, int))])
        for n in mod.get("netnames", {}).values():
            top = max([top, *(b for b in n["bits"] if isinstance(b, int))])
    return top + 1


def absorb_output_registers(netlist: dict[str, Any], top: str) -> list[Absorbed]:
    """Rewrite ``netlist`` (Yosys ``write_json`` of ``synth_ecp5``) in place: every group of
    ``DP16KD`` read ports whose data pins, directly or through a multiplexer, each feed plain
    registers gets those registers as their output registers. Returns what moved, per port."""
    module = netlist["modules"][top]
    net = _Netlist(module)
    cells = net.cells
    new_net = _next_net(netlist)
    done: list[Absorbed] = []
    tried: set[tuple[str, str]] = set()
    for name in sorted(n for n, c in cells.items() if c["type"] == "DP16KD"):
        for port in ("A", "B"):
            if (name, port) in tried:
                continue
            g = net.group((name, port))
            if g is None:
                tried.add((name, port))
                continue
            tried.update(g.ports)
            enable = net.enable(g)
            if not g.ends or enable is None or not net.zero_at_power_up(g):
                continue
            selects = net.selects(g)
            first = cells[min(g.ends)]
            for cname, p in g.ports:
                cell = cells[cname]
                cell["parameters"][f"REGMODE_{p}"] = "OUTREG"
                cell["connections"][f"OCE{p}"] = [enable]
                cell["parameters"][f"OCE{p}MUX"] = f"OCE{p}"
            for i, s in enumerate(selects):  # each select one read later, like the data
                delayed = new_net
                new_net += 1
                ff = json.loads(json.dumps(first))
                ff["connections"] = {**ff["connections"], "DI": [s], "Q": [delayed]}
                cells[f"{min(g.ends)}$outreg_select{i}"] = ff
                for cname in g.cone:
                    conn = cells[cname]["connections"]
                    for pin in _MUX_CELLS[cells[cname]["type"]][0]:
                        if conn.get(pin) == [s]:
                            conn[pin] = [delayed]
            for ff_name in sorted(g.ends):  # the net into each register takes over its output
                d_net = cells[ff_name]["connections"]["DI"][0]
                dname, dpin = net.driver[d_net]
                cells[dname]["connections"][dpin] = [cells[ff_name]["connections"]["Q"][0]]
                del cells[ff_name]
            number = len({a.group for a in done})
            for (cname, p), bits in sorted(g.ports.items()):
                done.append(Absorbed(cname, p, bits, len(g.cone), len(selects), number))
    return done


def absorb_file(path: Path, top: str) -> list[Absorbed]:
    """:func:`absorb_output_registers` on a JSON netlist file, rewritten in place (atomically)."""
    netlist = json.loads(path.read_text())
    done = absorb_output_registers(netlist, top)
    if done:
        write_json(path, netlist)
    return done
