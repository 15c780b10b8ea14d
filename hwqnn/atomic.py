"""Files written whole or not at all: a temporary file in the target's directory, flushed to
disk, given the permissions a plain ``open()`` would give (0666 less the umask; ``mkstemp``
alone makes them 0600, unreadable to a colleague or a web server), then renamed over the
target. An interrupted write leaves the old file, or none, never a half-written one; a
``kill -9`` can leave the temporary file (``.NAME.*.tmp``), which the next write of the same
target removes."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from glob import escape as glob_escape
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Create ``path`` atomically; ``write`` fills the open binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):  # a killed writer's
        stale.unlink(missing_ok=True)
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON with sorted keys, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return write_bytes(path, lambda f: f.write(text.encode()))
