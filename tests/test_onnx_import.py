"""QONNX -> bundle: Brevitas-exported nets (FINN's SFC and CNV patterns, W1A1 and W1A2, a
binarized input) folded into bundles whose golden classes equal ``qonnx``'s executor's on every
image and whose scores are one ``P * s + R`` of the executor's; hwqnn's own graphs round-trip to
the identical bundle; what cannot be exact is refused, naming the node."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwqnn import bundle as B  # noqa: N812
from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.cli import main
from hwqnn.errors import InputError
from hwqnn.layers.encoding import ENCODINGS
from hwqnn.onnxio.export import save_onnx, to_model
from hwqnn.onnxio.importer import UnrepresentableGraphError, import_qonnx
from hwqnn.onnxio.run import execute
from hwqnn.randnet import (
    Encodings,
    random_bundle,
    random_codes,
    random_net,
    with_input_thresholds,
)

pytest.importorskip("qonnx")
bn = pytest.importorskip("tests.brevitas_nets")

SCALE, BIAS = 2 / 255, -1.0  # the graphs take pixels scaled to [-1, 1]


def _executor(path: Path, batch: int) -> object:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    return cleanup_model(ModelWrapper(str(path)).transform(ChangeBatchSize(batch)))


def _agrees(path: Path, n: int = 300) -> B.Bundle:
    r = import_qonnx(path, SCALE, BIAS)
    x = random_codes(n, n, r.bundle.in_features)
    z = execute(_executor(path, 100), x, SCALE, BIAS)
    s = golden.scores(r.bundle, x)
    # the executor's float scores are P * s + R: read back as integers, every score is ours (a
    # per-class scale: p[o] * dot + r[o], every dot product is ours)
    np.testing.assert_array_equal(r.graph_dot(z), r.golden_dot(s))
    if not r.per_class:  # a direct check of the formula, not through the result's methods
        np.testing.assert_array_equal(np.rint((z - r.score_bias) / r.score_scale), s)
    top = s == s.max(axis=1, keepdims=True)  # its class is one of golden's top classes (float
    clear = np.ones(n, bool)  # sums may order tied scores differently); with a rounded scale,
    if r.argmax_bound:  # where the graph's top two are further apart than the rounding's bound
        zs = np.sort(z, axis=1)
        clear = zs[:, -1] - zs[:, -2] > r.argmax_bound
        assert clear.mean() > 0.9
    assert top[np.arange(n), z.argmax(1)][clear].all()
    assert len(np.unique(s)) > 3  # scores that vary: a real test of the folding
    return r.bundle


@pytest.mark.parametrize(
    ("make", "shape", "arch"),
    [
        (lambda: bn.SFC(), (1, 8, 8), "64(8b>1b)-32(1b)-32(1b)-10 w1"),
        (lambda: bn.SFC(a_bits=2), (1, 8, 8), "64(8b>1b)-32(2b)-32(1b)-10 w1"),
        (lambda: bn.SFC(in_bits=8), (1, 8, 8), "64(8b>8b)-32(1b)-32(1b)-10 w1"),
        (lambda: bn.CNV(), (1, 12, 12), "144(8b>1b)-8c3(1b)-mp2-16c3(1b)-10 w1"),
        (lambda: bn.CNV(channels=3), (3, 12, 12), "432(8b>1b)-8c3(1b)-mp2-16c3(1b)-10 w1"),
    ],
    ids=["sfc-w1a1", "sfc-w1a2", "sfc-8bit-input", "cnv-w1a1", "cnv-rgb"],
)
def test_brevitas_nets_import_exactly(
    tmp_path: Path, make: object, shape: tuple, arch: str
) -> None:
    import torch

    torch.manual_seed(len(arch))
    model = make()  # type: ignore[operator]
    bn.train_a_little(model, shape)
    b = _agrees(bn.export(model, shape, tmp_path / "m.onnx"))
    assert b.arch() == arch
    assert b.quant.thresholds is not None
    if b.quant.bits == 1:
        assert b.quant.thresholds.tolist() == [[128]]  # x * 2/255 - 1 >= 0: x >= 127.5
    mats = [m for ly in b.layers for m in ly.matrices() if m.flip is not None]
    assert any(m.flip.any() for m in mats)  # gamma < 0 became flips


INT_NETS = [  # FINN's W2A2/W4A4 recipes: signed integer weights with zero, ReLU or signed acts
    pytest.param(lambda: bn.IntSFC(), (1, 8, 8), ("unsigned", "signed", "unsigned"), False,
                 id="sfc-w2a2-relu"),
    pytest.param(lambda: bn.IntSFC(w_bits=4, a_bits=4, bias=True), (1, 8, 8),
                 ("unsigned", "signed", "unsigned"), True, id="sfc-w4a4-relu-bias"),
    pytest.param(lambda: bn.IntSFC(signed_acts=True, narrow=True, per_channel=True, bias=True),
                 (1, 8, 8), ("signed", "signed", "signed"), True,
                 id="sfc-w2a2-signed-acts-narrow-per-channel-bias"),
    pytest.param(lambda: bn.IntCNV(), (1, 12, 12), ("unsigned", "signed", "unsigned"), False,
                 id="cnv-w2a2"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "shape", "encs", "biased"), INT_NETS)
def test_brevitas_integer_nets_import_exactly(
    tmp_path: Path, make: object, shape: tuple, encs: tuple[str, str, str], biased: bool
) -> None:
    """Every score equal to the QONNX executor's (read back through one scale and offset), the
    encodings those of the quantizers, the bias an integer score bias; the C library equal."""
    import torch

    from hwqnn import clib

    torch.manual_seed(len(encs) + biased)
    model = make()  # type: ignore[operator]
    bn.train_a_little(model, shape)
    b = _agrees(bn.export(model, shape, tmp_path / "m.onnx"))
    assert b.version == 4
    mats = [m for ly in b.layers for m in ly.matrices()]
    hidden = mats[1]
    assert (hidden.in_enc.name, hidden.w_enc.name, hidden.out_enc.name) == encs
    assert all(m.w_enc.name == "signed" for m in mats)
    assert (mats[-1].bias is not None and bool(mats[-1].bias.any())) == biased
    zeros = sum(int((m.w_enc.value(m.weight_codes(), m.w_bits) == 0).sum()) for m in mats)
    assert zeros > 0  # weights of 0: what odd levels could not hold
    x = random_codes(9, 40, b.in_features)
    with clib.CNet(b) as net:
        np.testing.assert_array_equal(net.scores(x), golden.scores(b, x))


PER_CLASS = [  # scores that differ by a per-class scale: bundle version 5, a score scale
    pytest.param(lambda: bn.IntSFC(per_channel=True, bias=False, last_per_channel=True),
                 id="per-channel-weight-scale-into-scores"),
    pytest.param(lambda: bn.IntSFC(per_channel=True, bias=True, last_per_channel=True),
                 id="per-channel-weight-scale-and-bias"),
    pytest.param(lambda: bn.SFC(final_bn=True), id="lfc-final-batchnorm"),
]  # fmt: skip


@pytest.mark.parametrize("make", PER_CLASS)
def test_per_class_score_scales_import_with_the_argmax_condition(
    tmp_path: Path, make: object
) -> None:
    """Every dot product equal to the executor's (read back per class); the class equal wherever
    the graph's top two scores are further apart than the stated bound; C equal (the GPU path
    on such nets: tests/test_score_scale.py, where Triton's interpreter is set up first)."""
    import torch

    from hwqnn import clib

    torch.manual_seed(5)
    model = make()  # type: ignore[operator]
    bn.train_a_little(model, (1, 8, 8))
    bn.positive_final_bn(model)
    path = bn.export(model, (1, 8, 8), tmp_path / "m.onnx")
    b = _agrees(path)
    r = import_qonnx(path, SCALE, BIAS)
    last = b.layers[-1].matrices()[0]
    assert b.version == 5 and last.score_scale is not None
    assert len(np.unique(last.score_scale)) > 3  # per-class: the scale differs by class
    # the rounding's bound is small against the scores' spread: a condition that says something
    p = np.asarray(r.score_scale)
    assert 0 <= r.argmax_bound < 1e-3 * float(p.max()) * last.acc_max
    x = random_codes(4, 60, b.in_features)
    with clib.CNet(b) as net:
        np.testing.assert_array_equal(net.scores(x), golden.scores(b, x))


