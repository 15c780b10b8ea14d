"""The golden model: integer arithmetic on packed words (``np.bitwise_count``), no floats.

It is the reference every other implementation is compared with. :func:`run` returns per-layer
intermediates (accumulators and output codes) so a comparison can name the first layer, neuron
and image that differ. The bit layout is in :mod:`hwqnn.bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwqnn.bundle import Bundle, Layer, pack_codes
from hwqnn.fold import apply_thresholds


@dataclass
class Trace:
    """Per-layer intermediates of a batch: ``accs[i]`` int64 ``[N, out_i]``, ``codes[i]`` the
    output codes of hidden layer ``i``; ``scores`` int64 ``[N, classes]``."""

    accs: list[np.ndarray] = field(default_factory=list)
    codes: list[np.ndarray] = field(default_factory=list)
    scores: np.ndarray | None = None

    @property
    def predictions(self) -> np.ndarray:
        assert self.scores is not None
        return self.scores.argmax(axis=1)


def accumulate(layer: Layer, codes: np.ndarray) -> np.ndarray:
    """Accumulators ``A`` int64 ``[N, out]`` of input codes ``[N, in]`` (XNOR-popcount sums)."""
    if codes.ndim != 2 or codes.shape[1] != layer.in_features:
        raise ValueError(f"input must have shape [N, {layer.in_features}], not {codes.shape}")
    a = pack_codes(codes, layer.in_bits, pad=0)  # [N, ka, W]
    w = layer.weights  # [O, kw, W]
    acc = np.zeros((codes.shape[0], layer.out_features), dtype=np.int64)
    for n in range(layer.in_bits):
        for m in range(layer.w_bits):
            xnor = ~(a[:, n, None, :] ^ w[None, :, m, :])
            pop = np.bitwise_count(xnor).sum(axis=-1, dtype=np.int64)
            acc += pop << (n + m)
    return acc


def layer_forward(layer: Layer, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(acc, out)``: out is the next layer's codes, or the integer scores for the last layer."""
    acc = accumulate(layer, codes)
    if layer.is_last:
        return acc, 2 * acc - layer.acc_max
    assert layer.thresholds is not None and layer.flip is not None
    return acc, apply_thresholds(acc, layer.thresholds, layer.flip, layer.acc_max)


def run(bundle: Bundle, images: np.ndarray, batch: int = 256) -> Trace:
    """Run 8-bit images ``[N, in_features]`` through the bundle, keeping every intermediate."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != bundle.in_features:
        raise ValueError(f"images must have shape [N, {bundle.in_features}], not {images.shape}")
    n_layers = len(bundle.layers)
    parts: list[list[np.ndarray]] = [[] for _ in range(2 * n_layers)]
    for start in range(0, len(images), batch):
        x = images[start : start + batch].astype(np.int64)
        for i, layer in enumerate(bundle.layers):
            acc, x = layer_forward(layer, x)
            parts[2 * i].append(acc)
            parts[2 * i + 1].append(x)
    cat = [np.concatenate(p) if p else np.zeros((0, 0), np.int64) for p in parts]
    return Trace(
        accs=cat[0::2],
        codes=cat[1 : 2 * n_layers - 1 : 2],
        scores=cat[-1],
    )


def scores(bundle: Bundle, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Integer class scores int64 ``[N, classes]``."""
    out = run(bundle, images, batch).scores
    assert out is not None
    return out
