"""How many 7-series LUT6 sites a Yosys netlist's LUT cells need once two share a site.

Yosys's ``stat`` counts LUT *cells*; Vivado's utilization report (where BNN-PYNQ's and FINN's
published LUT figures come from) counts *sites*. A 7-series LUT6 site is a LUT6_2: it computes
one function of six inputs, or two functions of the same five inputs (O6 and O5, I5 held high),
"as long as these two functions share common inputs" (Xilinx UG474, 7 Series FPGAs CLB User
Guide, "Look-Up Table (LUT)"); Vivado's synthesis combines such pairs by default (its
``-no_lc`` switch turns LUT combining off). ABC9, the mapper of ``synth_xilinx``, leans on this:
it prices LUT sizes 3 to 6 alike and often splits a 6-input function into a 2-input LUT and
two 5-input LUTs of the same five signals (a first-level counter of the compressor tree,
``hwqnn.hw.compressor``), three cells where Vivado places two sites.

:func:`lut6_sites` estimates the sites: LUT cells of at most five inputs are paired greedily
(most inputs first, each with the unpaired LUT of the most inputs among those that share an
input with it and keep the pair at five inputs or fewer); every pair is one site, every other
LUT one. Pairs must share an input, as Vivado's LUT combining asks (unrelated LUTs can also
share a site after placement, which this leaves out), so the estimate errs high: it is an
estimate of Vivado's count from Yosys's netlist, not a placement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

LUT_CELL = re.compile(r"LUT[1-6]|INV")
SITE_INPUTS = 5  # inputs two functions of one LUT6_2 share
FANOUT_CAP = 256  # nets feeding more LUTs than this are not searched for partners (enables)


@dataclass(frozen=True)
class LutSites:
    """LUT cells and the sites they need (``pairs`` of them share one)."""

    cells: int
    sites: int
    pairs: int


def lut_inputs(cells: Mapping[str, Mapping[str, object]]) -> list[frozenset[int]]:
    """The input nets of each LUT cell (and inverter) in a Yosys JSON module's ``cells``;
    constant inputs ("0", "1", "x") are not inputs."""
    out = []
    for cell in cells.values():
        if not LUT_CELL.fullmatch(str(cell.get("type", ""))):
            continue
        conns = cell.get("connections", {})
        assert isinstance(conns, Mapping)
        nets = {
            b for port, bits in conns.items() if port != "O" for b in bits if isinstance(b, int)
        }
        out.append(frozenset(nets))
    return out


def pair_luts(luts: list[frozenset[int]]) -> LutSites:
    """Cells, sites and pairs of :func:`lut_pairs`."""
    pairs = len(lut_pairs(luts))
    return LutSites(cells=len(luts), sites=len(luts) - pairs, pairs=pairs)


def lut_pairs(luts: list[frozenset[int]]) -> list[tuple[int, int]]:
    """Pairs of LUTs (indices) of at most :data:`SITE_INPUTS` inputs that share an input and
    together read at most that many nets: a greedy matching, deterministic."""
    small = [i for i, s in enumerate(luts) if len(s) <= SITE_INPUTS]
    readers: dict[int, list[int]] = {}
    for i in small:
        for net in luts[i]:
            readers.setdefault(net, []).append(i)
    paired: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i in sorted(small, key=lambda i: (-len(luts[i]), i)):
        if i in paired:
            continue
        best = None
        for net in sorted(luts[i]):
            if len(readers[net]) > FANOUT_CAP:
                continue
            for j in readers[net]:
                if j == i or j in paired or len(luts[i] | luts[j]) > SITE_INPUTS:
                    continue
                if best is None or (len(luts[j]), -j) > (len(luts[best]), -best):
                    best = j
        if best is not None:
            paired.update((i, best))
            pairs.append((i, best))
    return pairs


def lut6_sites(netlist: Mapping[str, object], modules: Iterable[str] | None = None) -> LutSites:
    """:func:`pair_luts` over the LUT cells of a Yosys ``write_json`` netlist (each module on
    its own; ``modules`` limits which), summed."""
    mods = netlist.get("modules", {})
    assert isinstance(mods, Mapping)
    cells = sites = pairs = 0
    for name, mod in mods.items():
        if modules is not None and name not in modules:
            continue
        r = pair_luts(lut_inputs(mod.get("cells", {})))
        cells, sites, pairs = cells + r.cells, sites + r.sites, pairs + r.pairs
    return LutSites(cells=cells, sites=sites, pairs=pairs)
