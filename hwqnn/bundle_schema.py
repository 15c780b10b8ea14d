"""The bundle's ``meta``, checked strictly before any array is read.

The schema (version 1; version 2 adds layer kinds, see :mod:`hwqnn.layers`; version 3 input
quantization, see :mod:`hwqnn.layers.inputq`; version 4 encodings and the score bias, version
5 the per-class score scale, see :mod:`hwqnn.bundle`)::

    {"schema": "hwqnn.bundle",            exactly this string
     "version": 1,                        an integer; a newer one is refused by name
     "input": {"shape": [d, ...],         1..4 positive integers whose product is layer 0's
               "bits": b,                 input size; b is layer 0's in_bits
               "quant": "thresholds",     optional (version 3; absent: raw values are codes):
               "raw_bits": r,             1..8, the raw value's width, and "channels": 1 or the
               "channels": c},            input's C; array input.thresholds (hwqnn.layers.inputq)
     "classes": ["name", ...],            one string per output of the last layer
     "layers": [{"kind": "dense",         a kind from hwqnn.layers.KINDS; each kind checks
                 "in_features": k, "out_features": n,      its own keys (dense shown here)
                 "in_bits": a, "w_bits": w,                1, 2, 4 or 8
                 "out_bits": o,                            1, 2 or 4; 0 on the last layer only
                 "in_enc": "odd", "w_enc": "signed",       optional (version 4): "odd",
                 "out_enc": "unsigned",                    "unsigned" or "signed"; out_enc not
                 "bias": true,                             on the last layer; bias (true) on
                 "scale": true}, ...],                     the last layer only; scale (true,
                                                           version 5) on the last layer only
     "info": {...}}                       the extension area: any JSON object (provenance)

Integers must be JSON integers (not ``1.0``, ``true`` or ``"1"``); no other keys are allowed
outside ``info``. Each layer's input must be the previous layer's output: the same bits, and the
same size (the same ``[height, width, channels]`` between image-shaped layers). A kind newer than
the file's version is refused. :func:`check` returns the typed :class:`Spec` from which the
loader knows every array's exact dtype and shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hwqnn.layers import KINDS, Header, check_chain, input_fits, parse_header, size
from hwqnn.layers._meta import Fail, int_field, keys, refuse
from hwqnn.layers.dense import MAX_FEATURES, SUPPORTED_BITS
from hwqnn.layers.inputq import InputHeader, image_channels

SCHEMA = "hwqnn.bundle"
VERSION = 5  # 2 added the conv2d and maxpool2d kinds, 3 input quantization by thresholds, 4
# encodings and the score bias, 5 the per-class score scale; a bundle is written with the oldest
# version that holds what it uses
MAX_LAYERS = 256
TOP_KEYS = {"schema", "version", "input", "classes", "layers", "info"}

__all__ = ["KINDS", "SCHEMA", "SUPPORTED_BITS", "VERSION", "Fail", "Spec", "check", "refuse"]


@dataclass(frozen=True)
class Spec:
    layers: tuple[Header, ...]
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    info: dict[str, Any]
    input_quant: InputHeader

    def arrays(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        out: dict[str, tuple[np.dtype, tuple[int, ...]]] = dict(self.input_quant.arrays())
        for i, ly in enumerate(self.layers):
            out.update(ly.array_specs(i))
        return out

    def nbytes(self) -> int:
        total = 0
        for dtype, shape in self.arrays().values():
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
        return total


def check(meta: object, fail: Fail) -> Spec:
    """Check ``meta`` against the schema; return its :class:`Spec` or call ``fail``."""
    if not isinstance(meta, dict):
        fail("meta", "a JSON object", type(meta).__name__)
    assert isinstance(meta, dict)
    if meta.get("schema") != SCHEMA:  # a foreign file: say so before anything else
        fail("meta.schema", repr(SCHEMA), f"{meta.get('schema')!r}"[:60])
    version = meta.get("version")
    if type(version) is not int:
        fail("meta.version", "an integer", f"{version!r}"[:60])
    if version > VERSION:
        fail(
            "meta.version",
            f"a version this reader supports (1..{VERSION})",
            f"version {version}: the file is newer than this hwqnn",
        )
    if version < 1:
        fail("meta.version", f"{VERSION}", version)
    m = keys(meta, "meta", TOP_KEYS, fail, optional={"info"})
    layers_meta = m["layers"]
    if not isinstance(layers_meta, list) or not 1 <= len(layers_meta) <= MAX_LAYERS:
        fail("meta.layers", f"a list of 1..{MAX_LAYERS} layers", f"{layers_meta!r}"[:60])
    layers: list[Header] = []
    for i, lm in enumerate(layers_meta):
        p = f"meta.layers[{i}]"
        ly = parse_header(lm, p, fail, last=i == len(layers_meta) - 1, version=version)
        if layers:
            check_chain(layers[-1], ly, p, fail)
        layers.append(ly)
    inp = keys(m["input"], "meta.input", InputHeader.KEYS, fail, optional=InputHeader.OPTIONAL)
    shape = inp["shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4:
        fail("meta.input.shape", "a list of 1..4 integers", f"{shape!r}"[:60])
    features = range(1, MAX_FEATURES + 1)
    dims = tuple(int_field(d, "meta.input.shape", fail, features) for d in shape)
    if not input_fits(dims, layers[0]):
        want = layers[0].in_shape
        fail("meta.input.shape", f"{size(want)} inputs as layer 0 reads them ({list(want)})",
             list(dims))  # fmt: skip
    bits = int_field(inp["bits"], "meta.input.bits", fail, SUPPORTED_BITS)
    if bits != layers[0].in_bits:
        fail("meta.input.bits", f"{layers[0].in_bits} (layer 0's in_bits)", bits)
    quant = InputHeader.parse(inp, bits, image_channels(dims), version, fail)
    classes = m["classes"]
    n_cls = size(layers[-1].out_shape)
    if not isinstance(classes, list) or len(classes) != n_cls:
        fail("meta.classes", f"a list of {n_cls} names", f"{classes!r}"[:60])
    if not all(isinstance(c, str) and len(c) <= 256 for c in classes):
        fail("meta.classes", "names as strings of at most 256 characters", "another value")
    info = m.get("info", {})
    if not isinstance(info, dict):
        fail("meta.info", "a JSON object", type(info).__name__)
    return Spec(tuple(layers), dims, tuple(classes), info, quant)
