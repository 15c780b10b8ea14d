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


# ---- QONNX graphs, bounded before anything is allocated or run ----------------------------------


def _graph(
    in_dims: list[int] | None = None, op: str = "MatMul", domain: str = "", opset: int = 13,
    lie: bool = False, meta: dict[str, str] | None = None,
) -> bytes:  # fmt: skip
    from onnx import TensorProto, helper

    in_dims = in_dims or [1, 4]
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], [1.0] * 8)
    if lie:  # claims a billion columns, holds eight values
        w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], [1.0] * 8)
        w.dims[1] = 1_000_000_000
    node = helper.make_node(op, ["x", "w"], ["y"], domain=domain, name="n0")
    g = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    for k, v in (meta or {}).items():
        helper.set_model_props(m, {k: v})
    return bytes(m.SerializeToString())


HOSTILE_GRAPHS = {
    "empty file": (b"", "an empty file"),
    "not onnx": (b"\x00garbage\xff" * 10, "not a readable ONNX model"),
    "huge declared input": (_graph([1, 1, 60000, 60000]), "over the 16,777,216 limit"),
    "lying initializer": (_graph(lie=True), "initializer 'w'"),
    "unknown op": (_graph(op="Frobnicate"), "the graph does not run"),
    "unknown domain": (_graph(domain="evil.ops"), "the graph does not run"),
    "newer opset": (_graph(opset=99), "the graph does not run"),
    "deep metadata": (
        _graph(meta={"hwqnn.info": "[" * 100_000 + "]" * 100_000}),
        "nested 100000 deep",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_GRAPHS))
