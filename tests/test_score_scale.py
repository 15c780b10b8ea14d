"""The per-class score scale (bundle and flat file version 5): ``score[o] = scale[o] * s[o] +
bias[o]``. Golden against the int64 product of the values written here; the C library (every
kernel), the GPU path (Triton's interpreter) and the QONNX round trip against golden; every new
field refused by name when hostile, by the bundle reader and by both flat-file readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hwqnn.gpu  # noqa: F401  (Triton's interpreter, set before anything imports Triton)
from hwqnn import bundle as B  # noqa: N812
from hwqnn import flat, golden
from hwqnn.arch import parse_arch
from hwqnn.gpu.infer import infer
from hwqnn.layers import Layer
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED
from hwqnn.randnet import Encodings, random_bundle, random_codes, random_net
from tests.test_clib import kernel, refused_by_both
from tests.test_encodings import _edit, _set, value

__all__ = ["kernel"]

ENC_SETS = {
    "odd": Encodings(ODD, ODD, ODD, scale=True),
    "int-bias": Encodings(UNSIGNED, SIGNED, UNSIGNED, bias=True, scale=True),
    "signed-bias": Encodings(SIGNED, SIGNED, SIGNED, bias=True, scale=True),
}


def scaled(name: str, seed: int = 3) -> B.Bundle:
    return random_bundle(seed, 70, (33,), 6, 2, 2, 8, encodings=ENC_SETS[name])


def scaled_conv(name: str) -> B.Bundle:
    arch = parse_arch("cnv:4c3p1-mp2-3c3s2p1-fc6", 2, 2)
    return random_net(5, arch, (7, 7, 2), 5, 4, encodings=ENC_SETS[name])


@pytest.mark.parametrize("name", list(ENC_SETS))
def test_golden_scores_are_the_scaled_dot_product_plus_bias(name: str) -> None:
    b = scaled(name)
    assert b.version == 5
    x = random_codes(1, 50, 70)
    tr = golden.run(b, x)
    last = b.layers[-1]
    assert isinstance(last, Layer) and last.score_scale is not None
    dot = (
        value(tr.codes[-1], last.in_bits, last.in_enc.name)
        @ value(last.weight_codes(), last.w_bits, last.w_enc.name).T
    )
    bias = 0 if last.bias is None else last.bias
    np.testing.assert_array_equal(tr.scores, last.score_scale * dot + bias)
    assert len(np.unique(last.score_scale)) > 3 and (last.score_scale >= 1).all()


def test_round_trip_version_5_and_older_nets_unchanged(tmp_path: Path) -> None:
    b = scaled("int-bias")
    meta = b.meta()
    layers = meta["layers"]
    assert isinstance(layers, list) and layers[-1]["scale"] is True and meta["version"] == 5
    b2 = B.load(B.save(b, tmp_path / "b.npz"))
    assert b2.digest() == b.digest() and b2.meta() == meta
    plain = random_bundle(3, 70, (33,), 6, 2, 2, 8, encodings=Encodings(UNSIGNED, SIGNED, UNSIGNED,
                                                                         bias=True))  # fmt: skip
    assert plain.version == 4 and "scale" not in json.dumps(plain.meta())


HOSTILE = [
    ("scale-in-v4", _set("version", 4),
     "field 'meta.layers[1].scale': expected no such key in bundle version 4"),
    ("scale-false", _set("layers/1/scale", False), "field 'meta.layers[1].scale': expected true"),
    ("scale-hidden", _set("layers/0/scale", True),
     "field 'meta.layers[0].scale': expected no such key on a hidden layer"),
    ("scale-key-missing", _set("layers/1/scale", ...),
     "field 'layer1.scale': expected no such array for this meta"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "message"), [pytest.param(e, m, id=i) for i, e, m in HOSTILE])
def test_hostile_scale_meta_is_refused_by_name(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(B.BundleError) as err:
        B.load(_edit(tmp_path, scaled("int-bias"), edit))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        (np.ones(6, np.int32), "field 'layer1.scale': expected dtype int64"),
        (np.ones(5, np.int64), "field 'layer1.scale': expected shape (6,)"),
        (np.array([1, 2, 0, 4, 5, 6], np.int64), "field 'layer1.scale': expected values 1 .. "),
        (np.array([1, 2, -3, 4, 5, 6], np.int64), "field 'layer1.scale': expected values 1 .. "),
        (np.array([1, 2, 1 << 32, 4, 5, 6], np.int64), "expected values 1 .. 2**32 - 1"),
        (None, "field 'layer1.scale': expected an array of shape (6,), found nothing"),
    ],
)
def test_hostile_scale_arrays_are_refused_by_name(
    tmp_path: Path, scale: np.ndarray | None, message: str
) -> None:
    with pytest.raises(B.BundleError) as err:
        B.load(_edit(tmp_path, scaled("int-bias"), None, **{"layer1.scale": scale}))
    assert message in str(err.value)


def test_scaled_scores_beyond_2_to_the_62_are_refused() -> None:
    """A wide 8-bit x 8-bit row (2**21 inputs: accumulators to 2**37) times a scale near 2**32
    would leave int64's safe range: refused naming the field and the class."""
    k = 1 << 21
    w = np.zeros((1, k), np.int64)
    with pytest.raises(B.BundleError, match=r"field 'layer-1\.scale': expected scores of "
                                            r"magnitude below 2\*\*62, found class 0"):  # fmt: skip
        B.make_layer(w, 8, 8, 0, in_enc=UNSIGNED, w_enc=UNSIGNED,
                     scale=np.array([(1 << 32) - 1]))  # fmt: skip
    ok = B.make_layer(w, 8, 8, 0, in_enc=UNSIGNED, w_enc=UNSIGNED, scale=np.array([1 << 20]))
    assert ok.act.bounds(ok.acc_max)[1] == (1 << 20) * 255 * 255 * k


