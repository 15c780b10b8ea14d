"""Layer kinds: the one place where the bundle, the golden model and every consumer dispatch on a
layer's ``meta`` ``"kind"``.

A kind is a *header* and a *layer*. The header is the checked ``meta`` entry, read before any
array: it holds every shape fact of the kind (geometry, widths, sizes, its ``meta`` entry and
its arrays' dtypes and shapes, so the loader reads them bounded) and builds the layer. The layer
is a subclass of its header that binds the arrays and computes the golden forward pass on codes,
so no shape fact is stated twice. A header registers itself with
``@register("kind", since=VERSION)`` into :data:`KINDS`, and an unknown kind is refused with one
line naming the field. The back end's half of the registry is :mod:`hwqnn.hw.stages`.

Activations between layers are code vectors ``[N, size]``; an image-shaped activation
``(height, width, channels)`` is flattened channel-fastest (HWC), as FINN streams it.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np

from hwqnn.layers._meta import Fail
from hwqnn.layers._registry import KINDS, register
from hwqnn.layers.conv import Conv2d, MaxPool2d, Window  # registers conv2d, maxpool2d
from hwqnn.layers.dense import (  # registers dense
    ENC_KEYS,
    ENC_VERSION,
    SCALE_KEYS,
    SCALE_VERSION,
    ArraySpecs,
    Layer,
)
from hwqnn.layers.encoding import Encoding


class Shaped(Protocol):
    """What the chain between consecutive layers is checked on."""

    @property
    def in_shape(self) -> tuple[int, ...]: ...
    @property
    def out_shape(self) -> tuple[int, ...]: ...
    @property
    def in_bits(self) -> int: ...
    @property
    def out_bits(self) -> int: ...
    @property
    def in_enc(self) -> Encoding: ...
    @property
    def out_enc(self) -> Encoding: ...


class Header(Shaped, Protocol):
    """A layer's ``meta`` entry, checked: the kind's shape facts."""

    @property
    def kind(self) -> str: ...
    @property
    def is_last(self) -> bool: ...
    @property
    def in_size(self) -> int: ...
    @property
    def out_size(self) -> int: ...
    @property
    def version(self) -> int:
        """The oldest bundle version that holds this entry (its kind's, or 4 for encodings)."""
        ...

    def label(self) -> str: ...
    def meta(self) -> dict[str, object]: ...
    def array_specs(self, i: int) -> ArraySpecs: ...
    def build(self, i: int, arrays: dict[str, np.ndarray]) -> NetLayer: ...


class HeaderType(Protocol):
    since: ClassVar[int]  # the bundle version that introduced the kind

    def parse(self, lm: object, p: str, fail: Fail, last: bool) -> Header: ...


class NetLayer(Header, Protocol):
    """A layer with its arrays: what :class:`hwqnn.bundle.Bundle` holds."""

    def arrays(self, i: int) -> dict[str, np.ndarray]: ...
    def matrices(self) -> tuple[Layer, ...]:
        """The weight matrices this layer multiplies by (none for a kind without weights)."""
        ...

    def check(self, i: int, fail: Fail) -> None: ...
    def forward(self, codes: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]: ...


def size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=object))


def parse_header(lm: object, p: str, fail: Fail, last: bool, version: int) -> Header:
    """The header of ``meta.layers[i]`` (``p`` names it), dispatched on its ``kind``."""
    if not isinstance(lm, dict):
        fail(p, "a JSON object", type(lm).__name__)
    if "kind" not in lm:
        fail(f"{p}.kind", "a value", "nothing")
    kind = lm["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        fail(f"{p}.kind", f"one of {', '.join(KINDS)}", f"{kind!r}"[:60])
    cls = KINDS[kind]
    if cls.since > version:
        fail(f"{p}.kind", f"a kind of bundle version {version}", f"{kind!r} (version {cls.since})")
    if version < ENC_VERSION:
        for key in sorted(ENC_KEYS & set(lm)):
            fail(f"{p}.{key}", f"no such key in bundle version {version}",
                 f"one (bundle version {ENC_VERSION})")  # fmt: skip
    if version < SCALE_VERSION:
        for key in sorted(SCALE_KEYS & set(lm)):
            fail(f"{p}.{key}", f"no such key in bundle version {version}",
                 f"one (bundle version {SCALE_VERSION})")  # fmt: skip
    header: Header = cls.parse(lm, p, fail, last)
    return header


def input_fits(input_shape: tuple[int, ...], first: Shaped) -> bool:
    """The bundle's input shape suits layer 0: the same size and, for an image-shaped layer, the
    same ``[height, width, channels]`` (or ``[height, width]`` with one channel): a channel-major
    ``[C, H, W]`` of the same size is not the HWC image the layer reads."""
    if size(input_shape) != size(first.in_shape):
        return False
    if len(first.in_shape) == 3:
        h, w, c = first.in_shape
        return tuple(input_shape) in ((h, w, c),) + (((h, w),) if c == 1 else ())
    return True


def check_chain(prev: Shaped, ly: Shaped, p: str, fail: Fail) -> None:
    """``ly`` takes what ``prev`` gives: the same bits, and the same image shape (or size)."""
    if len(prev.out_shape) == len(ly.in_shape) == 3:
        if prev.out_shape != ly.in_shape:
            fail(f"{p}.in_shape", f"{list(prev.out_shape)} (the previous out_shape)",
                 list(ly.in_shape))  # fmt: skip
    elif size(prev.out_shape) != size(ly.in_shape):
        size_field = "in_features" if len(ly.in_shape) == 1 else "in_shape"
        fail(f"{p}.{size_field}", f"{size(prev.out_shape)} (the previous out_features)",
             size(ly.in_shape))  # fmt: skip
    if ly.in_bits != prev.out_bits:
        fail(f"{p}.in_bits", f"{prev.out_bits} (the previous out_bits)", ly.in_bits)
    if ly.in_enc != prev.out_enc:
        key = getattr(ly, "IN_ENC_KEY", "in_enc")
        fail(f"{p}.{key}", f"{prev.out_enc} (the previous layer's output encoding)", ly.in_enc)


__all__ = [
    "KINDS",
    "Conv2d",
    "Header",
    "Layer",
    "MaxPool2d",
    "NetLayer",
    "Window",
    "check_chain",
    "parse_header",
    "register",
    "size",
]
