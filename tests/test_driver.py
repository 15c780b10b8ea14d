"""The generated host driver header (``hwqnn_driver.h``), compiled with plain ``cc``: it packs
frames and unpacks results exactly as the Python codec of the simulator does, at several stream
widths, code widths and score widths (the Verilator tier then runs it against the RTL)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwqnn.hw import driver
from hwqnn.hw.manifest import Ports, pack_beats, unpack_fields

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "hwqnn_driver.h"
/* argv: N CODES.bin BEATS.out RESULT_WORDS.bin RESULTS.out */
int main(int argc, char **argv) {
    (void)argc;
    long n = atol(argv[1]);
    FILE *f = fopen(argv[2], "rb"), *o = fopen(argv[3], "wb");
    uint8_t codes[HWQNN_IN_FEATURES];
    uint32_t beats[HWQNN_IN_BEATS * HWQNN_S_WORDS];
    for (long i = 0; i < n; i++) {
        if (fread(codes, 1, HWQNN_IN_FEATURES, f) != HWQNN_IN_FEATURES) return 3;
        hwqnn_pack_frame(codes, beats);
        fwrite(beats, sizeof beats, 1, o);
    }
    fclose(f); fclose(o);
    f = fopen(argv[4], "rb"); o = fopen(argv[5], "wb");
    uint32_t beat[HWQNN_M_WORDS];
    int32_t res[HWQNN_CLASSES + 1];
    for (long i = 0; i < n; i++) {
        if (fread(beat, sizeof beat, 1, f) != 1) return 4;
        hwqnn_unpack_result(beat, res, res + HWQNN_CLASSES);
        fwrite(res, sizeof res, 1, o);
    }
    fclose(f); fclose(o);
    return 0;
}
"""

CASES = [
    pytest.param(8, 8, 784, 10, 11, id="axis8-8bit"),
    pytest.param(24, 8, 784, 10, 11, id="axis24-8bit-uneven"),
    pytest.param(64, 8, 100, 10, 17, id="axis64-score17"),
    pytest.param(136, 2, 99, 3, 31, id="axis136-2bit-score31"),
    pytest.param(512, 1, 784, 10, 12, id="axis512-1bit"),
    pytest.param(1024, 4, 300, 20, 32, id="axis1024-4bit-score32"),
    pytest.param(40, 8, 7, 2, 2, id="axis40-tiny"),
]


def _words(bits: int) -> int:
    return max(1, -(-bits // 32))


@pytest.mark.parametrize(("axis", "in_bits", "k", "classes", "sw"), CASES)
def test_driver_matches_the_stream_format(
    tmp_path: Path, axis: int, in_bits: int, k: int, classes: int, sw: int
) -> None:
    chunk = min(axis // in_bits, k)
    beats = -(-k // chunk)
    class_bits = max(1, (classes - 1).bit_length())
    m_bits = 8 * -(-(classes * sw + class_bits) // 8)
    ports = Ports(axis, chunk, beats, axis, classes, sw, class_bits, m_bits, 3, in_bits)
    (tmp_path / "hwqnn_driver.h").write_text(driver.render(ports, k, "a test"))
    (tmp_path / "t.c").write_text(PROGRAM)
    exe = tmp_path / "t"
    cc = [
        "cc",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-I",
        str(tmp_path),
        str(tmp_path / "t.c"),
    ]
    res = subprocess.run([*cc, "-o", str(exe)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr

    rng = np.random.default_rng(axis + k)
    n = 23
    codes = rng.integers(0, 2**in_bits, size=(n, k))
    codes[0] = 2**in_bits - 1  # every bit set: no bit may land on a neighbour
    codes.astype(np.uint8).tofile(tmp_path / "codes.bin")
    words = rng.integers(0, 2**32, size=(n, _words(m_bits)), dtype=np.uint64).astype("<u4")
    words.tofile(tmp_path / "rw.bin")
    args = [str(n), "codes.bin", "beats.out", "rw.bin", "res.out"]
    res = subprocess.run([str(exe), *args], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr

    got_beats = np.fromfile(tmp_path / "beats.out", dtype="<u4").reshape(n * beats, -1)
    np.testing.assert_array_equal(got_beats, pack_beats(codes, chunk, in_bits, beats, axis))
    np.testing.assert_array_equal(got_beats, ports.pack(codes))
    got = np.fromfile(tmp_path / "res.out", dtype="<i4").astype(np.int64).reshape(n, -1)
    # bits above the beat's width are not part of it: the RTL never sets them
    masked = words.copy()
    if m_bits % 32:
        masked[:, -1] &= np.uint32((1 << (m_bits % 32)) - 1)
    scores = unpack_fields(masked, sw, classes, signed=True)
    cls = unpack_fields(masked, class_bits, 1, signed=False, offset=classes * sw)
    np.testing.assert_array_equal(got, np.column_stack([scores, cls]))
    np.testing.assert_array_equal(got, np.column_stack(ports.unpack(masked)))
