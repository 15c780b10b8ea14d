"""Encodings (bundle version 4): odd, unsigned and signed codes, the score bias.

The golden model is checked against a reference written here from the arithmetic alone: each
code's value from the table below, the dot product of the values as an int64 matrix product,
the convolution's zero padding as the value 0 (the lowest level for odd codes), and the
relation ``gain * A + D = dot product`` with ``D`` from the per-encoding closed form of the
bundle docstring (not the golden model's own way of finding it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwqnn import bundle as B  # noqa: N812
from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.layers import Conv2d, Layer, MaxPool2d
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED, Encoding
from hwqnn.randnet import Encodings, random_bundle, random_codes, random_net

ENCS = {"odd": ODD, "unsigned": UNSIGNED, "signed": SIGNED}


def value(codes: np.ndarray, bits: int, enc: str) -> np.ndarray:
    c = np.asarray(codes, dtype=np.int64)
    m = 2**bits - 1
    return {"odd": 2 * c - m, "unsigned": c, "signed": c - 2 ** (bits - 1)}[enc]


def closed_form_offset(ly: Layer) -> np.ndarray:
    """``D[o]`` of the bundle docstring: ``-gain_in * corr[o] + beta_in * W[o]``."""
    w = ly.weight_codes()
    kw, ka, k = ly.w_bits, ly.in_bits, ly.in_features
    m_in = 2**ka - 1
    planes = [(w >> j) & 1 for j in range(kw)]  # [out, in] each
    if ly.w_enc.name == "odd":
        corr = m_in * sum(2**j * (k - planes[j].sum(1)) for j in range(kw))
    elif ly.w_enc.name == "unsigned":
        corr = np.zeros(ly.out_features, dtype=np.int64)
    else:
        corr = 2 ** (kw - 1) * m_in * (k - planes[kw - 1].sum(1))
    gain, beta = {"odd": (2, -m_in), "unsigned": (1, 0), "signed": (1, -(2 ** (ka - 1)))}[
        ly.in_enc.name
    ]
    w_sum = value(w, kw, ly.w_enc.name).sum(1)
    return -gain * corr + beta * w_sum


def check_dense(ly: Layer, codes: np.ndarray, acc: np.ndarray, out: np.ndarray) -> None:
    dot = (
        value(codes, ly.in_bits, ly.in_enc.name)
        @ value(ly.weight_codes(), ly.w_bits, ly.w_enc.name).T
    )
    gain = 2 if ly.in_enc.name == "odd" else 1
    np.testing.assert_array_equal(gain * acc + closed_form_offset(ly), dot)
    assert acc.min() >= 0 and acc.max() <= ly.acc_max  # the accumulator's domain is unchanged
    if ly.is_last:
        bias = 0 if ly.bias is None else ly.bias
        np.testing.assert_array_equal(out, dot + bias)  # scores: the dot product plus the bias


NAMES = list(ENCS)
COMBOS = [(i, w, a) for i in NAMES for w in NAMES for a in NAMES]


@pytest.mark.parametrize(("in_enc", "w_enc", "a_enc"), COMBOS)
@pytest.mark.parametrize(
    ("in_bits", "w_bits", "a_bits"), [(8, 2, 2), (1, 1, 1), (4, 4, 4), (2, 8, 1)]
)
def test_golden_dense_equals_the_dot_product_of_values(
    in_enc: str, w_enc: str, a_enc: str, in_bits: int, w_bits: int, a_bits: int
) -> None:
    encs = Encodings(ENCS[in_enc], ENCS[w_enc], ENCS[a_enc], bias=True)
    b = random_bundle(7, 70, (65, 33), 5, w_bits, a_bits, in_bits, encodings=encs)
    B.validate(b)
    x = random_codes(1, 40, 70, in_bits)
    tr = golden.run(b, x)
    ins = [x, *tr.codes]
    for i, ly in enumerate(b.layers):
        assert isinstance(ly, Layer)
        out = tr.scores if ly.is_last else tr.codes[i]
        acc = tr.accs[i]
        assert acc is not None and out is not None
        check_dense(ly, ins[i], acc, out)
    assert len({tuple(r) for r in tr.codes[0]}) > 1  # the hidden codes vary


def _conv_ref(ly: Conv2d, codes: np.ndarray) -> np.ndarray:
    """The convolution of the values, zero-padded by value (odd: the lowest level, code 0)."""
    w = ly.window
    v = value(codes, ly.in_bits, ly.in_enc.name).reshape(-1, w.height, w.width, w.channels)
    pad_value = -(2**ly.in_bits - 1) if ly.in_enc.name == "odd" else 0
    p = w.pad
    v = np.pad(v, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=pad_value)
    wv = value(ly.matrix.weight_codes(), ly.w_bits, ly.matrix.w_enc.name)
    wv = wv.reshape(ly.out_channels, w.kernel, w.kernel, w.channels)
    out = np.zeros((len(codes), w.out_h, w.out_w, ly.out_channels), dtype=np.int64)
    for y in range(w.out_h):
        for x in range(w.out_w):
            patch = v[
                :, y * w.stride : y * w.stride + w.kernel, x * w.stride : x * w.stride + w.kernel, :
            ]
            out[:, y, x, :] = np.einsum("nijc,oijc->no", patch, wv)
    return out.reshape(len(codes), -1)


@pytest.mark.parametrize("enc", NAMES)
@pytest.mark.parametrize("arch", ["cnv:3c3p1-mp2-4c3s2p2-fc6", "cnv:4c5p2-mp3s2-fc5"])
def test_golden_conv_and_pool_on_every_encoding(enc: str, arch: str) -> None:
    e = ENCS[enc]
    a = parse_arch(arch, w_bits=2, a_bits=2)
    b = random_net(3, a, (9, 9, 2), 4, in_bits=4, encodings=Encodings(e, e, e, bias=True))
    x = random_codes(5, 12, 9 * 9 * 2, 4)
    tr = golden.run(b, x)
    ins = [x, *tr.codes]
    for i, ly in enumerate(b.layers):
        if isinstance(ly, Conv2d):
            acc = tr.accs[i]
            assert acc is not None
            gain = 2 if enc == "odd" else 1
            d = np.tile(closed_form_offset(ly.matrix), ly.window.positions)
            np.testing.assert_array_equal(gain * acc + d, _conv_ref(ly, ins[i]))
        elif isinstance(ly, MaxPool2d):
            w = ly.window
            v = value(ins[i], ly.bits, enc).reshape(-1, w.height, w.width, w.channels)
            want = np.stack(
                [
                    v[
                        :,
                        y * w.stride : y * w.stride + w.kernel,
                        x * w.stride : x * w.stride + w.kernel,
                    ].max(axis=(1, 2))
                    for y in range(w.out_h)
                    for x in range(w.out_w)
                ],
                axis=1,
            )
            got = value(tr.codes[i], ly.bits, enc)
            np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_signed_padding_reads_the_value_zero() -> None:
    """A signed input's padding is code 2**(k-1) (value 0), not code 0 (value -2**(k-1))."""
    a = parse_arch("cnv:2c3p1-fc3", w_bits=2, a_bits=2)
    b = random_net(1, a, (3, 3, 1), 3, in_bits=2, encodings=Encodings(SIGNED, SIGNED, SIGNED))
    ly = b.layers[0]
    assert isinstance(ly, Conv2d)
    zeros = np.full((1, 9), 2)  # every pixel is the value 0: every output pixel sees only 0s
    acc = golden.run(b, zeros).accs[0]
    assert acc is not None
    d = np.tile(closed_form_offset(ly.matrix), 9)
    np.testing.assert_array_equal(acc + d, 0)


