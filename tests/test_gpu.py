"""Triton kernels == golden, bit-exact. Without a GPU they run in Triton's CPU interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import pack_codes as np_pack_codes
from hwqnn.gpu.infer import (
    DeviceLayer,
    default_device,
    infer,
    layer_gemm,
    pack_codes,
    to_device_layer,
)
from hwqnn.randnet import random_bundle, random_codes, random_net, with_input_thresholds

# (fan-in, hidden, classes, w_bits, a_bits, M): K not a multiple of 32/64, N and M not multiples
# of the 32x32 block, the 8-bit first layer, 2- and 4-bit weights/activations
SHAPES = [
    (70, (33, 20), 5, 1, 1, 37),
    (64, (64,), 10, 1, 1, 33),
    (31, (97,), 3, 1, 1, 1),
    (100, (65,), 7, 2, 2, 19),
    (130, (40,), 3, 1, 4, 9),
    (33, (12,), 2, 4, 4, 5),
]


@pytest.mark.parametrize(("k", "hidden", "classes", "wb", "ab", "m"), SHAPES)
def test_network_equals_golden(
    k: int, hidden: tuple, classes: int, wb: int, ab: int, m: int
) -> None:
    b = random_bundle(k + m, k, hidden, classes, wb, ab)
    x = random_codes(m, m, k).astype(np.uint8)
    np.testing.assert_array_equal(infer(b, x, batch=16), golden.scores(b, x))


@pytest.mark.parametrize("block", [(16, 16, 1), (32, 64, 4), (64, 32, 16)])
def test_every_layer_for_block_sizes(block: tuple[int, int, int]) -> None:
    b = random_bundle(3, 150, (90, 41), 6)
    x = random_codes(4, 23, 150)
    dev = default_device()
    for ly in b.layers:
        dl = DeviceLayer.from_layer(ly, dev)
        acts = pack_codes(torch.from_numpy(x).to(dev), ly.in_bits, dl.weights.shape[2])
        _, expected = golden.layer_forward(ly, x)
        got = layer_gemm(acts, dl, block=block).cpu().numpy()
        np.testing.assert_array_equal(got, expected)
        x = expected


def test_naive_baseline_equals_golden() -> None:
    b = random_bundle(5, 70, (20,), 4, 1, 2)
    x = random_codes(6, 4, 70).astype(np.uint8)
    np.testing.assert_array_equal(infer(b, x, naive=True), golden.scores(b, x))


@pytest.mark.parametrize(("k", "bits"), [(1, 1), (63, 2), (64, 1), (65, 8), (200, 4)])
def test_torch_packing_matches_bundle_layout(k: int, bits: int) -> None:
    codes = random_codes(k, 3, k, bits)
    words64 = np_pack_codes(codes, bits, pad=0)
    kw32 = 2 * words64.shape[-1]
    got = pack_codes(torch.from_numpy(codes), bits, kw32).numpy()
    np.testing.assert_array_equal(got.view(np.uint32), np.ascontiguousarray(words64).view("<u4"))


def test_wrong_packed_shape() -> None:
    b = random_bundle(0, 70, (8,), 2)
    dl = DeviceLayer.from_layer(b.layers[0], default_device())
    with pytest.raises(ValueError, match=r"packed inputs must be \[M, 8, 4\], not \(2, 1, 4\)"):
        layer_gemm(torch.zeros((2, 1, 4), dtype=torch.int32), dl)


def test_gpu_bench_runs_in_the_interpreter(capsys: pytest.CaptureFixture[str]) -> None:
    from hwqnn.bench import gpu

    assert gpu(random_bundle(0, 30, (12,), 3), interpret=True) == 0
    out = capsys.readouterr().out
    assert "CPU interpreter" in out and "paper-8192" in out and "layer1" in out


CONV_NETS = [
    pytest.param("cnv:6c3p1-mp2-5c3s2-fc9", (9, 11, 1), 1, 1, id="p1-mp2-s2"),
    pytest.param("cnv:5c5p2-mp3s2-7c1", (10, 9, 2), 2, 2, id="k5-k1-w2a2"),
    pytest.param("cnv:4c3-3c3", (7, 7, 3), 1, 4, id="a4-no-pool"),
]


@pytest.mark.parametrize(("spec", "image", "wb", "ab"), CONV_NETS)
def test_conv_network_equals_golden(
    spec: str, image: tuple[int, int, int], wb: int, ab: int
) -> None:
    """Convolutions through the same XNOR GEMM on device-side im2col rows, and max-pooling,
    bit-exact with the golden model on every hidden code and score."""
    b = random_net(len(spec), parse_arch(spec, wb, ab), image, 4)
    x = random_codes(7, 13, image[0] * image[1] * image[2])
    np.testing.assert_array_equal(infer(b, x, batch=8), golden.scores(b, x))
    dev = default_device()
    xt = torch.from_numpy(x).to(dev)
    for ly in b.layers:
        _, expected = golden.layer_forward(ly, x)
        xt = to_device_layer(ly, dev).forward(xt)
        np.testing.assert_array_equal(xt.cpu().numpy(), expected)
        x = expected


@pytest.mark.parametrize(("in_bits", "channels"), [(1, 1), (2, 3), (4, 1)])
def test_quantized_input_equals_golden(in_bits: int, channels: int) -> None:
    """Raw pixels through the bundle's input thresholds on the device, then a conv net and a
    dense net: every score equal to the golden model's (which quantizes by the definition)."""
    conv = random_net(11, parse_arch("cnv:3c3-mp2-fc6", 1, 2), (6, 5, 3), 4, in_bits=in_bits)
    dense = random_bundle(12, 45, (20,), 3, in_bits=in_bits)
    for b, ch in ((conv, channels), (dense, 1)):
        q = with_input_thresholds(b, in_bits + ch, ch)
        x = random_codes(13, 21, q.in_features)
        np.testing.assert_array_equal(infer(q, x, batch=8), golden.scores(q, x))
        assert not np.array_equal(golden.scores(q, x), golden.scores(b, x % 2**in_bits))


