"""cocotb bench of the network top (``hwqnn_top``). Configured by the JSON file named in the
environment variable ``HWQNN_BENCH`` (written by :mod:`hwqnn.sim.runner`):

``images`` (.npy, uint8 [N, K]), ``expected`` (.npy, int64 [N, classes + 1]: golden scores then
argmax), ``ports`` (the manifest's port layout), ``seed``, ``idle_prob``, ``stall_prob``,
``result`` (where to write the outputs and cycle counts as JSON).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from hwqnn.hw.manifest import Ports, from_ints, to_ints
from hwqnn.sim.axis import stream_frames


def load_config() -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(Path(os.environ["HWQNN_BENCH"]).read_text())
    return cfg


def decode(words: list[int], ports: Ports) -> list[list[int]]:
    """Output beats -> [score_0, ..., score_{C-1}, argmax] each (the manifest's codec)."""
    scores, cls = ports.unpack(from_ints(words, ports.m_tdata_bits))
    return np.column_stack([scores, cls]).tolist()  # type: ignore[no-any-return]


async def start(dut: Any) -> None:
    Clock(dut.aclk, 10, unit="ns").start()  # cocotb 2: start() schedules the clock itself
    dut.aresetn.value = 0
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0
    dut.s_axis_tdata.value = 0
    dut.m_axis_tready.value = 0
    await ClockCycles(dut.aclk, 3)
    dut.aresetn.value = 1


def frames_of(images: np.ndarray, ports: Ports) -> list[list[int]]:
    """Each frame's ``s_axis`` beats as ``tdata`` integers (the manifest's codec)."""
    beats = to_ints(ports.pack(images))
    n = ports.in_beats
    return [beats[i * n : (i + 1) * n] for i in range(len(images))]


@cocotb.test()
async def stream_test_set(dut: Any) -> None:
    """Every frame in comes out exactly once, in order, equal to the golden model."""
    cfg = load_config()
    ports = Ports(**cfg["ports"])
    images = np.load(cfg["images"])
    expected = np.load(cfg["expected"])
    await start(dut)
    rng = random.Random(cfg["seed"]) if cfg["idle_prob"] or cfg["stall_prob"] else None
    t0 = time.perf_counter()
    res = await stream_frames(
        dut,
        frames_of(images, ports),
        len(images),
        rng=rng,
        idle_prob=cfg["idle_prob"],
        stall_prob=cfg["stall_prob"],
        max_cycles=cfg.get("max_cycles", 10**9),
    )
    seconds = time.perf_counter() - t0
    got = decode(res.outputs, ports)
    # nothing more comes out after the last frame
    dut.m_axis_tready.value = 1
    for _ in range(cfg.get("drain_cycles", 20)):
        await FallingEdge(dut.aclk)
        assert not dut.m_axis_tvalid.value, "an extra output beat appeared after the last frame"
    assert not dut.frame_error.value, "frame_error set on well-formed input"
    Path(cfg["result"]).write_text(
        json.dumps(
            {
                "outputs": got,
                "out_cycles": res.out_cycles,
                "in_first_cycles": res.in_first_cycles,
                "cycles": res.cycles,
                "seconds": seconds,
            }
        )
    )
    mism = [i for i, (g, e) in enumerate(zip(got, expected.tolist(), strict=True)) if g != e]
    assert not mism, f"{len(mism)} frame(s) differ from the golden model, first: image {mism[0]}"


@cocotb.test()
async def reset_mid_frame(dut: Any) -> None:
    """Reset with frames in flight and half a frame sent: nothing of them comes out after reset,
    and the frames sent after it come out right."""
    cfg = load_config()
    if not cfg.get("reset_test", True):
        return
    ports = Ports(**cfg["ports"])
    images = np.load(cfg["images"])[:4]
    expected = np.load(cfg["expected"])[:4].tolist()
    await start(dut)
    frames = frames_of(images, ports)
    # two whole frames then the first half of a third, no outputs taken
    partial = frames[0] + frames[1] + frames[2][: max(1, len(frames[2]) // 2)]
    for w in partial:
        dut.s_axis_tdata.value = w
        dut.s_axis_tvalid.value = 1
        while True:
            await RisingEdge(dut.aclk)
            if dut.s_axis_tready.value:
                break
    dut.s_axis_tvalid.value = 0
    await ClockCycles(dut.aclk, 5)
    dut.aresetn.value = 0
    dut.m_axis_tready.value = 1  # a consumer taking beats during reset must be offered none
    for _ in range(2):
        await RisingEdge(dut.aclk)
        assert not dut.m_axis_tvalid.value, "m_axis_tvalid high during reset"
        assert not dut.s_axis_tready.value, "s_axis_tready high during reset"
    dut.aresetn.value = 1
    res = await stream_frames(dut, frames[2:4], 2, max_cycles=100_000)
    got = decode(res.outputs, ports)
    assert got == expected[2:4], f"after reset: got {got}, expected {expected[2:4]}"