def test_odd_nets_keep_their_version_meta_and_scores() -> None:
    """An odd-level net without a bias is the bundle it was: no version-4 key, same scores."""
    plain = random_bundle(4, 50, (20,), 4, 2, 2, 8)
    same = random_bundle(4, 50, (20,), 4, 2, 2, 8, encodings=Encodings())
    assert plain.version <= 3 and same.meta() == plain.meta() and same.digest() == plain.digest()
    x = random_codes(2, 30, 50)
    last = plain.layers[-1]
    assert isinstance(last, Layer)
    acc = golden.run(plain, x).accs[-1]
    assert acc is not None
    np.testing.assert_array_equal(golden.scores(plain, x), 2 * acc - last.acc_max)


def _v4() -> B.Bundle:
    return random_bundle(
        9, 40, (16,), 3, 2, 2, 8, encodings=Encodings(UNSIGNED, SIGNED, UNSIGNED, bias=True)
    )


def test_version_4_round_trip(tmp_path: Path) -> None:
    b = _v4()
    meta = b.meta()
    assert meta["version"] == 4
    layers = meta["layers"]
    assert isinstance(layers, list)
    assert layers[0] == {
        **layers[0],
        "in_enc": "unsigned",
        "w_enc": "signed",
        "out_enc": "unsigned",
    }
    assert layers[1]["bias"] is True and "out_enc" not in layers[1]
    b2 = B.load(B.save(b, tmp_path / "b.npz"))
    assert b2.digest() == b.digest() and b2.meta() == meta
    x = random_codes(3, 20, 40)
    np.testing.assert_array_equal(golden.scores(b2, x), golden.scores(b, x))


