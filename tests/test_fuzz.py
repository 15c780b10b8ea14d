"""Property-based fuzzing (hypothesis) of what a user hands to hwqnn: bundles mutated at the level
of meta JSON, .npy headers and zip bytes, through the loader and through the subcommands; IDX
files; the folding and architecture parsers. The promise checked for every variant: a refusal is
one ``BundleError``/``DataError``/``ValueError`` line naming the file and the field (exit status 2
from the CLI, no traceback), an acceptance reads exactly what the file says (nothing coerced or
ignored), and no load allocates beyond a small multiple of the valid file's size.

``HWQNN_FUZZ_EXAMPLES`` sets the examples per property (default 150, the same ones every run;
set, they are random); with
``HWQNN_FUZZ_STATS=path`` the counts per target are written there (JSON) at the end."""

from __future__ import annotations

import copy
import gzip
import json
import math
import os
import struct
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwqnn import bundle as B  # noqa: N812
from hwqnn.cli import main
from hwqnn.data import DataError, read_idx
from hwqnn.hw.folding import parse_folding
from hwqnn.model import parse_arch
from tests import hostile as H  # noqa: N812

EXAMPLES = int(os.environ.get("HWQNN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="HWQNN_FUZZ_EXAMPLES" not in os.environ,  # CI: the same examples every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STATS: Counter[str] = Counter()
VALID = H.valid_bundle()
VALID_META = VALID.meta()
VALID_MEMBERS = H.members(VALID)
VALID_ZIP = H.zip_bytes(VALID_MEMBERS)
BOUND = 4 * len(VALID_ZIP) + (12 << 20)


@pytest.fixture(scope="module", autouse=True)
def _stats() -> Iterator[None]:
    yield
    out = os.environ.get("HWQNN_FUZZ_STATS")
    if out:
        Path(out).write_text(json.dumps(dict(sorted(STATS.items())), indent=1) + "\n")


def _load(data: bytes, what: str) -> B.Bundle | None:
    """Load ``data`` as a bundle under the promise; the Bundle or None (refused)."""
    STATS[f"load:{what}"] += 1
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "fuzz.npz"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            b = B.load(path)
        except B.BundleError as e:
            msg = str(e)
            assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
            assert "field '" in msg or "not a readable bundle" in msg, msg
            STATS[f"refused:{what}"] += 1
            return None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak <= BOUND, f"{what}: peak {peak} > {BOUND}"
    STATS[f"accepted:{what}"] += 1
    return b


# ---- meta JSON ---------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(VALID_META)


def _mutate(meta: dict[str, Any], path: tuple[Any, ...], op: str, value: Any) -> dict[str, Any]:
    m = copy.deepcopy(meta)
    parent: Any = m
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if op == "replace":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif isinstance(parent, dict):  # add a sibling key
        parent[f"x{len(parent)}"] = value
    else:
        parent.append(value)
    return m


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    op=st.sampled_from(["replace", "replace", "delete", "add"]),
    value=JSON,
)
def test_meta_mutations(path: tuple[Any, ...], op: str, value: Any) -> None:
    meta = _mutate(VALID_META, path, op, value)
    files = dict(VALID_MEMBERS)
    files["meta.npy"] = H.npy(np.array(json.dumps(meta)))
    b = _load(H.zip_bytes(files), "meta")
    if b is not None:  # accepted: then exactly as written ('info' is optional, {} by default)
        assert b.meta() == {"info": {}, **meta}


V4 = H.valid_v4_bundle()
V4_META = V4.meta()
V4_MEMBERS = H.members(V4)
V4_PATHS = _paths(V4_META)
ENC_WORDS = st.sampled_from(["odd", "unsigned", "signed", "Odd", "", "twos", True, False, 1])


@FUZZ
@given(
    path=st.sampled_from(V4_PATHS),
    op=st.sampled_from(["replace", "replace", "delete", "add"]),
    value=ENC_WORDS | JSON,
)
def test_v4_meta_mutations(path: tuple[Any, ...], op: str, value: Any) -> None:
    """Version 4 (encodings on every layer, a score bias): the same promise."""
    _encoded_meta_holds(V4_META, V4_MEMBERS, (path, op, value), "meta4")


def _encoded_meta_holds(
    meta0: dict[str, Any], members: dict[str, bytes], edit: tuple[Any, str, Any], what: str
) -> None:
    """A mutated meta of a version-4/5 bundle is refused by name, or accepted as written, up to
    what the writer never writes (an encoding key naming the default, a version above the
    oldest that holds the net)."""
    meta = _mutate(meta0, *edit)
    files = dict(members)
    files["meta.npy"] = H.npy(np.array(json.dumps(meta)))
    b = _load(H.zip_bytes(files), what)
    if b is not None:
        want = {"info": {}, **meta, "version": b.version}
        assert meta["version"] >= b.version
        for ly in want["layers"]:
            for k in ("in_enc", "w_enc", "out_enc", "enc"):
                if ly.get(k) == "odd":
                    del ly[k]
        assert b.meta() == want


V5 = H.valid_v5_bundle()
V5_META = V5.meta()
V5_MEMBERS = H.members(V5)
V5_PATHS = _paths(V5_META)


@FUZZ
@given(
    path=st.sampled_from(V5_PATHS),
    op=st.sampled_from(["replace", "replace", "delete", "add"]),
    value=ENC_WORDS | JSON,
)
def test_v5_meta_mutations(path: tuple[Any, ...], op: str, value: Any) -> None:
    """Version 5 (a per-class score scale): the same promise."""
    _encoded_meta_holds(V5_META, V5_MEMBERS, (path, op, value), "meta5")


# ---- .npy headers and data ---------------------------------------------------------------------

ARRAYS = sorted(n for n in VALID_MEMBERS if n != "meta.npy")
DTYPES = ["<u8", "<i8", "|u1", "<f8", ">u8", "<u4", "|b1", "<U3", ">i8", "<c16"]


@FUZZ
@given(
    name=st.sampled_from(ARRAYS),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 2**40), max_size=3).map(tuple),
    extra=st.integers(-64, 64),
)
def test_array_header_mutations(name: str, dtype: str, shape: tuple[int, ...], extra: int) -> None:
    n = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    data = bytes(max(0, min(n, 4096) + extra))
    files = dict(VALID_MEMBERS)
    files[name] = H.npy_header(dtype, shape, data)
    assert _load(H.zip_bytes(files), "npy-header") is None  # never the valid array


