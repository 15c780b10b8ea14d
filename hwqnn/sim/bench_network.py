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
                "out_times_ns": res.out_times_ns,
                "cycles": res.cycles,
                "seconds": seconds,
            }
        )
    )
    mism = [i for i, (g, e) in enumerate(zip(got, expected.tolist(), strict=True)) if g != e]
    assert not mism, f"{len(mism)} frame(s) differ from the golden model, first: image {mism[0]}"


async def send_beats(dut: Any, beats: list[tuple[int, bool]]) -> None:
    """Drive ``(tdata, tlast)`` beats into ``s_axis`` one after another, no outputs taken.
    Inputs change at falling edges; ``tready`` (a register) read there is what the next rising
    edge sees, so a beat is taken exactly when it was read high (as in :mod:`hwqnn.sim.axis`)."""
    await FallingEdge(dut.aclk)
    for w, last in beats:
        dut.s_axis_tdata.value = w
        dut.s_axis_tlast.value = int(last)
        dut.s_axis_tvalid.value = 1
        while True:
            taken = bool(dut.s_axis_tready.value)
            await FallingEdge(dut.aclk)
            if taken:
                break
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0


def with_last(frame: list[int]) -> list[tuple[int, bool]]:
    """A frame's beats with ``tlast`` on its last beat only: a well-formed frame."""
    return [(w, i == len(frame) - 1) for i, w in enumerate(frame)]


async def reset_pulse(dut: Any) -> None:
    """Two cycles of reset with a consumer ready: no beat may be offered or taken during it."""
    dut.aresetn.value = 0
    dut.m_axis_tready.value = 1
    for _ in range(2):
        await RisingEdge(dut.aclk)
        assert not dut.m_axis_tvalid.value, "m_axis_tvalid high during reset"
        assert not dut.s_axis_tready.value, "s_axis_tready high during reset"
    dut.aresetn.value = 1


def four_frames(cfg: dict[str, Any]) -> tuple[np.ndarray, list[list[int]]]:
    """The protocol tests' four frames: the run's first four images, repeated when it has
    fewer (``-n 1`` still gets two frames before a reset and two after)."""
    images, expected = np.load(cfg["images"]), np.load(cfg["expected"])
    pick = np.arange(4) % len(images)
    return images[pick], expected[pick].tolist()


@cocotb.test()
async def reset_mid_frame(dut: Any) -> None:
    """Well-formed frames (tlast on each last beat), reset with two frames in flight and half a
    frame sent: ``frame_error`` stays clear throughout, nothing of those frames comes out after
    the reset, and the frames sent after it come out exact."""
    cfg = load_config()
    if not cfg.get("reset_test", True):
        return
    ports = Ports(**cfg["ports"])
    images, expected = four_frames(cfg)
    await start(dut)
    frames = frames_of(images, ports)
    half = frames[2][: len(frames[2]) // 2]  # none for a one-beat frame: it has no middle
    await send_beats(dut, with_last(frames[0]) + with_last(frames[1]) + [(w, False) for w in half])
    await ClockCycles(dut.aclk, 5)
    assert not dut.frame_error.value, "frame_error set on well-formed frames before the reset"
    await reset_pulse(dut)
    assert not dut.frame_error.value, "frame_error set by the reset"
    res = await stream_frames(dut, frames[2:4], 2, max_cycles=100_000)
    got = decode(res.outputs, ports)
    assert got == expected[2:4], f"after reset: got {got}, expected {expected[2:4]}"
    assert not dut.frame_error.value, "frame_error set on well-formed frames after the reset"


@cocotb.test()
async def frame_error_is_sticky_until_reset(dut: Any) -> None:
    """A ``tlast`` off a frame boundary sets ``frame_error``; it stays set through later
    well-formed frames and only a reset clears it; frames after the reset come out exact."""
    cfg = load_config()
    if not cfg.get("reset_test", True):
        return
    ports = Ports(**cfg["ports"])
    images, expected = four_frames(cfg)
    await start(dut)
    frames = frames_of(images, ports)
    if len(frames[0]) < 2:
        return  # a one-beat frame has no beat off its boundary
    early = [(w, i == 0) for i, w in enumerate(frames[0])]  # tlast on the first beat
    await send_beats(dut, early)
    await ClockCycles(dut.aclk, 3)
    assert dut.frame_error.value, "a tlast off the frame boundary did not set frame_error"
    await send_beats(dut, with_last(frames[1]))
    await ClockCycles(dut.aclk, 3)
    assert dut.frame_error.value, "frame_error is not sticky"
    await reset_pulse(dut)
    await ClockCycles(dut.aclk, 2)
    assert not dut.frame_error.value, "the reset did not clear frame_error"
    res = await stream_frames(dut, frames[2:4], 2, max_cycles=100_000)
    got = decode(res.outputs, ports)
    assert got == expected[2:4], f"after reset: got {got}, expected {expected[2:4]}"
    assert not dut.frame_error.value, "frame_error set on well-formed frames after the reset"
