"""The C library (``sw/``): equal to the golden model on every kernel, strict about its file, and
its example program built with plain ``make`` from the sources."""

from __future__ import annotations

import functools
import json
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwqnn import clib, flat, golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle, BundleError, make_layer
from hwqnn.cli import main
from hwqnn.compare import first_mismatch
from hwqnn.layers import Conv2d, MaxPool2d
from hwqnn.randnet import random_bundle, random_codes, random_net, with_input_thresholds
from tests.conftest import random_bundle as exported_bundle

KERNELS = clib.available()


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> object:
    clib.set_isa(request.param)
    yield request.param
    clib.set_isa(None)


def _layers(b: Bundle, images: np.ndarray) -> list[np.ndarray]:
    t = golden.run(b, images)
    assert t.scores is not None
    return [*t.codes, t.scores]


NETS = [
    pytest.param(8, 1, 1, 131, (67, 33), id="in8-w1-a1-odd"),
    pytest.param(8, 1, 1, 784, (64, 64), id="in8-w1-a1-784"),
    pytest.param(1, 1, 1, 200, (70,), id="in1-w1-a1"),
    pytest.param(2, 2, 2, 131, (67, 9), id="in2-w2-a2"),
    pytest.param(4, 4, 4, 65, (33,), id="in4-w4-a4"),
    pytest.param(8, 2, 4, 64, (8, 17), id="in8-w2-a4"),
    pytest.param(1, 4, 2, 5, (1, 63), id="in1-w4-a2-tiny"),
    pytest.param(4, 1, 1, 63, (), id="in4-single-layer"),
]


@pytest.mark.parametrize(("in_bits", "w_bits", "a_bits", "k", "hidden"), NETS)
def test_equals_golden_on_every_layer(
    kernel: object, in_bits: int, w_bits: int, a_bits: int, k: int, hidden: tuple[int, ...]
) -> None:
    b = random_bundle(k + in_bits, k, hidden, 7, w_bits=w_bits, a_bits=a_bits, in_bits=in_bits)
    x = random_codes(2, 41, k, in_bits)
    expected = _layers(b, x)
    got = clib.trace(b, x)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(g, e)
    with clib.CNet(b) as net:
        np.testing.assert_array_equal(net.scores(x), expected[-1])
        np.testing.assert_array_equal(net.classify(x), expected[-1].argmax(1))


def test_exported_nets_with_flips_and_constant_channels(kernel: object) -> None:
    for seed, hidden, wb, ab in ((0, (33, 20), 1, 1), (1, (40,), 2, 2), (2, (17, 9, 5), 1, 4)):
        _, b = exported_bundle(seed, 70, hidden, 5, wb, ab)
        x = random_codes(seed, 64, 70)
        np.testing.assert_array_equal(clib.trace(b, x)[-1], golden.scores(b, x))


@pytest.mark.parametrize("n", [0, 1, 5, 37])
@pytest.mark.parametrize("threads", [1, 2, 3, 0])
def test_threads_and_batch_sizes(n: int, threads: int) -> None:
    b = random_bundle(3, 100, (48,), 4)
    x = random_codes(4, n, 100)
    with clib.CNet(b) as net:
        np.testing.assert_array_equal(net.scores(x, threads), golden.scores(b, x).reshape(n, 4))


# (input bits, weight bits, activation bits, fan-in, hidden): the byte path (multi-bit codes,
# weights of at most 4 bits), the bit path (1-bit codes; 8-bit weights), widths that leave row
# tails (not a multiple of 4 neurons) and word tails (not a multiple of 4 words)
BLOCK_NETS = [
    pytest.param(8, 1, 1, 200, (37, 6), id="byte-w1-then-bits"),
    pytest.param(2, 4, 2, 131, (9,), id="byte-w4-a2"),
    pytest.param(1, 2, 1, 333, (21,), id="bits-w2"),
    pytest.param(4, 8, 4, 70, (5,), id="bits-w8-k4"),
]


