"""Datasets, offline: IDX files (Fashion-MNIST, MNIST, KMNIST; gzip or raw), CIFAR-10's binary
batches, and a synthetic set.

Images come out as ``uint8[N, C*H*W]`` (the first layer's 8-bit codes; ``C`` = 1 for IDX, the
three colour planes one after the other for CIFAR-10, as its files store them) and labels as
``int64[N]``. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn.errors import HwqnnError, InputError

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
_IDX_DTYPES: dict[int, np.dtype | type] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataError(HwqnnError, FileNotFoundError):
    """A dataset file is missing or malformed; the message names the path."""


@dataclass(frozen=True)
class Split:
    """One split of a dataset: 8-bit images ``[N, H*W]`` and labels ``[N]``."""

    images: np.ndarray
    labels: np.ndarray
    shape: tuple[int, ...]  # (H, W); (C, H, W) if channel_major, else (H, W, C)
    classes: tuple[str, ...]
    channel_major: bool = False  # images flattened C, H, W (CIFAR-10's stored order)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Split:
        return self.slice(0, n)

    def slice(self, start: int, n: int) -> Split:
        """``n`` images from ``start`` on (fewer at the end of the set)."""
        stop = start + n
        return Split(self.images[start:stop], self.labels[start:stop], self.shape, self.classes,
                     self.channel_major)  # fmt: skip

    def hwc(self) -> Split:
        """The images flattened height, width, channels (channel fastest: what convolutions and
        a conv bundle's input read), shape ``(H, W, C)``; the split itself if already so."""
        if not self.channel_major:
            return self
        c, h, w = self.shape
        img = self.images.reshape(len(self), c, h, w).transpose(0, 2, 3, 1).reshape(len(self), -1)
        return Split(np.ascontiguousarray(img), self.labels, (h, w, c), self.classes)


MAX_IDX_BYTES = 1 << 31  # what read_idx will allocate for one file's data (MNIST train: 47 MB)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of its declared type and shape.

    The header is read first and the data then read only up to the size it declares (and at most
    :data:`MAX_IDX_BYTES`), so a lying header or a gzip bomb is refused, not inflated."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            stream: Any = gzip.GzipFile(fileobj=f) if gz else f
            try:
                head = stream.read(4)
                if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                    raise DataError(f"{path}: not an IDX file (bad magic number {head.hex()})")
                dtype = np.dtype(_IDX_DTYPES[head[2]])
                ndim = head[3]
                if not 1 <= ndim <= 4:
                    raise DataError(f"{path}: IDX header: expected 1..4 dimensions, found {ndim}")
                raw_dims = stream.read(4 * ndim)
                if len(raw_dims) < 4 * ndim:
                    raise DataError(f"{path}: IDX header: truncated dimensions")
                dims = tuple(
                    int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim)
                )
                expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
                if expected > MAX_IDX_BYTES:
                    raise DataError(
                        f"{path}: IDX header declares {dims} ({expected} bytes), more than "
                        f"{MAX_IDX_BYTES} bytes"
                    )
                data = stream.read(expected + 1)
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{path}: corrupt gzip data ({e})") from e
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file ({e.strerror})") from e
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header says {dims} ({expected} bytes of data), "
            f"file has {'more' if len(data) > expected else len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(data_dir: Path, stem: str) -> Path:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        f"dataset file {data_dir / stem}[.gz] not found. Fashion-MNIST: "
        "`apt-get install dataset-fashion-mnist` (installs to /usr/share/datasets/fashion-mnist); "
        "MNIST/KMNIST: pass --data DIR holding the four IDX files"
    )


def load_idx_split(
    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    split: str = "train",
    classes: tuple[str, ...] | None = None,
) -> Split:
    """Load the ``train`` or ``test`` split of an MNIST-format IDX dataset from ``data_dir``."""
    data_dir = Path(data_dir)
    if split not in _SPLIT_FILES:
        raise InputError(f"split must be 'train' or 'test', not {split!r}")
    img_path, lbl_path = (_find(data_dir, s) for s in _SPLIT_FILES[split])
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected uint8 images [N, H, W], found {images.dtype} {images.shape}"
        )
    if len(images) == 0:
        raise DataError(f"{img_path}: expected images, found none")
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype != np.uint8:
        raise DataError(
            f"{lbl_path}: expected {len(images)} uint8 labels, found {labels.dtype} {labels.shape}"
        )
    n_classes = int(labels.max()) + 1
    if classes is None:
        is_fashion = "fashion" in str(data_dir).lower()
        classes = FASHION_CLASSES if is_fashion else tuple(str(i) for i in range(n_classes))
    if n_classes > len(classes):
        bad = int(np.flatnonzero(labels >= len(classes))[0])
        raise DataError(
            f"{lbl_path}: label {bad}: expected 0..{len(classes) - 1} ({len(classes)} classes), "
            f"found {int(labels[bad])}"
        )
    h, w = images.shape[1:]
    return Split(images.reshape(len(images), h * w), labels.astype(np.int64), (h, w), classes)


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")  # fmt: skip
CIFAR_RECORD = 1 + 3 * 32 * 32  # a label byte, then 1024 red, 1024 green, 1024 blue pixels
CIFAR_MAX_RECORDS = 60_000  # per file (the standard files hold 10,000)
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}


