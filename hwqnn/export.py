"""Export a trained quantized model (torch) to a bundle: packed weights and folded thresholds.

Each hidden layer's BatchNorm + quantizer is folded by evaluating the model's own eval-mode
``activate`` at every possible integer dot product (see :mod:`hwqnn.fold`), so the thresholds
reproduce the torch forward pass exactly. Anything that cannot be represented exactly is refused
with an error naming the layer.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from hwqnn.bundle import Bundle, Layer, make_layer
from hwqnn.errors import InputError
from hwqnn.fold import CodeFn, FoldError, fold_thresholds
from hwqnn.layers import Conv2d, MaxPool2d, NetLayer
from hwqnn.model import QuantConv2d, QuantDense, QuantNet, QuantPool

log = logging.getLogger(__name__)
FLOAT32_EXACT = 2**24  # integers up to this are exact in float32


class ExportError(InputError):
    """The model holds something a bundle cannot represent exactly; the message names the layer."""


def _layer_codes_fn(layer: QuantDense) -> CodeFn:
    offset = layer.scale * layer.in_features
    n = float(2**layer.out_bits - 1)

    @torch.no_grad()
    def code_fn(acc: np.ndarray) -> np.ndarray:
        s = torch.from_numpy(2 * acc - int(offset)).to(torch.float32)[:, None]
        q = layer.activate(s)
        return ((q + n) / 2.0).to(torch.int64).numpy()

    return code_fn


def export_layer(layer: QuantDense, index: int) -> Layer:
    """Fold and pack the matrix of one dense or conv layer (in eval mode)."""
    name = f"layer {index}"
    acc_max = int(layer.scale) * layer.in_features
    if acc_max >= FLOAT32_EXACT:
        raise ExportError(
            f"{name}: accumulator range {acc_max} exceeds float32's exact integers; "
            "the torch model would round it"
        )
    codes = layer.weight_code().numpy()
    if layer.is_last:
        return make_layer(codes, layer.in_bits, layer.w_bits, 0)
    try:
        thresholds, flip = fold_thresholds(
            _layer_codes_fn(layer), acc_max, layer.out_bits, layer.out_features, name=name
        )
    except FoldError as e:
        raise ExportError(str(e)) from e
    return make_layer(codes, layer.in_bits, layer.w_bits, layer.out_bits, thresholds, flip)


def export_conv(layer: QuantConv2d, index: int) -> Conv2d:
    return Conv2d(layer.window, export_layer(layer, index))


def export_pool(layer: QuantPool, index: int) -> MaxPool2d:
    return MaxPool2d(layer.window, layer.out_bits)


EXPORTERS: dict[type, Any] = {QuantDense: export_layer, QuantConv2d: export_conv,
                              QuantPool: export_pool}  # fmt: skip


def export_model(
    model: QuantNet,
    input_shape: tuple[int, ...],
    classes: tuple[str, ...],
    info: dict[str, Any] | None = None,
) -> Bundle:
    """Bundle of a trained :class:`QuantNet` (each torch layer type has its exporter)."""
    if not isinstance(model, QuantNet):
        raise ExportError(f"only quantized models export to a bundle, not {type(model).__name__}")
    model.eval()
    layers: tuple[NetLayer, ...] = tuple(
        EXPORTERS[type(layer)](layer, i) for i, layer in enumerate(model.layers)
    )
    return Bundle(
        layers=layers, input_shape=tuple(input_shape), classes=tuple(classes), info=info or {}
    )