def test_fewer_score_bits_narrow_the_scores_and_widen_the_bound(tmp_path: Path) -> None:
    """``score_bits`` caps a rounded per-class scale's scores: every dot product is still the
    graph's, the bound grows, and the classes agree wherever the margin clears it."""
    import torch

    torch.manual_seed(6)
    model = bn.SFC(final_bn=True)
    bn.train_a_little(model, (1, 8, 8))
    bn.positive_final_bn(model, seed=1)
    path = bn.export(model, (1, 8, 8), tmp_path / "m.onnx")
    wide = import_qonnx(path, SCALE, BIAS)
    narrow = import_qonnx(path, SCALE, BIAS, score_bits=12)
    (m,) = narrow.bundle.layers[-1].matrices()
    lo, hi = m.act.bounds(m.acc_max)
    assert lo >= -(2**11) and hi < 2**11 and m.act.out_width(m.acc_max) <= 12
    assert narrow.argmax_bound > wide.argmax_bound > 0
    x = random_codes(7, 300, narrow.bundle.in_features)
    z = execute(_executor(path, 100), x, SCALE, BIAS)
    s = golden.scores(narrow.bundle, x)
    np.testing.assert_array_equal(narrow.graph_dot(z), narrow.golden_dot(s))
    zs = np.sort(z, axis=1)
    clear = zs[:, -1] - zs[:, -2] > narrow.argmax_bound
    top = s == s.max(axis=1, keepdims=True)
    assert clear.any() and top[np.arange(len(s)), z.argmax(1)][clear].all()
    with pytest.raises(InputError, match=r"score_bits must be in 8\.\.32, not 7"):
        import_qonnx(path, SCALE, BIAS, score_bits=7)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bn.SFC(final_bn=True),
         r"the scores are not an increasing affine function of the dot product"),
    ],
    ids=["final-batchnorm-with-a-negative-gamma"],
)  # fmt: skip
def test_what_cannot_be_exact_is_refused_by_node(
    tmp_path: Path, make: object, message: str
) -> None:
    model = make()  # type: ignore[operator]
    bn.train_a_little(model, (1, 8, 8), steps=1)  # gives the final BatchNorm gammas < 0 and 0
    path = bn.export(model, (1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(UnrepresentableGraphError, match=message):
        import_qonnx(path)


ROUND_TRIP = [
    pytest.param(lambda: replace(random_bundle(1, 40, (17, 9), 4), input_shape=(5, 8)),
                 id="dense-8bit-2d-input"),
    pytest.param(lambda: random_bundle(3, 40, (17, 9), 4, 2, 2), id="dense-w2a2"),
    pytest.param(lambda: random_bundle(4, 33, (12,), 3, 4, 4, in_bits=4), id="dense-w4a4-4bit-in"),
    pytest.param(lambda: with_input_thresholds(random_bundle(2, 40, (17,), 4, in_bits=1), 1),
                 id="binarized-input"),
    pytest.param(lambda: random_net(4, parse_arch("cnv:4c3p1-mp2-5c3-fc7", 1, 1), (8, 7, 3), 5,
                                    in_bits=2), id="conv-pad-pool"),
    pytest.param(lambda: with_input_thresholds(
        random_net(5, parse_arch("cnv:4c3s2-mp2s1-fc6", 1, 2), (9, 8, 3), 5, in_bits=2), 3, 3),
        id="conv-3ch-thresholds"),
]  # fmt: skip


def _v4(enc: tuple[str, str, str], bias: bool = True) -> Encodings:
    return Encodings(*(ENCODINGS[e] for e in enc), bias=bias)


ROUND_TRIP_V4 = [  # bundle version 4: every encoding, biases, signed padding, input thresholds
    pytest.param(lambda: random_bundle(3, 40, (17, 9), 4, 2, 2,
                                       encodings=_v4(("unsigned", "signed", "unsigned"))),
                 id="w2a2-relu-bias"),
    pytest.param(lambda: random_bundle(4, 33, (12,), 3, 4, 4, in_bits=4,
                                       encodings=_v4(("signed", "signed", "signed"))),
                 id="w4a4-signed-bias"),
    pytest.param(lambda: random_bundle(5, 30, (10,), 3, 1, 2,
                                       encodings=_v4(("odd", "odd", "unsigned"))),
                 id="w1-relu-into-odd-weights"),
    pytest.param(lambda: random_net(6, parse_arch("cnv:4c3p1-mp2-5c3-fc7", 2, 2), (8, 7, 3), 5,
                                    in_bits=4, encodings=_v4(("signed", "signed", "signed"))),
                 id="conv-signed-padding"),
    pytest.param(lambda: with_input_thresholds(random_bundle(
        7, 40, (17,), 4, 2, 2, in_bits=2, encodings=_v4(("unsigned", "signed", "unsigned"),
                                                         bias=False)), 1),
                 id="input-thresholds-unsigned"),
]  # fmt: skip


@pytest.mark.parametrize("make", ROUND_TRIP + ROUND_TRIP_V4)
def test_bundle_round_trips_through_qonnx_identically(make: object) -> None:
    b = make()  # type: ignore[operator]
    back = import_qonnx(to_model(b), raw_bits=b.raw_bits).bundle
    assert back.digest() == b.digest()
    if b.version == 4:  # and the executor computes the golden model's scores
        x = random_codes(2, 30, b.in_features, b.raw_bits)
        z = execute(to_model(b, 30), x, 1.0, 0.0)
        np.testing.assert_array_equal(z, golden.scores(b, x))


def test_cli_import_with_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = with_input_thresholds(random_bundle(8, 64, (24,), 10, in_bits=1), 2)
    save_onnx(b, tmp_path / "m.onnx")
    rc = main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "b.npz"),
               "--check", "60", "--data", "synthetic"])  # fmt: skip
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == res["classes_equal"] == res["scores_equal"] == 60
    assert res["rerun_alone"] == 0 and res["images_exact"] == 60
    assert B.load(tmp_path / "b.npz").digest() == b.digest()


