"""The fuzz corpus as regression tests: every file in ``tests/corpus/bundle``, ``manifest`` and
``onnx`` (the named hostile cases, and any input a fuzzer ever crashed a reader with) is refused
with one line naming the file, or reads as a valid bundle, manifest or graph; and the
coverage-guided fuzzer (atheris) runs for a bounded time on each reader in the slow tier without
a crash."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from hwqnn import bundle as B  # noqa: N812

CORPUS = Path(__file__).parent / "corpus" / "bundle"
FILES = sorted(CORPUS.iterdir())
MANIFESTS = sorted((CORPUS.parent / "manifest").iterdir())
GRAPHS = sorted((CORPUS.parent / "onnx").iterdir())


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


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_manifest_corpus_file(path: Path, tmp_path: Path) -> None:
    from hwqnn.hw.manifest import ManifestError, load

    rtl = tmp_path / "rtl"
    shutil.copytree(CORPUS.parent / "rtl", rtl)
    shutil.copy(path, rtl / "manifest.json")
    try:
        load(rtl)
    except ManifestError as e:
        assert str(e).startswith(str(rtl)) and "\n" not in str(e) and "\x1b" not in str(e)
        assert path.stem != "valid"
        return
    assert path.stem == "valid"


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_onnx_corpus_file(path: Path) -> None:
    from hwqnn.errors import HwqnnError
    from hwqnn.onnxio.importer import import_qonnx

    try:
        import_qonnx(path)
    except HwqnnError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        assert path.stem != "valid"
        return
    assert path.stem == "valid"


@pytest.mark.slow
@pytest.mark.parametrize(("target", "seconds"), [("bundle", 60), ("manifest", 30), ("onnx", 30)])
def test_atheris_finds_no_crash(tmp_path: Path, target: str, seconds: int) -> None:
    pytest.importorskip("atheris")
    corpus = CORPUS.parent / target
    cmd = [sys.executable, str(Path(__file__).parent / "fuzz_atheris.py"), f"--target={target}",
           str(tmp_path / "new"), str(corpus), f"-max_total_time={seconds}",
           "-rss_limit_mb=2048", "-malloc_limit_mb=256", "-seed=1",
           f"-artifact_prefix={tmp_path}/"]  # fmt: skip
    (tmp_path / "new").mkdir()
    # Linux hands a child the peak RSS of the process it was spawned from (ru_maxrss survives
    # exec), and libFuzzer's -rss_limit_mb reads that peak: spawned from a pytest process that
    # once passed 2 GB, the fuzzer would stop at once with "out-of-memory" on whatever input it
    # held. A small launcher in between starts it with its own peak.
    launcher = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"
    res = subprocess.run([sys.executable, "-c", launcher, *cmd], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-")))
    assert res.returncode == 0 and not crashes, (crashes, res.stderr[-3000:])
    assert "Done" in res.stderr