def is_cifar10_dir(data_dir: str | os.PathLike[str]) -> bool:
    """Whether ``data_dir`` holds CIFAR-10's binary batches (``test_batch.bin``)."""
    return (Path(data_dir) / "test_batch.bin").is_file()


def read_cifar10_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: images ``uint8[N, 3072]`` (R, G, B planes of 32x32, row-major) and
    labels ``int64[N]``. The size must be a whole number of 3,073-byte records."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0 or size % CIFAR_RECORD or size // CIFAR_RECORD > CIFAR_MAX_RECORDS:
            raise DataError(
                f"{path}: expected 1..{CIFAR_MAX_RECORDS} CIFAR-10 records of {CIFAR_RECORD} "
                f"bytes, found {size} bytes"
            )
        raw = np.fromfile(path, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot read CIFAR-10 batch ({e.strerror})") from e
    labels = raw[:, 0].astype(np.int64)
    if labels.max() >= len(CIFAR_CLASSES):
        bad = int(np.flatnonzero(labels >= len(CIFAR_CLASSES))[0])
        raise DataError(f"{path}: record {bad}: expected a label in 0..9, found {labels[bad]}")
    return np.ascontiguousarray(raw[:, 1:]), labels


def load_cifar10_split(data_dir: str | os.PathLike[str], split: str = "train") -> Split:
    """The ``train`` (``data_batch_1..5.bin``) or ``test`` (``test_batch.bin``) split of CIFAR-10
    in its binary format; class names from ``batches.meta.txt`` when it is there."""
    data_dir = Path(data_dir)
    if split not in _CIFAR_FILES:
        raise InputError(f"split must be 'train' or 'test', not {split!r}")
    parts = []
    for name in _CIFAR_FILES[split]:
        if not (data_dir / name).is_file():
            raise DataError(f"dataset file {data_dir / name} not found (CIFAR-10 binary version)")
        parts.append(read_cifar10_batch(data_dir / name))
    classes: tuple[str, ...] = CIFAR_CLASSES
    meta = data_dir / "batches.meta.txt"
    if meta.is_file():
        names = tuple(n.strip() for n in meta.read_text(errors="replace").splitlines() if n.strip())
        if len(names) != len(CIFAR_CLASSES):
            raise DataError(
                f"{meta}: expected {len(CIFAR_CLASSES)} class names, found {len(names)}"
            )
        classes = names
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(images, labels, (3, 32, 32), classes, channel_major=True)


def synthetic(n: int, seed: int = 0, shape: tuple[int, int] = (8, 8), classes: int = 4) -> Split:
    """A small learnable dataset: noisy class prototypes as 8-bit images. Deterministic in ``seed``.

    The prototypes depend only on ``shape`` and ``classes`` (not ``seed``), so a train split and a
    test split drawn with different seeds come from the same distribution.
    """
    proto_rng = np.random.default_rng(12345)
    k = shape[0] * shape[1]
    protos = proto_rng.integers(0, 256, size=(classes, k))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    noise = rng.normal(0, 40, size=(n, k))
    images = np.clip(protos[labels] + noise, 0, 255).astype(np.uint8)
    return Split(images, labels.astype(np.int64), shape, tuple(f"c{i}" for i in range(classes)))


def load_dataset(data: str | os.PathLike[str] | None, split: str) -> Split:
    """``data`` is a directory of IDX files or of CIFAR-10's binary batches, ``"synthetic"``, or
    None for Fashion-MNIST."""
    if data == "synthetic":
        return synthetic(2000 if split == "train" else 500, seed=0 if split == "train" else 1)
    if data is not None and is_cifar10_dir(data):
        return load_cifar10_split(data, split)
    return load_idx_split(DEFAULT_DATA_DIR if data is None else data, split)