def test_cli_check_holds_the_argmax_condition_at_12_bit_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """12-bit scores of a per-class BatchNorm: a coarse rounding with a bound; the classes may
    differ within it and nowhere else (the condition, checked: the command fails otherwise).
    10 bits cannot hold these scales and offsets (p 0.0071..0.0785, r to 3.3, dot products to
    32) at all: refused in one line."""
    import torch

    torch.manual_seed(8)
    model = bn.SFC(final_bn=True)
    bn.train_a_little(model, (1, 8, 8))
    bn.positive_final_bn(model, seed=2)
    path = bn.export(model, (1, 8, 8), tmp_path / "m.onnx")
    capsys.readouterr()  # the exporter's own lines
    rc = main(["import", str(path), "-o", str(tmp_path / "b.npz"), "--input-scale", str(SCALE),
               "--input-bias", str(BIAS), "--score-bits", "12", "--check", "500", "--data",
               "synthetic"])  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["version"] == 5 and res["argmax_bound"] > 0
    assert res["scores_equal"] == res["images"] == 500  # every dot product still exact
    assert res["classes_differ_beyond_bound"] == 0
    assert res["classes_equal"] >= res["images"] - res["margin_within_bound"]
    rc = main(["import", str(path), "-o", str(tmp_path / "b8.npz"), "--input-scale", str(SCALE),
               "--input-bias", str(BIAS), "--score-bits", "10"])  # fmt: skip
    assert rc == 2 and "cannot share one integer unit within 10-bit scores" in (
        capsys.readouterr().err
    )