@pytest.mark.parametrize(("in_bits", "w_bits", "a_bits", "k", "hidden"), BLOCK_NETS)
def test_blocks_and_register_tiles(
    kernel: object, in_bits: int, w_bits: int, a_bits: int, k: int, hidden: tuple[int, ...]
) -> None:
    """Batches that fill a block of images, leave one over, or hold one image, and every tile
    width (the tiles take two images, AVX-512's up to four on the byte path and eight on the
    bit path; a lone image takes another path), on every kernel: scores equal golden's."""
    b = random_bundle(k, k, hidden, 7, w_bits=w_bits, a_bits=a_bits, in_bits=in_bits)
    x = random_codes(k + 1, 67, k, in_bits)
    expected = golden.scores(b, x)
    with clib.CNet(b) as net:
        for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 67):
            np.testing.assert_array_equal(net.scores(x[:n], 1), expected[:n], err_msg=f"n={n}")


@functools.cache
def _big_net(in_bits: int, k: int, hidden: int) -> tuple[Bundle, np.ndarray, np.ndarray]:
    b = random_bundle(k, k, (hidden,), 5, in_bits=in_bits)
    x = random_codes(k + 1, 1, k, in_bits)
    return b, x, golden.scores(b, x)


@pytest.mark.parametrize(("in_bits", "k", "hidden"), [(8, 4096, 4099), (1, 16384, 8195)])
def test_a_lone_image_splits_a_big_layer_over_threads(
    kernel: object, in_bits: int, k: int, hidden: int
) -> None:
    """Batch 1 on a layer of >= 2^27 binary MACs (the byte path; the bit path) splits its rows
    (not a multiple of 8) over the threads: the same scores on 1, 2 and 3 threads."""
    b, x, expected = _big_net(in_bits, k, hidden)
    assert b.layers[0].in_features * hidden * in_bits >= 2**27
    with clib.CNet(b) as net:
        for threads in (1, 2, 3):
            np.testing.assert_array_equal(net.scores(x, threads), expected, f"{threads}")


def test_bench_cpu_forces_a_kernel_and_times_every_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bench cpu --kernel`` runs the forced family (and says so), times every family this CPU
    has beside its measured XOR+POPCNT peak, and still checks C == golden; an unknown family
    is one line and exit status 2."""
    from hwqnn import bundle as bundle_io

    src = bundle_io.save(random_bundle(14, 96, (40,), 4), tmp_path / "b.npz")
    out = tmp_path / "cpu.json"
    argv = ["bench", "cpu", "--bundle", str(src), "--quick", "--kernel", "portable"]
    assert main([*argv, "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["isa"] == "portable" and rec["forced"] and rec["mismatches"] == 0
    assert [k["kernel"] for k in rec["kernels"]] == clib.available()
    assert all(k["peak_gmacs"] > 0 and k["lfc_gmacs"] > 0 for k in rec["kernels"])
    assert clib.isa() == clib.available()[0]  # the best one again afterwards
    assert "C kernel portable (forced)" in capsys.readouterr().out
    assert main([*argv[:-1], "sse9"]) == 2
    assert "kernel 'sse9' is not available on this CPU" in capsys.readouterr().err


def test_a_mismatch_is_named_by_layer_and_neuron() -> None:
    b = random_bundle(5, 90, (40, 30), 6)
    x = random_codes(6, 200, 90)
    ly = b.layers[1]
    assert ly.thresholds is not None and ly.flip is not None
    t = ly.thresholds.copy()
    neuron = int(np.flatnonzero((t[:, 0] > 0) & (t[:, 0] <= ly.acc_max))[3])
    t[neuron] = 0  # now always fires
    changed = make_layer(ly.weight_codes(), ly.in_bits, ly.w_bits, ly.out_bits, t, ly.flip)
    b2 = Bundle((b.layers[0], changed, b.layers[2]), b.input_shape, b.classes)
    mm = first_mismatch(_layers(b, x), clib.trace(b2, x))
    assert mm is not None and (mm.layer, mm.neuron) == (1, neuron)


def test_flat_round_trip() -> None:
    for b in (random_bundle(7, 131, (67, 33), 7, 2, 2), random_bundle(8, 10, (), 3, in_bits=1)):
        back = flat.from_bytes(flat.to_bytes(b))  # names and info are not in the flat file
        assert replace(back, classes=b.classes, info=b.info).digest() == b.digest()


# ConvNets (flat file version 3): (arch, image, input bits, weight bits, activation bits)
CONV_NETS = [
    pytest.param("cnv:8c3-mp2-16c3-fc32", (12, 12, 1), 8, 1, 1, id="cnv-small-8bit"),
    pytest.param("cnv:5c3s2p1-mp3s2-4c1-fc7", (11, 9, 3), 2, 2, 2, id="s2p1-overlapping-pool"),
    pytest.param("cnv:6c5p2-fc8", (7, 7, 2), 1, 1, 4, id="k5p2-a4"),
    pytest.param("cnv:70c3p1-mp2-3c3-fc5", (6, 6, 70), 1, 4, 2, id="c70-w4"),
    pytest.param("cnv:4c1-mp2s1-9c2s2-fc6", (5, 7, 4), 4, 4, 1, id="k1-k2s2-w4"),
]


@pytest.mark.parametrize(("spec", "image", "in_bits", "w_bits", "a_bits"), CONV_NETS)
def test_conv_nets_equal_golden_on_every_layer(
    kernel: object, spec: str, image: tuple[int, int, int], in_bits: int, w_bits: int, a_bits: int
) -> None:
    """Convolutions (padding, strides, 1x1 and 5x5 kernels, 70 channels: a window of two words
    and more) and max-pooling (overlapping, stride 1) in the C library: every layer's codes (HWC)
    and every score equal golden's, on every kernel; all threads and the flat file round trip."""
    b = random_net(len(spec), parse_arch(spec, w_bits, a_bits), image, 5, in_bits=in_bits)
    assert any(isinstance(ly, Conv2d) for ly in b.layers)
    x = random_codes(3, 23, b.in_features, in_bits)
    expected = _layers(b, x)
    for e, g in zip(expected, clib.trace(b, x), strict=True):
        np.testing.assert_array_equal(g, e)
    with clib.CNet(b) as net:
        assert net.in_features == b.in_features and net.num_layers == len(b.layers)
        for threads in (1, 3, 0):
            np.testing.assert_array_equal(net.scores(x, threads), expected[-1])
    back = flat.from_bytes(flat.to_bytes(b))
    assert replace(back, classes=b.classes, info=b.info).digest() == b.digest()


