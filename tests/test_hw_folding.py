from __future__ import annotations

import pytest

from hwqnn.hw.folding import FoldingError, LayerFold, choose_folding, fold_for_target, parse_folding
from hwqnn.randnet import random_bundle


@pytest.mark.parametrize(
    ("rows", "cols", "target"),
    [(256, 784, 1024), (10, 256, 64), (33, 70, 40), (7, 3, 1), (100, 100, 10**6)],
)
def test_chooser_meets_target_with_fewest_lanes(rows: int, cols: int, target: int) -> None:
    f = fold_for_target(rows, cols, target)
    assert f.cycles(rows, cols) <= target
    best = min(
        pe * simd
        for pe in range(1, rows + 1)
        for simd in range(1, cols + 1)
        if LayerFold(pe, simd).cycles(rows, cols) <= target
    )
    assert f.pe * f.simd == best


def test_choose_balances_layers() -> None:
    b = random_bundle(0, 784, (256, 256), 10)
    folds = choose_folding(b, 512)
    cycles = [
        f.cycles(ly.out_features, ly.in_features) for f, ly in zip(folds, b.layers, strict=True)
    ]
    assert max(cycles) <= 512


def test_parse_and_errors() -> None:
    b = random_bundle(0, 70, (33,), 5)
    assert parse_folding("4x16, 1x33", b) == [LayerFold(4, 16), LayerFold(1, 33)]
    with pytest.raises(FoldingError, match="folding names 1 layer"):
        parse_folding("4x16", b)
    with pytest.raises(FoldingError, match=r"layer 1: PE must be in 1..5 \(its outputs\), not 6"):
        parse_folding("4x16,6x1", b)
    with pytest.raises(
        FoldingError, match=r"layer 0: SIMD must be in 1..70 \(its fan-in\), not 71"
    ):
        parse_folding("1x71,1x1", b)
    with pytest.raises(FoldingError, match="layer 0: folding must look like PExSIMD"):
        parse_folding("4*16,1x1", b)
    with pytest.raises(FoldingError, match="target cycles per frame must be >= 1, not 0"):
        choose_folding(b, 0)
