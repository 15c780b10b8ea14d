"""A cycle-exact AXI-Stream source and sink for the network top, in one coroutine.

Every cycle, at the falling edge, the loop reads the DUT's state-only handshake outputs
(``s_axis_tready`` and ``m_axis_tvalid`` depend on registers only), decides the inputs for the
coming rising edge, and so knows exactly which transfers that edge performs. One Python await
per cycle; inputs are written only when they change. Random idle cycles on the input and random
back-pressure on the output come from a seeded generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from cocotb.triggers import FallingEdge


@dataclass
class Transfer:
    """What happened during a run: output beats (ints) and the cycle of every handshake."""

    outputs: list[int] = field(default_factory=list)
    out_cycles: list[int] = field(default_factory=list)
    in_first_cycles: list[int] = field(default_factory=list)
    cycles: int = 0


async def stream_frames(
    dut: Any,
    frames: list[list[int]],
    expect_outputs: int,
    rng: random.Random | None = None,
    idle_prob: float = 0.0,
    stall_prob: float = 0.0,
    max_cycles: int = 10**9,
) -> Transfer:
    """Send every beat of ``frames`` in order; collect ``expect_outputs`` output beats."""
    clk = dut.aclk
    s_tdata, s_tvalid, s_tlast = dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tlast
    s_tready, m_tvalid, m_tready, m_tdata = (
        dut.s_axis_tready,
        dut.m_axis_tvalid,
        dut.m_axis_tready,
        dut.m_axis_tdata,
    )
    beats = [(w, i == len(f) - 1, fi) for fi, f in enumerate(frames) for i, w in enumerate(f)]
    res = Transfer()
    pos = 0
    cycle = 0
    # what is on the DUT's inputs now: signals are written only when they change (a wide tdata
    # written every cycle would cost more than the simulation itself)
    shown_pos, shown_valid, shown_ready = -1, 0, -1
    while len(res.outputs) < expect_outputs:
        await FallingEdge(clk)
        if cycle >= max_cycles:
            raise TimeoutError(f"no progress after {cycle} cycles ({len(res.outputs)} outputs)")
        ready_in = s_tready.value
        valid_out = m_tvalid.value
        # inputs for the coming rising edge
        send = pos < len(beats) and not (rng is not None and rng.random() < idle_prob)
        if send:
            if shown_pos != pos:
                w, last, _ = beats[pos]
                s_tdata.value = w
                s_tlast.value = int(last)
                shown_pos = pos
            if not shown_valid:
                s_tvalid.value = 1
                shown_valid = 1
            if ready_in:
                if pos == 0 or beats[pos - 1][2] != beats[pos][2]:
                    res.in_first_cycles.append(cycle)
                pos += 1
        elif shown_valid:
            s_tvalid.value = 0
            shown_valid = 0
        take = 0 if rng is not None and rng.random() < stall_prob else 1
        if take != shown_ready:
            m_tready.value = take
            shown_ready = take
        if valid_out and take:
            res.outputs.append(m_tdata.value.to_unsigned())
            res.out_cycles.append(cycle)
        cycle += 1
    s_tvalid.value = 0
    res.cycles = cycle
    return res
