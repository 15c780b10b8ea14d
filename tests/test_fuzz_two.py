"""Property-based fuzzing (hypothesis) of the surfaces of issue 21: the command line (every
numeric flag of every subcommand, found by reading the parser), the manifest of an RTL
directory (mutated JSON, hostile names, nesting) and QONNX graphs (mutated shapes, sizes, ops,
opsets, metadata and bytes). The promise for every variant is the bundle suite's: a refusal is
one line naming the file or the flag (exit status 2 from the CLI, no traceback), an acceptance
reads what the input says, and nothing allocates beyond a bound.

``HWQNN_FUZZ_EXAMPLES`` and ``HWQNN_FUZZ_STATS`` work as in ``tests/test_fuzz.py``."""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwqnn.cli import build_parser, main
from hwqnn.errors import HwqnnError
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import choose_folding
from hwqnn.hw.manifest import Manifest, ManifestError, load
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle

EXAMPLES = int(os.environ.get("HWQNN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="HWQNN_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STATS: Counter[str] = Counter()
PEAK: Counter[str] = Counter()  # the largest traced allocation per target, bytes


@pytest.fixture(scope="module", autouse=True)
def _stats() -> Iterator[None]:
    yield
    out = os.environ.get("HWQNN_FUZZ_STATS")
    if out:
        data = {"counts": dict(sorted(STATS.items())), "peak_bytes": dict(sorted(PEAK.items()))}
        Path(out).write_text(json.dumps(data, indent=1) + "\n")


# ---- argv: every numeric flag of every subcommand -----------------------------------------------


def _numeric_flags() -> list[tuple[str, str]]:
    """``(subcommand, flag)`` for every flag whose value is a number, read from the parser."""
    ap = build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for name, p in sorted(sub.choices.items()):
        for a in p._actions:
            fn = getattr(a.type, "__name__", "")
            if a.option_strings and (a.type in (int, float) or "integer" in fn
                                     or fn in ("positive", "finite", "nonzero")):  # fmt: skip
                out.append((name, a.option_strings[-1]))
    return out


NUMERIC = _numeric_flags()
POSITIONAL = {  # what each subcommand needs before its flags; none of it exists
    "dse": ["none.npz", "-o", "{d}/dse"], "export": ["none.pt", "-o", "{d}/b.npz"],
    "export-onnx": ["none.npz", "-o", "{d}/m.onnx"], "flat": ["none.npz", "-o", "{d}/f.hwq"],
    "golden": ["none.npz"], "import": ["none.onnx", "-o", "{d}/b.npz"], "ops": ["none.npz"],
    "rtl": ["none.npz", "-o", "{d}/rtl"], "sim": ["none.npz"], "synth": ["none", "-o", "{d}/s"],
    "verify": ["none.npz"], "bench": ["golden", "--bundle", "none.npz"],
    "train": ["--data", "none-dir"], "flow": ["--data", "none-dir", "--out", "{d}/run"],
}  # fmt: skip
VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "0",
            "-0",
            "1/255",
            "1/0",
            "0x10",
            "1e400",
            "nan",
            "-inf",
            "",
            " 3",
            "9" * 4000,
            "\x1b[2J",
            "3\n4",
        ]
    ),
    st.text(max_size=6),
)


def test_the_parser_has_the_flags_issue_21_names() -> None:
    found = set(NUMERIC)
    wanted = [("train", "--batch-size"), ("flow", "--activity-images"), ("dse", "--jobs"),
              ("import", "--input-scale"), ("sim", "--clock-mhz"), ("golden", "-n")]  # fmt: skip
    for want in wanted:
        assert want in found
    assert {name for name, _ in NUMERIC} >= set(POSITIONAL) - {"export", "flat", "bench"}


@FUZZ
@given(case=st.sampled_from(NUMERIC), value=VALUES)
def test_every_numeric_flag_keeps_the_promise(
    capsys: pytest.CaptureFixture[str], case: tuple[str, str], value: str
) -> None:
    cmd, flag = case
    with tempfile.TemporaryDirectory() as td:
        argv = [cmd, *(a.format(d=td) for a in POSITIONAL.get(cmd, [])), f"{flag}={value}"]
        capsys.readouterr()
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's refusal
            rc = int(e.code or 0)
            STATS[f"argv-refused-at-parse:{cmd}"] += 1
        err = capsys.readouterr().err
        STATS[f"argv:{cmd}"] += 1
        assert rc == 2, (argv, err)
        last = err.strip().splitlines()[-1]  # after a progress bar, if any
        assert last.startswith(("hwqnn", "usage")) and "Traceback" not in err, err
        assert "\x1b" not in last and len(last) < 800, last
        assert sorted(os.listdir(td)) in ([], ["run"]), os.listdir(td)  # flow: FAILED.txt only


# ---- manifests -----------------------------------------------------------------------------------

VALID_DIR = Path(tempfile.mkdtemp(prefix="hwqnn-fuzz-rtl-"))
_b = random_bundle(3, 50, (24,), 5)
VALID_MAN: Manifest = generate(plan(_b, choose_folding(_b, 30, 16), 16), VALID_DIR)
VALID_JSON = VALID_MAN.to_json()
MAN_BOUND = 64 << 20


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