# ---- zip bytes ---------------------------------------------------------------------------------


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, len(VALID_ZIP) - 1), st.integers(1, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(VALID_ZIP))),
    insert=st.one_of(st.none(), st.tuples(st.integers(0, len(VALID_ZIP)), st.binary(max_size=16))),
)
def test_zip_byte_mutations(
    flips: list[tuple[int, int]], cut: int | None, insert: tuple[int, bytes] | None
) -> None:
    data = bytearray(VALID_ZIP)
    for pos, x in flips:
        data[pos] ^= x
    if insert is not None:
        data[insert[0] : insert[0]] = insert[1]
    if cut is not None:
        del data[cut:]
    b = _load(bytes(data), "zip-bytes")
    if b is not None:  # a flip inside array data can give another valid bundle: it must validate
        B.validate(b)


# ---- the subcommands ---------------------------------------------------------------------------

SUBCOMMANDS = {
    "golden": lambda p, d: ["golden", p, "--data", "synthetic", "-n", "20"],
    "rtl": lambda p, d: ["rtl", p, "-o", f"{d}/rtl"],
    "ops": lambda p, d: ["ops", p],
    "flat": lambda p, d: ["flat", p, "-o", f"{d}/net.hwq"],
    "verify": lambda p, d: ["verify", p, "--data", "synthetic", "-n", "20"],
}


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    op=st.sampled_from(["replace", "delete", "add"]),
    value=JSON,
    cmd=st.sampled_from(sorted(SUBCOMMANDS)),
)
def test_subcommands_keep_the_promise(
    capsys: pytest.CaptureFixture[str], path: tuple[Any, ...], op: str, value: Any, cmd: str
) -> None:
    if path[0] in ("info", "classes") and op != "delete":
        return  # those stay valid bundles; generating Verilog for each would only cost time
    meta = _mutate(VALID_META, path, op, value)
    files = dict(VALID_MEMBERS)
    files["meta.npy"] = H.npy(np.array(json.dumps(meta)))
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "fuzz.npz"
        p.write_bytes(H.zip_bytes(files))
        capsys.readouterr()
        rc = main(SUBCOMMANDS[cmd](str(p), td))
        err = capsys.readouterr().err
        STATS[f"cli:{cmd}"] += 1
        assert rc in (0, 2), err
        if rc == 2:
            STATS[f"cli-refused:{cmd}"] += 1
            assert err.startswith(f"hwqnn: error: {p}: ") and err.count("\n") == 1, err
            assert "Traceback" not in err
            assert not (Path(td) / "rtl").exists() and not (Path(td) / "net.hwq").exists()


# ---- IDX files ---------------------------------------------------------------------------------


