# amaranth: UnusedElaboratable=no
"""Slow tier: the simulation entry points a hardware engineer types. An injected fault
(``examples/inject_fault.py``) through ``hwqnn sim --rtl-bundle`` and ``--rtl``: the report
names the image, the layer and neuron (where it can), the waveform; ``make -C sim`` runs the
package's benches with cocotb's knobs, on both simulators."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwqnn.bundle import load, save
from hwqnn.randnet import random_bundle
from hwqnn.sim.waves import vcd_signals

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HWQNN = Path(sys.executable).parent / "hwqnn"


def _pair(tmp_path: Path, layer: int, neuron: int, delta: int) -> tuple[Path, Path]:
    good, bad = tmp_path / "good.npz", tmp_path / "broken.npz"
    save(random_bundle(5, 64, (24, 16), 4), good)
    subprocess.run(
        [sys.executable, str(ROOT / "examples/inject_fault.py"), str(good), str(bad),
         "--layer", str(layer), "--neuron", str(neuron), "--delta", str(delta)],
        check=True, capture_output=True,
    )  # fmt: skip
    g, b = load(good), load(bad)
    moved = [i for i, (x, y) in enumerate(zip(g.layers, b.layers, strict=True))
             if not np.array_equal(x.thresholds, y.thresholds)]  # fmt: skip
    assert moved == [layer]  # the example moved exactly the threshold asked for
    return good, bad


def test_rtl_bundle_names_layer_neuron_and_waveform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hwqnn.cli import main

    good, bad = _pair(tmp_path, 1, 7, 6)
    out = tmp_path / "out"
    args = ["sim", str(good), "--rtl-bundle", str(bad), "--all", "--jobs", "2",
            "--data", "synthetic", "--out", str(out)]  # fmt: skip
    assert main(args) == 1  # a mismatch is a failed check, not bad input
    res = json.loads((out / "sim.json").read_text())
    fm = res["first_mismatch"]
    assert res["mismatches"] > 0 and fm is not None
    assert (fm["first_bad_layer"]["layer"], fm["first_bad_layer"]["neuron"]) == (1, 7)
    vcd = Path(fm["waves"])
    assert vcd.parent == out / "waves" and vcd.name == f"mismatch-image{fm['image']}.vcd"
    names = {n for n, _ in vcd_signals(vcd)[0]}
    assert {"hwqnn_top.s_axis_tdata", "hwqnn_top.m_axis_tdata"} <= names
    assert Path(fm["waves_gtkw"]).is_file() and fm["waves_time_ns"] > 0
    err = capsys.readouterr().err
    assert f"image {fm['image']}" in err and "layer 1, neuron 7" in err and str(vcd) in err


def test_rtl_dir_of_other_verilog_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Verilog handed in as a directory (here generated from the broken copy) is simulated
    against the good bundle: the mismatch is found and its waveform written, though no unit of
    the given Verilog can be re-run alone."""
    from hwqnn.cli import main

    good, bad = _pair(tmp_path, 0, 3, 400)
    rtl = tmp_path / "rtl"
    assert main(["rtl", str(bad), "-o", str(rtl)]) == 0
    out = tmp_path / "out"
    args = ["sim", str(good), "--rtl", str(rtl), "-n", "40", "--engine", "cpp",
            "--data", "synthetic", "--out", str(out)]  # fmt: skip
    assert main(args) == 1
    fm = json.loads((out / "sim.json").read_text())["first_mismatch"]
    assert fm is not None and Path(fm["waves"]).is_file()
    assert fm["golden_score"] != fm["rtl_score"]
    assert main(["sim", str(bad), "--rtl", str(rtl), "-n", "40", "--engine", "cpp",
                 "--data", "synthetic", "--out", str(tmp_path / "same")]) == 0  # fmt: skip
    capsys.readouterr()


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_make_sim_runs_the_benches_with_cocotb_knobs(tmp_path: Path, sim: str) -> None:
    bundle = tmp_path / "b.npz"
    save(random_bundle(6, 64, (12,), 4), bundle)
    out = tmp_path / "out"
    cmd = ["make", "-s", "-C", str(ROOT / "sim"), f"SIM={sim}", f"BUNDLE={bundle}", "N=3",
           "FIRST=5", "STALLS=1", "RANDOM_SEED=9", "TESTCASE=reset_mid_frame", "WAVES=1",
           "DATA=synthetic", f"OUT={out}", f"HWQNN={HWQNN}"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "sim.json").read_text())
    assert res["engine"] == {"verilator": "cocotb", "icarus": "icarus"}[sim]
    assert (res["images"], res["mismatches"], res["stalls"]) == (3, 0, True)
    assert Path(res["waves"]).is_file() and Path(res["waves"]).parent == out / "waves"
    bad = subprocess.run([*cmd[:4], "SIM=questa"], capture_output=True, text=True)
    assert bad.returncode != 0 and "SIM must be verilator, icarus or cpp" in bad.stderr


def test_flow_with_rtl_bundle_reports_the_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole flow on a good bundle with the Verilog of a broken copy: it fails (status 1),
    and its report names the image, layer, neuron and waveform under the run's ``waves/``."""
    from hwqnn.cli import main

    good, bad = _pair(tmp_path, 1, 2, 6)
    out = tmp_path / "run"
    args = ["flow", "--bundle", str(good), "--rtl-bundle", str(bad), "--data", "synthetic",
            "--synth", "none", "-n", "60", "--out", str(out)]  # fmt: skip
    assert main(args) == 1
    fm = json.loads((out / "sim.json").read_text())["first_mismatch"]
    assert (fm["first_bad_layer"]["layer"], fm["first_bad_layer"]["neuron"]) == (1, 2)
    report = (out / "report.md").read_text()
    assert f"image {fm['image']}" in report and "layer 1, neuron 2" in report
    assert str(out / "waves" / f"mismatch-image{fm['image']}.vcd") in report
    assert Path(fm["waves"]).is_file()
    capsys.readouterr()
