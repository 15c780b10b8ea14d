"""The C library on every encoding (flat file version 4): equal to golden on every layer and
kernel, strict about the encodings field and the score bias."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwqnn import clib, flat, verify
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle, BundleError, UnsupportedKindError
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED, Encoding
from hwqnn.randnet import Encodings, random_bundle, random_codes, random_net
from tests.test_clib import _layers, _patched, kernel, refused_by_both

__all__ = ["kernel"]  # the fixture: every test below runs on every kernel

ENCS = {"odd": ODD, "unsigned": UNSIGNED, "signed": SIGNED}
TRIPLES = [(i, w, a) for i in ENCS for w in ENCS for a in ENCS]


def _check(b: Bundle, x: np.ndarray) -> None:
    expected = _layers(b, x)
    for e, g in zip(expected, clib.trace(b, x), strict=True):
        np.testing.assert_array_equal(g, e)
    with clib.CNet(b) as net:
        np.testing.assert_array_equal(net.scores(x, 2), expected[-1])


@pytest.mark.parametrize(("in_enc", "w_enc", "a_enc"), TRIPLES)
@pytest.mark.parametrize(("in_bits", "w_bits", "a_bits", "k"), [(8, 2, 2, 131), (1, 4, 1, 64),
                                                                (4, 1, 4, 70)])  # fmt: skip
def test_dense_nets_of_every_encoding_equal_golden(
    kernel: object, in_enc: str, w_enc: str, a_enc: str, in_bits: int, w_bits: int, a_bits: int,
    k: int,
) -> None:  # fmt: skip
    encs = Encodings(ENCS[in_enc], ENCS[w_enc], ENCS[a_enc], bias=True)
    b = random_bundle(k + in_bits, k, (67, 9), 7, w_bits, a_bits, in_bits, encodings=encs)
    _check(b, random_codes(2, 29, k, in_bits))


@pytest.mark.parametrize("enc", list(ENCS))
@pytest.mark.parametrize(("spec", "image", "in_bits"), [
    ("cnv:5c3s2p1-mp3s2-4c1-fc7", (11, 9, 3), 2),
    ("cnv:6c5p2-fc8", (7, 7, 2), 4),
    ("cnv:70c3p1-mp2-3c3p1-fc5", (6, 6, 3), 8),
])  # fmt: skip
def test_conv_nets_of_every_encoding_equal_golden(
    kernel: object, enc: str, spec: str, image: tuple[int, int, int], in_bits: int
) -> None:
    """Padding reads each encoding's zero code (signed: 2**(k-1)); pooling pools codes."""
    e = ENCS[enc]
    b = random_net(3, parse_arch(spec, 2, 2), image, 5, in_bits,
                   encodings=Encodings(e, e, e, bias=True))  # fmt: skip
    _check(b, random_codes(4, 13, b.in_features, in_bits))


def test_version_4_round_trip_and_older_files_unchanged() -> None:
    b = random_bundle(1, 40, (16,), 3, 2, 2, 8, encodings=Encodings(UNSIGNED, SIGNED, SIGNED,
                                                                     bias=True))  # fmt: skip
    data = flat.to_bytes(b)
    assert struct.unpack_from("<I", data, 8)[0] == 4
    back = flat.from_bytes(data)
    assert replace(back, classes=b.classes, info=b.info).digest() == b.digest()
    plain = random_bundle(1, 40, (16,), 3, 2, 2, 8)
    assert struct.unpack_from("<I", flat.to_bytes(plain), 8)[0] == 1
    cnv = random_net(1, parse_arch("cnv:4c3-fc6"), (6, 6, 1), 3)
    assert struct.unpack_from("<I", flat.to_bytes(cnv), 8)[0] == 3


def test_verify_compares_c_on_a_version_4_net() -> None:
    b = random_bundle(2, 40, (16,), 3, 2, 2, 8, encodings=Encodings(SIGNED, SIGNED, UNSIGNED,
                                                                     bias=True))  # fmt: skip
    check = verify.c_or_skipped(b, random_codes(1, 50, 40), None)
    assert check.get("mismatches") == 0 and check.get("images") == 50 and "skipped" not in check


