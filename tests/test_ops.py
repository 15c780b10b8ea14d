from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hwqnn.bundle import InputQuant
from hwqnn.hw.folding import LayerFold
from hwqnn.hw.opcount import tree_add_bits
from hwqnn.hw.plan import plan
from hwqnn.ops import energy_table, layer_ops, memory_pj_per_bit, summarize
from hwqnn.randnet import random_bundle


def tree_depth(n: int) -> int:
    """Levels of a balanced tree of two-input adders over ``n`` leaves."""
    return (n - 1).bit_length()


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 392])
def test_tree_adds(n: int) -> None:
    adds, bits = tree_add_bits(n, leaf_bits=1)
    assert adds == n - 1  # a tree of n leaves has n - 1 two-input adders
    assert bits <= adds * (1 + tree_depth(n))


def test_counts_follow_the_folding() -> None:
    b = random_bundle(0, 64, (32,), 4)
    even = layer_ops(plan(b, [LayerFold(4, 16), LayerFold(2, 8)]))
    assert [o.lane_cycles for o in even] == [32 * 64, 4 * 32]  # no padding: lanes = MACs
    assert [o.issue_cycles for o in even] == [8 * 4, 2 * 4]
    assert even[0].xnor_bits == 32 * 64 * 8  # 8-bit input planes x 1-bit weights
    uneven = layer_ops(plan(b, [LayerFold(5, 10), LayerFold(3, 7)]))
    assert uneven[0].lane_cycles == 5 * 10 * 7 * 7  # ceil(32/5) * ceil(64/10) issues
    assert uneven[0].compares == 5 * 7 and uneven[1].compares == 0
    # a folded BatchNorm + activation per hidden output, none behind the scores
    assert [o.activations for o in uneven] == [32, 0]


def test_a_conv_nets_counts_per_kind() -> None:
    from hwqnn.arch import parse_arch
    from hwqnn.randnet import random_net

    b = random_net(2, parse_arch("cnv:4c3-mp2-fc6"), (6, 6, 1), 3)
    ops = layer_ops(plan(b, [LayerFold(2, 9), LayerFold(1, 4), LayerFold(1, 6)]))
    assert [o.title for o in ops] == ["0 (conv2d)", "1 (maxpool2d)", "2", "3"]
    conv, pool, _, last = ops
    assert (conv.vectors, conv.macs, conv.activations) == (16, 16 * 4 * 9, 16 * 4)
    assert (pool.compares, pool.macs, pool.activations) == (4 * 4 * 3, 0, 0)  # 4 x 4 ch x 3
    assert last.activations == 0 and last.compares == 0


def test_energy_table_and_buckets() -> None:
    t = energy_table()
    assert "Horowitz" in t["source"] and t["ops_pj"]["fp32_mult"] == 3.7
    assert memory_pj_per_bit(8000, t)[0] == 10 / 64
    assert memory_pj_per_bit(10**9, t)[1].startswith("DRAM")


def test_summary_and_chart(tmp_path: Path) -> None:
    b = random_bundle(1, 64, (32, 16), 4)
    folds = [LayerFold(4, 16), LayerFold(2, 8), LayerFold(1, 16)]
    res = summarize(plan(b, folds), chart=tmp_path / "c.png")
    assert res["energy"]["ratio_float32_to_binary"] > 1
    assert "| total |" in res["table_md"]
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_input_front_end_compares_count_on_layer_0() -> None:
    """8-bit pixels through one 128 threshold: one comparator per input element; thresholds
    that are always or never met build none."""
    b = random_bundle(0, 64, (32,), 4, in_bits=2)
    folds = [LayerFold(4, 16), LayerFold(2, 8)]
    base = layer_ops(plan(b, folds))
    q = replace(b, input_quant=InputQuant(8, 2, np.array([[0, 128, 256]], np.int64)))
    got = layer_ops(plan(q, folds))
    assert got[0].compares == base[0].compares + 64
    assert got[0].compare_bits == base[0].compare_bits + 64 * 8
    assert got[1:] == base[1:]
    t4 = np.array([[1, 2, 3], [0, 5, 256], [9, 9, 9], [0, 0, 256]])  # 3 + 1 + 3 + 0 built
    four = replace(q, input_quant=InputQuant(8, 2, t4), input_shape=(4, 4, 4))
    assert layer_ops(plan(four, folds))[0].compares == base[0].compares + 16 * 7
