from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from hwqnn.data import DataError, load_idx_split, read_idx, synthetic


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    code = {np.dtype(np.uint8): 0x08}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_and_split(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 5, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, size=7).astype(np.uint8)
    sfx = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", imgs, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", labels, gz)
    np.testing.assert_array_equal(read_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}"), imgs)
    split = load_idx_split(tmp_path, "test")
    assert split.images.shape == (7, 30) and split.shape == (5, 6)
    np.testing.assert_array_equal(split.labels, labels)


def test_missing_dataset_names_path_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=rf"{tmp_path}/train-images-idx3-ubyte\[\.gz\] not found.*"
        r"apt-get install dataset-fashion-mnist",
    ):
        load_idx_split(tmp_path, "train")


def test_truncated_idx(tmp_path: Path) -> None:
    p = tmp_path / "x-idx3-ubyte"
    write_idx(p, np.zeros((4, 3, 3), np.uint8), gz=False)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"IDX size mismatch: header says \(4, 3, 3\)"):
        read_idx(p)


def test_bad_magic(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)


def test_synthetic_is_deterministic() -> None:
    a, b = synthetic(50, seed=3), synthetic(50, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.dtype == np.uint8 and a.images.shape == (50, 64)
