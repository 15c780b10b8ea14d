"""Hostile bundles, one named regression test per case found when the loader was attacked (the
list in the issue "Hostile input"), each through the loader and through the CLI: one line on
stderr naming the file and the field, exit status 2, and no allocation beyond a small multiple of
the valid file's size."""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hwqnn import bundle as B  # noqa: N812
from hwqnn.cli import main
from tests import hostile as H  # noqa: N812


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        obj: Any = meta
        keys = path.split(".")
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        last = keys[-1]
        if value is _DELETE:
            del obj[last]
        else:
            obj[last] = value

    return change


_DELETE = object()


def _deep(n: int) -> str:
    meta = H.valid_bundle().meta()
    text = json.dumps(meta)
    return text[:-1] + ', "x": ' + "[" * n + "]" * n + "}"


def _zip(**extra: bytes) -> bytes:
    return H.zip_bytes({**H.members(H.valid_bundle()), **extra})


def _patched(member: str, **fields: int) -> Callable[[], bytes]:
    return lambda: H.patch_central(_zip(), member, **fields)


def _member(member: str, data: Callable[[], bytes]) -> Callable[[], bytes]:
    return lambda: H.member_variant(member, data())


def _meta(path: str, value: Any) -> Callable[[], bytes]:
    return lambda: H.meta_variant(_set(path, value))


V0 = H.valid_bundle().layers[0]
CASES = [
    # raised tracebacks before
    ("npy-file-as-bundle", lambda: H.npy(np.arange(10)), "not a readable bundle"),
    (
        "bzip2-members",
        lambda: H.zip_bytes(H.members(H.valid_bundle()), zipfile.ZIP_BZIP2),
        "field 'meta': expected a stored or deflated member, found compression method 12",
    ),
    (
        "unknown-compression",
        _patched("layer0.flip.npy", compress_type=99),
        "field 'layer0.flip': expected a stored or deflated member, found compression method 99",
    ),
    (
        "encrypted-flag",
        _patched("layer1.weights.npy", flag_bits=1),
        "field 'layer1.weights': expected an unencrypted member",
    ),
    (
        "raw-bytes-member",
        _member("layer0.weights.npy", lambda: b"\x00" * 500),
        "field 'layer0.weights': expected an .npy array header",
    ),
    ("json-nested-5000", lambda: H.meta_text(_deep(5000)), "field 'meta': expected JSON nested"),
    (
        "in-features-infinity",
        _meta("layers.0.in_features", float("inf")),
        "field 'meta': expected JSON text, found Infinity is not JSON",
    ),
    # memory blow-ups before
    (
        "header-1e12-elements",
        _member("layer0.weights.npy", lambda: H.npy_header("<u8", (10**12,))),
        "field 'layer0.weights': expected shape (33, 1, 2)",
    ),
    (
        "zip-bomb-64MiB",
        lambda: H.deflate_bomb("layer1.thresholds.npy", 64 << 20),
        "field 'layer1.thresholds': expected a member size within",
    ),
    (
        "declared-size-absurd",
        _patched("layer0.thresholds.npy", file_size=0xFFFFFFF0),
        "field 'layer0.thresholds': expected a member size within",
    ),
    # messages that named no field before
    (
        "in-features-nan",
        _meta("layers.0.in_features", float("nan")),
        "field 'meta': expected JSON text, found NaN is not JSON",
    ),
    (
        "in-features-hex-string",
        _meta("layers.0.in_features", "0x40"),
        "field 'meta.layers[0].in_features': expected an integer, found '0x40'",
    ),
    # silently accepted before
    (
        "version-true",
        _meta("version", True),
        "field 'meta.version': expected an integer, found True",
    ),
    ("version-1.0", _meta("version", 1.0), "field 'meta.version': expected an integer, found 1.0"),
    (
        "version-6",
        _meta("version", 6),
        "field 'meta.version': expected a version this reader supports (1..5), found version 6",
    ),
    (
        "kind-conv",
        _meta("layers.1.kind", "conv"),
        "field 'meta.layers[1].kind': expected one of dense, conv2d, maxpool2d, found 'conv'",
    ),
    (
        "kind-missing",
        _meta("layers.0.kind", _DELETE),
        "field 'meta.layers[0].kind': expected a value, found nothing",
    ),
    (
        "input-bits-3",
        _meta("input.bits", 3),
        "field 'meta.input.bits': expected 1, 2, 4, 8, found 3",
    ),
    (
        "input-bits-contradicts-layer0",
        _meta("input.bits", 1),
        "field 'meta.input.bits': expected 8 (layer 0's in_bits), found 1",
    ),
    (
        "out-features-4.5",
        _meta("layers.2.out_features", 4.5),
        "field 'meta.layers[2].out_features': expected an integer, found 4.5",
    ),
    (
        "out-features-string",
        _meta("layers.0.out_features", "64"),
        "field 'meta.layers[0].out_features': expected an integer, found '64'",
    ),
    (
        "member-without-npy-suffix",
        lambda: _zip(**{"notes.txt": b"hello"}),
        "field 'zip member 'notes.txt'': expected an array member named <field>.npy",
    ),
    ("unknown-meta-key", _meta("comment", "hi"), "field 'meta.comment': expected no such key"),
    (
        "unknown-layer-key",
        _meta("layers.0.stride", 2),
        "field 'meta.layers[0].stride': expected no such key",
    ),
    (
        "extra-array",
        lambda: _zip(**{"layer9.weights.npy": H.npy(np.zeros(3, np.uint64))}),
        "field 'layer9.weights': expected no such array for this meta",
    ),
    (
        "big-endian-weights",
        _member("layer0.weights.npy", lambda: H.npy(V0.weights.astype(">u8"))),
        "field 'layer0.weights': expected dtype uint64",
    ),
    (
        "trailing-bytes",
        _member("layer0.flip.npy", lambda: H.npy(V0.flip) + b"xx"),
        "field 'layer0.flip': expected 33 bytes of data",
    ),
    (
        "short-data",
        _member("layer0.flip.npy", lambda: H.npy_header("|u1", (33,), b"\x00" * 20)),
        "field 'layer0.flip': expected 33 bytes of data",
    ),
    ("meta-not-object", lambda: H.meta_text("[1, 2]"), "field 'meta': expected a JSON object"),
    (
        "meta-huge-string",
        lambda: H.meta_text(" " * (2 << 20)),
        "field 'meta': expected at most",
    ),
]


