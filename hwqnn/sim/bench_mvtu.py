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

from hwqnn.sim.axis import frame_beats, stream_frames, unpack_word
from hwqnn.sim.bench_network import load_config, start


@cocotb.test()
async def stream_vectors(dut: Any) -> None:
    """Every input vector's outputs, fold by fold, equal the golden layer, in order."""
    cfg = load_config()
    p = cfg["ports"]
    inputs = np.load(cfg["inputs"])
    expected = np.load(cfg["expected"])
    await start(dut)
    frames = [frame_beats(v.tolist(), p["in_chunk"], p["in_beats"], p["in_bits"]) for v in inputs]
    rng = random.Random(cfg["seed"]) if cfg["idle_prob"] or cfg["stall_prob"] else None
    res = await stream_frames(
        dut, frames, len(inputs) * p["nf"], rng, cfg["idle_prob"], cfg["stall_prob"], 10**7
    )
    rows = expected.shape[1]
    got = []
    for i in range(len(inputs)):
        vec: list[int] = []
        for w in res.outputs[i * p["nf"] : (i + 1) * p["nf"]]:
            vec += unpack_word(w, p["pe"], p["out_width"], p["signed"])
        got.append(vec[:rows])
    Path(cfg["result"]).write_text(json.dumps({"outputs": got, "out_cycles": res.out_cycles}))
    bad = [i for i in range(len(inputs)) if got[i] != expected[i].tolist()]
    assert not bad, (
        f"{len(bad)} vector(s) differ, first {bad[0]}: {got[bad[0]]} vs {expected[bad[0]].tolist()}"
    )
