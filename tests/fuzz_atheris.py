"""Coverage-guided fuzzing of the bundle loader with atheris (libFuzzer).

    python tests/fuzz_atheris.py NEW_CORPUS_DIR tests/corpus/bundle -max_total_time=60 \
        -rss_limit_mb=2048 -malloc_limit_mb=256

Every input is written to a file and loaded with ``hwqnn.bundle.load``. Anything but a
``BundleError`` (an exception, an allocation over ``-malloc_limit_mb``, a hang) is a crash:
libFuzzer writes the input as ``crash-*``. Add such a file to ``tests/corpus/bundle/`` after
fixing the loader: ``tests/test_corpus.py`` keeps every file there as a regression test.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import zipfile  # noqa: F401  (imported before instrumentation: only hwqnn is instrumented)

import atheris
import numpy  # noqa: F401

with atheris.instrument_imports(include=["hwqnn"]):
    from hwqnn import bundle

PATH = os.path.join(tempfile.mkdtemp(prefix="hwqnn-fuzz-"), "input.npz")


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    with contextlib.suppress(bundle.BundleError):
        bundle.load(PATH)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