@pytest.fixture(scope="module")
def valid_size(tmp_path_factory: pytest.TempPathFactory) -> int:
    p = B.save(H.valid_bundle(), tmp_path_factory.mktemp("v") / "valid.npz")
    return p.stat().st_size


@pytest.mark.parametrize(("make", "message"), [pytest.param(m, s, id=i) for i, m, s in CASES])
def test_hostile_bundle_is_refused_by_name_within_bounded_memory(
    tmp_path: Path, valid_size: int, make: Callable[[], bytes], message: str
) -> None:
    path = H.write(tmp_path, make())
    tracemalloc.start()
    try:
        with pytest.raises(B.BundleError) as err:
            B.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(err.value).startswith(f"{path}: "), str(err.value)
    assert message in str(err.value), str(err.value)
    # the meta text is the largest legitimate allocation (up to 4 MiB as UCS-4)
    assert peak <= 4 * valid_size + (12 << 20), f"peak {peak} bytes"


@pytest.mark.parametrize("cmd", ["golden", "rtl", "ops", "flat", "verify"])
def test_every_subcommand_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cmd: str
) -> None:
    path = H.write(tmp_path, H.meta_variant(_set("layers.1.kind", "conv")))
    args = {
        "golden": ["golden", str(path), "--data", "synthetic"],
        "rtl": ["rtl", str(path), "-o", str(tmp_path / "r")],
        "ops": ["ops", str(path)],
        "flat": ["flat", str(path), "-o", str(tmp_path / "n.hwq")],
        "verify": ["verify", str(path), "--data", "synthetic"],
    }[cmd]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"hwqnn: error: {path}: field 'meta.layers[1].kind'"), err
    assert not (tmp_path / "r").exists() and not (tmp_path / "n.hwq").exists()


def test_an_internal_error_is_one_line_without_v(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hwqnn.pipeline

    def boom(*a: object) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(hwqnn.pipeline, "golden_stage", boom)
    p = B.save(H.valid_bundle(), tmp_path / "b.npz")
    assert main(["golden", str(p), "--data", "synthetic"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: a bug" in err
    with pytest.raises(ZeroDivisionError):
        main(["-v", "golden", str(p), "--data", "synthetic"])


def test_a_valid_bundle_still_loads_stored_and_deflated(tmp_path: Path) -> None:
    b = H.valid_bundle()
    plain = B.save(b, tmp_path / "b.npz")
    assert B.load(plain).digest() == b.digest()
    np.savez_compressed(tmp_path / "c.npz", **b.arrays())  # other writers compress
    assert B.load(tmp_path / "c.npz").digest() == b.digest()


def test_hostile_checkpoints_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04not a checkpoint" * 10)
    huge = tmp_path / "huge.pt"
    arch = {"hidden": [10**9], "w_bits": 1, "a_bits": 1}
    meta = {"in_features": 64, "classes": ["a", "b"]}
    torch.save({"arch": arch, "meta": meta, "kind": "quant", "state": {}}, huge)
    for ckpt, what in ((garbage, "not a hwqnn checkpoint"), (huge, "field 'arch.hidden'")):
        assert main(["export", str(ckpt), "-o", str(tmp_path / "b.npz")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"hwqnn: error: {ckpt}: ") and what in err and err.count("\n") == 1
        assert not (tmp_path / "b.npz").exists()
