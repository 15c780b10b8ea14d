"""Conv and max-pool layer kinds: im2col and pooling against brute-force loops, torch == golden
on random conv nets, the pooling equivalence the hardware relies on, and the bundle's version-2
contract (round trip, strict meta)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from hwqnn import bundle as B  # noqa: N812
from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import code_to_level
from hwqnn.cli import main
from hwqnn.compare import first_mismatch
from hwqnn.export import export_model
from hwqnn.fold import apply_thresholds
from hwqnn.layers import Conv2d, MaxPool2d, Window
from hwqnn.model import QuantNet, build
from hwqnn.quant import quantize_code
from hwqnn.randnet import random_codes, random_net
from tests.conftest import randomize_batchnorm


@dataclass(frozen=True)
class Geo:
    h: int
    w: int
    c: int
    k: int
    s: int = 1
    p: int = 0


GEOS = [
    pytest.param(Geo(5, 7, 3, 3), id="k3-odd"),
    pytest.param(Geo(6, 6, 2, 3, 2, 1), id="k3-s2-p1"),
    pytest.param(Geo(9, 8, 5, 5, 1, 2), id="k5-p2"),
    pytest.param(Geo(4, 5, 7, 1), id="k1"),
    pytest.param(Geo(7, 7, 1, 5, 2, 0), id="k5-s2"),
    pytest.param(Geo(3, 3, 70, 3, 1, 1), id="c70-p1"),
]


def brute_patches(x: np.ndarray, g: Geo) -> np.ndarray:
    """Loops over output pixels, (ky, kx, c) order, code 0 outside the image."""
    out_h, out_w = (g.h + 2 * g.p - g.k) // g.s + 1, (g.w + 2 * g.p - g.k) // g.s + 1
    img = x.reshape(len(x), g.h, g.w, g.c)
    res = np.zeros((len(x), out_h * out_w, g.k * g.k * g.c), np.int64)
    for oy, ox, ky, kx, c in itertools.product(
        range(out_h), range(out_w), range(g.k), range(g.k), range(g.c)
    ):
        y, xx = oy * g.s + ky - g.p, ox * g.s + kx - g.p
        if 0 <= y < g.h and 0 <= xx < g.w:
            res[:, oy * out_w + ox, (ky * g.k + kx) * g.c + c] = img[:, y, xx, c]
    return res


@pytest.mark.parametrize("g", GEOS)
def test_im2col_matches_loops(g: Geo) -> None:
    x = random_codes(1, 3, g.h * g.w * g.c, 4)
    win = Window(g.h, g.w, g.c, g.k, g.s, g.p)
    np.testing.assert_array_equal(win.patches(x), brute_patches(x, g))


@pytest.mark.parametrize("g", GEOS)
@pytest.mark.parametrize(
    ("in_bits", "w_bits", "out_bits"), [(8, 1, 1), (1, 1, 1), (2, 2, 2), (4, 1, 4)]
)
def test_conv_accumulator_is_the_integer_convolution(
    g: Geo, in_bits: int, w_bits: int, out_bits: int
) -> None:
    """2*A - C*K equals the plain integer convolution of levels, padding with the lowest level."""
    arch = parse_arch(f"cnv:5c{g.k}s{g.s}p{g.p}", w_bits, out_bits)
    b = random_net(g.h + g.k, arch, (g.h, g.w, g.c), 3, in_bits=in_bits)
    conv = b.layers[0]
    assert isinstance(conv, Conv2d)
    x = random_codes(2, 4, g.h * g.w * g.c, in_bits)
    acc, out = conv.forward(x)
    lv = code_to_level(brute_patches(x, g), in_bits)  # pad code 0 -> the lowest level
    s = lv @ code_to_level(conv.matrix.weight_codes(), w_bits).T  # [N, P, O]
    np.testing.assert_array_equal(2 * acc - conv.matrix.acc_max, s.reshape(len(x), -1))
    m = conv.matrix
    assert m.thresholds is not None and m.flip is not None
    expected = apply_thresholds(acc.reshape(*s.shape), m.thresholds, m.flip, m.acc_max)
    np.testing.assert_array_equal(out, expected.reshape(len(x), -1))


@pytest.mark.parametrize(
    ("h", "w", "c", "k", "s"), [(6, 6, 3, 2, 2), (7, 5, 2, 3, 2), (5, 5, 4, 3, 1), (4, 4, 1, 1, 1)]
)
@pytest.mark.parametrize("bits", [1, 2])
def test_maxpool_matches_loops(h: int, w: int, c: int, k: int, s: int, bits: int) -> None:
    pool = MaxPool2d(Window(h, w, c, k, s), bits)
    x = random_codes(3, 5, h * w * c, bits)
    _, out = pool.forward(x)
    img = x.reshape(5, h, w, c)
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    want = np.zeros((5, oh, ow, c), np.int64)
    for oy, ox in itertools.product(range(oh), range(ow)):
        want[:, oy, ox] = img[:, oy * s : oy * s + k, ox * s : ox * s + k].max(axis=(1, 2))
    np.testing.assert_array_equal(out, want.reshape(5, -1))
    if bits == 1:  # the OR of the window's bits
        ors = np.zeros_like(want)
        for oy, ox in itertools.product(range(oh), range(ow)):
            win = img[:, oy * s : oy * s + k, ox * s : ox * s + k]
            ors[:, oy, ox] = np.bitwise_or.reduce(win.reshape(5, -1, c), axis=1)
        np.testing.assert_array_equal(out, ors.reshape(5, -1))


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_pooling_commutes_with_the_quantizer_and_thresholds(bits: int) -> None:
    """Brute force of the equivalence pooling relies on: max of codes == code of the max (the
    quantizer is non-decreasing), and in the accumulator domain max (unflipped) or min (flipped)
    of accumulators thresholds to the max code: OR for 1-bit unflipped, AND of inputs that
    flip. So pooling codes after the threshold unit equals pooling before it."""
    gen = torch.Generator().manual_seed(bits)
    y = torch.round(torch.randn(4000, 4, generator=gen) * 8) / 8  # ties and exact levels
    lhs = quantize_code(y.max(dim=1).values, bits)
    rhs = quantize_code(y, bits).max(dim=1).values
    assert torch.equal(lhs, rhs)
    rng = np.random.default_rng(bits)
    acc_max = 40
    acc = rng.integers(0, acc_max + 1, size=(2000, 4, 6))  # 4 window positions, 6 channels
    t = np.sort(rng.integers(0, acc_max + 2, size=(6, 2**bits - 1)), axis=1)
    flip = np.array([0, 1, 0, 1, 1, 0], np.uint8)
    pooled_codes = apply_thresholds(acc, t, flip, acc_max).max(axis=1)
    pooled_acc = np.where(flip.astype(bool), acc.min(axis=1), acc.max(axis=1))
    np.testing.assert_array_equal(pooled_codes, apply_thresholds(pooled_acc, t, flip, acc_max))


def random_quant_net(seed: int, spec: str, image: tuple[int, int], classes: int,
                     w_bits: int, a_bits: int) -> QuantNet:  # fmt: skip
    torch.manual_seed(seed)
    model = build("quant", image[0] * image[1], classes, parse_arch(spec, w_bits, a_bits), image)
    assert isinstance(model, QuantNet)
    randomize_batchnorm(model, seed)
    return model


@pytest.mark.parametrize("train", [False, True])
def test_pooling_the_preactivation_gives_the_levels_of_pooling_levels(train: bool) -> None:
    """Training pools the real values a quantizer reads and quantizes after; the levels must
    be those of quantizing first and pooling the levels (what the bundle and hardware do), in
    eval mode and with BatchNorm's batch statistics alike, flipped channels included."""
    model = random_quant_net(7, "cnv:6c3p1-mp2-mp2s1-5c3-mp3s2-fc9", (17, 15), 4, 1, 2)
    model.train(train)
    x = torch.from_numpy(random_codes(3, 64, 17 * 15))
    got = model._hidden(x)
    q = model._levels(x)
    for layer, level in zip(model.layers[:-1], got, strict=False):
        q = layer(q)  # a conv quantizes; a pool takes the max of levels
        assert torch.equal(level, q)
    assert len(got[-1].detach().unique()) > 1


