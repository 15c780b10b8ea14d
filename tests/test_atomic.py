"""Atomic writes: the file is whole or absent, and readable as the umask allows (not 0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwqnn import bundle as bundle_io
from hwqnn.atomic import write_bytes, write_json
from hwqnn.randnet import random_bundle


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_modes_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    assert _mode(write_json(tmp_path / "a" / "r.json", {"x": 1})) == 0o644
    assert _mode(bundle_io.save(random_bundle(0, 16, (8,), 2), tmp_path / "b.npz")) == 0o644
    os.umask(0o077)
    assert _mode(write_json(tmp_path / "private.json", {})) == 0o600


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = write_json(tmp_path / "r.json", {"old": True})

    def fail(f: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bytes(target, fail)
    assert target.read_text() == '{\n  "old": true\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
