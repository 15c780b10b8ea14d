"""The golden model: integer arithmetic on packed words (``np.bitwise_count``), no floats.

It is the reference every other implementation is compared with. :func:`run` returns per-layer
intermediates (accumulators and output codes) so a comparison can name the first layer, neuron
and image that differ. The bit layout is in :mod:`hwqnn.bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwqnn.bundle import Bundle, Layer, NetLayer
from hwqnn.errors import InputError


@dataclass
class Trace:
    """Per-layer intermediates of a batch: ``accs[i]`` int64 ``[N, out_i]`` (``None`` for a kind
    without weights), ``codes[i]`` the output codes of hidden layer ``i``; ``scores`` int64
    ``[N, classes]``."""

    accs: list[np.ndarray | None] = field(default_factory=list)
    codes: list[np.ndarray] = field(default_factory=list)
    scores: np.ndarray | None = None

    @property
    def predictions(self) -> np.ndarray:
        assert self.scores is not None
        return self.scores.argmax(axis=1)


def accumulate(layer: Layer, codes: np.ndarray) -> np.ndarray:
    """Accumulators ``A`` int64 ``[N, out]`` of a dense layer's input codes ``[N, in]``."""
    return layer.accumulate(codes)


def layer_forward(layer: NetLayer, codes: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """``(acc, out)`` of any layer kind: ``out`` is the next layer's codes (or the last layer's
    integer scores); ``acc`` the accumulators, ``None`` for a kind without weights."""
    return layer.forward(codes)


def run(bundle: Bundle, images: np.ndarray, batch: int = 256, keep: bool = True) -> Trace:
    """Run raw inputs ``[N, in_features]`` (pixels) through the bundle's input quantization and
    its layers, keeping every intermediate (``keep=False``: the scores only; a ConvNet's
    intermediates of a whole test set run to gigabytes)."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != bundle.in_features:
        raise InputError(f"images must have shape [N, {bundle.in_features}], not {images.shape}")
    n_layers = len(bundle.layers)
    accs: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
    outs: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
    for start in range(0, len(images), batch):
        x = bundle.quantize_input(images[start : start + batch])
        for i, layer in enumerate(bundle.layers):
            acc, x = layer.forward(x)
            if keep or i == n_layers - 1:
                if acc is not None:
                    accs[i].append(acc)
                outs[i].append(x)

    def cat(parts: list[np.ndarray], width: int) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros((0, width), np.int64)

    out_cat = [cat(o, ly.out_size) for o, ly in zip(outs, bundle.layers, strict=True)]
    return Trace(
        accs=[
            cat(a, ly.out_size) if a else None for a, ly in zip(accs, bundle.layers, strict=True)
        ],
        codes=out_cat[:-1],
        scores=out_cat[-1],
    )


def scores(bundle: Bundle, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Integer class scores int64 ``[N, classes]``."""
    out = run(bundle, images, batch, keep=False).scores
    assert out is not None
    return out
