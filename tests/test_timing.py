# amaranth: UnusedElaboratable=no
"""The timing model (:mod:`hwqnn.hw.timing`) against the closed form it must equal where both
apply: a pipeline of MVTUs (store-and-forward) with or without an input front end. (The slow
tier holds it equal to Verilator's measurement for ConvNets: ``tests/test_conv_rtl.py``,
``tests/test_inputq_rtl.py``.)"""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment

from hwqnn.arch import parse_arch
from hwqnn.hw.emit import predict
from hwqnn.hw.folding import balance, choose_folding
from hwqnn.hw.network import Top
from hwqnn.hw.plan import Plan, plan
from hwqnn.hw.timing import frame_latency
from hwqnn.randnet import random_bundle, random_net, with_input_thresholds


def _top(p: Plan) -> Top:
    top = Top(p)
    Fragment.get(top, None)  # elaborated, as generate() does: no unit is left unused
    return top


MLPS = [
    (1, 64, (8,), 4, 16),
    (2, 784, (64, 32), 10, 64),
    (3, 50, (24,), 5, 16),
    (4, 64, (128, 128), 4, 64),
    (5, 100, (33, 20), 7, 24),
    (6, 70, (33, 20), 5, 512),
]


@pytest.mark.parametrize("cycles", [20, 60, 400])
@pytest.mark.parametrize(("seed", "k", "hidden", "classes", "axis"), MLPS)
def test_the_model_equals_the_closed_form_for_mlps(
    seed: int, k: int, hidden: tuple[int, ...], classes: int, axis: int, cycles: int
) -> None:
    b = random_bundle(seed, k, hidden, classes)
    top = _top(plan(b, choose_folding(b, cycles, axis), axis))
    _, pipeline = predict(top)
    assert pipeline.latency_cycles is not None
    assert frame_latency(top.net.path, top.net.plan.in_beats) == pipeline.latency_cycles


def test_the_model_equals_the_closed_form_with_an_input_front_end() -> None:
    b = with_input_thresholds(random_bundle(1, 64, (128, 128), 4, in_bits=1), 3)
    top = _top(plan(b, balance(b, None, 64), 64))
    _, pipeline = predict(top)
    assert frame_latency(top.net.path, top.net.plan.in_beats) == pipeline.latency_cycles


def test_every_convnet_gets_a_latency() -> None:
    b = random_net(1, parse_arch("cnv:6c3p1-mp2-5c3s2-fc9"), (9, 11, 1), 5)
    _, pipeline = predict(_top(plan(b, balance(b, None, 64), 64)))
    assert pipeline.latency_cycles is not None and pipeline.latency_cycles > 99


def test_a_unit_without_a_model_is_refused() -> None:
    from amaranth.lib import wiring

    class Strange(wiring.Component):
        def __init__(self) -> None:
            super().__init__({})

    with pytest.raises(TypeError, match="no timing model for Strange"):
        frame_latency([Strange()], 1)
