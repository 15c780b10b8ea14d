"""The bundle's ``meta``, checked strictly before any array is read.

The schema (version 1)::

    {"schema": "hwqnn.bundle",            exactly this string
     "version": 1,                        an integer; a newer one is refused by name
     "input": {"shape": [d, ...],         1..4 positive integers whose product is layer 0's
               "bits": b},                in_features; b is layer 0's in_bits
     "classes": ["name", ...],            one string per output of the last layer
     "layers": [{"kind": "dense",         a kind from KINDS
                 "in_features": k, "out_features": n,      1 .. 2**24
                 "in_bits": a, "w_bits": w,                1, 2, 4 or 8
                 "out_bits": o}, ...],                     1, 2 or 4; 0 on the last layer only
     "info": {...}}                       the extension area: any JSON object (provenance)

Integers must be JSON integers (not ``1.0``, ``true`` or ``"1"``); no other keys are allowed
outside ``info``. Each layer's ``in_features``/``in_bits`` must equal the previous layer's
``out_features``/``out_bits``. :func:`check` returns the typed :class:`Spec` from which the
loader knows every array's exact dtype and shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

SCHEMA = "hwqnn.bundle"
VERSION = 1
KINDS = ("dense",)
SUPPORTED_BITS = (1, 2, 4, 8)
MAX_FEATURES = 1 << 24
MAX_LAYERS = 256
TOP_KEYS = {"schema", "version", "input", "classes", "layers", "info"}
LAYER_KEYS = {"kind", "in_features", "out_features", "in_bits", "w_bits", "out_bits"}

Fail = Callable[[str, str, object], NoReturn]


@dataclass(frozen=True)
class LayerSpec:
    kind: str
    in_features: int
    out_features: int
    in_bits: int
    w_bits: int
    out_bits: int

    def arrays(self, i: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """The layer's members: name -> (dtype, shape)."""
        words = -(-self.in_features // 64)
        out: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        out[f"layer{i}.weights"] = (np.dtype("<u8"), (self.out_features, self.w_bits, words))
        if self.out_bits:
            n_t = 2**self.out_bits - 1
            out[f"layer{i}.thresholds"] = (np.dtype("<i8"), (self.out_features, n_t))
            out[f"layer{i}.flip"] = (np.dtype("u1"), (self.out_features,))
        return out


@dataclass(frozen=True)
class Spec:
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    info: dict[str, Any]

    def arrays(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        out: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        for i, ly in enumerate(self.layers):
            out.update(ly.arrays(i))
        return out

    def nbytes(self) -> int:
        total = 0
        for dtype, shape in self.arrays().values():
            total += int(np.prod(shape, dtype=object)) * dtype.itemsize
        return total


def _int(v: object, fld: str, fail: Fail, allowed: tuple[int, ...] | range) -> int:
    if type(v) is not int:
        fail(fld, "an integer", f"{v!r}"[:60])
    assert isinstance(v, int)
    if v not in allowed:
        want = (
            f"{allowed.start}..{allowed.stop - 1}"
            if isinstance(allowed, range)
            else ", ".join(map(str, allowed))
        )
        fail(fld, want, v)
    return v


def _child(fld: str, key: str) -> str:
    """``fld.key``, or ``fld['key']`` (escaped) for a key that is not a plain name."""
    return f"{fld}.{key}" if key.isidentifier() else f"{fld}[{key!r}]"


def _keys(obj: object, fld: str, keys: set[str], fail: Fail, optional: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        fail(fld, "a JSON object", type(obj).__name__)
    assert isinstance(obj, dict)
    extra = sorted(set(obj) - keys)
    if extra:
        fail(
            f"{fld}.{extra[0]}" if fld else extra[0], "no such key (extensions go in 'info')", "one"
        )
    missing = sorted(keys - optional - set(obj))
    if missing:
        fail(_child(fld, missing[0]), "a value", "nothing")
    return obj


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
            f"a version this reader supports ({VERSION})",
            f"version {version}: the file is newer than this hwqnn",
        )
    if version < 1:
        fail("meta.version", f"{VERSION}", version)
    m = _keys(meta, "meta", TOP_KEYS, fail, optional={"info"})
    layers_meta = m["layers"]
    if not isinstance(layers_meta, list) or not 1 <= len(layers_meta) <= MAX_LAYERS:
        fail("meta.layers", f"a list of 1..{MAX_LAYERS} layers", f"{layers_meta!r}"[:60])
    layers: list[LayerSpec] = []
    features = range(1, MAX_FEATURES + 1)
    for i, lm in enumerate(layers_meta):
        p = f"meta.layers[{i}]"
        lm = _keys(lm, p, LAYER_KEYS, fail, optional=set())
        if lm["kind"] not in KINDS:
            fail(f"{p}.kind", f"one of {', '.join(KINDS)}", f"{lm['kind']!r}"[:60])
        last = i == len(layers_meta) - 1
        ly = LayerSpec(
            kind=lm["kind"],
            in_features=_int(lm["in_features"], f"{p}.in_features", fail, features),
            out_features=_int(lm["out_features"], f"{p}.out_features", fail, features),
            in_bits=_int(lm["in_bits"], f"{p}.in_bits", fail, SUPPORTED_BITS),
            w_bits=_int(lm["w_bits"], f"{p}.w_bits", fail, SUPPORTED_BITS),
            out_bits=_int(lm["out_bits"], f"{p}.out_bits", fail, (0,) if last else (1, 2, 4)),
        )
        if layers:
            prev = layers[-1]
            if ly.in_features != prev.out_features:
                fail(f"{p}.in_features", f"{prev.out_features} (the previous out_features)",
                     ly.in_features)  # fmt: skip
            if ly.in_bits != prev.out_bits:
                fail(f"{p}.in_bits", f"{prev.out_bits} (the previous out_bits)", ly.in_bits)
        layers.append(ly)
    inp = _keys(m["input"], "meta.input", {"shape", "bits"}, fail, optional=set())
    shape = inp["shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4:
        fail("meta.input.shape", "a list of 1..4 integers", f"{shape!r}"[:60])
    dims = tuple(_int(d, "meta.input.shape", fail, features) for d in shape)
    if int(np.prod(dims, dtype=object)) != layers[0].in_features:
        fail("meta.input.shape", f"{layers[0].in_features} inputs (layer 0)", list(dims))
    bits = _int(inp["bits"], "meta.input.bits", fail, SUPPORTED_BITS)
    if bits != layers[0].in_bits:
        fail("meta.input.bits", f"{layers[0].in_bits} (layer 0's in_bits)", bits)
    classes = m["classes"]
    n_cls = layers[-1].out_features
    if not isinstance(classes, list) or len(classes) != n_cls:
        fail("meta.classes", f"a list of {n_cls} names", f"{classes!r}"[:60])
    if not all(isinstance(c, str) and len(c) <= 256 for c in classes):
        fail("meta.classes", "names as strings of at most 256 characters", "another value")
    info = m.get("info", {})
    if not isinstance(info, dict):
        fail("meta.info", "a JSON object", type(info).__name__)
    return Spec(tuple(layers), dims, tuple(classes), info)


def refuse(where: str, error: type[Exception]) -> Fail:
    """A ``fail`` that raises ``error(f"{where}: field '{fld}': expected ..., found ...")``."""

    def fail(fld: str, expected: str, found: object) -> NoReturn:
        msg = f"{where}: field '{fld}': expected {expected}, found {found}"
        raise error(
            msg.replace("\r", "\\r").replace("\n", "\\n")
        )  # one line, whatever the file says

    return fail