HOSTILE_STRINGS = st.sampled_from([
    "/etc/passwd", "../x.v", "..", "a/b.v", "hwqnn_top; tee -o x log", "x\x1b[2J.v", "x\n.v",
    "", " ", "ä.v", "hwqnn_top.v", "hwqnn_driver.h", "a" * 5000,
])  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | HOSTILE_STRINGS,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=8,
)  # fmt: skip


def _mutate(d: dict[str, Any], path: tuple[Any, ...], op: str, value: Any) -> dict[str, Any]:
    m = copy.deepcopy(d)
    parent: Any = m
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if op == "replace":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif isinstance(parent, dict):
        parent[f"x{len(parent)}"] = value
    else:
        parent.append(value)
    return m


@FUZZ
@given(
    path=st.sampled_from(_paths(VALID_JSON)),
    op=st.sampled_from(["replace", "delete", "add"]),
    value=JSON,
    nest=st.sampled_from([0, 0, 0, 50, 5000, 200_000]),
)
def test_manifest_mutations(path: tuple[Any, ...], op: str, value: Any, nest: int) -> None:
    d = _mutate(VALID_JSON, path, op, value)
    text = json.dumps(d)
    if nest:
        text = "[" * nest + text + "]" * nest
    with tempfile.TemporaryDirectory() as td:
        rtl = Path(td)
        for f in VALID_DIR.iterdir():
            if f.is_file() and f.name != "manifest.json":
                (rtl / f.name).write_bytes(f.read_bytes())
        (rtl / "manifest.json").write_text(text)
        STATS["manifest"] += 1
        tracemalloc.start()
        try:
            man = load(rtl)
        except ManifestError as e:
            msg = str(e)
            assert msg.startswith(str(rtl)) and "\n" not in msg and "\x1b" not in msg, msg
            assert len(msg) < 800, msg
            STATS["manifest-refused"] += 1
            return
        finally:
            PEAK["manifest"] = max(PEAK["manifest"], tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            assert PEAK["manifest"] <= MAN_BOUND
        STATS["manifest-accepted"] += 1
        assert man.verilog_path.resolve().parent == rtl.resolve()  # nothing read outside it
        assert man.to_json() == json.loads(json.dumps(man.to_json()))


# ---- QONNX graphs --------------------------------------------------------------------------------


def _valid_graph() -> bytes:
    from hwqnn.onnxio.export import to_model

    m = to_model(random_bundle(5, 16, (8,), 3, in_bits=1), batch=1)
    return bytes(m.model.SerializeToString())


VALID_ONNX = _valid_graph()
ONNX_BOUND = 256 << 20


def _mutated_graph(kind: str, index: int, value: int) -> bytes:
    import onnx

    m = onnx.load_from_string(VALID_ONNX)
    g = m.graph
    if kind == "initializer-dim" and g.initializer:
        t = g.initializer[index % len(g.initializer)]
        if t.dims:
            t.dims[index % len(t.dims)] = value
    elif kind == "input-dim":
        dims = g.input[0].type.tensor_type.shape.dim
        dims[index % len(dims)].dim_value = value
    elif kind == "op-type" and g.node:
        g.node[index % len(g.node)].op_type = ["Frobnicate", "Conv", "MaxPool", "Gemm", ""][
            value % 5]  # fmt: skip
    elif kind == "domain" and g.node:
        g.node[index % len(g.node)].domain = ["evil.ops", "", "qonnx.custom_op.general"][value % 3]
    elif kind == "opset":
        m.opset_import[0].version = value % 200
    elif kind == "metadata":
        text = "[" * (value % 100_000) + "]" * (value % 100_000)
        onnx.helper.set_model_props(m, {"hwqnn.info": text, "hwqnn.classes": '["a",1]'})
    elif kind == "drop-input":
        del g.input[:]
    data = bytearray(m.SerializeToString())
    if kind == "bytes" and data:
        data[index % len(data)] = value % 256
    return bytes(data)


@FUZZ
@given(
    kind=st.sampled_from(
        [
            "initializer-dim",
            "input-dim",
            "op-type",
            "domain",
            "opset",
            "metadata",
            "drop-input",
            "bytes",
        ]
    ),
    index=st.integers(0, 10_000),
    value=st.one_of(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 2, 3, 60_000, 10**9])),
)
def test_qonnx_graph_mutations(kind: str, index: int, value: int) -> None:
    from hwqnn.onnxio.importer import import_qonnx

    data = _mutated_graph(kind, index, value)
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "m.onnx"
        path.write_bytes(data)
        STATS[f"onnx:{kind}"] += 1
        tracemalloc.start()
        try:
            import_qonnx(path)
        except HwqnnError as e:
            msg = str(e)
            assert "\n" not in msg and "\x1b" not in msg and len(msg) < 800, msg
            assert msg.startswith((str(path), "node ")), msg  # the file, or the node it names
            STATS[f"onnx-refused:{kind}"] += 1
            return
        finally:
            PEAK["onnx"] = max(PEAK["onnx"], tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            assert PEAK["onnx"] <= ONNX_BOUND
        STATS[f"onnx-accepted:{kind}"] += 1
