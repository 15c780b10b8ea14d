"""Running a QONNX graph with ``qonnx``'s own executor on raw images, batch by batch: the
reference an export or an import is checked against."""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm


def graph_input(model: Any) -> tuple[str, tuple[int, ...]]:
    """The graph's input name and shape (batch first)."""
    inp = model.graph.input[0]
    return inp.name, tuple(int(d) for d in model.get_tensor_shape(inp.name))


def to_graph_layout(raw: np.ndarray, shape: tuple[int, ...], scale: float = 1.0,
                    bias: float = 0.0) -> np.ndarray:  # fmt: skip
    """Raw images ``[N, K]`` (the bundle's HWC order) as the graph's input ``[N, *shape[1:]]``:
    ``[N, C, H, W]`` images are transposed from HWC; values become ``raw * scale + bias``."""
    x = np.asarray(raw, np.float32) * np.float32(scale) + np.float32(bias)
    if len(shape) == 4:
        _, c, h, w = shape
        return np.ascontiguousarray(x.reshape(-1, h, w, c).transpose(0, 3, 1, 2))
    return x.reshape(-1, *shape[1:])


def execute(model: Any, raw: np.ndarray, scale: float = 1.0, bias: float = 0.0,
            progress: bool = False) -> np.ndarray:  # fmt: skip
    """The graph's outputs ``[N, classes]`` (float64) for raw images ``[N, K]``, run through
    ``qonnx.core.onnx_exec.execute_onnx`` in batches of the graph's batch size."""
    from qonnx.core.onnx_exec import execute_onnx

    name, shape = graph_input(model)
    batch = shape[0]
    out_name = model.graph.output[0].name
    outs = []
    n = len(raw)
    bar = tqdm(total=n, desc="qonnx", unit="img", disable=not progress, leave=False)
    for s in range(0, n, batch):
        chunk = np.asarray(raw[s : s + batch])
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, chunk.shape[1]), chunk.dtype)])
        x = to_graph_layout(chunk, shape, scale, bias)
        y = np.asarray(execute_onnx(model, {name: x})[out_name], np.float64)
        outs.append(y.reshape(batch, -1)[: batch - pad])
        bar.update(batch - pad)
    bar.close()
    return np.concatenate(outs) if outs else np.zeros((0, 0))
