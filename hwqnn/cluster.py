"""Ray, the optional cluster behind ``hwqnn dse --ray`` and ``hwqnn sim --ray``: one session
(a local instance of N CPUs, or a head at HOST:PORT checked for an answer first) around a
block of work."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hwqnn.errors import HwqnnError, InputError, ToolError, shown

RAY_CONNECT_S = 10.0


@contextmanager
def ray_session(address: str | None, cpus: int) -> Iterator[Any]:
    """The ``ray`` module, initialised for the block: ``local`` (or ``None``) starts an
    instance of ``cpus`` CPUs here; ``HOST:PORT`` joins that cluster. Shut down after."""
    try:
        import ray
    except ImportError as e:
        raise HwqnnError("--ray needs Ray: pip install 'hwqnn[ray]' (or: make setup)") from e
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None or address == "local":
        ray.init(num_cpus=cpus, **opts)
    else:
        check_reachable(address)  # ray.init waits without end for an address nobody serves
        ray.init(address=address, **opts)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = RAY_CONNECT_S) -> None:
    """Refuse a Ray address (``host:port`` or ``ray://host:port``) that does not accept a TCP
    connection within ``timeout`` seconds, in one line."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--ray: expected 'local' or HOST:PORT, found {shown(address)!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ToolError(
            f"--ray {shown(address)}: no Ray head answers there within {timeout:g} s "
            f"({e.strerror or type(e).__name__})"
        ) from None