def test_a_hostile_qonnx_graph_is_one_line_naming_the_file(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, message = HOSTILE_GRAPHS[case]
    model = tmp_path / "m.onnx"
    model.write_bytes(data)
    out = tmp_path / "b.npz"
    assert main(["import", str(model), "-o", str(out)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"hwqnn: error: {model}") and message in line, line
    assert not out.exists()


def test_a_graph_without_input_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from hwqnn.onnxio.bounds import GraphBoundsError, read_model

    c = helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])
    node = helper.make_node("Identity", ["c"], ["y"])
    g = helper.make_graph(
        [node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [c]
    )
    p = tmp_path / "m.onnx"
    p.write_bytes(helper.make_model(g).SerializeToString())
    with pytest.raises(GraphBoundsError, match="the graph has no input"):
        read_model(p)


def test_a_ray_address_nobody_serves_fails_in_bounded_time() -> None:
    import time

    from hwqnn.cluster import check_reachable
    from hwqnn.errors import InputError, ToolError

    t0 = time.monotonic()
    with pytest.raises(ToolError, match=r"--ray 127\.0\.0\.1:1: no Ray head answers there"):
        check_reachable("127.0.0.1:1", timeout=2.0)
    assert time.monotonic() - t0 < 5.0
    with pytest.raises(InputError, match="expected 'local' or HOST:PORT"):
        check_reachable("nowhere")


# ---- a run directory never mixes two runs -------------------------------------------------------


def test_a_failed_flow_leaves_no_output_of_an_earlier_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    for d in ("rtl", "synth", "train", "build"):
        (out / d).mkdir(parents=True)
        (out / d / "old.txt").write_text("earlier run")
    for f in ("sim.json", "ops.json", "ops.png", "report.json", "report.md", "bundle.npz"):
        (out / f).write_text("earlier run")
    (out / "rtl" / ".hwqnn_top.v.abc123.tmp").write_text("a killed run's temporary file")
    bad = tmp_path / "b.npz"
    bad.write_bytes(b"not a bundle")
    assert main(["flow", "--data", "synthetic", "--bundle", str(bad), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("hwqnn: error:")  # after the bar
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert left == ["FAILED.txt", "build", "build/old.txt"]  # build/ is a content-keyed cache


def test_the_users_bundle_inside_the_run_directory_is_kept(tmp_path: Path) -> None:
    from hwqnn.pipeline import _prepare_run_dir

    out = tmp_path / "run"
    (out / "train").mkdir(parents=True)
    mine = out / "bundle.npz"
    mine.write_text("the user's")
    _prepare_run_dir(out, mine)
    assert mine.read_text() == "the user's" and not (out / "train").exists()


def test_a_failed_training_leaves_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hwqnn import train
    from hwqnn.errors import InputError

    real_fit = train.fit

    def fit(model: object, *a: object, **k: object) -> object:
        if "float" in str(k.get("desc", "")):
            raise InputError("the float twin diverged")
        return real_fit(model, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(train, "fit", fit)
    out = tmp_path / "t"
    out.mkdir()
    (out / "metrics.json").write_text("earlier run")
    args = ["train", "--data", "synthetic", "--arch", "mlp:16", "--epochs", "1", "--float-twin"]
    assert main([*args, "--out", str(out)]) == 2
    assert "the float twin diverged" in _one_line(capsys)
    assert list(out.iterdir()) == []


# ---- children die with hwqnn --------------------------------------------------------------------

HOLDER = """
import signal
import sys
# as when run from a terminal: a runner started in the background (``cmd &``) passes SIGINT on
# ignored, and Python would keep ignoring it
signal.signal(signal.SIGINT, signal.default_int_handler)
from hwqnn import procs
procs.run(["sh", "-c", "sleep {t} & sleep {t}; wait"], capture_output=True)
"""


def _survivors(marker: str) -> list[str]:
    import subprocess

    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if line.split(None, 1)[-1] == marker]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_the_tools_under_hwqnn_die_with_it(sig: str) -> None:
    """``kill -INT`` of the hwqnn process alone and ``kill -9`` leave no tool running: the tool
    and what it started (here a shell and two sleeps) are gone 2 s later."""
    import signal
    import subprocess
    import sys
    import time

    t = f"{37 + (sig == 'SIGKILL')}.{os.getpid() % 1000:03d}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(t=t)])
    deadline = time.monotonic() + 20
    while len(_survivors(f"sleep {t}")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_survivors(f"sleep {t}")) == 2, "the tool did not start"
    holder.send_signal(getattr(signal, sig))
    holder.wait(timeout=10)
    time.sleep(2)
    assert _survivors(f"sleep {t}") == []


PEAK = """
import json
import resource
import sys
from pathlib import Path
from hwqnn import procs
ballast = b"\\1" * (400 << 20)  # hwqnn's own peak: 400 MB more, then freed
del ballast
tool = [sys.executable, "-c", "b = b'\\1' * (100 << 20)"]  # a tool of about 100 MB
out = Path("tool.rss")  # relative to here, while the tool runs elsewhere (as synth's do)
Path("elsewhere").mkdir()
procs.popen(tool, out, cwd="elsewhere").wait()
print(json.dumps({"reaper": procs.peak_rss_mb(out),
                  "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def test_a_tools_peak_memory_is_its_own_not_hwqnns(tmp_path: Path) -> None:
    """The peak memory ``hwqnn synth`` reports is the tools' own. Linux hands a child the peak
    of the process that spawned it, so ``RUSAGE_CHILDREN`` in hwqnn reads at least hwqnn's own
    peak (400 MB here, against a 100 MB tool); the reaper, small, measures the tool."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    peak = json.loads(res.stdout)
    assert 100 <= peak["reaper"] < 160, peak  # the tool: 100 MB and an interpreter
    assert peak["children"] >= 400, peak  # what hwqnn read before: its own peak


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    from hwqnn.atomic import write_json

    stale = tmp_path / ".out.json.k2x9q.tmp"
    stale.write_text("half of a file: the writer was killed")
    other = tmp_path / ".other.json.k2x9q.tmp"
    other.write_text("another target's")
    write_json(tmp_path / "out.json", {"ok": 1})
    assert not stale.exists() and other.exists()
    assert json.loads((tmp_path / "out.json").read_text()) == {"ok": 1}
