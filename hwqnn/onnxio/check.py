"""QONNX against golden, every score: a bundle's exported graph, or the graph a bundle was
imported from, run by ``qonnx``'s own executor on test images and compared with the golden
model (integers, exactly)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn import golden
from hwqnn.bundle import Bundle
from hwqnn.data import Split
from hwqnn.onnxio.importer import ImportResult
from hwqnn.onnxio.run import execute


def check_export(b: Bundle, test: Split) -> dict[str, Any]:
    """The exported graph of ``b`` against golden on ``test``: every score equal, as floats of
    exact integers."""
    from hwqnn.onnxio.export import to_model

    t0 = time.perf_counter()
    got = execute(to_model(b, batch=min(500, max(1, len(test)))), test.images, progress=True)
    want = golden.scores(b, test.images)
    exact = got == want  # float64 of float32 integers against int64
    return {
        "images": len(test),
        "images_equal": int(exact.all(axis=1).sum()),
        "scores_equal": int(exact.sum()),
        "scores": int(exact.size),
        "classes_equal": int((got.argmax(1) == want.argmax(1)).sum()),
        "accuracy_qonnx": float((got.argmax(1) == test.labels).mean()),
        "qonnx_seconds": round(time.perf_counter() - t0, 1),
    }


def check_import(
    model_path: Path, r: ImportResult, test: Split, input_scale: float, input_bias: float
) -> dict[str, Any]:
    """The original graph at ``model_path`` against the imported bundle on ``test``: its float
    scores read back through ``P * s + R`` (integers, every score; with a per-class scale the
    dot products, ``(z - r[o]) / p[o]``) and its classes (one of golden's top classes: at a tie
    the float sums may order the tied classes differently). With a rounded per-class scale,
    ``margin_within_bound`` counts the images whose graph scores' top two are closer than
    ``argmax_bound`` (the module docstring of :mod:`hwqnn.onnxio.importer`), and
    ``classes_differ_beyond_bound`` the images whose classes differ although the margin clears
    the bound: the condition promises 0 (with no bound, every class must be equal).

    The executor computes in float32, and its matrix products round differently with the batch
    size (the BLAS blocks the sums differently), so near a quantizer's threshold a batch of 500
    can give another code than the same image alone. Images whose scores differ are run again
    alone (batch 1, as FINN runs a graph): ``scores_equal_alone`` of ``rerun_alone``; an image
    is exact when either run equals golden (``images_exact``). One that differs alone too has a
    float32 sum within an ulp of a threshold (seen once in 10,000 on a Brevitas W4A4 SFC: the
    float32 MatMul gave 1.565826, 9.7e-8 below the float64 sum of the same operands, and the
    quantizer one code lower than golden's exact integers)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.util.cleanup import cleanup_model

    def run(batch: int, images: np.ndarray) -> np.ndarray:
        model = cleanup_model(ModelWrapper(str(model_path)).transform(ChangeBatchSize(batch)))
        z = execute(model, images, input_scale, input_bias, progress=True)
        return z

    t0 = time.perf_counter()
    z = run(min(500, max(1, len(test))), test.images)
    s = golden.scores(r.bundle, test.images)
    want = r.golden_dot(s)
    back = r.graph_dot(z)  # the executor's scores as ours
    equal = (back == want).all(axis=1)
    differ = np.flatnonzero(~equal)
    alone = 0
    if differ.size:
        z1 = run(1, test.images[differ])
        alone = int((r.graph_dot(z1) == want[differ]).all(axis=1).sum())
    top = s == s.max(axis=1, keepdims=True)
    z_sorted = np.sort(z, axis=1)
    margin = z_sorted[:, -1] - z_sorted[:, -2] if z.shape[1] > 1 else np.full(len(z), np.inf)
    within = margin <= r.argmax_bound if r.argmax_bound else np.zeros(len(z), bool)
    same = top[np.arange(len(s)), z.argmax(1)]
    return {
        "images": len(test),
        "scores_equal": int(equal.sum()),
        "rerun_alone": int(differ.size),
        "scores_equal_alone": alone,
        "images_exact": int(equal.sum()) + alone,
        "classes_equal": int(same.sum()),
        "classes_tied": int((top.sum(axis=1) > 1).sum()),
        "argmax_bound": r.argmax_bound,
        "margin_within_bound": int(within.sum()),
        "classes_differ_beyond_bound": int((~same & ~within).sum()),
        "accuracy_qonnx": float((z.argmax(1) == test.labels).mean()),
        "accuracy_golden": float((s.argmax(1) == test.labels).mean()),
        "qonnx_seconds": round(time.perf_counter() - t0, 1),
    }