def test_conv_net_with_input_thresholds_equals_golden(kernel: object) -> None:
    """Per-channel input thresholds ahead of a convolution (the version-3 file's input record)."""
    b = random_net(31, parse_arch("cnv:6c3p1-mp2-fc9"), (6, 6, 3), 4, in_bits=2)
    b = with_input_thresholds(b, 31, 3)
    x = random_codes(4, 19, b.in_features)
    with clib.CNet(b) as net:
        assert net.raw_bits == 8 and net.in_bits == 2
        np.testing.assert_array_equal(net.scores(x), golden.scores(b, x))
    for got, want in zip(clib.trace(b, x), _layers(b, x), strict=True):
        np.testing.assert_array_equal(got, want)


def test_dense_nets_keep_their_flat_version() -> None:
    """Version 3 is written only for a net with a conv or pool layer: an MLP's file is the same
    as before it (version 1, 8-field records), an input-quantized MLP's version 2."""
    b = random_bundle(7, 131, (67, 33), 7, 2, 2)
    data = flat.to_bytes(b)
    assert struct.unpack_from("<I", data, 8)[0] == 1
    words = [-(-k // 64) for k in (131, 67, 33)]
    payload = sum(o * 2 * w * 8 for o, w in zip((67, 33, 7), words, strict=True))
    payload += 67 * 3 * 8 + 72 + 33 * 3 * 8 + 40  # thresholds and padded flips
    assert len(data) == 32 + 3 * 32 + payload + 8
    assert struct.unpack_from("<I", flat.to_bytes(_quantized(3, 3)), 8)[0] == 2
    cnv = random_net(1, parse_arch("cnv:4c3-fc5"), (5, 5, 1), 3)
    assert struct.unpack_from("<I", flat.to_bytes(cnv), 8)[0] == 3


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """The flat file with one field changed and the checksum made right again, so the loader
    must find the field itself."""
    body = bytearray(data[:-8])
    struct.pack_into(fmt, body, offset, value)
    return bytes(body) + struct.pack("<Q", flat.fnv1a64(bytes(body)))


def _resum(body: bytes) -> bytes:
    return body + struct.pack("<Q", flat.fnv1a64(body))


REC = 32 + 32  # layer 1's record (after the header and layer 0's record)
W0 = 32 + 3 * 32  # layer 0's weights
CORRUPT: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("magic", lambda d: b"HWQNNXXX" + d[8:], "magic"),
    ("version", lambda d: _patched(d, 8, "<I", 6), "version"),
    ("header-reserved", lambda d: _patched(d, 28, "<I", 1), "reserved"),
    ("no-layers", lambda d: _patched(d, 12, "<I", 0), "n_layers"),
    ("in-bits-3", lambda d: _patched(d, 32 + 8, "<I", 3), "layer0.in_bits"),
    ("words", lambda d: _patched(d, 32 + 20, "<I", 9), "layer0.words"),
    ("last-out-bits", lambda d: _patched(d, 32 + 64 + 16, "<I", 1), "layer2.out_bits"),
    ("chain", lambda d: _patched(d, REC, "<I", 41), "layer1.in_features"),
    ("reserved", lambda d: _patched(d, REC + 28, "<I", 1), "layer1.reserved"),
    ("pad-bit", lambda d: _patched(d, W0 + 8, "<Q", 0), "layer0.weights"),
    ("truncated", lambda d: _resum(d[:-16]), "payload"),
    ("trailing", lambda d: _resum(d[:-8] + bytes(8)), "payload"),
    ("bit-flip", lambda d: d[:100] + bytes([d[100] ^ 4]) + d[101:], "checksum"),
    ("empty", lambda d: b"", "magic"),
]


@pytest.mark.parametrize(("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in CORRUPT])
def test_corrupt_flat_file_is_refused_naming_the_field(
    tmp_path: Path, mutate: Callable[[bytes], bytes], field: str
) -> None:
    b = random_bundle(9, 100, (40, 30), 5)  # 100 inputs: 2 words, 36 pad bits
    path = tmp_path / "net.hwq"
    path.write_bytes(mutate(flat.to_bytes(b)))
    with pytest.raises(BundleError, match=rf"net\.hwq: field '{re.escape(field)}"):
        clib.CNet.from_file(path)
    with pytest.raises(BundleError, match=r"net\.hwq: field '"):
        flat.from_bytes(path.read_bytes(), str(path))


def test_thresholds_and_flips_are_checked(tmp_path: Path) -> None:
    b = random_bundle(10, 64, (13,), 3, in_bits=1)  # acc_max 64; 13 flips + 3 pad bytes
    data = flat.to_bytes(b)
    t0 = 32 + 2 * 32 + 13 * 8  # layer 0's thresholds, after its weights
    f0 = t0 + 13 * 8  # its flips
    cases = [
        (_patched(data, t0, "<q", -1), "layer0.thresholds"),
        (_patched(data, t0, "<q", 64 + 2), "layer0.thresholds"),
        (_patched(data, f0, "B", 2), "layer0.flip"),
        (_patched(data, f0 + 13, "B", 1), "layer0.flip"),
    ]
    for blob, field in cases:
        path = tmp_path / "t.hwq"
        path.write_bytes(blob)
        with pytest.raises(BundleError, match=f"field '{re.escape(field)}'"):
            clib.CNet.from_file(path)
        with pytest.raises(BundleError):
            flat.from_bytes(blob)


def _quantized(seed: int, channels: int, in_bits: int = 2) -> Bundle:
    b = random_bundle(seed, 4 * 5 * 3, (19,), 4, in_bits=in_bits)
    if channels > 1:
        b = replace(b, input_shape=(4, 5, 3))
    return with_input_thresholds(b, seed, channels)


@pytest.mark.parametrize(("channels", "in_bits"), [(1, 1), (3, 2), (3, 4)])
def test_quantized_input_equals_golden(kernel: object, channels: int, in_bits: int) -> None:
    """Raw pixels through the flat file's input thresholds (version 2) == golden, every score;
    the flat file round-trips to the same bundle."""
    b = _quantized(20 + channels, channels, in_bits)
    x = random_codes(3, 33, b.in_features)
    with clib.CNet(b) as net:
        assert net.raw_bits == 8 and net.in_bits == in_bits
        np.testing.assert_array_equal(net.scores(x), golden.scores(b, x))
    for got, want in zip(clib.trace(b, x), _layers(b, x), strict=True):  # layer by layer
        np.testing.assert_array_equal(got, want)
    with clib.CNet(b) as net:
        np.testing.assert_array_equal(net.quantize_input(x), b.quantize_input(x))
    back = flat.from_bytes(flat.to_bytes(b))
    np.testing.assert_array_equal(golden.scores(back, x), golden.scores(b, x))
    assert back.quant.thresholds is not None and b.quant.thresholds is not None
    np.testing.assert_array_equal(back.quant.thresholds, b.quant.thresholds)


INPUT_REC = 32  # a version-2 file's input record: raw_bits, channels, levels, 0; then thresholds
QUANT_CORRUPT = [
    ("raw-bits-9", lambda d: _patched(d, INPUT_REC, "<I", 9), "input.raw_bits"),
    ("channels-0", lambda d: _patched(d, INPUT_REC + 4, "<I", 0), "input.channels"),
    ("channels-huge", lambda d: _patched(d, INPUT_REC + 4, "<I", 1 << 30), "input.channels"),
    ("levels", lambda d: _patched(d, INPUT_REC + 8, "<I", 2), "input.levels"),
    ("descending", lambda d: _patched(d, INPUT_REC + 16 + 8, "<q", -1), "input.thresholds"),
    ("above-raw", lambda d: _patched(d, INPUT_REC + 16, "<q", 257), "input.thresholds"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in QUANT_CORRUPT]
)
def test_corrupt_input_record_is_refused_naming_the_field(
    tmp_path: Path, mutate: Callable[[bytes], bytes], field: str
) -> None:
    data = flat.to_bytes(_quantized(5, 3))
    assert struct.unpack_from("<I", data, 8)[0] == 2
    path = tmp_path / "q.hwq"
    path.write_bytes(mutate(data))
    with pytest.raises(BundleError, match=rf"q\.hwq: field '{re.escape(field)}"):
        clib.CNet.from_file(path)
    with pytest.raises(BundleError, match=r"q\.hwq: field '"):
        flat.from_bytes(path.read_bytes(), str(path))


# A version-3 file: header, identity input record, then 16-field records; the net below is
# conv 4c3p1 on 6x6x2 (layer 0), max-pool 2 (layer 1), the last dense layer (layer 2).
R3 = 32 + 16  # layer 0's record
P3 = R3 + 64  # layer 1's (the pool)


def _v3(field: int, layer_at: int = R3) -> int:
    return layer_at + 4 * field


V3_CORRUPT = [
    ("kind", lambda d: _patched(d, _v3(0), "<I", 7), "layer0.kind"),
    ("last-kind", lambda d: _patched(d, _v3(0, P3 + 64), "<I", 1), "layer2.kind"),
    ("kernel-0", lambda d: _patched(d, _v3(12), "<I", 0), "layer0.kernel"),
    ("kernel-17", lambda d: _patched(d, _v3(12), "<I", 17), "layer0.kernel"),
    ("stride-0", lambda d: _patched(d, _v3(13), "<I", 0), "layer0.stride"),
    ("pad-kernel", lambda d: _patched(d, _v3(14), "<I", 3), "layer0.padding"),
    ("pool-pad", lambda d: _patched(d, _v3(14, P3), "<I", 1), "layer1.padding"),
    ("height-huge", lambda d: _patched(d, _v3(9), "<I", 1 << 31), "layer0.in_shape"),
    ("channels", lambda d: _patched(d, _v3(11), "<I", 3), "layer0.in"),
    ("cols", lambda d: _patched(d, _v3(7), "<I", 17), "layer0.cols"),
    ("out", lambda d: _patched(d, _v3(2), "<I", 143), "layer0.out_features"),
    ("pool-w-bits", lambda d: _patched(d, _v3(4, P3), "<I", 1), "layer1.in_bits"),
    ("pool-rows", lambda d: _patched(d, _v3(6, P3), "<I", 4), "layer1.rows"),
    ("dense-window", lambda d: _patched(d, _v3(12, P3 + 64), "<I", 3), "layer2.in_shape"),
    ("reserved", lambda d: _patched(d, _v3(15), "<I", 1), "layer0.reserved"),
    ("identity-raw-bits", lambda d: _patched(d, 32, "<I", 7), "input.raw_bits"),
]


@pytest.mark.parametrize(("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in V3_CORRUPT])
def test_corrupt_conv_flat_file_is_refused_naming_the_field(
    tmp_path: Path, mutate: Callable[[bytes], bytes], field: str
) -> None:
    b = random_net(40, parse_arch("cnv:4c3p1-mp2"), (6, 6, 2), 5)
    assert isinstance(b.layers[1], MaxPool2d)
    data = flat.to_bytes(b)
    assert struct.unpack_from("<I", data, 8)[0] == 3
    refused_by_both(tmp_path, mutate(data), field)


def refused_by_both(tmp_path: Path, data: bytes, field: str) -> None:
    """The C loader refuses the file naming ``field``; the Python reader refuses it too."""
    path = tmp_path / "c.hwq"
    path.write_bytes(data)
    with pytest.raises(BundleError, match=rf"c\.hwq: field '{re.escape(field)}"):
        clib.CNet.from_file(path)
    with pytest.raises(BundleError, match=r"c\.hwq: field '"):
        flat.from_bytes(path.read_bytes(), str(path))


def test_bad_images_are_refused() -> None:
    b = random_bundle(11, 20, (8,), 3, in_bits=1)
    with clib.CNet(b) as net:
        with pytest.raises(ValueError, match=r"shape \[N, 20\]"):
            net.scores(np.zeros((2, 21), np.uint8))
        with pytest.raises(ValueError, match=r"0\.\.1"):
            net.scores(np.full((2, 20), 2))


def _write_idx(path: Path, arr: np.ndarray) -> None:
    dims = b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(bytes([0, 0, 8, arr.ndim]) + dims + arr.astype(np.uint8).tobytes())


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="no cc")
def test_example_program_built_with_make(tmp_path: Path) -> None:
    sw = tmp_path / "sw"
    shutil.copytree(clib.SW_DIR, sw, ignore=shutil.ignore_patterns("*.o", "*.a", "*.so"))
    res = subprocess.run(["make", "-C", str(sw)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    b = random_bundle(12, 784, (64, 32), 10)
    images = random_codes(13, 300, 784).reshape(300, 28, 28)
    expected = golden.scores(b, images.reshape(300, 784)).argmax(1)
    labels = expected.copy()
    labels[:30] = (labels[:30] + 1) % 10  # 90 % right
    net, img, lab = tmp_path / "net.hwq", tmp_path / "img", tmp_path / "lab"
    assert main(["flat", _saved(b, tmp_path), "-o", str(net)]) == 0
    _write_idx(img, images)
    _write_idx(lab, labels)
    res = subprocess.run(
        [str(sw / "examples" / "classify"), str(net), str(img), str(lab), "-p", "-t", "2"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(np.array(res.stdout.split(), dtype=np.int64), expected)
    assert "accuracy 0.9000 (270/300)" in res.stderr
    for k in clib.available():  # -s: every score; -k: a forced kernel
        cmd = [str(sw / "examples" / "classify"), str(net), str(img), "-s", "-k", k]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0 and f"kernel {k}" in res.stderr, res.stderr
        got = np.array([line.split() for line in res.stdout.splitlines()], dtype=np.int64)
        np.testing.assert_array_equal(got, golden.scores(b, images.reshape(300, 784)))
    res = subprocess.run([*cmd[:-1], "sse9"], capture_output=True, text=True)
    assert res.returncode == 2 and "kernel sse9 is not available" in res.stderr
    img.write_bytes(b"\x1f\x8b" + img.read_bytes())
    cmd = [str(sw / "examples" / "classify"), str(net), str(img)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "gunzip it first" in res.stderr


def _saved(b: Bundle, tmp_path: Path) -> str:
    from hwqnn import bundle as bundle_io

    return str(bundle_io.save(b, tmp_path / "b.npz"))


def test_verify_without_checkpoint_compares_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    b = random_bundle(14, 64, (32,), 4)
    assert main(["verify", _saved(b, tmp_path), "--data", "synthetic"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["c"]["mismatches"] == 0 and res["c"]["images"] == 500
