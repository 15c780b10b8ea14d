"""Switching activity of the datapath, per layer, from Verilator's toggle coverage.

The harness is built with ``--coverage-toggle``; every signal bit of the design then counts its
0->1 and 1->0 transitions. Summed per layer (the ``net.layerK`` module and everything under it)
and divided by the simulated cycles, that is toggles per cycle: a dynamic-power proxy (dynamic
power is proportional to switched capacitance times toggles).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from hwqnn.errors import ToolError
from hwqnn.hw.manifest import Manifest
from hwqnn.results import Activity, LayerActivity
from hwqnn.sim.runner import run_harness

_LINE = re.compile(r"^C '(.*)' (\d+)$")


def parse_coverage(path: Path) -> dict[str, dict[str, int]]:
    """``coverage.dat`` -> per hierarchy: ``{"toggles": n, "bits": b}`` (toggle points only)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"toggles": 0, "bits": 0})
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        fields = dict(kv.split("\x02", 1) for kv in m.group(1).split("\x01") if "\x02" in kv)
        if fields.get("t") != "toggle":
            continue
        h = fields.get("h", "")
        out[h]["toggles"] += int(m.group(2))
        if fields.get("o", "").endswith(":0->1"):
            out[h]["bits"] += 1
    return dict(out)


def per_layer(cov: dict[str, dict[str, int]], layers: int, cycles: int) -> list[LayerActivity]:
    """Toggles per cycle and the activity factor (toggles / bit / cycle) of each layer."""
    res: list[LayerActivity] = []
    for i in range(layers):
        key = f".net.layer{i}"
        t = sum(
            v["toggles"]
            for h, v in cov.items()
            if key in h and h.split(key, 1)[1][:1] in ("", ".", "_")
        )
        b = sum(
            v["bits"]
            for h, v in cov.items()
            if key in h and h.split(key, 1)[1][:1] in ("", ".", "_")
        )
        res.append(
            LayerActivity(
                layer=i,
                toggles=t,
                signal_bits=b,
                toggles_per_cycle=t / cycles if cycles else 0.0,
                activity_factor=t / (b * cycles) if b and cycles else 0.0,
            )
        )
    return res


def measure_activity(
    manifest: Manifest, build_dir: Path, images: np.ndarray, layers: int
) -> Activity:
    """Run ``images`` through a toggle-coverage build of the RTL; per-layer activity."""
    cov_file = build_dir / "toggle-coverage.dat"
    cov_file.unlink(missing_ok=True)
    r = run_harness(manifest, build_dir, images, coverage_file=cov_file)
    if not cov_file.is_file():
        raise ToolError(f"{cov_file}: the coverage build wrote no toggle data")
    return Activity(
        images=len(images),
        cycles=r.cycles,
        build_seconds=round(r.build_seconds, 1),
        layers=per_layer(parse_coverage(cov_file), layers, r.cycles),
    )
