"""Hostile input, round two (issue 21): the RTL directory as a trust boundary, every numeric flag
checked at parse time, labels checked against the classes, messages safe for a terminal. Each
case is one a hostile colleague tried; each must end in one line and exit status 2, having
written nothing outside the output directory and read nothing outside the RTL directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from hwqnn.cli import main
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.manifest import Manifest, ManifestError, load
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle


@pytest.fixture(scope="module")
def rtl(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    b = random_bundle(3, 50, (24,), 5)
    return generate(plan(b, choose_folding(b, 30, 16), 16), tmp_path_factory.mktemp("rtl"))


def _shared_dir(rtl: Manifest, tmp_path: Path, **edits: object) -> Path:
    """A copy of ``rtl``'s directory whose manifest has ``edits`` applied."""
    d = tmp_path / "shared"
    d.mkdir()
    for f in rtl.dir.iterdir():
        if f.is_file():
            (d / f.name).write_bytes(f.read_bytes())
    m = rtl.to_json()
    m.update(edits)
    (d / "manifest.json").write_text(json.dumps(m))
    return d


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "\x1b" not in err and "Traceback" not in err
    return err.strip()


def test_synth_does_not_run_a_top_that_injects_a_yosys_command(
    rtl: Manifest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = _shared_dir(rtl, tmp_path, top="hwqnn_top; tee -q -o injected.txt log PWNED")
    monkeypatch.chdir(tmp_path)
    assert main(["synth", str(d), "-o", str(tmp_path / "out")]) == 2
    assert "field 'top': expected a module name" in _one_line(capsys)
    assert not list(tmp_path.rglob("injected.txt"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../../etc/passwd.v", "sub/x.v", ".hidden.v", "x.v\nx", "hwqnn_top"]
)
def test_synth_reads_no_verilog_named_outside_the_rtl_directory(
    rtl: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    d = _shared_dir(rtl, tmp_path, verilog=name)
    assert main(["synth", str(d), "-o", str(tmp_path / "out")]) == 2
    assert "field 'verilog': expected a file name in the RTL directory" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_verilog_link_out_of_the_rtl_directory_is_refused(rtl: Manifest, tmp_path: Path) -> None:
    secret = tmp_path / "secret.v"
    secret.write_text("module secret; endmodule\n")
    d = _shared_dir(rtl, tmp_path, verilog="link.v")
    os.symlink(secret, d / "link.v")
    with pytest.raises(ManifestError, match="a link out of it"):
        load(d)


def test_a_deeply_nested_manifest_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match="nested too deeply"):
        load(tmp_path)


def test_a_huge_manifest_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with open(tmp_path / "manifest.json", "wb") as f:
        f.truncate((1 << 24) + 1)  # sparse: nothing is written or read
    with pytest.raises(ManifestError, match="larger than"):
        load(tmp_path)


# every numeric flag, checked at parse time: (argv, the flag the one line names)
BAD_FLAGS = [
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--batch-size", "-3"], "--batch-size"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--float-twin", "--float-lr", "nan"], "--float-lr"),
    (["train", "--lr-end", "0"], "--lr-end"),
    (["train", "--seed", "-1"], "--seed"),
    (["golden", "b.npz", "-n", "-5"], "-n"),
    (["verify", "b.npz", "-n", "-5"], "-n"),
    (["sim", "b.npz", "-n", "-5"], "-n"),
    (["flow", "-n", "-5"], "-n"),
    (["flow", "--activity-images", "-1"], "--activity-images"),
    (["import", "m.onnx", "-o", "b.npz", "--check", "-5"], "--check"),
    (["export-onnx", "b.npz", "-o", "m.onnx", "--check", "-5"], "--check"),
    (["import", "m.onnx", "-o", "b.npz", "--raw-bits", "0"], "--raw-bits"),
    (["import", "m.onnx", "-o", "b.npz", "--input-scale", "inf"], "--input-scale"),
    (["import", "m.onnx", "-o", "b.npz", "--input-scale", "0"], "--input-scale"),
    (["import", "m.onnx", "-o", "b.npz", "--input-bias", "nan"], "--input-bias"),
    (["sim", "b.npz", "--clock-mhz", "0"], "--clock-mhz"),
    (["sim", "b.npz", "--clock-mhz", "nan"], "--clock-mhz"),
    (["sim", "b.npz", "--clock-mhz", "-100"], "--clock-mhz"),
    (["flow", "--clock-mhz", "0"], "--clock-mhz"),
    (["synth", "r", "-o", "s", "--target", "ecp5", "--clock-mhz", "0"], "--clock-mhz"),
    (["dse", "b.npz", "-o", "d", "--clock-mhz", "0"], "--clock-mhz"),
    (["dse", "b.npz", "-o", "d", "--jobs", "0"], "--jobs"),
    (["rtl", "b.npz", "-o", "r", "--target-fps", "-1"], "--target-fps"),
    (["rtl", "b.npz", "-o", "r", "--target-cycles", "0"], "--target-cycles"),
    (["rtl", "b.npz", "-o", "r", "--axis-bits", "4"], "--axis-bits"),
    (["train", "--batch-size", "9" * 4000], "--batch-size"),
    (["train", "--batch-size", "100000"], "--batch-size"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_FLAGS, ids=[" ".join(a)[:50] for a, _ in BAD_FLAGS])
def test_every_numeric_flag_is_checked_at_parse_time(
    argv: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    line = _one_line(capsys)
    assert f"argument {flag}" in line and len(line) < 400
    assert not list(tmp_path.iterdir())  # nothing started


def test_a_fraction_is_a_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "b.npz"),
                 "--input-scale", "1/255"]) == 2  # fmt: skip
    assert "none.onnx" in _one_line(capsys)  # it got past the flags to the missing file


def _idx(path: Path, arr: np.ndarray) -> None:
    dims = arr.shape
    head = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(head + arr.astype(np.uint8).tobytes())


def test_labels_outside_the_classes_are_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "fashion"
    d.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 30), ("t10k", 20)):
        _idx(d / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 8, 8)))
        labels = rng.integers(0, 10, n)
        labels[7] = 200
        _idx(d / f"{stem}-labels-idx1-ubyte", labels)
    b = tmp_path / "b.npz"
    from hwqnn.bundle import save

    save(random_bundle(1, 64, (8,), 10), b)
    assert main(["golden", str(b), "--data", str(d)]) == 2
    line = _one_line(capsys)
    assert "t10k-labels-idx1-ubyte: label 7: expected 0..9" in line and "found 200" in line


def test_control_characters_in_a_file_name_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "evil\x1b[2J\nname.npz"
    bad.write_bytes(b"not a bundle")
    assert main(["golden", str(bad), "--data", "synthetic"]) == 2
    line = _one_line(capsys)
    assert "evil\\x1b[2J\\nname.npz" in line


def test_a_long_value_is_cut_with_its_length(
    rtl: Manifest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = rtl.to_json()
    m["ports"]["in_chunk"] = int("9" * 4000)  # type: ignore[index]
    d = tmp_path / "r"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(m))
    assert main(["synth", str(d), "-o", str(tmp_path / "out")]) == 2
    line = _one_line(capsys)
    assert "(4,000 characters)" in line and len(line) < 600