def test_scores_beyond_int32_are_refused() -> None:
    """The C library's scores are int32: a bias that pushes them further is refused by the
    writer (verify: not run), by the Python reader and by the C loader, naming the bias."""
    b = random_bundle(3, 40, (16,), 3, 2, 2, 8, encodings=Encodings(bias=True))
    last = b.layers[-1]
    big = replace(last, bias=np.array([0, 2**31, 0], dtype=np.int64))
    huge = replace(b, layers=(*b.layers[:-1], big))
    with pytest.raises(UnsupportedKindError, match=r"layer 1: scores reach .* 32-bit scores"):
        flat.to_bytes(huge)
    assert "32-bit" in verify.c_or_skipped(huge, random_codes(1, 3, 40), None).get("skipped", "")
    data = flat.to_bytes(b)
    bias_at = len(data) - 8 - 3 * 8
    bad = _patched(data, bias_at + 8, "<q", 2**31)
    with pytest.raises(BundleError, match=r"field 'layer1\.bias'"):
        flat.from_bytes(bad)
    with pytest.raises(BundleError, match=r"field 'layer1\.bias'"):
        _open(bad)


def _open(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "n.hwq"
        p.write_bytes(data)
        clib.CNet.from_file(p).close()


# A version-4 file of the net below: header, identity input record, 16-field records; layer 0
# conv 4c3p1 (signed in, weights, out), layer 1 max-pool, layer 2 dense (the last, biased).
R4 = 32 + 16
ENC = 15  # the record's encodings field


def _rec(layer: int, field: int) -> int:
    return R4 + 64 * layer + 4 * field


def _enc(i: int, w: int, o: int, bias: int = 0) -> int:
    return i | w << 2 | o << 4 | bias << 6


V4_CORRUPT = [
    (
        "enc-high-bit",
        lambda d: _patched(d, _rec(0, ENC), "<I", _enc(2, 2, 2) | 1 << 7),
        "layer0.encodings",
    ),
    ("in-enc-3", lambda d: _patched(d, _rec(0, ENC), "<I", _enc(3, 2, 2)), "layer0.encodings"),
    ("pool-w-enc", lambda d: _patched(d, _rec(1, ENC), "<I", _enc(2, 1, 2)), "layer1.encodings"),
    ("pool-out-enc", lambda d: _patched(d, _rec(1, ENC), "<I", _enc(2, 0, 1)), "layer1.encodings"),
    ("chain", lambda d: _patched(d, _rec(1, ENC), "<I", _enc(1, 0, 1)), "layer1.in_enc"),
    (
        "bias-on-hidden",
        lambda d: _patched(d, _rec(0, ENC), "<I", _enc(2, 2, 2, 1)),
        "layer0.encodings",
    ),
    (
        "out-enc-last",
        lambda d: _patched(d, _rec(2, ENC), "<I", _enc(2, 2, 1, 1)),
        "layer2.encodings",
    ),
    ("bias-dropped", lambda d: _patched(d, _rec(2, ENC), "<I", _enc(2, 2, 0, 0)), "payload"),
    ("version-6", lambda d: _patched(d, 8, "<I", 6), "version"),
]


def _v4_conv() -> Bundle:
    return random_net(40, parse_arch("cnv:4c3p1-mp2", 2, 2), (6, 6, 2), 5, in_bits=2,
                      encodings=Encodings(SIGNED, SIGNED, SIGNED, bias=True))  # fmt: skip


@pytest.mark.parametrize(("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in V4_CORRUPT])
def test_corrupt_encodings_are_refused_by_both_readers(
    tmp_path: Path, mutate: Callable[[bytes], bytes], field: str
) -> None:
    b = _v4_conv()
    data = flat.to_bytes(b)
    assert struct.unpack_from("<I", data, 8)[0] == 4
    assert struct.unpack_from("<I", data, _rec(0, ENC))[0] == _enc(2, 2, 2)
    refused_by_both(tmp_path, mutate(data), field)


def test_encoding_codes_are_the_bundles() -> None:
    assert {e.name: flat.ENC_CODES[e.name] for e in (ODD, UNSIGNED, SIGNED)} == {
        "odd": 0, "unsigned": 1, "signed": 2}  # fmt: skip
    assert all(isinstance(e, Encoding) for e in flat.ENC_OF_CODE.values())


@pytest.mark.parametrize("shape", [(6, 6), (6, 6, 1)])
def test_float_twin_of_a_grayscale_conv_net(shape: tuple[int, ...]) -> None:
    """``bench cpu``'s float twin takes a ConvNet whose bundle names its input [H, W] (as the
    flow writes a grayscale net) or [H, W, C]: same scores' shape either way."""
    import torch

    from hwqnn.bench import float_twin

    b = replace(random_net(1, parse_arch("cnv:4c3-mp2-fc6"), (6, 6, 1), 3), input_shape=shape)
    twin = float_twin(b)
    with torch.inference_mode():
        out = twin(torch.zeros(2, 36))
    assert tuple(out.shape) == (2, 3)