@FUZZ
@given(
    magic=st.tuples(
        st.integers(0, 1),
        st.integers(0, 1),
        st.sampled_from([8, 9, 11, 12, 13, 14, 7]),
        st.integers(0, 6),
    ),
    dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 40), max_size=6),
    extra=st.integers(-20, 20),
    gz=st.booleans(),
)
def test_idx_files(magic: tuple[int, int, int, int], dims: list[int], extra: int, gz: bool) -> None:
    head = bytes(magic) + b"".join(struct.pack(">I", d) for d in dims[: magic[3]])
    count = int(np.prod(dims[: magic[3]], dtype=object)) if magic[3] <= len(dims) else 0
    itemsize = {8: 1, 9: 1, 11: 2, 12: 4, 13: 4, 14: 8}.get(magic[2], 1)
    body = bytes(max(0, min(count * itemsize, 1 << 16) + extra))
    raw = head + body
    STATS["load:idx"] += 1
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "f-idx"
        p.write_bytes(gzip.compress(raw) if gz else raw)
        try:
            arr = read_idx(p)
        except DataError as e:
            assert str(e).startswith(f"{p}: ") and "\n" not in str(e), str(e)
            STATS["refused:idx"] += 1
            return
    STATS["accepted:idx"] += 1
    assert arr.ndim == magic[3] and arr.nbytes == len(raw) - 4 - 4 * magic[3]


def test_idx_gzip_bomb_is_not_inflated(tmp_path: Path) -> None:
    raw = b"\x00\x00\x08\x01" + struct.pack(">I", 100) + bytes(64 << 20)
    p = tmp_path / "bomb-idx.gz"
    p.write_bytes(gzip.compress(raw, compresslevel=9))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="IDX size mismatch"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


# ---- flags -------------------------------------------------------------------------------------

FOLD_TEXT = st.one_of(
    st.text(max_size=30),
    st.tuples(
        *(
            st.tuples(st.integers(0, ly.out_features + 2), st.integers(0, ly.in_features + 2))
            for ly in VALID.layers
        )
    ).map(lambda fs: ",".join(f"{pe}x{simd}" for pe, simd in fs)),
    st.lists(
        st.tuples(st.integers(-3, 2000), st.integers(-3, 2000)).map(lambda t: f"{t[0]}x{t[1]}"),
        max_size=5,
    ).map(",".join),
)


@FUZZ
@given(text=FOLD_TEXT)
def test_fold_parser(text: str) -> None:
    STATS["parse:fold"] += 1
    try:
        folds = parse_folding(text, VALID)
    except ValueError as e:
        assert "\n" not in str(e) and str(e), str(e)
        STATS["refused:fold"] += 1
        return
    assert len(folds) == len(VALID.layers)
    for f, ly in zip(folds, VALID.layers, strict=True):
        assert 1 <= f.pe <= ly.out_features and 1 <= f.simd <= ly.in_features


ARCH_TEXT = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"mlp:[0-9x\-]{0,12}", fullmatch=True),
)


@FUZZ
@given(text=ARCH_TEXT, w=st.integers(-1, 9), a=st.integers(-1, 9))
def test_arch_parser(text: str, w: int, a: int) -> None:
    STATS["parse:arch"] += 1
    try:
        arch = parse_arch(text, w, a)
    except ValueError as e:
        assert "\n" not in str(e) and str(e), str(e)
        STATS["refused:arch"] += 1
        return
    assert arch.hidden and all(h > 0 for h in arch.hidden) and {w, a} <= {1, 2, 4}


@FUZZ
@given(
    target=st.one_of(st.none(), st.integers(-5, 10**7)),
    fps=st.one_of(st.none(), st.floats(-1e3, 1e12), st.sampled_from([math.nan, math.inf])),
    clock=st.one_of(st.floats(-10, 1e4), st.sampled_from([math.nan, math.inf, 0.0])),
    budget=st.one_of(st.none(), st.integers(-5, 10**7)),
    axis=st.integers(-8, 2048),
)
def test_folding_goal_flags(
    target: int | None, fps: float | None, clock: float, budget: int | None, axis: int
) -> None:
    """``--target-cycles``, ``--target-fps``/``--clock-mhz``, ``--lut-budget``, ``--axis-bits``:
    a folding that meets the goal, or one line saying which flag is wrong."""
    from hwqnn.hw.folding import validate_folding
    from hwqnn.pipeline import resolve_plan

    STATS["parse:goal-flags"] += 1
    try:
        p = resolve_plan(VALID, None, target, axis, fps=fps, clock_mhz=clock, lut_budget=budget)
    except ValueError as e:
        assert "\n" not in str(e) and str(e), str(e)
        STATS["refused:goal-flags"] += 1
        return
    validate_folding(VALID, list(p.folds), axis)  # whatever the goal, a folding that fits


# ---- the C library's flat file -----------------------------------------------------------------

FLATS: dict[str, bytes] = {}


