"""The command line: each stage end to end on synthetic data, and bad input as one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwqnn.cli import main


def test_train_export_verify_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--data", "synthetic", "--arch", "mlp:32x2", "--epochs", "2", "--float-twin"]
    assert main([*args, "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["quant_acc"] <= 1.0 and "float_acc" in metrics
    assert main(["export", str(run / "model.pt"), "-o", str(run / "b.npz")]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "verify",
                str(run / "b.npz"),
                "--checkpoint",
                str(run / "model.pt"),
                "--data",
                "synthetic",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["mismatches"] == 0 and res["images"] == 500
    assert res["accuracy_torch"] == res["accuracy_golden"] == res["c"]["accuracy_c"]
    assert res["c"]["mismatches"] == 0 and res["c"]["images"] == 500


def test_missing_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["golden", str(tmp_path / "none.npz"), "--data", "synthetic"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hwqnn: error: {tmp_path / 'none.npz'}: no such bundle file"


def test_missing_dataset_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["train", "--data", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train-images-idx3-ubyte[.gz] not found" in err[0]


def test_bad_arch_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "synthetic", "--arch", "cnn:3", "--out", str(tmp_path)]) == 2
    assert "architecture must look like 'mlp:256x3'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cmd", ["train", "export", "verify", "golden", "rtl", "sim", "flow", "ops", "bench"]
)
def test_every_subcommand_has_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "usage: hwqnn" in capsys.readouterr().out


def test_simulator_failure_is_one_user_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Verilator failure is the tool's word to the user (exit 2), not an internal error."""
    from hwqnn.bundle import save
    from hwqnn.randnet import random_bundle
    from hwqnn.sim import runner

    def broken() -> Path:
        raise runner.SimError("Verilator build failed in b/: %Error: out of memory")

    monkeypatch.setattr(runner, "verilator_root", broken)
    b = tmp_path / "b.npz"
    save(random_bundle(1, 64, (8,), 4), b)
    assert main(["sim", str(b), "-n", "2", "--data", "synthetic", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hwqnn: error: Verilator build failed in b/: %Error: out of memory"]


def test_a_bug_is_not_bad_input(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A plain ValueError from deep inside is an internal error (exit 1), not 'bad input'."""
    import hwqnn.bench

    def bug(*a: object, **k: object) -> int:
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(hwqnn.bench, "golden_cpu", bug)
    assert main(["bench", "golden", "--quick"]) == 1
    assert "internal error: ValueError" in capsys.readouterr().err
