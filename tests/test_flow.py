"""The main job: bad input meets one clear line and never a run directory that looks complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwqnn import bundle as bundle_io
from hwqnn.cli import main
from hwqnn.randnet import random_bundle


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("hwqnn: error")]
    assert len(err) == 1
    return err[0]


def test_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["flow", "--data", str(tmp_path / "nodata"), "--out", str(out)]) == 2
    assert "t10k-images-idx3-ubyte[.gz] not found" in _one_error_line(capsys)
    assert (out / "FAILED.txt").is_file() and not (out / "report.json").exists()


def test_corrupt_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "b.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "run"
    (out).mkdir()
    (out / "report.json").write_text("{}")  # a stale report from an earlier run
    assert main(["flow", "--data", "synthetic", "--bundle", str(bad), "--out", str(out)]) == 2
    assert "b.npz: not a readable bundle" in _one_error_line(capsys)
    assert not (out / "report.json").exists()  # the stale report is gone, FAILED.txt says why
    assert "not a readable bundle" in (out / "FAILED.txt").read_text()


def test_impossible_folding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = bundle_io.save(random_bundle(0, 64, (16,), 4), tmp_path / "b.npz")
    args = ["flow", "--data", "synthetic", "--bundle", str(b), "--out", str(tmp_path / "r")]
    assert main([*args, "--fold", "4x16,9x1"]) == 2
    assert "layer 1: PE must be in 1..4 (its outputs), not 9" in _one_error_line(capsys)
    assert main(["rtl", str(b), "-o", str(tmp_path / "rtl"), "--fold", "4x16"]) == 2
    assert "folding names 1 layer(s), the bundle has 2" in _one_error_line(capsys)


def test_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["flow", "--data", "synthetic", "--out", str(blocker / "run")]) == 2
    assert f"{blocker / 'run'}: cannot write the run directory" in _one_error_line(capsys)


def test_foreign_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "weights.npz"
    np.savez(p, w=np.zeros(3))
    assert main(["golden", str(p), "--data", "synthetic"]) == 2
    assert "field 'meta': expected JSON text, found nothing" in _one_error_line(capsys)
