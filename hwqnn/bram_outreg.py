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

A read port ``X`` (A or B) of a ``DP16KD`` is absorbed only when all of these hold, so the
netlist's behaviour is unchanged cycle for cycle:

- every data pin ``DOXn`` that drives anything drives exactly one load, the ``DI`` of a
  ``TRELLIS_FF``, and nothing else (a pin that also feeds logic needs the unregistered value);
- those flip-flops share one clock (the port's own clock net, non-inverted on both), one clock
  enable (``CEMUX = "CE"`` on one net, or ``"1"``), have no set/reset (``LSR`` constant 0 or
  ``LSRMUX`` off) and power up at 0 (``REGSET = "RESET"``, ``GSR`` disabled), as the output
  register does;
- the port's reset ``RSTX`` is constant 0 (a reset would then clear the new register as well)
  and the port is in ``NOREG`` mode.

The port then gets ``REGMODE_X = "OUTREG"`` and ``OCEX`` = the flip-flops' enable; each ``DOXn``
takes over its flip-flop's ``Q`` net and the flip-flop is removed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwqnn.atomic import write_json

Bit = int | str  # a net number, or a constant "0"/"1"/"x"/"z"

_FF_OK = {"CLKMUX": "CLK", "GSR": "DISABLED", "REGSET": "RESET"}


@dataclass(frozen=True)
class Absorbed:
    """One read port whose output register moved into the block RAM."""

    cell: str
    port: str  # "A" or "B"
    bits: int  # flip-flops removed


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


def _port_candidates(
    cell: Mapping[str, Any],
    port: str,
    cells: Mapping[str, Any],
    loads: Mapping[Bit, list[tuple[str, str]]],
) -> tuple[list[tuple[str, str]], Bit] | None:
    """The (data pin, flip-flop) pairs of read port ``port`` and their common enable, if the
    port can absorb them (the conditions in the module docstring), else None."""
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
    if isinstance(clock, str):
        return None
    pairs: list[tuple[str, str]] = []
    enable: Bit | None = None
    for pin, bits in conn.items():
        if not (pin.startswith(f"DO{port}") and pin[3:].isdigit()):
            continue
        bit = bits[0]
        sinks = loads.get(bit, [])
        if not sinks:
            continue
        if len(sinks) != 1 or sinks[0][1] != "DI":
            return None
        ff_name = sinks[0][0]
        ff = cells[ff_name]
        if ff["type"] != "TRELLIS_FF" or ff["connections"]["CLK"][0] != clock:
            return None
        if any(_param(ff, k, v) != v for k, v in _FF_OK.items()):
            return None
        if not _ff_unreset(ff):
            return None
        en = _ff_enable(ff)
        if en is None or (enable is not None and en != enable):
            return None
        enable = en
        pairs.append((pin, ff_name))
    if not pairs or enable is None:
        return None
    return pairs, enable


def absorb_output_registers(netlist: dict[str, Any], top: str) -> list[Absorbed]:
    """Rewrite ``netlist`` (Yosys ``write_json`` of ``synth_ecp5``) in place: every ``DP16KD``
    read port whose data pins each feed one plain register gets that register as its output
    register. Returns what moved."""
    module = netlist["modules"][top]
    cells: dict[str, Any] = module["cells"]
    loads: dict[Bit, list[tuple[str, str]]] = defaultdict(list)
    for cname, c in cells.items():
        for pin, bits in c["connections"].items():
            if c.get("port_directions", {}).get(pin) == "output":
                continue
            for b in bits:
                loads[b].append((cname, pin))
    for port_name, p in module.get("ports", {}).items():
        if p["direction"] != "input":
            for b in p["bits"]:
                loads[b].append((f"<port {port_name}>", "port"))
    done: list[Absorbed] = []
    for name in sorted(n for n, c in cells.items() if c["type"] == "DP16KD"):
        cell = cells[name]
        for port in ("A", "B"):
            found = _port_candidates(cell, port, cells, loads)
            if found is None:
                continue
            pairs, enable = found
            cell["parameters"][f"REGMODE_{port}"] = "OUTREG"
            cell["connections"][f"OCE{port}"] = [enable]
            cell["parameters"][f"OCE{port}MUX"] = f"OCE{port}"
            for pin, ff_name in pairs:
                cell["connections"][pin] = [cells[ff_name]["connections"]["Q"][0]]
                del cells[ff_name]
            done.append(Absorbed(name, port, len(pairs)))
    return done


def absorb_file(path: Path, top: str) -> list[Absorbed]:
    """:func:`absorb_output_registers` on a JSON netlist file, rewritten in place (atomically)."""
    netlist = json.loads(path.read_text())
    done = absorb_output_registers(netlist, top)
    if done:
        write_json(path, netlist)
    return done
