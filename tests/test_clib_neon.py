"""The C library's ARM NEON kernel, bit-exact under emulation: ``sw/`` cross-compiled for aarch64
(``gcc-aarch64-linux-gnu``, static) and run by ``qemu-aarch64`` (Debian ``qemu-user``) through
the example program, which prints every score (``classify -s``). On random nets of every shape,
bit width and encoding the library takes, and on 1,000 Fashion-MNIST test images through a net
of the demo's shape: equal to golden's scores, on the NEON kernel and on the portable one. Speed
is not measured here (an emulator's timing says nothing about a real ARM core)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwqnn import clib, flat, golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED
from hwqnn.randnet import Encodings, random_bundle, random_codes, random_net, with_input_thresholds

pytestmark = pytest.mark.slow

CC, QEMU = "aarch64-linux-gnu-gcc", "qemu-aarch64"
FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def classify_arm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in (CC, QEMU) if shutil.which(t) is None]
    if missing:
        why = f"{', '.join(missing)} missing: apt-get install gcc-aarch64-linux-gnu qemu-user"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs them (make setup): never skipped there
        pytest.skip(why)
    exe = tmp_path_factory.mktemp("arm") / "classify"
    sw = clib.SW_DIR
    cmd = [CC, "-O3", "-std=c99", "-Wall", "-Wextra", "-Werror", "-static", "-pthread",
           "-I", str(sw / "include"), str(sw / "examples" / "classify.c"),
           *sorted(str(p) for p in (sw / "src").glob("*.c")), "-o", str(exe)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def _run(exe: Path, b: Bundle, images: np.ndarray, kernel: str, tmp: Path) -> np.ndarray:
    """Scores of ``images`` (raw values, [N, in_features]) from the aarch64 build, ``kernel``."""
    net, idx = tmp / "net.hwq", tmp / "images.idx"
    flat.write(b, net)
    n, k = images.shape
    header = bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (n, 1, k))
    idx.write_bytes(header + images.astype(np.uint8).tobytes())
    cmd = [QEMU, str(exe), str(net), str(idx), "-s", "-k", kernel, "-t", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"kernel {kernel}" in res.stderr
    return np.array([line.split() for line in res.stdout.splitlines()], dtype=np.int64)


def _equal(exe: Path, b: Bundle, images: np.ndarray, tmp: Path) -> None:
    expected = golden.scores(b, images)
    for kernel in ("neon", "portable"):
        np.testing.assert_array_equal(_run(exe, b, images, kernel, tmp), expected, kernel)


# (input bits, weight bits, activation bits, fan-in, hidden): the bit path (1-bit codes, 8-bit
# weights) and the byte path (multi-bit codes), word and row tails
DENSE = [
    pytest.param(8, 1, 1, 131, (67, 33), id="in8-w1-a1"),
    pytest.param(1, 1, 1, 200, (70,), id="in1-w1-a1"),
    pytest.param(2, 2, 2, 131, (67, 9), id="in2-w2-a2"),
    pytest.param(4, 4, 4, 65, (33,), id="in4-w4-a4"),
    pytest.param(8, 2, 4, 64, (8, 17), id="in8-w2-a4"),
    pytest.param(1, 4, 2, 5, (1, 63), id="in1-w4-a2-tiny"),
    pytest.param(4, 8, 1, 70, (5,), id="in4-w8"),
]


@pytest.mark.parametrize(("in_bits", "w_bits", "a_bits", "k", "hidden"), DENSE)
def test_dense_nets_equal_golden_on_neon(
    classify_arm: Path, tmp_path: Path, in_bits: int, w_bits: int, a_bits: int, k: int,
    hidden: tuple[int, ...],
) -> None:  # fmt: skip
    b = random_bundle(k + in_bits, k, hidden, 7, w_bits=w_bits, a_bits=a_bits, in_bits=in_bits)
    _equal(classify_arm, b, random_codes(2, 67, k, in_bits), tmp_path)


@pytest.mark.parametrize("enc", [UNSIGNED, SIGNED], ids=["unsigned", "signed"])
def test_encodings_equal_golden_on_neon(classify_arm: Path, tmp_path: Path, enc: object) -> None:
    """Unsigned weights (AND planes) and signed ones (their top plane NOR), a score bias."""
    encs = Encodings(ODD, enc, enc, bias=True)  # type: ignore[arg-type]
    for in_bits, w_bits in ((8, 2), (1, 4)):
        b = random_bundle(3, 131, (67, 9), 7, w_bits, 2, in_bits, encodings=encs)
        _equal(classify_arm, b, random_codes(4, 29, 131, in_bits), tmp_path)


@pytest.mark.parametrize(("spec", "image", "in_bits", "w_bits", "a_bits"), [
    ("cnv:8c3-mp2-16c3-fc32", (12, 12, 1), 8, 1, 1),
    ("cnv:5c3s2p1-mp3s2-4c1-fc7", (11, 9, 3), 2, 2, 2),
    ("cnv:70c3p1-mp2-3c3-fc5", (6, 6, 70), 1, 4, 2),
])  # fmt: skip
def test_conv_nets_equal_golden_on_neon(
    classify_arm: Path, tmp_path: Path, spec: str, image: tuple[int, int, int], in_bits: int,
    w_bits: int, a_bits: int,
) -> None:  # fmt: skip
    b = random_net(len(spec), parse_arch(spec, w_bits, a_bits), image, 5, in_bits=in_bits)
    _equal(classify_arm, b, random_codes(3, 23, b.in_features, in_bits), tmp_path)


def test_input_thresholds_equal_golden_on_neon(classify_arm: Path, tmp_path: Path) -> None:
    """Raw 8-bit values through the flat file's per-channel input thresholds into 2-bit codes."""
    b = replace(random_bundle(5, 4 * 5 * 3, (20,), 4, in_bits=2), input_shape=(4, 5, 3))
    b = with_input_thresholds(b, 6, channels=3)
    _equal(classify_arm, b, random_codes(7, 50, 60, 8), tmp_path)


def test_demo_shape_on_1000_test_images(classify_arm: Path, tmp_path: Path) -> None:
    """784 8-bit pixels -> 512 -> 512 -> 512 -> 10 (random weights), the first 1,000
    Fashion-MNIST test images (random images where the dataset is not installed)."""
    b = random_bundle(0, 784, (512, 512, 512), 10)
    if FASHION.exists():
        raw = np.frombuffer(gzip.decompress(FASHION.read_bytes()), dtype=np.uint8, offset=16)
        images = raw.reshape(-1, 784)[:1000]
    else:
        images = random_codes(8, 1000, 784, 8).astype(np.uint8)
    _equal(classify_arm, b, images, tmp_path)