def test_check_reruns_differing_images_alone_and_counts_real_differences(tmp_path: Path) -> None:
    """Images whose scores differ at the check's batch run again alone; a difference that stays
    is counted against the import (here a bundle whose class 1 scores one more)."""
    from hwqnn.data import Split
    from hwqnn.onnxio.check import check_import

    b = random_bundle(8, 64, (24,), 4, 2, 2, encodings=_v4(("unsigned", "signed", "unsigned")))
    save_onnx(b, tmp_path / "m.onnx")
    r = import_qonnx(tmp_path / "m.onnx")
    x = random_codes(3, 20, 64).astype(np.uint8)
    test = Split(x, np.zeros(20, np.int64), (8, 8), ("a", "b", "c", "d"))
    ok = check_import(tmp_path / "m.onnx", r, test, 1.0, 0.0)
    assert (ok["scores_equal"], ok["rerun_alone"], ok["images_exact"]) == (20, 0, 20)
    last = r.bundle.layers[-1]
    assert isinstance(last, B.Layer) and last.bias is not None
    off = replace(last, bias=last.bias + np.array([0, 1, 0, 0]))
    r.bundle = replace(r.bundle, layers=(*r.bundle.layers[:-1], off))
    bad = check_import(tmp_path / "m.onnx", r, test, 1.0, 0.0)
    assert (bad["scores_equal"], bad["rerun_alone"], bad["scores_equal_alone"]) == (0, 20, 0)
    assert bad["images_exact"] == 0


def test_cli_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    assert main(["import", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "b.npz")]) == 2
    assert "bad.onnx: not a readable ONNX model" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "b.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"hwqnn: error: {tmp_path / 'none.onnx'}: no such model file"
    assert not (tmp_path / "b.npz").exists()