ENC_NETS = [  # (input, weights, activations, w_bits, a_bits): every plane op and both gains
    ("unsigned", "signed", "unsigned", 2, 2),
    ("signed", "unsigned", "signed", 4, 2),
    ("odd", "signed", "signed", 1, 1),
    ("signed", "odd", "unsigned", 2, 4),
]


@pytest.mark.parametrize(("ie", "we", "ae", "wb", "ab"), ENC_NETS)
def test_encodings_equal_golden(ie: str, we: str, ae: str, wb: int, ab: int) -> None:
    """Nets of bundle version 4 (AND and NOR planes, gain 1, score offsets and bias), dense and
    convolutional (padding with the zero code), plain and naive kernels."""
    from hwqnn.layers.encoding import ENCODINGS
    from hwqnn.randnet import Encodings

    e = Encodings(ENCODINGS[ie], ENCODINGS[we], ENCODINGS[ae], bias=True)
    b = random_bundle(11, 70, (33,), 5, wb, ab, encodings=e)
    x = random_codes(2, 19, 70).astype(np.uint8)
    np.testing.assert_array_equal(infer(b, x, batch=8), golden.scores(b, x))
    np.testing.assert_array_equal(infer(b, x[:3], naive=True), golden.scores(b, x[:3]))
    c = random_net(3, parse_arch("cnv:4c3p1-mp2-3c3s2p1-fc6", wb, ab), (7, 7, 2), 4, 4,
                   encodings=e)  # fmt: skip
    xc = random_codes(5, 9, 98, 4).astype(np.uint8)
    np.testing.assert_array_equal(infer(c, xc, batch=4), golden.scores(c, xc))
