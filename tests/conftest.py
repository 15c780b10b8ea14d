"""Shared fixtures: small random networks and bundles, built through the real export path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwqnn.bundle import Bundle
from hwqnn.export import export_model
from hwqnn.model import QuantNet, parse_arch


def random_quant_mlp(
    seed: int,
    in_features: int,
    hidden: tuple[int, ...],
    classes: int,
    w_bits: int = 1,
    a_bits: int = 1,
) -> QuantNet:
    """A QuantNet with random latent weights and random BatchNorm statistics, including
    negative and zero gammas (so flips and constant channels occur)."""
    torch.manual_seed(seed)
    spec = "mlp:" + "-".join(str(h) for h in hidden)
    model = QuantNet(in_features, classes, parse_arch(spec, w_bits, a_bits))
    randomize_batchnorm(model, seed)
    return model


def randomize_batchnorm(model: QuantNet, seed: int) -> None:
    """Random BatchNorm parameters and statistics in every layer that has one, including
    negative gammas (flipped channels) and zero gammas (constant channels); then eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for layer in model.layers:
        if layer.bn is None:
            continue
        n = layer.out_features
        gamma = torch.randn(n, generator=gen)
        gamma[torch.rand(n, generator=gen) < 0.1] = 0.0
        layer.bn.weight.data = gamma
        layer.bn.bias.data = torch.randn(n, generator=gen) * 0.5
        layer.bn.running_mean.data = torch.randn(n, generator=gen) * 0.3
        layer.bn.running_var.data = torch.rand(n, generator=gen) * 0.5 + 0.01
    model.eval()


def random_bundle(
    seed: int,
    in_features: int,
    hidden: tuple[int, ...],
    classes: int,
    w_bits: int = 1,
    a_bits: int = 1,
) -> tuple[QuantNet, Bundle]:
    model = random_quant_mlp(seed, in_features, hidden, classes, w_bits, a_bits)
    shape = (in_features,)
    return model, export_model(model, shape, tuple(f"c{i}" for i in range(classes)))


def random_images(seed: int, n: int, k: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, k), dtype=np.uint8)


@pytest.fixture
def small_bundle() -> Bundle:
    return random_bundle(0, 70, (33, 20), 5)[1]
