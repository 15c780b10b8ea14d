"""Inject a wiring fault into generated Verilog: two input lanes of ``s_axis_tdata`` crossed
where the top takes them, for checking that the proof (``hwqnn prove --rtl``) and the
simulation (``hwqnn sim --rtl``) find it.

    hwqnn rtl runs/tiny/bundle.npz -o runs/tiny/rtl
    python examples/swap_lanes.py runs/tiny/rtl runs/swapped/rtl --lanes 0 1
    hwqnn prove runs/tiny/bundle.npz --rtl runs/swapped/rtl -o runs/swapped/prove

Lane ``j`` is value ``j`` of a beat (``R`` bits at ``R*j``, ``R`` the manifest's
``ports.in_bits``). Every read of the beat's payload slice ``s_axis_tdata[H:0]`` in the top
module is rewritten as the same bits with lanes ``a`` and ``b`` exchanged; the rest of the
directory (manifest, driver header) is copied. A net whose weights on both lanes are equal in
every neuron cannot tell the difference, and the proof rightly finds none.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from hwqnn.hw.manifest import load_network


def swapped(hi: int, r: int, a: int, b: int) -> str:
    """``s_axis_tdata[hi:0]`` as a concatenation with lanes ``a`` and ``b`` (``r`` bits each)
    exchanged."""
    lanes = [f"s_axis_tdata[{r * j + r - 1}:{r * j}]" for j in range((hi + 1) // r)]
    lanes[a], lanes[b] = lanes[b], lanes[a]
    return "{" + ", ".join(reversed(lanes)) + "}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rtl_dir", help="a directory written by 'hwqnn rtl'")
    ap.add_argument("output", help="the directory to write (manifest and edited Verilog)")
    ap.add_argument("--lanes", type=int, nargs=2, default=(0, 1), metavar=("A", "B"))
    args = ap.parse_args()
    man = load_network(Path(args.rtl_dir))
    r, chunk = man.ports.in_bits, man.ports.in_chunk
    a, b = args.lanes
    if not (0 <= a < chunk and 0 <= b < chunk and a != b):
        ap.error(f"--lanes: two different lanes in 0..{chunk - 1}")
    text = man.verilog_path.read_text()
    pattern = re.compile(rf"s_axis_tdata\[{chunk * r - 1}:0\]")
    edited, n = pattern.subn(swapped(chunk * r - 1, r, a, b), text)
    if n == 0:
        raise SystemExit(f"{man.verilog_path}: no read of s_axis_tdata[{chunk * r - 1}:0] found")
    out = Path(args.output)
    shutil.copytree(man.dir, out, dirs_exist_ok=True)
    (out / man.verilog).write_text(edited)
    print(f"{out / man.verilog}: lanes {a} and {b} crossed at {n} read(s) of s_axis_tdata")


if __name__ == "__main__":
    main()