@pytest.mark.parametrize("spec", ["cnv:6c3p1-mp2-5c3-fc9", "mlp:12-7"])
def test_calibration_sets_the_exact_statistics_of_each_layer_input(spec: str) -> None:
    """After calibration each BatchNorm holds the mean and (unbiased) variance of its input
    ``s / C`` over the images, with every layer before it in eval mode, calibrated."""
    from hwqnn.train import calibrate_batchnorm

    model = random_quant_net(5, spec, (9, 8), 4, 1, 1)
    x = random_codes(8, 300, 9 * 8)
    calibrate_batchnorm(model, x, batch=64)  # batches that do not divide the images
    xt = torch.from_numpy(x)
    with torch.no_grad():
        inputs = [model._levels(xt), *model._hidden(xt)]
    checked = 0
    for layer, q in zip(model.layers, inputs, strict=False):
        if layer.bn is None:
            continue
        z = (layer.dot(q) / layer.scale).detach().double().numpy()
        z = np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])  # [samples, channels]
        np.testing.assert_allclose(layer.bn.running_mean.numpy(), z.mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.bn.running_var.numpy(), z.var(0, ddof=1), rtol=1e-5)
        checked += 1
    assert checked == len(model.layers) - 1 - sum(
        type(m).__name__ == "QuantPool" for m in model.layers
    )