def test_a_scale_array_without_meta_is_refused(tmp_path: Path) -> None:
    plain = random_bundle(4, 50, (20,), 4, 2, 2, 8)
    with pytest.raises(B.BundleError, match=r"field 'layer1\.scale': expected no such array"):
        B.load(_edit(tmp_path, plain, None, **{"layer1.scale": np.ones(4, np.int64)}))


@pytest.mark.parametrize("name", list(ENC_SETS))
def test_c_library_equals_golden_on_every_kernel(kernel: object, name: str) -> None:
    from hwqnn import clib

    for b, x in ((scaled(name), random_codes(2, 40, 70)),
                 (scaled_conv(name), random_codes(3, 20, 98, 4))):  # fmt: skip
        data = flat.to_bytes(b)
        assert int.from_bytes(data[8:12], "little") == 5
        back = flat.from_bytes(data)
        np.testing.assert_array_equal(golden.scores(back, x), golden.scores(b, x))
        with clib.CNet(b) as net:
            np.testing.assert_array_equal(net.scores(x), golden.scores(b, x))
            np.testing.assert_array_equal(net.trace(b, x)[-1], golden.scores(b, x))


def _flat_with(b: B.Bundle, fix) -> bytes:  # type: ignore[no-untyped-def]
    """The flat file of ``b`` with its bytes changed by ``fix`` and the checksum renewed."""
    body = bytearray(flat.to_bytes(b)[:-8])
    fix(body)
    return bytes(body) + flat.fnv1a64(bytes(body)).to_bytes(8, "little")


def test_hostile_flat_scale_fields_are_refused_by_both_readers(tmp_path: Path) -> None:
    b = scaled("int-bias")
    data = flat.to_bytes(b)
    n = len(data)
    scale_at = n - 8 - 6 * 8  # the last array before the checksum: the scale

    def zero_scale(body: bytearray) -> None:
        body[scale_at : scale_at + 8] = (0).to_bytes(8, "little", signed=True)

    def huge_scale(body: bytearray) -> None:
        body[scale_at : scale_at + 8] = (1 << 40).to_bytes(8, "little", signed=True)

    def as_version_4(body: bytearray) -> None:
        body[8:12] = (4).to_bytes(4, "little")

    refused_by_both(tmp_path, _flat_with(b, zero_scale), "layer1.scale")
    refused_by_both(tmp_path, _flat_with(b, huge_scale), "layer1.scale")
    refused_by_both(tmp_path, _flat_with(b, as_version_4), "layer1.encodings")


def test_flat_refuses_scores_beyond_int32() -> None:
    from hwqnn.bundle import UnsupportedKindError

    big = random_bundle(3, 70, (33,), 6, 8, 4, 8, encodings=ENC_SETS["int-bias"])
    last = big.layers[-1]
    assert isinstance(last, Layer) and last.score_scale is not None
    wide = B.Bundle(
        (*big.layers[:-1], B.make_layer(last.weight_codes(), last.in_bits, last.w_bits, 0,
                                        in_enc=last.in_enc, w_enc=last.w_enc, bias=last.bias,
                                        scale=np.full(6, 1 << 20, np.int64))),
        big.input_shape, big.classes, big.info, big.input_quant,
    )  # fmt: skip
    with pytest.raises(UnsupportedKindError, match="beyond the C library's 32-bit scores"):
        flat.to_bytes(wide)


@pytest.mark.parametrize("name", list(ENC_SETS))
def test_gpu_path_equals_golden(name: str) -> None:
    b = scaled(name)
    x = random_codes(2, 19, 70).astype(np.uint8)
    np.testing.assert_array_equal(infer(b, x, batch=8), golden.scores(b, x))
    np.testing.assert_array_equal(infer(b, x[:3], naive=True), golden.scores(b, x[:3]))
    c = scaled_conv(name)
    xc = random_codes(5, 9, 98, 4).astype(np.uint8)
    np.testing.assert_array_equal(infer(c, xc, batch=4), golden.scores(c, xc))


@pytest.mark.parametrize("name", list(ENC_SETS))
def test_qonnx_round_trip_is_identical_and_exact(name: str) -> None:
    pytest.importorskip("qonnx")
    from hwqnn.onnxio.export import to_model
    from hwqnn.onnxio.importer import import_qonnx
    from hwqnn.onnxio.run import execute

    b = scaled(name)
    r = import_qonnx(to_model(b))
    assert r.bundle.digest() == b.digest() and r.argmax_bound == 0.0 and r.per_class
    x = random_codes(2, 30, b.in_features)
    z = execute(to_model(b, 30), x, 1.0, 0.0)
    np.testing.assert_array_equal(z, golden.scores(b, x))  # the graph computes the scores
