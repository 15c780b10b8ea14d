"""CIFAR-10's binary batches: read exactly as stored (label byte, then the R, G and B planes),
refused with one line naming the file when malformed, and usable by the CLI as a dataset."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwqnn.cli import main
from hwqnn.data import CIFAR_RECORD, DataError, load_dataset, read_cifar10_batch


def _write(d: Path, name: str, labels: np.ndarray, images: np.ndarray) -> None:
    rec = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(labels), -1)], 1)
    (d / name).write_bytes(rec.astype(np.uint8).tobytes())


def _dataset(d: Path, n: tuple[int, ...] = (7, 5, 6, 4, 3), n_test: int = 9) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"train": [], "test": []}
    for i, k in enumerate(n, start=1):
        lab, img = rng.integers(0, 10, k), rng.integers(0, 256, (k, 3, 32, 32))
        _write(d, f"data_batch_{i}.bin", lab, img)
        out["train"].append((lab, img))
    lab, img = rng.integers(0, 10, n_test), rng.integers(0, 256, (n_test, 3, 32, 32))
    _write(d, "test_batch.bin", lab, img)
    out["test"].append((lab, img))
    return out


def test_reads_batches_as_stored(tmp_path: Path) -> None:
    written = _dataset(tmp_path)
    for split in ("train", "test"):
        s = load_dataset(str(tmp_path), split)
        lab = np.concatenate([p[0] for p in written[split]])
        img = np.concatenate([p[1] for p in written[split]])
        np.testing.assert_array_equal(s.labels, lab)
        np.testing.assert_array_equal(s.images, img.reshape(len(lab), 3072))  # C, H, W order
        assert s.shape == (3, 32, 32) and s.classes[0] == "airplane"
    (tmp_path / "batches.meta.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    assert load_dataset(str(tmp_path), "test").classes[9] == "k9"


def test_hwc_reorders_every_pixel(tmp_path: Path) -> None:
    """``Split.hwc`` puts pixel (c, y, x) of the stored planes at HWC index (y*W + x)*C + c."""
    written = _dataset(tmp_path)
    s = load_dataset(str(tmp_path), "test")
    h = s.hwc()
    assert (s.channel_major, h.channel_major, h.shape) == (True, False, (32, 32, 3))
    img = written["test"][0][1]  # [N, C, H, W] as written
    for n, c, y, x in [(0, 0, 0, 0), (1, 2, 31, 0), (8, 1, 5, 30), (4, 2, 31, 31)]:
        assert h.images[n, (y * 32 + x) * 3 + c] == img[n, c, y, x]
    assert sorted(h.images[3]) == sorted(s.images[3]) and h.hwc() is h
    assert h.head(2).shape == (32, 32, 3) and s.head(2).channel_major


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        pytest.param(lambda d: (d / "data_batch_3.bin").unlink(), "data_batch_3.bin not found",
                     id="missing-batch"),
        pytest.param(lambda d: (d / "test_batch.bin").write_bytes(b"\x00" * 3000),
                     "expected 1..60000 CIFAR-10 records of 3073 bytes, found 3000", id="size"),
        pytest.param(lambda d: _write(d, "test_batch.bin", np.array([3, 10]),
                     np.zeros((2, 3072))), "record 1: expected a label in 0..9, found 10",
                     id="label-10"),
        pytest.param(lambda d: (d / "batches.meta.txt").write_text("a\nb\n"),
                     "expected 10 class names, found 2", id="meta-names"),
    ],
)  # fmt: skip
def test_malformed_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], break_it: Any, message: str
) -> None:
    _dataset(tmp_path)
    break_it(tmp_path)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path), "train" if "batch_3" in message else "test")


@settings(max_examples=int(os.environ.get("HWQNN_FUZZ_EXAMPLES", "100")), deadline=None,
          derandomize="HWQNN_FUZZ_EXAMPLES" not in os.environ)  # fmt: skip
@given(data=st.binary(max_size=3 * CIFAR_RECORD + 5), records=st.integers(0, 3))
def test_fuzz_batches(data: bytes, records: int) -> None:
    """Random bytes, or whole records with random labels: a batch or one line naming the file."""
    if records:  # whole records, their bytes (labels included) taken from ``data``
        data = (data or b"\x00") * (records * CIFAR_RECORD // max(len(data), 1) + 1)
        data = data[: records * CIFAR_RECORD]
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "b.bin"
        p.write_bytes(data)
        try:
            img, lab = read_cifar10_batch(p)
        except DataError as e:
            assert str(e).startswith(f"{p}: ") and "\n" not in str(e)
            return
    assert len(data) % CIFAR_RECORD == 0 and lab.max() <= 9
    assert img.shape == (len(data) // CIFAR_RECORD, 3072)


def test_cli_trains_and_verifies_on_cifar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c").mkdir()
    _dataset(tmp_path / "c", (20, 20, 20, 20, 20), 30)
    run, data = tmp_path / "run", str(tmp_path / "c")
    assert (
        main(["train", "--data", data, "--arch", "mlp:16", "--epochs", "1", "--out", str(run)]) == 0
    )
    assert main(["export", str(run / "model.pt"), "-o", str(run / "b.npz")]) == 0
    capsys.readouterr()
    assert (
        main(["verify", str(run / "b.npz"), "--checkpoint", str(run / "model.pt"), "--data", data])
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 30 and res["mismatches"] == 0 and res["c"]["mismatches"] == 0
    meta = json.loads(str(np.load(run / "b.npz")["meta"]))
    assert meta["input"]["shape"] == [3, 32, 32]


def test_cli_trains_a_convnet_on_cifar_and_verifies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ConvNet reads CIFAR-10 as HWC: training reorders the planes, the bundle's input is
    [32, 32, 3], and verify reorders the test split the same way: torch == golden == GPU."""
    from hwqnn.bundle import load
    from hwqnn.verify import test_set

    (tmp_path / "c").mkdir()
    written = _dataset(tmp_path / "c", (12, 12, 12, 12, 12), 20)
    run, data = tmp_path / "run", str(tmp_path / "c")
    args = ["train", "--data", data, "--arch", "cnv:4c3s2-mp2-fc8", "--epochs", "1"]
    assert main([*args, "--out", str(run)]) == 0
    assert main(["export", str(run / "model.pt"), "-o", str(run / "b.npz")]) == 0
    meta = json.loads(str(np.load(run / "b.npz")["meta"]))
    assert meta["input"]["shape"] == [32, 32, 3]
    capsys.readouterr()
    assert (
        main(["verify", str(run / "b.npz"), "--checkpoint", str(run / "model.pt"), "--data", data])
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 20 and res["mismatches"] == 0
    # what every stage feeds this bundle: the stored planes, reordered to HWC
    planes = written["test"][0][1]  # [N, C, H, W]
    fed = test_set(load(run / "b.npz"), run / "b.npz", data).images
    np.testing.assert_array_equal(fed, planes.transpose(0, 2, 3, 1).reshape(20, -1))
