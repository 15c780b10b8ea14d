"""``kill -9`` at random moments during ``hwqnn export`` and ``hwqnn flow`` (20 times each): no
artifact is ever left half-written at its path (each one present parses whole), a killed flow
never leaves ``report.json`` behind, and the next run succeeds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hwqnn import bundle as B  # noqa: N812
from hwqnn.cli import main

pytestmark = pytest.mark.slow
KILLS = 20
HWQNN = [sys.executable, "-m", "hwqnn.cli"]


def _run(args: list[str], kill_after: float | None = None) -> bool:
    """Run hwqnn; with ``kill_after``, SIGKILL its process group then. True if it exited."""
    p = subprocess.Popen(
        [*HWQNN, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the group: Verilator's make and compilers die with it
    )
    try:
        p.wait(timeout=kill_after)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return False


def _whole(path: Path) -> None:
    """An artifact at its final path parses whole."""
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".npz":
        B.load(path)
    elif path.suffix == ".pt":
        torch.load(path, weights_only=False)
    elif path.suffix == ".png":
        assert path.read_bytes()[-8:] == b"IEND\xaeB`\x82", path


def _check_dir(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith(".") and "build" not in p.parts:
            _whole(p)


def test_kill_export(tmp_path: Path) -> None:
    train = tmp_path / "t"
    assert main(["train", "--data", "synthetic", "--arch", "mlp:32x2", "--epochs", "1",
                 "--out", str(train)]) == 0  # fmt: skip
    out = tmp_path / "out" / "b.npz"
    args = ["export", str(train / "model.pt"), "-o", str(out)]
    t0 = time.perf_counter()
    assert _run(args)
    full = time.perf_counter() - t0
    ref = B.load(out).digest()
    rng = random.Random(0)
    for _ in range(KILLS):
        out.unlink(missing_ok=True)
        _run(args, kill_after=rng.uniform(0.0, full))
        if out.exists():
            assert B.load(out).digest() == ref  # never a partial bundle at the path
        assert all(p.name.startswith(".b.npz.") for p in out.parent.iterdir() if p != out)
    assert _run(args) and B.load(out).digest() == ref


def test_kill_flow(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["flow", "--data", "synthetic", "--arch", "mlp:16", "--epochs", "1", "-n", "40",
            "--synth", "none", "--out", str(run)]  # fmt: skip
    t0 = time.perf_counter()
    assert _run(args)
    full = time.perf_counter() - t0
    assert json.loads((run / "report.json").read_text())["mismatches"] == 0
    last = (run / "report.json").read_bytes()
    rng = random.Random(1)
    kills = 0
    while kills < KILLS:
        if _run(args, kill_after=rng.uniform(0.0, full)):
            last = (run / "report.json").read_bytes()  # finished before the kill
            continue
        kills += 1
        _check_dir(run)
        # a report only for a run whose every artifact is there (the kill may have come between
        # writing it and exiting): otherwise none, or the last finished run's, untouched
        report = run / "report.json"
        if report.exists() and report.read_bytes() != last:
            assert json.loads(report.read_text())["mismatches"] == 0
            for f in ("bundle.npz", "sim.json", "rtl/manifest.json", "ops.json", "report.md"):
                assert (run / f).is_file(), f
            last = report.read_bytes()
    assert _run(args)
    report = json.loads((run / "report.json").read_text())
    assert report["mismatches"] == 0 and report["c_vs_golden_mismatches"] == 0