NETS = [
    pytest.param("cnv:8c3-mp2-fc16", (12, 12), 1, 1, id="c3-mp2-fc"),
    pytest.param("cnv:7c3p1-mp2-5c3s2-fc9", (11, 9), 1, 1, id="p1-s2-odd"),
    pytest.param("cnv:6c5p2-mp3s2-10c1", (13, 13), 2, 2, id="k5-k1-w2a2"),
    pytest.param("cnv:5c3s2-3c3", (9, 10), 1, 2, id="no-pool-a2"),
    pytest.param("cnv:4c3-mp2-fc12-fc7", (8, 8), 4, 4, id="w4a4-two-fc"),
]


@pytest.mark.parametrize(("spec", "image", "w_bits", "a_bits"), NETS)
def test_torch_equals_golden_on_random_conv_nets(
    spec: str, image: tuple[int, int], w_bits: int, a_bits: int
) -> None:
    model = random_quant_net(len(spec), spec, image, 5, w_bits, a_bits)
    b = export_model(model, image, tuple(f"c{i}" for i in range(5)))
    assert b.version == 2 and "conv2d" in {ly.kind for ly in b.layers}
    x = random_codes(4, 120, image[0] * image[1])
    trace = golden.run(b, x, batch=50)
    xt = torch.from_numpy(x)
    torch_layers = [c.numpy() for c in model.codes(xt)] + [model.scores(xt).numpy()]
    assert first_mismatch([*trace.codes, trace.scores], torch_layers) is None
    # and the codes vary: a net whose layers are constant would prove nothing
    assert all(len(np.unique(c)) > 1 for c in trace.codes)


def test_first_mismatch_in_a_conv_layer_names_it() -> None:
    model = random_quant_net(1, "cnv:6c3-mp2-fc8", (8, 8), 4, 1, 1)
    b = export_model(model, (8, 8), tuple("abcd"))
    x = random_codes(5, 20, 64)
    trace = golden.run(b, x)
    layers = [*trace.codes, trace.scores]
    other = [a.copy() for a in layers]
    other[0][3, 7] ^= 1  # conv output (y=0, x=1, channel 1) of image 3
    mm = first_mismatch(layers, other)
    assert mm is not None and (mm.image, mm.layer, mm.neuron) == (3, 0, 7)


def test_conv_bundle_round_trip_and_versions(tmp_path: Path) -> None:
    b = random_net(3, parse_arch("cnv:5c3p1-mp2-fc6"), (6, 6, 2), 3)
    p = B.save(b, tmp_path / "c.npz")
    back = B.load(p)
    assert back.digest() == b.digest() and back.arch() == b.arch()
    assert json.loads(str(np.load(p)["meta"]))["version"] == 2
    assert [ly.kind for ly in back.layers] == ["conv2d", "maxpool2d", "dense", "dense"]
    x = random_codes(6, 30, 72)
    np.testing.assert_array_equal(golden.scores(back, x), golden.scores(b, x))
    dense = random_net(3, parse_arch("mlp:8"), (6, 6, 2), 3)
    assert json.loads(str(B.load(B.save(dense, tmp_path / "d.npz")).meta()["version"])) == 1


def _meta_variant(tmp_path: Path, change: dict[str, object], layer: int = 0,
                  version: int | None = None) -> Path:  # fmt: skip
    b = random_net(3, parse_arch("cnv:5c3p1-mp2-fc6"), (6, 6, 2), 3)
    arrays = b.arrays()
    meta = b.meta()
    meta["layers"][layer].update(change)
    if version is not None:
        meta["version"] = version
    arrays["meta"] = np.array(json.dumps(meta))
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


BAD = [
    pytest.param({}, 0, 1, "field 'meta.layers[0].kind': expected a kind of bundle version 1",
                 id="conv-in-version-1"),
    pytest.param({"kernel": 0}, 0, None, "field 'meta.layers[0].kernel': expected 1..16",
                 id="kernel-0"),
    pytest.param({"padding": 3}, 0, None, "field 'meta.layers[0].padding': expected 0..2",
                 id="padding-not-below-kernel"),
    pytest.param({"stride": 1.0}, 0, None, "field 'meta.layers[0].stride': expected an integer",
                 id="stride-float"),
    pytest.param({"in_shape": [6, 6]}, 0, None,
                 "field 'meta.layers[0].in_shape': expected [height, width, channels]",
                 id="in-shape-2d"),
    pytest.param({"in_shape": [5, 5, 2]}, 1, None,
                 "field 'meta.layers[1].in_shape': expected [6, 6, 5] (the previous out_shape)",
                 id="pool-shape-chain"),
    pytest.param({"bits": 2}, 1, None,
                 "field 'meta.layers[1].in_bits': expected 1 (the previous out_bits)",
                 id="pool-bits-chain"),
    pytest.param({"out_channels": 4}, 0, None,
                 "field 'meta.layers[1].in_shape': expected [6, 6, 4] (the previous out_shape)",
                 id="channels-chain"),
    pytest.param({"dilation": 2}, 0, None, "field 'meta.layers[0].dilation': expected no such key",
                 id="unknown-key"),
    pytest.param({"out_bits": 0}, 0, None, "field 'meta.layers[0].out_bits': expected 1, 2, 4",
                 id="conv-gives-scores"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "layer", "version", "message"), BAD)
