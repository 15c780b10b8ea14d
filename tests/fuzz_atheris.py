"""Coverage-guided fuzzing with atheris (libFuzzer) of what hwqnn reads from other people: the
bundle loader (default), the manifest reader of an RTL directory, and the QONNX importer.

    python tests/fuzz_atheris.py [--target=bundle|manifest|onnx] NEW_CORPUS_DIR \
        tests/corpus/TARGET -max_total_time=60 -rss_limit_mb=2048 -malloc_limit_mb=256

Every input is written to a file and read. Anything but the reader's own refusal (an
exception of another kind, an allocation over ``-malloc_limit_mb``, a hang) is a crash:
libFuzzer writes the input as ``crash-*``. Add such a file to ``tests/corpus/TARGET/`` after
fixing the reader: ``tests/test_corpus.py`` keeps every file there as a regression test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import zipfile  # noqa: F401  (imported before instrumentation: only hwqnn is instrumented)
from pathlib import Path

import atheris
import numpy  # noqa: F401

TARGET = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--target=")), "bundle")
sys.argv = [a for a in sys.argv if not a.startswith("--target=")]

with atheris.instrument_imports(include=["hwqnn"]):
    from hwqnn import bundle
    from hwqnn.errors import HwqnnError
    from hwqnn.hw.manifest import ManifestError, load

WORK = Path(tempfile.mkdtemp(prefix="hwqnn-fuzz-"))
RTL = Path(__file__).parent / "corpus" / "rtl"  # the Verilog a fuzzed manifest may name


def _bundle(data: bytes) -> None:
    path = WORK / "input.npz"
    path.write_bytes(data)
    with contextlib.suppress(bundle.BundleError):
        bundle.load(path)


def _manifest(data: bytes) -> None:
    d = WORK / "rtl"
    if not d.is_dir():
        shutil.copytree(RTL, d)
    (d / "manifest.json").write_bytes(data)
    with contextlib.suppress(ManifestError):
        load(d)


def _onnx(data: bytes) -> None:
    from hwqnn.onnxio.importer import import_qonnx

    path = WORK / "input.onnx"
    path.write_bytes(data)
    with contextlib.suppress(HwqnnError):
        import_qonnx(path)


TARGETS = {"bundle": _bundle, "manifest": _manifest, "onnx": _onnx}


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    atheris.Setup(sys.argv, TARGETS[TARGET])
    atheris.Fuzz()
