"""Software against software, exactly: torch (eval, quantized) == golden and the C library ==
golden, every integer score (and every layer's codes) compared, the first mismatch named by
layer, neuron and image. (The RTL side is :mod:`hwqnn.verify_rtl`; QONNX's is
:mod:`hwqnn.onnxio.check`.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hwqnn import bundle as bundle_io
from hwqnn import golden
from hwqnn.compare import first_mismatch
from hwqnn.data import Split, load_dataset
from hwqnn.errors import InputError
from hwqnn.results import CCheck, TorchCheck

VERIFY_BATCH = 500  # images compared at a time, every layer kept (a ConvNet's are large)


def test_set(
    b: bundle_io.Bundle, where: Path | str, data: str | None, n: int | None = None
) -> Split:
    """The test split for bundle ``b`` (at ``where``), the first ``n`` images if given, checked to
    have the bundle's input size: a mismatch names the bundle, the field and the dataset."""
    test = load_dataset(data, "test")
    if test.channel_major and tuple(b.input_shape) == (*test.shape[1:], test.shape[0]):  # HWC
        test = test.hwc()
    if test.images.shape[1] != b.in_features:
        raise InputError(
            f"{where}: field 'meta.input.shape': the network takes {b.in_features} inputs, the "
            f"dataset {data or 'fashion-mnist'} has {test.images.shape[1]} per image"
        )
    if len(test) and int(test.labels.max()) >= len(b.classes):
        bad = int(np.flatnonzero(test.labels >= len(b.classes))[0])
        raise InputError(
            f"{data or 'fashion-mnist'}: test label {bad} is {int(test.labels[bad])}, but "
            f"{where} has {len(b.classes)} classes (field 'meta.classes')"
        )
    return test.head(n) if n is not None else test


def torch_vs_golden(
    bundle_path: Path, checkpoint: Path, data: str | None, n: int | None
) -> TorchCheck:
    """Torch (eval, quantized) vs golden on the test set: integer scores compared exactly."""
    import torch

    from hwqnn.model import QuantNet
    from hwqnn.train import load_checkpoint

    b = bundle_io.load(bundle_path)
    model, _ = load_checkpoint(checkpoint)
    if not isinstance(model, QuantNet):
        raise InputError(f"{checkpoint}: not a quantized model")
    test = test_set(b, bundle_path, data, n)
    bad, mm, t_right, g_right = 0, None, 0, 0
    for start in range(0, len(test), VERIFY_BATCH):  # bounded memory for ConvNets
        imgs = test.images[start : start + VERIFY_BATCH]
        labels = test.labels[start : start + VERIFY_BATCH]
        x = torch.from_numpy(imgs)
        t_scores = model.scores(x).numpy()
        trace = golden.run(b, imgs)
        assert trace.scores is not None
        if mm is None:
            t_layers = [c.numpy() for c in model.codes(x)] + [t_scores]
            found = first_mismatch([*trace.codes, trace.scores], t_layers)
            mm = None if found is None else replace(found, image=found.image + start)
        bad += int((t_scores != trace.scores).any(axis=1).sum())
        t_right += int((t_scores.argmax(1) == labels).sum())
        g_right += int((trace.predictions == labels).sum())
    return TorchCheck(
        images=len(test),
        mismatches=bad,
        first_mismatch=None if mm is None else str(mm),
        accuracy_torch=t_right / max(1, len(test)),
        accuracy_golden=g_right / max(1, len(test)),
        c=c_or_skipped(b, test.images, test.labels),
    )


def c_or_skipped(b: bundle_io.Bundle, images: np.ndarray, labels: np.ndarray | None) -> CCheck:
    """The C comparison, or for a net the C library does not run, why it was skipped: said in
    the result, never counted as passed."""
    try:
        return c_vs_golden(b, images, labels)
    except bundle_io.UnsupportedKindError as e:
        return CCheck(skipped=str(e))


def c_vs_golden(b: bundle_io.Bundle, images: np.ndarray, labels: np.ndarray | None) -> CCheck:
    """The C library (``sw/``) vs golden: every layer's outputs compared exactly, each layer fed
    the C library's own previous output, so a mismatch names its first layer and neuron (a
    convolution's neuron is its HWC index). Images go :data:`VERIFY_BATCH` at a time: a
    ConvNet's layers of a whole test set would take gigabytes."""
    from hwqnn import clib

    bad, right, mm = 0, 0, None
    with clib.CNet(b) as net:  # a net the C library does not run is refused here, before work
        for start in range(0, len(images), VERIFY_BATCH):
            imgs = images[start : start + VERIFY_BATCH]
            trace = golden.run(b, imgs)
            assert trace.scores is not None
            c_layers = net.trace(b, imgs)
            if mm is None:
                found = first_mismatch([*trace.codes, trace.scores], c_layers)
                mm = None if found is None else replace(found, image=found.image + start)
            bad += int((c_layers[-1] != trace.scores).any(axis=1).sum())
            if labels is not None:
                right += int((c_layers[-1].argmax(1) == labels[start : start + len(imgs)]).sum())
    return CCheck(
        images=len(images),
        mismatches=bad,
        first_mismatch=None if mm is None else str(mm),
        accuracy_c=None if labels is None else right / max(1, len(images)),
        kernel=clib.isa(),
    )
