"""The fuzz corpus as regression tests: every file in ``tests/corpus/bundle`` (the named hostile
cases, and any input a fuzzer ever crashed the loader with) is refused with one line naming the
file, or loads as a valid bundle; and the coverage-guided fuzzer (atheris) runs for a bounded time
in the slow tier without a crash."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from hwqnn import bundle as B  # noqa: N812

CORPUS = Path(__file__).parent / "corpus" / "bundle"
FILES = sorted(CORPUS.iterdir())


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 30 and (CORPUS / "valid.npz") in FILES


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file(path: Path) -> None:
    tracemalloc.start()
    try:
        try:
            b = B.load(path)
        except B.BundleError as e:
            assert str(e).startswith(f"{path}: ") and "\n" not in str(e)
            assert path.stem != "valid"
            b = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if b is not None:
        B.validate(b)
    assert peak <= 4 * path.stat().st_size + (12 << 20)


@pytest.mark.slow
def test_atheris_finds_no_crash_in_a_minute(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    cmd = [sys.executable, str(Path(__file__).parent / "fuzz_atheris.py"), str(tmp_path / "new"),
           str(CORPUS), "-max_total_time=60", "-rss_limit_mb=2048", "-malloc_limit_mb=256",
           "-seed=1", f"-artifact_prefix={tmp_path}/"]  # fmt: skip
    (tmp_path / "new").mkdir()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-")))
    assert res.returncode == 0 and not crashes, (crashes, res.stderr[-3000:])
    assert "Done" in res.stderr
