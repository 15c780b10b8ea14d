"""Training as in the seed papers: Adam with an exponentially decaying learning rate, latent real
weights clipped to [-1, 1] after every step, BatchNorm, straight-through quantizers.

A checkpoint (``torch.save`` of the state dict plus the architecture) and a metrics JSON are
written atomically. The float twin of the same topology trains through the same loop.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from hwqnn.atomic import write_bytes
from hwqnn.data import Split
from hwqnn.errors import InputError
from hwqnn.layers.encoding import ODD
from hwqnn.model import MAX_HIDDEN, MAX_WIDTH, Arch, QuantDense, QuantNet, build, parse_arch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 100
    lr: float = 3e-3
    lr_end: float = 3e-5
    seed: int = 0
    threads: int = 0  # 0: leave torch's default
    calibrate: bool = False  # a quantized net's BatchNorm statistics from the whole train set


@dataclass(frozen=True)
class Recipe:
    """What ``--epochs``, ``--lr`` and ``--float-epochs`` default to for a family of nets: the
    settings behind the README's measured accuracies (``make demo``, ``make demo-cnv``)."""

    epochs: int
    lr: float
    float_epochs: int


RECIPES = {"mlp": Recipe(epochs=6, lr=0.1, float_epochs=6),
           "cnv": Recipe(epochs=20, lr=0.03, float_epochs=6)}  # fmt: skip


def recipe_for(arch: Arch) -> Recipe:
    return RECIPES["cnv" if arch.features else "mlp"]


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch: int = 2000) -> np.ndarray:
    """Predicted classes (argmax; ties: lowest index) in eval mode."""
    model.eval()
    preds = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch])
        out = model.scores(x) if isinstance(model, QuantNet) else model(x)
        preds.append(out.argmax(dim=1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, split: Split) -> float:
    return float((predict(model, split.images) == split.labels).mean())


@torch.no_grad()
def calibrate_batchnorm(
    model: QuantNet, images: np.ndarray, batch: int = 1000, progress: bool = False
) -> None:
    """Set every BatchNorm's running mean and variance to the exact statistics (float64 sums) of
    its input over ``images``, layer after layer, the layers before it in eval mode: the
    statistics of what the exported thresholds will see.

    Training's running averages (momentum 0.1) follow noisy batch statistics of a net whose
    binary activations flip; a quantizer turns a small error in them into flipped codes. Measured
    on Fashion-MNIST: a 6-epoch ConvNet whose last running averages were off went from 86.53 % to
    89.05 %; the default ConvNet after its 20 epochs from 90.51 % to 90.26 % (inside the 0.5-point
    spread of its last epochs), in 189 s. So it is asked for (``--calibrate``), not default."""
    model.eval()
    x_all = torch.from_numpy(images)
    for i, layer in enumerate(model.layers):
        bn = getattr(layer, "bn", None)
        if bn is None:
            continue
        dense = cast(QuantDense, layer)
        total = total_sq = None
        count = 0
        for j in tqdm(range(0, len(x_all), batch), desc=f"calibrate BatchNorm {i}",
                      disable=not progress, leave=False, mininterval=1.0):  # fmt: skip
            q = model._levels(x_all[j : j + batch])
            for prev in model.layers[:i]:
                q = prev(q)
            z = dense.dot(q).to(torch.float64) / dense.scale
            dims = [d for d in range(z.dim()) if d != 1]
            t, t2 = z.sum(dims), (z * z).sum(dims)
            total = t if total is None else total + t
            total_sq = t2 if total_sq is None else total_sq + t2
            count += z.numel() // z.shape[1]
        if total is None or total_sq is None or count < 2:
            continue
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0.0) * (count / (count - 1))
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_(var.to(bn.running_var.dtype))


