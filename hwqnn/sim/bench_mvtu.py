"""cocotb unit bench of one matrix-vector-threshold unit (``hwqnn_layer``). Configured like
:mod:`hwqnn.sim.bench_network` through ``HWQNN_BENCH``: ``inputs`` (.npy codes [N, cols]),
``expected`` (.npy [N, rows]: golden codes or scores), ``ports``, stall probabilities."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import cocotb
import numpy as np

from hwqnn.hw.manifest import LayerPorts, from_ints, to_ints
from hwqnn.sim.axis import stream_frames
from hwqnn.sim.bench_network import load_config, start


@cocotb.test()
async def stream_vectors(dut: Any) -> None:
    """Every input vector's outputs, fold by fold, equal the golden layer, in order."""
    cfg = load_config()
    p = LayerPorts(**cfg["ports"])
    inputs = np.load(cfg["inputs"])
    expected = np.load(cfg["expected"])
    await start(dut)
    beats = to_ints(p.pack(inputs))
    frames = [beats[i * p.in_beats : (i + 1) * p.in_beats] for i in range(len(inputs))]
    rng = random.Random(cfg["seed"]) if cfg["idle_prob"] or cfg["stall_prob"] else None
    res = await stream_frames(
        dut, frames, len(inputs) * p.nf, rng, cfg["idle_prob"], cfg["stall_prob"], 10**7
    )
    got = p.unpack(from_ints(res.outputs, p.m_tdata_bits), expected.shape[1]).tolist()
    Path(cfg["result"]).write_text(json.dumps({"outputs": got, "out_cycles": res.out_cycles}))
    bad = [i for i in range(len(inputs)) if got[i] != expected[i].tolist()]
    assert not bad, (
        f"{len(bad)} vector(s) differ, first {bad[0]}: {got[bad[0]]} vs {expected[bad[0]].tolist()}"
    )
