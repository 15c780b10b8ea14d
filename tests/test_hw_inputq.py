# amaranth: UnusedElaboratable=no
"""The RTL front end that applies the bundle's input thresholds, in Amaranth's simulator: every
code equal to the definition ``sum_i [raw >= T[g % C, i]]``, across frames whose beats do not
line up with the channels, with random input gaps and output back-pressure."""

from __future__ import annotations

import numpy as np
import pytest

from hwqnn.hw.inputq import InputQuantizer
from hwqnn.intmath import ceil_div
from hwqnn.layers.inputq import InputQuant
from tests.test_hw_window import _pack, simulate


def _by_definition(raw: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.array([[sum(int(v) >= int(x) for x in t[g % len(t)]) for g, v in enumerate(img)]
                     for img in raw])  # fmt: skip


@pytest.mark.parametrize(
    ("raw_bits", "bits", "channels", "features", "chunk", "stalls"),
    [
        pytest.param(8, 1, 1, 23, 8, True, id="binarize-partial-last-beat"),
        pytest.param(8, 2, 3, 60, 8, True, id="3ch-beats-across-pixels-frame-not-multiple"),
        pytest.param(8, 2, 3, 27, 1, True, id="3ch-one-value-a-beat"),
        pytest.param(5, 4, 3, 12, 6, False, id="3ch-two-pixels-a-beat-4bit"),
        pytest.param(8, 1, 2, 10, 4, True, id="2ch-threshold-never-and-always"),
    ],
)  # fmt: skip
def test_front_end_codes_equal_the_definition(
    raw_bits: int, bits: int, channels: int, features: int, chunk: int, stalls: bool
) -> None:
    rng = np.random.default_rng(features + chunk)
    t = np.sort(rng.integers(1, 2**raw_bits, (channels, 2**bits - 1)), axis=1)
    t[-1, 0], t[0, -1] = 0, 2**raw_bits  # always met; never met
    t = np.sort(t, axis=1)
    q = InputQuant(raw_bits, bits, t.astype(np.int64))
    beats = ceil_div(features, chunk)
    raw = rng.integers(0, 2**raw_bits, (4, features))
    padded = np.zeros((4, beats * chunk), np.int64)
    padded[:, :features] = raw
    dut = InputQuantizer(q, chunk, beats)
    words = [_pack(row, raw_bits) for img in padded for row in img.reshape(beats, chunk)]
    got, _ = simulate(dut, dut, words, len(words), chunk, bits, stalls, seed=features)
    codes = np.array(got).reshape(4, beats * chunk)[:, :features]
    np.testing.assert_array_equal(codes, _by_definition(raw, t))


def test_identity_needs_no_front_end() -> None:
    with pytest.raises(ValueError, match="identity"):
        InputQuantizer(InputQuant.identity(8), 8, 4)
