"""Integer comparison of two implementations, naming the first mismatch (image, layer, neuron)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwqnn.errors import InputError


@dataclass(frozen=True)
class Mismatch:
    """The first disagreement: image index, layer index (last = scores), neuron, both values."""

    image: int
    layer: int
    neuron: int
    expected: int
    found: int
    what: str = "output"

    def __str__(self) -> str:
        return (
            f"first mismatch: image {self.image}, layer {self.layer} ({self.what}), "
            f"neuron {self.neuron}: golden {self.expected}, found {self.found}"
        )


def first_mismatch(
    golden_layers: Sequence[np.ndarray], other_layers: Sequence[np.ndarray | None]
) -> Mismatch | None:
    """Compare per-layer outputs ``[N, out]`` in order. The first image with any difference is
    reported at the first layer (of those given) where it differs. ``None`` entries are skipped."""
    bad_images: set[int] = set()
    diffs: list[np.ndarray | None] = []
    for g, o in zip(golden_layers, other_layers, strict=True):
        if o is None:
            diffs.append(None)
            continue
        if g.shape != o.shape:
            raise InputError(f"shapes differ: golden {g.shape}, other {o.shape}")
        d = g != o
        diffs.append(d)
        bad_images.update(np.flatnonzero(d.any(axis=1)).tolist())
    if not bad_images:
        return None
    img = min(bad_images)
    n_layers = len(golden_layers)
    for li, d in enumerate(diffs):
        if d is None or not d[img].any():
            continue
        neuron = int(np.flatnonzero(d[img])[0])
        o = other_layers[li]
        assert o is not None
        what = "scores" if li == n_layers - 1 else "codes"
        return Mismatch(
            img, li, neuron, int(golden_layers[li][img, neuron]), int(o[img, neuron]), what
        )
    raise AssertionError("unreachable")
