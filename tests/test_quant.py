"""Quantizers: forward values, sign(0) = +1, straight-through gradient against a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwqnn.quant import quantize_code, quantize_level

X = np.array([-2.0, -1.0, -0.7, -1 / 3, -0.2, 0.0, 0.2, 1 / 3, 0.5, 1.0, 1.5], dtype=np.float32)


def np_levels(x: np.ndarray, bits: int) -> np.ndarray:
    if bits == 1:
        return np.where(x >= 0, 1.0, -1.0)
    n = 2**bits - 1
    levels = (2 * np.arange(n + 1) - n) / n  # real values the levels stand for
    idx = np.abs(x[:, None] - levels[None, :]).argmin(1)  # nearest level
    return (2 * idx - n).astype(np.float64)


def test_sign_of_zero_is_plus_one() -> None:
    assert quantize_level(torch.tensor([0.0, -0.0]), 1).tolist() == [1.0, 1.0]
    assert quantize_code(torch.tensor([0.0]), 1).tolist() == [1.0]


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_forward_is_nearest_level(bits: int) -> None:
    x = np.concatenate([X, np.random.default_rng(bits).uniform(-1.5, 1.5, 500).astype(np.float32)])
    got = quantize_level(torch.from_numpy(x), bits).numpy()
    ref = np_levels(x, bits)
    # exact midpoints round up in ours; argmin picks the lower: compare away from midpoints
    n = 2**bits - 1
    mid = np.isclose(((x + 1) * n / 2) % 1, 0.5) if bits > 1 else np.zeros_like(x, bool)
    np.testing.assert_array_equal(got[~mid], ref[~mid])
    assert set(np.unique(got)).issubset(set(range(-n, n + 1, 2)))


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_ste_gradient_cancelled_outside_unit_interval(bits: int) -> None:
    x = torch.from_numpy(X.copy()).requires_grad_(True)
    quantize_level(x, bits).sum().backward()
    assert x.grad is not None
    ref = np.where(np.abs(X) <= 1, float(2**bits - 1), 0.0)  # includes x = 0 and |x| = 1
    np.testing.assert_array_equal(x.grad.numpy(), ref)


def test_bad_bits() -> None:
    with pytest.raises(ValueError, match="quantizer bits must be 1, 2 or 4, not 3"):
        quantize_level(torch.zeros(1), 3)