def _edit(tmp_path: Path, b: B.Bundle, edit_meta=None, **arrays: np.ndarray | None) -> Path:  # type: ignore[no-untyped-def]
    src = B.save(b, tmp_path / "src.npz")
    with np.load(src, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    meta = json.loads(str(out["meta"]))
    if edit_meta:
        edit_meta(meta)
    out["meta"] = np.array(json.dumps(meta))
    for k, v in arrays.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    dst = tmp_path / "bad.npz"
    np.savez(dst, **out)
    return dst


def _set(path: str, value: object):  # type: ignore[no-untyped-def]
    def edit(meta: dict) -> None:  # type: ignore[type-arg]
        *keys, last = path.split("/")
        node = meta
        for k in keys:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return edit


HOSTILE = [
    (
        "enc-name",
        _set("layers/0/w_enc", "twos"),
        None,
        "field 'meta.layers[0].w_enc': expected one of odd, unsigned, signed, found 'twos'",
    ),
    (
        "enc-type",
        _set("layers/0/in_enc", 1),
        None,
        "field 'meta.layers[0].in_enc': expected one of odd, unsigned, signed, found 1",
    ),
    (
        "enc-in-v3",
        _set("version", 3),
        None,
        "field 'meta.layers[0].in_enc': expected no such key in bundle version 3",
    ),
    (
        "out-enc-last",
        _set("layers/1/out_enc", "signed"),
        None,
        "field 'meta.layers[1].out_enc': expected no such key on the last layer",
    ),
    (
        "bias-hidden",
        _set("layers/0/bias", True),
        None,
        "field 'meta.layers[0].bias': expected no such key on a hidden layer",
    ),
    (
        "bias-false",
        _set("layers/1/bias", False),
        None,
        "field 'meta.layers[1].bias': expected true",
    ),
    (
        "bias-key-missing",
        _set("layers/1/bias", ...),
        None,
        "field 'layer1.bias': expected no such array for this meta",
    ),
    (
        "chain",
        _set("layers/1/in_enc", "signed"),
        None,
        "field 'meta.layers[1].in_enc': expected unsigned (the previous layer's output encoding), "
        "found signed",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [pytest.param(e, m, id=i) for i, e, _, m in HOSTILE])
def test_hostile_encoding_fields_are_refused_by_name(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(B.BundleError) as err:
        B.load(_edit(tmp_path, _v4(), edit))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("bias", "message"),
    [
        (np.zeros(3, np.int32), "field 'layer1.bias'"),
        (np.zeros(4, np.int64), "field 'layer1.bias'"),
        (
            np.array([0, 1 << 50, 0], np.int64),
            "field 'layer1.bias': expected values of magnitude below 2**48",
        ),
        (None, "field 'layer1.bias': expected an array of shape (3,), found nothing"),
    ],
)
def test_hostile_bias_arrays_are_refused_by_name(
    tmp_path: Path, bias: np.ndarray | None, message: str
) -> None:
    with pytest.raises(B.BundleError) as err:
        B.load(_edit(tmp_path, _v4(), None, **{"layer1.bias": bias}))
    assert message in str(err.value)


def test_a_bias_array_without_meta_is_refused(tmp_path: Path) -> None:
    plain = random_bundle(4, 50, (20,), 4, 2, 2, 8)
    with pytest.raises(B.BundleError, match=r"field 'layer1\.bias': expected no such array"):
        B.load(_edit(tmp_path, plain, None, **{"layer1.bias": np.zeros(4, np.int64)}))


def test_encoding_type_facts() -> None:
    """Each encoding's value rule, zero code and plane ops, against the table above."""
    for name, e in ENCS.items():
        for bits in (1, 2, 4, 8):
            c = np.arange(2**bits)
            np.testing.assert_array_equal(e.value(c, bits), value(c, bits, name))
            z = e.zero_code(bits)
            want_zero = 0 if name == "odd" else int(np.flatnonzero(value(c, bits, name) == 0)[0])
            assert z == want_zero
    assert [SIGNED.plane_op(m, 4) for m in range(4)] == ["and", "and", "and", "nor"]
    assert {ODD.plane_op(m, 2) for m in range(2)} == {"xnor"}
    assert isinstance(UNSIGNED, Encoding) and UNSIGNED.plane_op(0, 1) == "and"
