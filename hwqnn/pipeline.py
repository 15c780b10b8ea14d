"""The stages behind the CLI, each reading and writing files in a run directory.

This module only sequences the stages; the work lives in the stage modules it imports.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn import bundle as bundle_io
from hwqnn import golden
from hwqnn.compare import first_mismatch
from hwqnn.data import load_dataset
from hwqnn.train import write_json

log = logging.getLogger(__name__)


def train_stage(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train the quantized model (and the float twin if asked); write checkpoints and metrics."""
    import torch

    from hwqnn.model import build, parse_arch
    from hwqnn.train import TrainConfig, fit, save_checkpoint

    arch = parse_arch(args.arch, args.w_bits, args.a_bits)
    train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_end=args.lr_end,
        seed=args.seed,
    )
    meta = {
        "in_features": train.images.shape[1],
        "input_shape": list(train.shape),
        "classes": list(train.classes),
        "data": str(args.data or "fashion-mnist"),
    }
    metrics: dict[str, Any] = {"arch": arch.spec, "w_bits": arch.w_bits, "a_bits": arch.a_bits}
    torch.manual_seed(args.seed)
    model = build("quant", train.images.shape[1], len(train.classes), arch)
    res = fit(model, train, test, cfg, desc=f"train {arch.spec} w{arch.w_bits}a{arch.a_bits}")
    save_checkpoint(model, arch, "quant", meta, out / "model.pt")
    metrics["quant_acc"] = res["test_acc"]
    metrics["quant"] = res
    if getattr(args, "float_twin", False):
        torch.manual_seed(args.seed)
        twin = build("float", train.images.shape[1], len(train.classes), arch)
        fres = fit(twin, train, test, cfg, desc=f"train {arch.spec} float twin")
        save_checkpoint(twin, arch, "float", meta, out / "float.pt")
        metrics["float_acc"] = fres["test_acc"]
        metrics["float"] = fres
    write_json(out / "metrics.json", metrics)
    return metrics


def export_stage(checkpoint: Path, output: Path) -> bundle_io.Bundle:
    """Checkpoint -> bundle (atomic write)."""
    from hwqnn.export import export_model
    from hwqnn.model import QuantMLP
    from hwqnn.train import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    if not isinstance(model, QuantMLP):
        raise ValueError(f"{checkpoint}: a float model cannot be exported (train without float)")
    info = {"source": str(checkpoint), "data": meta.get("data"), "arch": model.arch.spec}
    b = export_model(model, tuple(meta["input_shape"]), tuple(meta["classes"]), info)
    bundle_io.save(b, output)
    return b


def verify_torch_stage(
    bundle_path: Path, checkpoint: Path, data: str | None, n: int | None
) -> dict[str, Any]:
    """Torch (eval, quantized) vs golden on the test set: integer scores compared exactly."""
    import torch

    from hwqnn.model import QuantMLP
    from hwqnn.train import load_checkpoint

    b = bundle_io.load(bundle_path)
    model, _ = load_checkpoint(checkpoint)
    if not isinstance(model, QuantMLP):
        raise ValueError(f"{checkpoint}: not a quantized model")
    test = load_dataset(data, "test")
    if n is not None:
        test = test.head(n)
    x = torch.from_numpy(test.images)
    t_scores = model.scores(x).numpy()
    trace = golden.run(b, test.images)
    assert trace.scores is not None
    t_layers = [c.numpy() for c in model.codes(x)] + [t_scores]
    mm = first_mismatch([*trace.codes, trace.scores], t_layers)
    bad = int((t_scores != trace.scores).any(axis=1).sum())
    return {
        "images": len(test),
        "mismatches": bad,
        "first_mismatch": None if mm is None else str(mm),
        "accuracy_torch": float((t_scores.argmax(1) == test.labels).mean()),
        "accuracy_golden": float((trace.predictions == test.labels).mean()),
    }


def golden_stage(bundle_path: Path, data: str | None, n: int | None) -> dict[str, Any]:
    """Accuracy of the golden model on the test set."""
    b = bundle_io.load(bundle_path)
    test = load_dataset(data, "test")
    if n is not None:
        test = test.head(n)
    t0 = time.perf_counter()
    pred = golden.scores(b, test.images).argmax(1)
    return {
        "images": len(test),
        "accuracy_golden": float((pred == test.labels).mean()),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _unused(*_: Any) -> None:  # keep imports used until later stages land
    _ = (np, write_json)
