"""The process that stands between hwqnn and a tool (Verilator's make, the compiler, the C++
harness, Yosys): ``python reaper.py PARENT_PID CMD...`` runs CMD in a new process group that dies
with hwqnn, however hwqnn ends.

* It leads a new session, so ``os.killpg(reaper_pid, SIGKILL)`` (what hwqnn does on Ctrl-C or any
  error while waiting) reaches the tool and every process the tool started (make's compilers).
* It asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``), so a
  ``kill -9`` of hwqnn also ends the group: the reaper kills it on that signal.

With ``HWQNN_PEAK_RSS_FILE`` set, it writes there the peak resident memory (kB) of CMD and the
processes under it, once CMD ends. hwqnn cannot read that itself: Linux hands a child the peak of
the process that spawned it (``ru_maxrss`` survives exec), so every child of hwqnn, the reaper
included, reports at least hwqnn's own peak; the tool, spawned by the small reaper, does not.

Standard library only, run with ``-I -S``: it starts in tens of milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
PEAK_RSS_ENV = "HWQNN_PEAK_RSS_FILE"


def _kill_group(signum: int = 0, frame: object = None) -> None:
    os.killpg(0, signal.SIGKILL)  # the reaper is in the group too: this ends it as well


def main() -> int:
    parent, cmd = int(sys.argv[1]), sys.argv[2:]
    os.setsid()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _kill_group)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # hwqnn died before the request took effect
        _kill_group()
    try:
        rc = subprocess.call(cmd)
    except OSError as e:
        print(f"{cmd[0]}: {e.strerror}", file=sys.stderr)
        return 127
    peak_file = os.environ.get(PEAK_RSS_ENV)
    if peak_file:  # a figure for the report: never the reason a tool's run fails
        try:
            with open(peak_file, "w") as f:
                f.write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n")
        except OSError as e:
            print(f"{peak_file}: {e.strerror}", file=sys.stderr)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
