"""Golden model: packed XNOR-popcount == plain integer dot products == torch eval forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwqnn import golden
from hwqnn.bundle import code_to_level
from hwqnn.compare import first_mismatch
from tests.conftest import random_bundle, random_images

SHAPES = [(64, (64,), 10), (70, (33, 20), 5), (130, (65, 7, 3), 4), (1, (1,), 2)]


@pytest.mark.parametrize(("w_bits", "a_bits"), [(1, 1), (1, 2), (2, 2), (1, 4), (4, 4)])
@pytest.mark.parametrize("shape", SHAPES)
def test_accumulator_equals_integer_dot_product(shape: tuple, w_bits: int, a_bits: int) -> None:
    k, hidden, classes = shape
    _, b = random_bundle(k + len(hidden), k, hidden, classes, w_bits, a_bits)
    x = random_images(1, 40, k).astype(np.int64)
    for layer in b.layers:
        acc, out = golden.layer_forward(layer, x)
        s = code_to_level(x, layer.in_bits) @ code_to_level(layer.weight_codes(), layer.w_bits).T
        np.testing.assert_array_equal(2 * acc - layer.acc_max, s)
        x = out


@pytest.mark.parametrize(("w_bits", "a_bits"), [(1, 1), (1, 2), (2, 2), (4, 4)])
@pytest.mark.parametrize("seed", range(3))
def test_torch_equals_golden_on_random_nets(seed: int, w_bits: int, a_bits: int) -> None:
    k, hidden, classes = SHAPES[seed]
    model, b = random_bundle(seed, k, hidden, classes, w_bits, a_bits)
    x = random_images(seed, 300, k)
    trace = golden.run(b, x, batch=64)
    xt = torch.from_numpy(x)
    torch_layers = [c.numpy() for c in model.codes(xt)] + [model.scores(xt).numpy()]
    assert first_mismatch([*trace.codes, trace.scores], torch_layers) is None
    np.testing.assert_array_equal(trace.scores, torch_layers[-1])


def test_first_mismatch_names_image_layer_neuron() -> None:
    _, b = random_bundle(3, 70, (33, 20), 5)
    x = random_images(2, 50, 70)
    t = golden.run(b, x)
    layers = [*t.codes, t.scores]
    other = [a.copy() for a in layers]
    other[1][17, 4] ^= 1  # layer 1 differs at image 17 neuron 4 ...
    other[2][17, 0] += 2  # ... and so do the scores downstream
    other[2][30, 1] += 2  # a later image differs only in the scores
    mm = first_mismatch(layers, other)
    assert mm is not None and (mm.image, mm.layer, mm.neuron) == (17, 1, 4)
    assert "image 17, layer 1 (codes), neuron 4" in str(mm)


def test_wrong_input_shape() -> None:
    _, b = random_bundle(0, 70, (33,), 5)
    with pytest.raises(ValueError, match=r"images must have shape \[N, 70\], not \(3, 71\)"):
        golden.run(b, np.zeros((3, 71), np.uint8))
