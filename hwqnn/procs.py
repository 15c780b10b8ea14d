"""Child processes that die with hwqnn: every external tool runs under :mod:`hwqnn.reaper`, in
a process group of its own that hwqnn kills if it stops waiting (Ctrl-C, ``kill -INT`` of hwqnn
alone, an error) and that the kernel has the reaper kill if hwqnn is killed outright
(``kill -9``). Without it, ``make`` and the compilers under it, and a running ``Vharness``,
outlive an interrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwqnn.reaper import PEAK_RSS_ENV

REAPER = Path(__file__).with_name("reaper.py")


def _wrapped(cmd: Sequence[str]) -> list[str]:
    return [sys.executable, "-I", "-S", str(REAPER), str(os.getpid()), *map(str, cmd)]


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """End ``proc``'s whole group (the reaper leads it), then reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # not yet a group leader, or gone
        proc.kill()
    proc.wait()


def popen(
    cmd: Sequence[str], peak_rss_file: Path | None = None, **kwargs: Any
) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` of ``cmd`` under the reaper; wait with :func:`wait`. With
    ``peak_rss_file``, the reaper writes there the tool's peak resident memory in kB (read it
    with :func:`peak_rss_mb`) when it ends."""
    if peak_rss_file is not None:
        path = str(Path(peak_rss_file).resolve())  # the tool may run in another directory
        kwargs["env"] = {**(kwargs.get("env") or os.environ), PEAK_RSS_ENV: path}
    return subprocess.Popen(_wrapped(cmd), **kwargs)


def peak_rss_mb(peak_rss_file: Path) -> float | None:
    """The peak written by the reaper (see :func:`popen`), in MB; None if there is none."""
    try:
        return int(peak_rss_file.read_text()) / 1024.0
    except (OSError, ValueError):
        return None


def run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(cmd, **kwargs)`` (``capture_output``, ``text``, ``env``, ``cwd``; no
    ``check``) under the reaper: if waiting stops for any reason, the tool's whole group is
    killed before the exception goes on."""
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    kwargs.pop("check", None)
    proc = popen(cmd, **kwargs)
    try:
        out, err = proc.communicate()
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)