def test_hostile_conv_meta_is_refused_by_name(
    tmp_path: Path, change: dict[str, object], layer: int, version: int | None, message: str
) -> None:
    path = _meta_variant(tmp_path, change, layer, version)
    with pytest.raises(B.BundleError) as err:
        B.load(path)
    assert str(err.value).startswith(f"{path}: "), str(err.value)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_conv_weights_with_a_wrong_fan_in_are_refused(tmp_path: Path) -> None:
    b = random_net(3, parse_arch("cnv:5c3p1-mp2-fc6"), (6, 6, 2), 3)
    arrays = b.arrays()
    arrays["layer0.weights"] = arrays["layer0.weights"][:, :, :0]  # 18 columns need 1 word
    np.savez(tmp_path / "w.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(B.BundleError, match=r"field 'layer0.weights': expected shape \(5, 1, 1\)"):
        B.load(tmp_path / "w.npz")


def test_a_channel_major_input_shape_is_refused() -> None:
    b = random_net(3, parse_arch("cnv:5c3"), (6, 6, 2), 3)
    with pytest.raises(B.BundleError, match=r"field 'meta.input.shape': expected 72 inputs as "
                       r"layer 0 reads them \(\[6, 6, 2\]\), found \[2, 6, 6\]"):  # fmt: skip
        B.validate(B.Bundle(b.layers, (2, 6, 6), b.classes))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cnv:mp2-fc8", "has no convolution"),
        ("cnv:8c3-fc8-mp2", "convolutions and pooling come before fc"),
        ("cnv:8c3p3", "padding below the kernel"),
        ("cnv:8x3", "is not a layer"),
        ("cnv:8c17", "kernel 1..16"),
    ],
)
def test_bad_conv_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_arch(spec)


def test_default_cnv_fits_28x28() -> None:
    arch = parse_arch("cnv")
    assert arch.spec.startswith("cnv:") and arch.features
    wins = arch.windows((28, 28, 1))
    assert wins[-1].out_h >= 1
    with pytest.raises(ValueError, match=r"needs at least 3x3 inputs"):
        parse_arch("cnv:8c3-mp2-8c3-mp2-8c3-8c3").windows((10, 10, 1))


def test_conv_net_trains_exports_and_verifies_on_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train -> export -> verify (torch == golden and C == golden on every test image) for a small
    ConvNet; its flat file runs in the C library to golden's scores."""
    run = tmp_path / "run"
    spec = "cnv:6c3p1-mp2-5c3-fc12"
    args = ["train", "--data", "synthetic", "--arch", spec, "--epochs", "3", "--float-twin"]
    assert main([*args, "--calibrate", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["quant_acc"] > 0.5 and metrics["float_acc"] > 0.5  # 4 classes, clean data
    assert 0.0 < metrics["quant"]["test_acc_uncalibrated"] <= 1.0  # calibrated, then verified
    assert "test_acc_uncalibrated" not in metrics["float"]
    bundle = run / "b.npz"
    assert main(["export", str(run / "model.pt"), "-o", str(bundle)]) == 0
    assert B.load(bundle).arch().startswith("64(8b)-6c3p1(1b)-mp2-5c3(1b)-12(1b)-4")
    capsys.readouterr()
    verify = ["verify", str(bundle), "--checkpoint", str(run / "model.pt"), "--data", "synthetic"]
    assert main(verify) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mismatches"] == 0 and res["images"] == 500
    assert res["accuracy_torch"] == res["accuracy_golden"] > 0.5
    assert res["c"]["mismatches"] == 0 and res["c"]["images"] == 500
    assert res["c"]["accuracy_c"] == res["accuracy_golden"] and "skipped" not in res["c"]
    assert main(["flat", str(bundle), "-o", str(tmp_path / "net.hwq")]) == 0
    from hwqnn import clib

    b = B.load(bundle)
    x = random_codes(4, 30, b.in_features)
    with clib.CNet.from_file(tmp_path / "net.hwq") as net:
        np.testing.assert_array_equal(net.scores(x), golden.scores(b, x))
