"""The hardware plan of conv nets: units per kind, beat widths, the cycle formula per kind, and
foldings that fit (no simulation: the slow tier holds these against Verilator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from amaranth.hdl import Fragment

from hwqnn.arch import parse_arch
from hwqnn.hw.folding import FoldingError, choose_folding, cycles_per_frame, parse_folding
from hwqnn.hw.network import Top
from hwqnn.hw.plan import LayerFold, plan
from hwqnn.randnet import random_net


def test_conv_stage_cycles_follow_the_formula_per_kind() -> None:
    b = random_net(1, parse_arch("cnv:8c3p1-mp2-6c3s2-fc9"), (10, 10, 1), 4)
    folds = [LayerFold(2, 3), LayerFold(3, 8), LayerFold(1, 9), LayerFold(1, 1)]
    st = plan(b, folds, axis_bits=64).stages
    assert [s.kind for s in st] == ["conv2d", "maxpool2d", "conv2d", "dense", "dense"]
    c0, p1, c2, d3, d4 = st
    # conv: 100 positions x max(NF*SF = 4*3, k*k = 9), pixel beats 100 (1 channel, 1 code/beat)
    assert (c0.in_chunk, c0.out_chunk, c0.vectors, c0.cycles) == (1, 2, 100, 100 * 12)
    # pool: 25 positions x 4 pixels, written as 100 pixels x 8 channels / 2 codes a beat
    assert (p1.in_chunk, p1.out_chunk, p1.cycles) == (2, 8, max(400, 25 * 4))
    # conv 3x3 stride 2 over 5x5x8: 4 positions x max(2*9, 9); 25 pixel beats of 8 codes
    assert (c2.in_chunk, c2.vectors, c2.cycles) == (8, 4, max(25, 4 * 18))
    assert (d3.in_chunk, d3.cycles) == (3, 9 * 3)  # NF 9 rows x SF 3 (24 inputs, SIMD 9)
    assert d4.cycles == 4 * 9
    assert cycles_per_frame(b, folds) == max(100, 1200, 400, 72, 27, 36)


def test_a_conv_pe_must_divide_its_channels() -> None:
    b = random_net(1, parse_arch("cnv:6c3-fc4"), (6, 6, 1), 3)
    with pytest.raises(FoldingError, match=r"layer 0: a convolution's PE must divide its 6 "):
        parse_folding("4x9,1x1,1x1", b)


def test_chosen_conv_foldings_fit_and_meet_the_target() -> None:
    b = random_net(2, parse_arch("cnv:12c3-mp2-10c3-fc16"), (12, 12, 3), 5)
    for target in (500, 2000, 20000):
        folds = choose_folding(b, target, 64)
        st = plan(b, folds, 64).stages
        assert st[0].matrix is not None and st[0].matrix.out_features % folds[0].pe == 0
        # a window unit gives one pixel a cycle: positions x k*k is as fast as a layer can go
        floor = max(type(s).window_floor(s.layer) for s in st)
        assert floor == max(w.positions * w.kernel**2 for w in (st[0].window, st[1].window))
        assert cycles_per_frame(b, folds, 64) <= max(target, floor)


def test_first_beat_never_splits_a_pixel() -> None:
    b = random_net(3, parse_arch("cnv:4c3", 1, 1), (6, 6, 6), 2, in_bits=8)
    # 64 bits hold 8 codes, but a beat must be a divisor of the 6 channels: 6
    assert plan(b, choose_folding(b, 100, 64), 64).stages[0].in_chunk == 6
    assert plan(b, choose_folding(b, 100, 24), 24).stages[0].in_chunk == 3
    top = Top(plan(b, choose_folding(b, 100, 24), 24))
    assert top.ports.in_chunk == 3 and top.ports.in_beats == 6 * 6 * 2
    Fragment.get(top, None)  # elaborates: the 3-code beat meets the window unit's input


@dataclass(frozen=True)
class _Upsample:
    """A kind no back end knows (nearest-neighbour upsampling, say)."""

    kind: ClassVar[str] = "upsample2d"
    in_shape: tuple[int, ...] = (4, 4, 1)
    out_shape: tuple[int, ...] = (8, 8, 1)
    in_bits: int = 8
    out_bits: int = 8
    in_size: int = 16
    out_size: int = 64


def test_an_unknown_kind_is_refused_in_one_line_never_mistaken() -> None:
    """Every kind-keyed table refuses a kind it lacks by name (the op counter once took any
    kind without a matrix for a max-pool)."""
    import torch

    from hwqnn.errors import InputError
    from hwqnn.gpu.infer import to_device_layer
    from hwqnn.onnxio.export import ExportError, _layer

    b = random_net(1, parse_arch("cnv:4c3-fc6"), (8, 8, 1), 3)
    odd = dataclasses.replace(b, layers=(_Upsample(), *b.layers))
    with pytest.raises(InputError, match=r"^layer 0: the hardware back end has no 'upsample2d'"):
        plan(odd, [LayerFold(1, 1)] * 3)
    with pytest.raises(InputError, match=r"^layer 0: the hardware back end has no 'upsample2d'"):
        choose_folding(odd)
    with pytest.raises(InputError, match=r"^the GPU path has no 'upsample2d' layers$"):
        to_device_layer(_Upsample(), torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(ExportError, match=r"^layer 0: QONNX export has no 'upsample2d' layers$"):
        _layer(None, 0, _Upsample(), "x", True)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", [[], ["--fold", "2x9,1x4,1x6"], ["--target-cycles", "300"]])
def test_hwqnn_rtl_plans_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: list[str]
) -> None:
    """One plan per command: the generator, the manifest, the LUT model and the latency
    prediction all read the same one."""
    import hwqnn.hw.plan
    from hwqnn.bundle import save
    from hwqnn.cli import main

    calls = []
    real = hwqnn.hw.plan.plan

    def counted(*a: object, **k: object) -> object:
        calls.append(1)
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(hwqnn.hw.plan, "plan", counted)
    b = random_net(2, parse_arch("cnv:4c3-mp2-fc6"), (6, 6, 1), 3)
    save(b, tmp_path / "b.npz")
    assert main(["rtl", str(tmp_path / "b.npz"), "-o", str(tmp_path / "rtl"), *how]) == 0
    assert len(calls) == 1
