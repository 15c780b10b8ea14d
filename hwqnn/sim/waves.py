"""Waveforms a hardware engineer opens first: a GTKWave save file beside a VCD, with the stream
ports of the top and the stream handshakes of one layer, the view starting shortly before a
given time (the first differing output beat)."""

from __future__ import annotations

import re
from pathlib import Path

from hwqnn.atomic import write_bytes

PORTS = (
    *("aclk", "aresetn", "frame_error"),
    *(
        f"{bus}_t{sig}"
        for bus in ("s_axis", "m_axis")
        for sig in ("valid", "ready", "last", "data")
    ),
)
# a layer's own stream handshakes and payloads (Amaranth's names in the generated Verilog)
LAYER_SIGNALS = re.compile(r"^[io]__(valid|ready|payload)$")
_TIMESCALE_PS = {"s": 10**12, "ms": 10**9, "us": 10**6, "ns": 10**3, "ps": 1, "fs": 10**-3}


def vcd_signals(vcd: Path) -> tuple[list[tuple[str, str]], float]:
    """Every ``(hierarchical name, range suffix)`` the VCD declares, in order, and its time unit
    in ps. Reads the header only."""
    names: list[tuple[str, str]] = []
    scope: list[str] = []
    unit_ps = 1.0
    with vcd.open() as f:
        header = ""
        for line in f:
            header += line
            if "$enddefinitions" in line:
                break
    m = re.search(r"\$timescale\s+(\d+)\s*(\w+)\s+\$end", header)
    if m:
        unit_ps = int(m.group(1)) * _TIMESCALE_PS.get(m.group(2), 1)
    for tok in re.finditer(r"\$(scope|upscope|var)\b(.*?)\$end", header, re.S):
        kind, body = tok.group(1), tok.group(2).split()
        if kind == "scope":
            scope.append(body[1])
        elif kind == "upscope":
            scope.pop()
        elif len(body) >= 4:
            names.append((".".join([*scope, body[3]]), body[4] if len(body) > 4 else ""))
    return names, unit_ps


def write_gtkw(vcd: Path, dest: Path, top: str, layer: int | None, at_ns: float | None) -> Path:
    """A GTKWave save file for ``vcd``: the top's stream ports, then layer ``layer``'s stream
    signals (``<top>.net.layer<layer>``), the view from 200 ns before ``at_ns``."""
    names, unit_ps = vcd_signals(vcd)
    picked = [f"{n}{r}" for n, r in names if n.startswith(f"{top}.") and n.count(".") == 1
              and n.split(".")[-1] in PORTS]  # fmt: skip
    if layer is not None:
        scope = f"{top}.net.layer{layer}"
        for n, r in names:
            parent, _, leaf = n.rpartition(".")
            if parent == scope and LAYER_SIGNALS.match(leaf):
                picked.append(f"{n}{r}")
    lines = [f"[*] hwqnn: {vcd.name}", f'[dumpfile] "{vcd.resolve()}"']
    if at_ns is not None:
        lines.append(f"[timestart] {max(0, round((at_ns - 200) * 1000 / unit_ps))}")
    for name in picked:
        lines.append(("@22\n" if "[" in name else "@28\n") + name)  # hex buses, binary bits
    data = ("\n".join(lines) + "\n").encode()
    write_bytes(dest, lambda f: f.write(data))
    return dest
