"""The stream rule of the README ("The hardware and how to integrate it"), derived from the
generator: each example the README states is what ``hwqnn rtl`` writes into ``manifest.json``'s
``ports`` for a net of that kind and input shape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hwqnn.arch import parse_arch
from hwqnn.bundle import Bundle
from hwqnn.hw.emit import generate
from hwqnn.hw.folding import balance
from hwqnn.hw.plan import plan
from hwqnn.randnet import random_bundle, random_net

README = (Path(__file__).parent.parent / "README.md").read_text()


def _ports(b: Bundle, axis_bits: int, tmp_path: Path) -> tuple[int, int]:
    man = generate(plan(b, balance(b, None, axis_bits), axis_bits), tmp_path)
    return man.ports.in_chunk, man.ports.in_beats


def test_the_readme_states_the_rule_for_both_kinds() -> None:
    assert "The demo MLP at 64 bits: 8 pixels a beat, 98 beats a frame" in README
    assert "takes **one pixel a beat at any `--axis-bits`** (784 beats for 28x28)" in README
    assert "an RGB one at 24 bits\n  or more, 3 values (one pixel) a beat" in README
    assert not re.search(r"in_chunk = min\(axis_bits / 8, 784\)", README)  # the old, wrong rule


def test_an_mlp_takes_as_many_pixels_as_the_bus_holds(tmp_path: Path) -> None:
    b = random_bundle(1, 784, (16,), 10)  # the demo's input: 784 8-bit pixels
    assert _ports(b, 64, tmp_path) == (8, 98)


@pytest.mark.parametrize("axis_bits", [8, 24, 64, 256])
def test_a_grayscale_convnet_takes_one_pixel_a_beat(axis_bits: int, tmp_path: Path) -> None:
    b = random_net(1, parse_arch("cnv:4c3-mp2-fc8"), (28, 28, 1), 10)
    assert _ports(b, axis_bits, tmp_path) == (1, 784)


@pytest.mark.parametrize(("axis_bits", "chunk"), [(8, 1), (16, 1), (24, 3), (64, 3)])
def test_an_rgb_convnet_takes_whole_pixels(axis_bits: int, chunk: int, tmp_path: Path) -> None:
    b = random_net(1, parse_arch("cnv:4c3-mp2-fc8"), (32, 32, 3), 10)
    assert _ports(b, axis_bits, tmp_path) == (chunk, 32 * 32 * 3 // chunk)
