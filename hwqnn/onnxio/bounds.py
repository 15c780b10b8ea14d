"""Limits on a QONNX file, checked before anything is allocated or executed: the graph is read
by other people's tools and written by other people's code, so it is held to the bundle's
standard. A file over the limits, a graph without an input, an input shape or initializer that
claims more than the limits or more than its bytes hold, and metadata nested too deeply are
refused in one line naming the file and the tensor or node.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hwqnn.errors import InputError, shown

MAX_FILE_BYTES = 1 << 30  # a 1 GiB model file
MAX_NODES = 100_000
MAX_INPUT_VALUES = 1 << 24  # one input frame (the bundle's MAX_FEATURES)
MAX_TENSOR_VALUES = 1 << 28  # one initializer
MAX_META_BYTES = 1 << 20  # one metadata value
MAX_META_DEPTH = 64


class GraphBoundsError(InputError):
    """A QONNX file beyond hwqnn's limits or inconsistent with itself."""


def read_model(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` in ``path``, within the limits above (no external data)."""
    import onnx

    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise GraphBoundsError(f"{shown(p)}: cannot read ({e.strerror})") from e
    if size > MAX_FILE_BYTES:
        raise GraphBoundsError(f"{shown(p)}: {size:,} bytes, over the {MAX_FILE_BYTES:,} limit")
    if size == 0:
        raise GraphBoundsError(f"{shown(p)}: an empty file, not an ONNX model")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # protobuf raises many kinds on foreign bytes
        raise GraphBoundsError(f"{shown(p)}: not a readable ONNX model ({type(e).__name__})") from e
    check_model(model, shown(p))
    return model


def check_model(model: Any, where: str) -> None:
    """Check ``model``'s graph against the limits; ``where`` names the file in messages."""
    g = model.graph
    if len(g.node) > MAX_NODES:
        raise GraphBoundsError(f"{where}: {len(g.node):,} nodes, over the {MAX_NODES:,} limit")
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if not inputs:
        raise GraphBoundsError(f"{where}: the graph has no input")
    if len(inputs) > 1:
        raise GraphBoundsError(f"{where}: the graph has {len(inputs)} inputs, not one")
    _check_input(inputs[0], where)
    for t in g.initializer:
        _check_initializer(t, where)
    for prop in model.metadata_props:
        if not isinstance(prop.key, str):
            raise GraphBoundsError(f"{where}: a metadata key that is not UTF-8 text")
        if len(prop.value) > MAX_META_BYTES:
            raise GraphBoundsError(
                f"{where}: metadata {shown(prop.key, 60)!r}: {len(prop.value):,} bytes, over "
                f"the {MAX_META_BYTES:,} limit"
            )


def _check_input(inp: Any, where: str) -> None:
    dims = inp.type.tensor_type.shape.dim
    values = 1
    for i, d in enumerate(dims):
        if d.HasField("dim_value"):
            if d.dim_value <= 0:
                raise GraphBoundsError(
                    f"{where}: input {shown(inp.name, 60)!r}: dimension {i} is {d.dim_value}"
                )
            values *= d.dim_value if i else 1  # the batch dimension is set to 1 on import
        elif i:  # only the batch may be symbolic
            raise GraphBoundsError(
                f"{where}: input {shown(inp.name, 60)!r}: dimension {i} has no size"
            )
    if values > MAX_INPUT_VALUES:
        raise GraphBoundsError(
            f"{where}: input {shown(inp.name, 60)!r}: {values:,} values a frame, over the "
            f"{MAX_INPUT_VALUES:,} limit"
        )


def _check_initializer(t: Any, where: str) -> None:
    from onnx import helper

    name = shown(t.name, 60)
    if any(d < 0 for d in t.dims):
        raise GraphBoundsError(f"{where}: initializer {name!r}: a negative dimension")
    values = math.prod(t.dims)
    if values > MAX_TENSOR_VALUES:
        raise GraphBoundsError(
            f"{where}: initializer {name!r}: {values:,} values, over the "
            f"{MAX_TENSOR_VALUES:,} limit"
        )
    if t.data_location == 1:  # EXTERNAL
        raise GraphBoundsError(f"{where}: initializer {name!r}: external data is not read")
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        raise GraphBoundsError(
            f"{where}: initializer {name!r}: data type {t.data_type} is not an ONNX type"
        ) from None
    if t.raw_data:
        if len(t.raw_data) != values * itemsize:
            raise GraphBoundsError(
                f"{where}: initializer {name!r}: {len(t.raw_data):,} bytes of data for shape "
                f"{list(t.dims)} ({values * itemsize:,} bytes)"
            )
        return
    held = max(
        len(t.float_data), len(t.int32_data), len(t.int64_data), len(t.double_data),
        len(t.uint64_data), len(t.string_data),
    )  # fmt: skip
    if held != values:
        raise GraphBoundsError(
            f"{where}: initializer {name!r}: {held:,} values for shape {list(t.dims)} ({values:,})"
        )


def metadata_json(value: str, key: str, where: str) -> object:
    """A metadata value hwqnn wrote as JSON, parsed with its nesting bounded."""
    if not isinstance(value, str):  # protobuf hands back bytes that are not UTF-8
        raise GraphBoundsError(f"{where}: metadata {key!r}: not UTF-8 text")
    depth = deepest = 0
    in_string = escaped = False
    for c in value:  # bracket depth outside strings, before the parser recurses
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    if deepest > MAX_META_DEPTH:
        raise GraphBoundsError(
            f"{where}: metadata {key!r}: nested {deepest} deep, over the {MAX_META_DEPTH} limit"
        )
    try:
        return json.loads(value)
    except ValueError as e:  # bad JSON, or an integer of 5,000 digits
        raise GraphBoundsError(f"{where}: metadata {key!r}: not JSON ({shown(e)})") from e
