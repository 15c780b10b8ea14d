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
from hwqnn.quant import level_code

log = logging.getLogger(__name__)
FLOAT32_EXACT = 2**24  # integers up to this are exact in float32


class ExportError(InputError):
    """The model holds something a bundle cannot represent exactly; the message names the layer."""


def _layer_codes_fn(layer: QuantDense, gain: int, offsets: np.ndarray) -> CodeFn:
    """Accumulators ``A`` -> the layer's output codes, through the model's own ``activate`` of
    the dot products ``s = gain * A + D`` (:meth:`hwqnn.layers.dense.Layer.dot_offsets`)."""
    d = torch.from_numpy(offsets.copy())[None, :]

    @torch.no_grad()
    def code_fn(acc: np.ndarray) -> np.ndarray:
        s = (gain * torch.from_numpy(acc)[:, None] + d).to(torch.float32)
        q = layer.activate(s)
        return level_code(q, layer.out_bits, layer.out_enc).numpy()

    return code_fn


def _exact_range(name: str, what: str, lo: int, hi: int) -> None:
    if max(-lo, hi) >= FLOAT32_EXACT:
        raise ExportError(
            f"{name}: {what} range {lo}..{hi} exceeds float32's exact integers; "
            "the torch model would round it"
        )


def export_layer(layer: QuantDense, index: int) -> Layer:
    """Fold and pack the matrix of one dense or conv layer (in eval mode)."""
    name = f"layer {index}"
    acc_max = (2**layer.in_bits - 1) * (2**layer.w_bits - 1) * layer.in_features
    _exact_range(name, "accumulator", 0, acc_max)
    codes = layer.weight_code().numpy()
    in_enc, w_enc = layer.in_enc, layer.w_enc
    # the layer without its activation: the dot products' offsets D and the scores' range
    plain = make_layer(codes, layer.in_bits, layer.w_bits, 0, in_enc=in_enc, w_enc=w_enc)
    gain, offsets = layer.in_enc.gain, plain.dot_offsets()
    s_lo, s_hi = int(offsets.min()), gain * acc_max + int(offsets.max())
    _exact_range(name, "dot product", s_lo, s_hi)
    if layer.is_last:
        b = layer.score_bias()
        if b is None:
            return plain
        bias = b.detach().to(torch.int64).numpy()
        _exact_range(name, "biased score", s_lo + int(bias.min()), s_hi + int(bias.max()))
        return make_layer(
            codes, layer.in_bits, layer.w_bits, 0, bias=bias, in_enc=in_enc, w_enc=w_enc
        )
    try:
        thresholds, flip = fold_thresholds(
            _layer_codes_fn(layer, gain, offsets),
            acc_max,
            layer.out_bits,
            layer.out_features,
            name=name,
        )
    except FoldError as e:
        raise ExportError(str(e)) from e
    return make_layer(codes, layer.in_bits, layer.w_bits, layer.out_bits, thresholds, flip,
                      in_enc=in_enc, w_enc=w_enc, out_enc=layer.out_enc)  # fmt: skip


def export_conv(layer: QuantConv2d, index: int) -> Conv2d:
    return Conv2d(layer.window, export_layer(layer, index))


def export_pool(layer: QuantPool, index: int) -> MaxPool2d:
    return MaxPool2d(layer.window, layer.out_bits, layer.out_enc)


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