def _flat(which: str) -> bytes:
    """The valid flat files the readers are fuzzed from: ``dense`` (version 1, the valid
    bundle), ``conv`` (version 3: conv with padding, overlapping max-pool, dense), ``v4``
    (the same net with signed codes and weights and a score bias) and ``v5`` (and a score
    scale)."""
    if which not in FLATS:
        from hwqnn import flat
        from hwqnn.layers.encoding import SIGNED
        from hwqnn.randnet import Encodings, random_net

        arch = parse_arch("cnv:4c3p1-mp3s2-fc6", 1, 2)
        b = {
            "dense": lambda: VALID,
            "conv": lambda: random_net(2, arch, (7, 7, 2), 4, in_bits=2),
            "v4": lambda: random_net(2, arch, (7, 7, 2), 4, in_bits=2,
                                     encodings=Encodings(SIGNED, SIGNED, SIGNED, bias=True)),
            "v5": lambda: random_net(2, arch, (7, 7, 2), 4, in_bits=2,
                                     encodings=Encodings(SIGNED, SIGNED, SIGNED, bias=True,
                                                         scale=True)),
        }[which]()  # fmt: skip
        FLATS[which] = flat.to_bytes(b)
    return FLATS[which]


def _readers_agree(which: str, patches: list[tuple[int, int]], cut: int | None) -> None:
    """The C loader and the Python reader of the flat file (checksum made right, so the field
    checks are what is tested) refuse the same files, and run an accepted one identically."""
    from hwqnn import clib, flat, golden
    from hwqnn.randnet import random_codes

    body = bytearray(_flat(which)[:-8])
    for off, v in patches:
        off -= off % 4
        if off + 4 <= len(body):
            struct.pack_into("<I", body, off, v)
    if cut is not None:
        del body[cut:]
    data = bytes(body) + struct.pack("<Q", flat.fnv1a64(bytes(body)))
    STATS[f"load:flat-{which}"] += 1
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "net.hwq"
        p.write_bytes(data)
        try:
            net = clib.CNet.from_file(p)
        except B.BundleError as e:
            assert str(e).startswith(f"{p}: field '") and "\n" not in str(e), str(e)
            with pytest.raises(B.BundleError):
                flat.from_bytes(data, str(p))
            STATS[f"refused:flat-{which}"] += 1
            return
    STATS[f"accepted:flat-{which}"] += 1
    b = flat.from_bytes(data)  # the Python reader accepts it too, and they compute the same
    x = random_codes(5, 9, b.in_features, b.quant.raw_bits)
    with net:
        assert (net.scores(x) == golden.scores(b, x)).all()


@FUZZ
@given(
    patches=st.lists(
        st.tuples(st.integers(0, 32 + 3 * 32 + 64), st.integers(0, 2**32 - 1)), max_size=3
    ),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_flat_file_readers_agree(patches: list[tuple[int, int]], cut: int | None) -> None:
    """A dense net's file (version 1): hostile header, record and first-weight words."""
    _readers_agree("dense", patches, cut)


@FUZZ
@given(
    patches=st.lists(
        st.tuples(
            st.integers(0, 32 + 16 + 4 * 64 + 64),
            st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 20)),  # small: plausible
        ),
        max_size=3,
    ),
    cut=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_conv_flat_file_readers_agree(patches: list[tuple[int, int]], cut: int | None) -> None:
    """A ConvNet's file (version 3): hostile header, input record, kinds and windows."""
    _readers_agree("conv", patches, cut)


@FUZZ
@given(
    patches=st.lists(
        st.tuples(
            st.sampled_from([8, *(32 + 16 + 64 * r + 60 for r in range(3))])  # version, encodings
            | st.integers(0, 32 + 16 + 3 * 64 + 64),
            st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 130)),  # small: plausible
        ),
        max_size=3,
    ),
    cut=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_v4_flat_file_readers_agree(patches: list[tuple[int, int]], cut: int | None) -> None:
    """A version-4 file: hostile encodings fields (and everything the conv file has)."""
    _readers_agree("v4", patches, cut)


@FUZZ
@given(
    patches=st.lists(
        st.tuples(
            st.sampled_from([8, *(32 + 16 + 64 * r + 60 for r in range(3))])  # version, encodings
            | st.integers(0, 32 + 16 + 3 * 64 + 64)
            | st.integers(-64, -9),  # the scale array, before the checksum
            st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 130)),
        ),
        max_size=3,
    ),
    cut=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_v5_flat_file_readers_agree(patches: list[tuple[int, int]], cut: int | None) -> None:
    """A version-5 file: hostile scale bits and scale values (and everything above)."""
    _readers_agree("v5", patches, cut)
