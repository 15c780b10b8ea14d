"""Training the integer QNNs people train: signed weights with zero, unsigned (ReLU) and signed
activations, unsigned pixels, a score bias. The torch model's quantizers against a NumPy
reference, and every encoding exported exactly: torch == golden on every layer's codes and every
score, for MLPs and ConvNets with padding and pooling, flipped and constant channels included."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hwqnn import bundle as B  # noqa: N812
from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.cli import main
from hwqnn.compare import first_mismatch
from hwqnn.errors import InputError
from hwqnn.export import export_model
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED, Encoding
from hwqnn.model import QuantDense, QuantNet, build
from hwqnn.quant import level_code, quantize_level, weight_code
from hwqnn.randnet import random_codes
from hwqnn.train import load_checkpoint, save_checkpoint
from tests.conftest import randomize_batchnorm

X = np.concatenate(
    [
        np.array([-2.0, -1.0, -0.5, -1 / 3, 0.0, 1 / 7, 1 / 3, 0.5, 2 / 3, 1.0, 1.5]),
        np.random.default_rng(0).uniform(-1.5, 1.5, 400),
    ]
).astype(np.float32)


def np_grid(x: np.ndarray, values: np.ndarray, norm: int) -> np.ndarray:
    """The nearest of the integer ``values`` (real value ``v / norm``) to each ``x``."""
    idx = np.abs(x[:, None] - values[None, :] / norm).argmin(1)
    return values[idx].astype(np.float64)


GRIDS = [  # encoding, bits, the integer levels it may produce, their divisor
    (UNSIGNED, 1, np.arange(0, 2), 1),
    (UNSIGNED, 2, np.arange(0, 4), 3),
    (UNSIGNED, 4, np.arange(0, 16), 15),
    (SIGNED, 2, np.arange(-1, 2), 1),  # ternary
    (SIGNED, 4, np.arange(-7, 8), 7),  # narrow range: -8 is never produced
]


@pytest.mark.parametrize(("enc", "bits", "values", "norm"), GRIDS)
def test_grid_quantizer_is_the_nearest_level(
    enc: Encoding, bits: int, values: np.ndarray, norm: int
) -> None:
    got = quantize_level(torch.from_numpy(X), bits, enc).numpy()
    ref = np_grid(X, values, norm)
    mid = np.isclose((X * norm) % 1, 0.5)  # ties: ours rounds up, argmin picks the lower
    np.testing.assert_array_equal(got[~mid], ref[~mid])
    assert set(np.unique(got)) <= set(values.tolist())
    # a level is the bundle's value of its code, and codes are in range
    codes = level_code(torch.from_numpy(got), bits, enc).numpy()
    assert codes.min() >= 0 and codes.max() < 2**bits
    np.testing.assert_array_equal(enc.value(codes, bits), got.astype(np.int64))
    np.testing.assert_array_equal(weight_code(torch.from_numpy(X), bits, enc).numpy(), codes)


@pytest.mark.parametrize(("enc", "bits", "values", "norm"), GRIDS)
def test_grid_gradient_passes_inside_the_grid_only(
    enc: Encoding, bits: int, values: np.ndarray, norm: int
) -> None:
    x = torch.from_numpy(X.copy()).requires_grad_(True)
    quantize_level(x, bits, enc).sum().backward()
    assert x.grad is not None
    lo, hi = values.min() / norm, values.max() / norm
    ref = np.where((lo <= X) & (hi >= X), float(norm), 0.0)
    np.testing.assert_array_equal(x.grad.numpy(), ref)


def test_one_bit_signed_is_refused() -> None:
    with pytest.raises(InputError, match="at least 2 bits"):
        quantize_level(torch.zeros(1), 1, SIGNED)
    with pytest.raises(InputError, match="signed weights need at least 2 bits"):
        parse_arch("mlp:8", 1, 1, w_enc="signed")
    with pytest.raises(InputError, match="weight encoding must be odd or signed, not 'unsigned'"):
        parse_arch("mlp:8", 2, 2, w_enc="unsigned")
    with pytest.raises(InputError, match="input encoding must be odd or unsigned"):
        parse_arch("mlp:8", 2, 2, in_enc="signed")


ENC_SETS = [  # (w_enc, a_enc, in_enc, bias): every trainable combination
    (w, a, i, bias)
    for w, a, i, bias in itertools.product(
        ("odd", "signed"), ("odd", "unsigned", "signed"), ("odd", "unsigned"), (False, True)
    )
]
BITS = [(2, 2), (4, 4), (2, 1), (1, 2)]


def enc_net(
    seed: int,
    spec: str,
    image: tuple[int, int],
    classes: int,
    bits: tuple[int, int],
    encs: tuple[str, str, str, bool],
) -> QuantNet:
    w, a, i, bias = encs
    arch = parse_arch(spec, *bits, w_enc=w, a_enc=a, in_enc=i, bias=bias)
    torch.manual_seed(seed)
    model = build("quant", image[0] * image[1], classes, arch, image)
    assert isinstance(model, QuantNet)
    randomize_batchnorm(model, seed)
    last = model.layers[-1]
    assert isinstance(last, QuantDense)
    if last.bias is not None:  # a bias of a few scores' spread, both signs
        gen = torch.Generator().manual_seed(seed)
        last.bias.data = torch.randn(classes, generator=gen) * 3.0
    return model


def torch_equals_golden(model: QuantNet, image: tuple[int, int], n: int, seed: int) -> B.Bundle:
    classes = model.layers[-1].out_features
    b = export_model(model, image, tuple(f"c{k}" for k in range(classes)))
    x = random_codes(seed, n, image[0] * image[1])
    trace = golden.run(b, x, batch=40)
    xt = torch.from_numpy(x)
    torch_layers = [c.numpy() for c in model.codes(xt)] + [model.scores(xt).numpy()]
    assert first_mismatch([*trace.codes, trace.scores], torch_layers) is None
    assert all(len(np.unique(c)) > 1 for c in trace.codes)  # layers that vary
    assert len(np.unique(trace.scores)) > classes
    return b


def usable(bits: tuple[int, int], encs: tuple[str, str, str, bool]) -> bool:
    return (encs[0] != "signed" or bits[0] > 1) and (encs[1] != "signed" or bits[1] > 1)


MLP_CASES = [
    pytest.param(
        bits,
        encs,
        id=f"w{bits[0]}{encs[0][0]}-a{bits[1]}{encs[1][0]}-in_{encs[2][0]}"
        + ("-bias" if encs[3] else ""),
    )
    for bits, encs in itertools.product(BITS, ENC_SETS)
    if usable(bits, encs) and (bits == (2, 2) or not encs[3])
]


@pytest.mark.parametrize(("bits", "encs"), MLP_CASES)
def test_torch_equals_golden_on_every_encoding_mlp(
    bits: tuple[int, int], encs: tuple[str, str, str, bool]
) -> None:
    seed = sum(map(ord, str((bits, encs))))
    model = enc_net(seed, "mlp:24-12", (5, 6), 6, bits, encs)
    b = torch_equals_golden(model, (5, 6), 80, seed)
    want = {"odd": ODD, "signed": SIGNED, "unsigned": UNSIGNED}
    first, hidden, last = b.layers[0], b.layers[1], b.layers[-1]
    assert isinstance(first, B.Layer) and isinstance(hidden, B.Layer)
    assert isinstance(last, B.Layer)
    assert first.in_enc is want[encs[2]] and first.in_bits == 8
    assert hidden.w_enc is want[encs[0]] and hidden.in_enc is want[encs[1]]
    assert first.out_enc is want[encs[1]]
    assert (last.bias is not None) == encs[3]
    if last.bias is not None:
        assert np.any(last.bias != 0)
    if encs[0] == "signed":  # weights with zero: the code 2**(k-1) stands for 0
        assert np.any(hidden.weight_codes() == 2 ** (bits[0] - 1))


CONV_CASES = [
    pytest.param(
        "cnv:5c3p1-mp2-4c3p1-fc8",
        (8, 8),
        (2, 2),
        ("signed", "unsigned", "unsigned", True),
        id="w2s-a2u-in_u-bias-pad",
    ),
    pytest.param(
        "cnv:5c3p1-mp2-4c3p1-fc8",
        (8, 8),
        (4, 2),
        ("signed", "signed", "odd", False),
        id="w4s-a2s-pad",
    ),
    pytest.param(
        "cnv:6c3-mp2-5c3s2p1",
        (11, 9),
        (1, 4),
        ("odd", "unsigned", "odd", True),
        id="w1-a4u-bias-s2",
    ),
    pytest.param(
        "cnv:8c3p1-mp3s2-fc24-fc16",
        (9, 9),
        (2, 1),
        ("signed", "unsigned", "unsigned", False),
        id="w2s-a1u-two-fc",
    ),
]


@pytest.mark.parametrize(("spec", "image", "bits", "encs"), CONV_CASES)
def test_torch_equals_golden_on_encoded_conv_nets(
    spec: str, image: tuple[int, int], bits: tuple[int, int], encs: tuple[str, str, str, bool]
) -> None:
    """Padding reads the value of the encoding's padding code (0 for unsigned and signed), and
    max-pooling of unsigned and signed codes pools values: both checked by torch == golden."""
    model = enc_net(len(spec) + bits[0], spec, image, 5, bits, encs)
    b = torch_equals_golden(model, image, 60, bits[1])
    pools = [ly for ly in b.layers if ly.kind == "maxpool2d"]
    assert pools and all(
        p.enc is {"odd": ODD, "unsigned": UNSIGNED, "signed": SIGNED}[encs[1]] for p in pools
    )


def test_encodings_survive_the_checkpoint(tmp_path: Path) -> None:
    model = enc_net(3, "mlp:16", (4, 4), 3, (2, 2), ("signed", "unsigned", "unsigned", True))
    meta = {"in_features": 16, "input_shape": [4, 4], "classes": ["a", "b", "c"]}
    save_checkpoint(model, model.arch, "quant", meta, tmp_path / "m.pt")
    back, _ = load_checkpoint(tmp_path / "m.pt")
    assert isinstance(back, QuantNet) and back.arch == model.arch
    x = torch.from_numpy(random_codes(1, 30, 16))
    np.testing.assert_array_equal(back.scores(x).numpy(), model.scores(x).numpy())


def test_a_hostile_checkpoint_encoding_is_refused_by_field(tmp_path: Path) -> None:
    model = enc_net(3, "mlp:16", (4, 4), 3, (2, 2), ("signed", "unsigned", "odd", False))
    meta = {"in_features": 16, "input_shape": [4, 4], "classes": ["a", "b", "c"]}
    path = tmp_path / "m.pt"
    save_checkpoint(model, model.arch, "quant", meta, path)
    payload = torch.load(path, weights_only=True)
    payload["arch"]["w_enc"] = "unsigned"
    torch.save(payload, path)
    with pytest.raises(InputError, match=r"m\.pt: field 'arch': weight encoding must be odd or"):
        load_checkpoint(path)


def test_an_integer_net_trains_exports_and_verifies_on_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train (ternary weights, ReLU activations, unsigned pixels, a score bias) -> export ->
    verify: torch == golden and C == golden on every test image."""
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        "synthetic",
        "--arch",
        "cnv:6c3p1-mp2-fc12",
        "--epochs",
        "2",
        "--w-bits",
        "2",
        "--a-bits",
        "2",
        "--w-enc",
        "signed",
        "--a-enc",
        "unsigned",
        "--in-enc",
        "unsigned",
        "--bias",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["quant_acc"] > 0.5 and metrics["quantization"] == "w2s-a2u-in_u+bias"
    bundle = run / "b.npz"
    assert main(["export", str(run / "model.pt"), "-o", str(bundle)]) == 0
    b = B.load(bundle)
    assert b.version == 4 and isinstance(b.layers[-1], B.Layer) and b.layers[-1].bias is not None
    capsys.readouterr()
    verify = ["verify", str(bundle), "--checkpoint", str(run / "model.pt"), "--data", "synthetic"]
    assert main(verify) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mismatches"] == 0 and res["images"] == 500
    assert res["accuracy_torch"] == res["accuracy_golden"] > 0.5
    assert res["c"]["mismatches"] == 0 and res["c"]["images"] == 500