def fit(
    model: nn.Module,
    train: Split,
    test: Split,
    cfg: TrainConfig,
    desc: str = "train",
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place; returns metrics (per-epoch loss/accuracy, test accuracy, time)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_all = torch.from_numpy(train.images)
    y_all = torch.from_numpy(train.labels)
    n = len(train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    gamma = (cfg.lr_end / cfg.lr) ** (1.0 / max(1, total))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    t0 = time.perf_counter()
    bar = tqdm(
        total=total, desc=desc, unit="step", disable=not progress, leave=False, mininterval=1.0
    )
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sum_loss, correct = 0.0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x, y = x_all[idx], y_all[idx]
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            model.clip_()  # type: ignore[operator]
            sum_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{sum_loss / ((i + 1) * cfg.batch_size):.3f}")
        test_acc = accuracy(model, test)
        history.append(
            {
                "epoch": epoch + 1,
                "loss": sum_loss / n,
                "train_acc": correct / n,
                "test_acc": test_acc,
            }
        )
        bar.set_postfix(epoch=epoch + 1, loss=f"{sum_loss / n:.3f}", test_acc=f"{test_acc:.4f}")
        log.info("%s epoch %d: loss %.4f test acc %.4f", desc, epoch + 1, sum_loss / n, test_acc)
    bar.close()
    result: dict[str, Any] = {}
    if cfg.calibrate and isinstance(model, QuantNet) and history:
        t1 = time.perf_counter()
        calibrate_batchnorm(model, train.images, progress=progress)
        result["test_acc_uncalibrated"] = history[-1]["test_acc"]
        result["calibration_seconds"] = time.perf_counter() - t1
        log.info("%s: BatchNorm calibrated on the train set in %.0f s", desc,
                 result["calibration_seconds"])  # fmt: skip
    return {
        **result,
        "history": history,
        "test_acc": accuracy(model, test) if result or not history else history[-1]["test_acc"],
        "seconds": time.perf_counter() - t0,
        "config": asdict(cfg),
    }


def _encodings(arch: Arch) -> dict[str, str | bool]:
    """The checkpoint's encoding keys: none for the seed papers' odd levels without a bias (so
    such checkpoints are written as before)."""
    if (arch.w_enc, arch.a_enc, arch.in_enc, arch.bias) == (ODD, ODD, ODD, False):
        return {}
    return {"w_enc": arch.w_enc.name, "a_enc": arch.a_enc.name, "in_enc": arch.in_enc.name,
            "bias": arch.bias}  # fmt: skip


def save_checkpoint(
    model: nn.Module, arch: Arch, kind: str, meta: dict[str, Any], path: str | os.PathLike[str]
) -> None:
    """Write ``{state, arch, kind, meta}`` atomically."""
    a = {
        "spec": arch.spec,
        "hidden": list(arch.hidden),
        "w_bits": arch.w_bits,
        "a_bits": arch.a_bits,
        **_encodings(arch),
    }
    payload = {"state": model.state_dict(), "arch": a, "kind": kind, "meta": meta}
    write_bytes(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was saved from; returns ``(model_in_eval_mode, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; we refuse them
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = payload["meta"]
        a = payload["arch"]
        encs = {k: a[k] for k in ("w_enc", "a_enc", "in_enc", "bias") if k in a}
        if "spec" in a:  # a spec string is parsed (and bounded) like --arch
            try:
                arch = parse_arch(a["spec"], a["w_bits"], a["a_bits"], **encs)
            except ValueError as e:
                raise InputError(f"{path}: field 'arch': {e}") from e
        else:
            arch = Arch(tuple(a["hidden"]), a["w_bits"], a["a_bits"])
        sizes = [*arch.hidden, meta["in_features"], len(meta["classes"])]
        if len(arch.hidden) > MAX_HIDDEN or not all(
            type(v) is int and 1 <= v <= MAX_WIDTH for v in sizes
        ):
            raise InputError(
                f"{path}: field 'arch.hidden': expected 0..{MAX_HIDDEN} layers of 1..{MAX_WIDTH} "
                "neurons (and such input and class counts)"
            )
        shape = tuple(meta.get("input_shape", ()))
        try:
            model = build(payload["kind"], meta["in_features"], len(meta["classes"]), arch, shape)
        except ValueError as e:
            raise InputError(f"{path}: field 'arch': {e}") from e
        model.load_state_dict(payload["state"])
    except (KeyError, RuntimeError, TypeError, EOFError, AttributeError, IndexError,
            pickle.UnpicklingError, zipfile.BadZipFile) as e:  # fmt: skip
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"{path}: not a hwqnn checkpoint ({first})") from e
    model.eval()
    return model, meta
