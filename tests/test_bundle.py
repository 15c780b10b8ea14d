from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hwqnn import bundle as B  # noqa: N812


@pytest.mark.parametrize("k", [1, 5, 63, 64, 65, 127, 128, 200, 784])
@pytest.mark.parametrize("pad", [0, 1])
def test_pack_roundtrip_and_padding(k: int, pad: int) -> None:
    rng = np.random.default_rng(k)
    bits = rng.integers(0, 2, size=(3, k), dtype=np.uint8)
    words = B.pack_bits(bits, pad)
    assert words.dtype == np.uint64 and words.shape == (3, -(-k // 64))
    np.testing.assert_array_equal(B.unpack_bits(words, k), bits)
    tail = B.unpack_bits(words, words.shape[-1] * 64)[:, k:]
    assert np.all(tail == pad)


def test_packing_order_is_lsb_first() -> None:
    bits = np.zeros(70, dtype=np.uint8)
    bits[0] = bits[65] = 1
    w = B.pack_bits(bits, 0)
    assert int(w[0]) == 1 and int(w[1]) == 2


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
def test_codes_roundtrip(nbits: int) -> None:
    codes = np.random.default_rng(nbits).integers(0, 2**nbits, size=(4, 99))
    packed = B.pack_codes(codes, nbits, pad=1)
    assert packed.shape == (4, nbits, 2)
    np.testing.assert_array_equal(B.unpack_codes(packed, 99), codes)


def test_bitplanes_sum_to_level() -> None:
    """sum_n 2^n (2 c_n - 1) is the level 2c - (2^k - 1), e.g. 2x - 255 for a pixel."""
    x = np.arange(256)
    planes = B.to_planes(x[None, :], 8)[0]
    pm = 2 * planes.astype(np.int64) - 1
    level = (pm * (1 << np.arange(8))[:, None]).sum(0)
    np.testing.assert_array_equal(level, B.code_to_level(x, 8))


def test_save_load_roundtrip(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    b2 = B.load(p)
    assert b2.meta() == small_bundle.meta()
    for a, b in zip(small_bundle.layers, b2.layers, strict=True):
        np.testing.assert_array_equal(a.weights, b.weights)
    # loadable with NumPy alone, no pickle
    with np.load(p, allow_pickle=False) as z:
        assert json.loads(str(z["meta"]))["schema"] == "hwqnn.bundle"
    assert [f.name for f in tmp_path.iterdir()] == ["b.npz"]  # no temporary left behind


def _rewrite(src: Path, dst: Path, **changes: np.ndarray) -> None:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(dst, **arrays)


def test_truncated_file(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    data = p.read_bytes()
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        B.BundleError, match=r"trunc\.npz: not a readable bundle \(truncated or corrupt"
    ):
        B.load(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(B.BundleError, match=r"nope\.npz: no such bundle file"):
        B.load(tmp_path / "nope.npz")


def test_wrong_version(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    meta = small_bundle.meta()
    meta["version"] = 99
    _rewrite(p, tmp_path / "v.npz", meta=np.array(json.dumps(meta)))
    with pytest.raises(
        B.BundleError,
        match=r"v\.npz: field 'meta\.version': expected a version this reader supports \(1\.\.5\), "
        r"found version 99: the file is newer",
    ):
        B.load(tmp_path / "v.npz")


def test_foreign_schema(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    _rewrite(p, tmp_path / "f.npz", meta=np.array(json.dumps({"schema": "other"})))
    with pytest.raises(
        B.BundleError, match=r"field 'meta\.schema': expected 'hwqnn\.bundle', found 'other'"
    ):
        B.load(tmp_path / "f.npz")


def test_wrong_dtype(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    w = small_bundle.layers[1].weights.astype(np.int32)
    _rewrite(p, tmp_path / "d.npz", **{"layer1.weights": w})
    with pytest.raises(
        B.BundleError, match=r"field 'layer1.weights': expected dtype uint64, found int32"
    ):
        B.load(tmp_path / "d.npz")


def test_wrong_shape(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    t = small_bundle.layers[0].thresholds
    assert t is not None
    _rewrite(p, tmp_path / "s.npz", **{"layer0.thresholds": t[:-1]})
    with pytest.raises(
        B.BundleError, match=r"field 'layer0.thresholds': expected shape \(33, 1\), found \(32, 1\)"
    ):
        B.load(tmp_path / "s.npz")


def test_missing_field(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    with np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "layer0.flip"}
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(
        B.BundleError,
        match=r"field 'layer0\.flip': expected an array of shape \(33,\), found nothing",
    ):
        B.load(tmp_path / "m.npz")


def test_zero_pad_bit_rejected(tmp_path: Path, small_bundle: B.Bundle) -> None:
    p = B.save(small_bundle, tmp_path / "b.npz")
    w = small_bundle.layers[0].weights.copy()  # fan-in 70: bits 6..63 of word 1 are pad
    w[0, 0, 1] &= np.uint64(~(1 << 40) & ((1 << 64) - 1))
    _rewrite(p, tmp_path / "p.npz", **{"layer0.weights": w})
    with pytest.raises(
        B.BundleError, match=r"layer0.weights': expected pad bits above in_features"
    ):
        B.load(tmp_path / "p.npz")


def test_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_text("hello")
    with pytest.raises(B.BundleError, match="not a readable bundle"):
        B.load(bad)
    assert zipfile.is_zipfile(bad) is False


def test_kinds_register_themselves_once_with_their_version() -> None:
    from hwqnn.layers import KINDS, register

    assert {k: c.since for k, c in KINDS.items()} == {"dense": 1, "conv2d": 2, "maxpool2d": 2}
    with pytest.raises(ValueError, match="layer kind 'dense' is registered twice"):
        register("dense", since=9)(type("Other", (), {}))
    assert KINDS["dense"].__name__ == "DenseHeader"
