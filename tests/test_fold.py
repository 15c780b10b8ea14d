"""Threshold folding, brute-forced against float BatchNorm + quantizer over every accumulator."""

from __future__ import annotations

import numpy as np
import pytest

from hwqnn.fold import FoldError, apply_thresholds, fold_thresholds


def bn_quant_codes(
    acc: np.ndarray, p: dict[str, np.ndarray], C: int, K: int, bits: int
) -> np.ndarray:
    """Float32 BatchNorm then quantizer, written independently of the model code."""
    f = np.float32
    s = (2 * acc - C * K).astype(f)[:, None]
    z = s / f(C)
    y = (z - p["mean"]) / np.sqrt(p["var"] + f(1e-5)) * p["gamma"] + p["beta"]
    if bits == 1:
        return (y >= 0).astype(np.int64)  # sign(0) = +1
    n = f(2**bits - 1)
    return np.clip(np.floor((y + f(1)) * (n / f(2)) + f(0.5)), 0, n).astype(np.int64)


def random_params(rng: np.random.Generator, ch: int, C: int, K: int) -> dict[str, np.ndarray]:
    f = np.float32
    gamma = rng.normal(size=ch).astype(f)
    gamma[rng.random(ch) < 0.2] = 0.0  # gamma = 0: a constant channel
    beta = (rng.normal(size=ch) * 0.5).astype(f)
    mean = (rng.normal(size=ch) * 0.2).astype(f)
    var = (rng.random(size=ch) * 0.5 + 0.01).astype(f)
    # exact ties: for a third of the channels put bn(z) = 0 exactly at an integer accumulator
    ties = rng.random(ch) < 0.33
    tie_acc = rng.integers(0, C * K + 1, size=ch)
    mean[ties] = (f(2) * tie_acc[ties].astype(f) - f(C * K)) / f(C)
    beta[ties] = 0.0
    return {"gamma": gamma, "beta": beta, "mean": mean, "var": var}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("C", "K", "bits"), [(1, 37, 1), (1, 256, 1), (255, 50, 1), (1, 64, 2), (3, 40, 2), (9, 20, 4)]
)
def test_fold_matches_float_bn_everywhere(seed: int, C: int, K: int, bits: int) -> None:
    rng = np.random.default_rng(seed * 100 + K)
    ch = 24
    p = random_params(rng, ch, C, K)
    fn = lambda acc: bn_quant_codes(acc, p, C, K, bits)  # noqa: E731
    T, flip = fold_thresholds(fn, C * K, bits, ch, chunk=97)
    acc = np.arange(C * K + 1)
    got = apply_thresholds(acc[:, None], T, flip, C * K)
    np.testing.assert_array_equal(got, fn(acc))
    # gamma < 0 channels flip (unless constant), gamma > 0 never do
    assert not flip[p["gamma"] > 0].any()
    varying = fn(acc).max(0) != fn(acc).min(0)
    np.testing.assert_array_equal(flip.astype(bool) & varying, (p["gamma"] < 0) & varying)


def test_tie_counts_as_plus_one() -> None:
    # bn(z) = z - 0 with gamma = 1: z = 0 exactly at acc = K/2 (C = 1): sign(0) = +1
    K = 10
    p = {
        k: np.array([v], np.float32)
        for k, v in dict(gamma=1.0, beta=0.0, mean=0.0, var=1.0 - 1e-5).items()
    }
    T, flip = fold_thresholds(lambda a: bn_quant_codes(a, p, 1, K, 1), K, 1, 1)
    assert (int(T[0, 0]), int(flip[0])) == (K // 2, 0)


def test_constant_channels_fold_to_extreme_thresholds() -> None:
    K = 16
    fn = lambda a: np.stack([np.zeros_like(a), np.ones_like(a)], axis=1)  # noqa: E731
    T, flip = fold_thresholds(fn, K, 1, 2)
    assert T[:, 0].tolist() == [K + 1, 0] and flip.tolist() == [0, 0]


def test_non_monotone_refused() -> None:
    fn = lambda a: ((a % 7) < 3).astype(np.int64)[:, None]  # noqa: E731
    with pytest.raises(FoldError, match=r"layer 3: channel 0 is not monotone"):
        fold_thresholds(fn, 50, 1, 1, name="layer 3")
