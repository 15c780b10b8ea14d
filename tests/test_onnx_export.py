"""Bundle -> QONNX: ``qonnx``'s own executor runs the written graph to the golden model's integer
scores, on every image and every score, for dense and conv nets, k-bit weights and activations,
8-bit and quantized inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwqnn import golden
from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle, make_layer, save
from hwqnn.cli import main
from hwqnn.onnxio.export import ExportError, save_onnx, to_model
from hwqnn.onnxio.run import execute
from hwqnn.randnet import random_bundle, random_codes, random_net, with_input_thresholds

pytest.importorskip("qonnx")


def _check(b: Bundle, n: int = 23, batch: int = 8) -> None:
    x = random_codes(n, n, b.in_features, b.raw_bits)
    got = execute(to_model(b, batch), x)
    np.testing.assert_array_equal(got, golden.scores(b, x))  # float64 of exact integers


@pytest.mark.parametrize(
    ("w_bits", "a_bits", "in_bits"), [(1, 1, 8), (2, 2, 8), (4, 1, 2), (1, 4, 1), (8, 2, 8)]
)
def test_dense_nets_run_to_golden_scores(w_bits: int, a_bits: int, in_bits: int) -> None:
    _check(random_bundle(w_bits + a_bits, 45, (33, 17), 6, w_bits, a_bits, in_bits))


def test_quantized_input_and_per_channel_thresholds() -> None:
    dense = with_input_thresholds(random_bundle(5, 40, (21,), 4, in_bits=1), 3)
    _check(dense)
    conv = random_net(6, parse_arch("cnv:4c3p1-mp2-5c3-fc7", 2, 2), (8, 7, 3), 5, in_bits=2)
    _check(with_input_thresholds(conv, 4, channels=3))


@pytest.mark.parametrize(
    "spec", ["cnv:6c3-mp2-fc9", "cnv:5c5p2-mp3s2-7c1", "cnv:4c3s2p1-3c1-fc5", "cnv:8c1-mp2s1"]
)
def test_conv_nets_run_to_golden_scores(spec: str) -> None:
    b = random_net(len(spec), parse_arch(spec, 1, 1), (9, 10, 2), 4)
    _check(b, n=11, batch=4)


def test_dot_products_beyond_float32_are_refused() -> None:
    rng = np.random.default_rng(0)
    k = 300  # 8-bit inputs x 8-bit weights: C*K = 65025 * 300 > 2**24
    ly = make_layer(rng.integers(0, 256, (3, k)), 8, 8, 0)
    b = Bundle((ly,), (k,), ("a", "b", "c"))
    with pytest.raises(ExportError, match=r"layer 0: dot products up to 19507500 are not exact"):
        to_model(b)


def test_cli_writes_the_graph_and_checks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = random_bundle(9, 64, (30,), 10)
    save(b, tmp_path / "b.npz")
    rc = main(["export-onnx", str(tmp_path / "b.npz"), "-o", str(tmp_path / "m.onnx"),
               "--check", "40", "--data", "synthetic"])  # fmt: skip
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 40 and res["images_equal"] == 40 and res["scores_equal"] == 400
    import onnx

    model = onnx.load(str(tmp_path / "m.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMul") == 2 and ops.count("MultiThreshold") == 1
    assert "BipolarQuant" in ops


def test_save_is_atomic_on_refusal(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ly = make_layer(rng.integers(0, 256, (2, 300)), 8, 8, 0)
    with pytest.raises(ExportError):
        save_onnx(Bundle((ly,), (300,), ("a", "b")), tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []
