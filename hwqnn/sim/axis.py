"""AXI-Stream traffic for the cocotb benches, with cocotbext-axi (the standard cocotb VIP).

* ``AxiStreamSource`` drives ``s_axis``: one ``AxiStreamFrame`` per input frame (one list item
  per beat, ``tlast`` on its last), idle cycles from a seeded pause generator;
* ``AxiStreamSink`` takes ``m_axis``: back-pressure (``tready`` low) from a second one;
* :func:`watch` (this module's own, because the library stamps frames with times, not the
  cycle of every handshake) counts cycles at each falling edge, where both sides' signals are
  settled for the coming rising edge, records the cycle of each frame's first input beat and of
  each output beat, and checks the DUT's side of the protocol on ``m_axis``: once ``tvalid`` is
  high it stays high, with ``tdata`` unchanged, until ``tready`` takes the beat.

The buses have no ``tkeep``: a beat is one integer of the bus's full width (``byte_lanes=1``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cocotb.triggers import FallingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


class ProtocolError(AssertionError):
    """The DUT broke an AXI-Stream rule on ``m_axis``."""


@dataclass
class Transfer:
    """What happened during a run: output beats (ints), the cycle of every output beat and of
    every frame's first input beat, the simulation time (ns) of every output beat."""

    outputs: list[int] = field(default_factory=list)
    out_cycles: list[int] = field(default_factory=list)
    in_first_cycles: list[int] = field(default_factory=list)
    out_times_ns: list[float] = field(default_factory=list)
    cycles: int = 0


def pauses(rng: random.Random | None, prob: float) -> Iterator[bool] | None:
    """An endless seeded stream of pause decisions (``True`` with probability ``prob``)."""
    if rng is None or prob <= 0:
        return None
    return (rng.random() < prob for _ in itertools.count())


def stream_ports(dut: Any) -> tuple[AxiStreamSource, AxiStreamSink]:
    """cocotbext-axi's source on ``s_axis`` and sink on ``m_axis`` (reset: ``aresetn`` low)."""
    src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn,
                          reset_active_level=False, byte_lanes=1)  # fmt: skip
    snk = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn,
                        reset_active_level=False, byte_lanes=1)  # fmt: skip
    for bus in (src, snk):
        bus.log.setLevel("WARNING")  # the library logs every frame at INFO
    return src, snk


async def watch(dut: Any, frame_beats: list[int], expect_outputs: int, max_cycles: int) -> Transfer:
    """Count cycles until ``expect_outputs`` output beats were taken; stamp every handshake and
    check ``m_axis``'s rules (see the module docstring)."""
    s_valid, s_ready = dut.s_axis_tvalid, dut.s_axis_tready
    m_valid, m_ready, m_data = dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tdata
    starts = set(itertools.accumulate([0, *frame_beats[:-1]]))  # beat index of each first beat
    res = Transfer()
    beat = 0
    held: int | None = None  # tdata of an output beat offered and not yet taken
    cycle = 0
    edge = FallingEdge(dut.aclk)
    while len(res.outputs) < expect_outputs:
        await edge
        if cycle >= max_cycles:
            raise TimeoutError(f"no progress after {cycle} cycles ({len(res.outputs)} outputs)")
        if s_valid.value and s_ready.value:
            if beat in starts:
                res.in_first_cycles.append(cycle)
            beat += 1
        if m_valid.value:
            data = m_data.value.to_unsigned()
            if held is not None and data != held:
                raise ProtocolError(f"m_axis_tdata changed while tvalid waited for tready "
                                    f"(cycle {cycle}: {held:#x} -> {data:#x})")  # fmt: skip
            if m_ready.value:
                res.outputs.append(data)
                res.out_cycles.append(cycle)
                res.out_times_ns.append(get_sim_time("ns"))
                held = None
            else:
                held = data
        elif held is not None:
            raise ProtocolError(f"m_axis_tvalid fell at cycle {cycle} before its beat was taken")
        cycle += 1
    res.cycles = cycle
    return res


async def stream_frames(
    dut: Any,
    frames: list[list[int]],
    expect_outputs: int,
    rng: random.Random | None = None,
    idle_prob: float = 0.0,
    stall_prob: float = 0.0,
    max_cycles: int = 10**9,
) -> Transfer:
    """Send every beat of ``frames`` in order through cocotbext-axi's source; take
    ``expect_outputs`` output beats through its sink; return them with every handshake's cycle.
    The sink's beats and the watcher's are checked equal (two independent observers)."""
    src, snk = stream_ports(dut)
    src.set_pause_generator(pauses(rng, idle_prob))
    snk.set_pause_generator(pauses(rng, stall_prob))
    for f in frames:
        src.send_nowait(AxiStreamFrame(tdata=list(f)))
    res = await watch(dut, [len(f) for f in frames], expect_outputs, max_cycles)
    await FallingEdge(dut.aclk)  # the last beat the watcher saw is taken at the edge between
    got = [w for _ in range(snk.count()) for w in snk.recv_nowait().tdata]
    if got != res.outputs:
        raise ProtocolError(f"AxiStreamSink took {len(got)} beats, the watcher saw "
                            f"{len(res.outputs)} (or different data)")  # fmt: skip
    src.set_pause_generator(None)
    snk.set_pause_generator(None)
    return res
