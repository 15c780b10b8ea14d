"""Random bundles for tests and benches, made directly in NumPy (independent of training).

Thresholds are drawn around the accumulator's mean for random inputs, so outputs vary; a share
of channels is flipped and a share is constant (thresholds 0 or ``acc_max + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypedDict

import numpy as np

from hwqnn.arch import Arch, Conv
from hwqnn.bundle import Bundle, InputQuant, NetLayer, level_scale, make_layer, validate
from hwqnn.layers import Conv2d, MaxPool2d
from hwqnn.layers.encoding import ODD, Encoding


class LayerEncodings(TypedDict):
    in_enc: Encoding
    w_enc: Encoding
    out_enc: Encoding
    bias: np.ndarray | None
    scale: np.ndarray | None


@dataclass(frozen=True)
class Encodings:
    """The encodings of a random net: its input, every weight, every hidden activation, and
    whether the last layer has a score bias and a per-class score scale (``1 .. 999``; the bias
    then spans a few hundred scaled units)."""

    input: Encoding = ODD
    w: Encoding = ODD
    act: Encoding = ODD
    bias: bool = False
    scale: bool = False

    def of_layer(
        self, rng: np.random.Generator, i: int, last: bool, w: np.ndarray
    ) -> LayerEncodings:
        """``make_layer``'s encoding arguments for layer ``i`` (``w``: its weight codes)."""
        k, rows = w.shape[1], w.shape[0]
        spread = 4 * k * (300 if self.scale else 1)
        return LayerEncodings(
            in_enc=self.input if i == 0 else self.act,
            w_enc=self.w,
            out_enc=ODD if last else self.act,
            bias=rng.integers(-spread, spread + 1, size=rows) if last and self.bias else None,
            scale=np.asarray(rng.integers(1, 1000, size=rows)) if last and self.scale else None,
        )


def random_layer_params(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    in_bits: int,
    w_bits: int,
    out_bits: int,
    w_enc: Encoding = ODD,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Weight codes ``[rows, cols]`` and, for ``out_bits > 0``, thresholds and flips."""
    w = rng.integers(0, 2**w_bits, size=(rows, cols))
    if not out_bits:
        return w, None, None
    acc_max = level_scale(in_bits, w_bits) * cols
    spread = max(1.0, 0.5 * level_scale(in_bits, w_bits) * np.sqrt(cols))
    # a leaf is M/2 on average for XNOR planes, M/4 for AND/NOR ones (random codes)
    mean = acc_max / (2 if w_enc is ODD else 4)
    t = np.sort(rng.normal(mean, spread, size=(rows, 2**out_bits - 1)), axis=1)
    t = np.clip(np.rint(t), 0, acc_max + 1).astype(np.int64)
    const = rng.random(rows) < 0.05
    t[const] = rng.choice([0, acc_max + 1], size=(int(const.sum()), 1))
    flip = (rng.random(rows) < 0.3).astype(np.uint8)
    return w, t, flip


def random_bundle(
    seed: int,
    in_features: int,
    hidden: tuple[int, ...],
    classes: int,
    w_bits: int = 1,
    a_bits: int = 1,
    in_bits: int = 8,
    encodings: Encodings | None = None,
) -> Bundle:
    """A random network ``in_features -> hidden... -> classes`` (8-bit input by default), of
    odd levels or of ``encodings`` (then the last layer has a random score bias if
    ``encodings.bias``)."""
    rng = np.random.default_rng(seed)
    e = encodings or Encodings()
    widths = [in_features, *hidden, classes]
    layers = []
    for i in range(len(widths) - 1):
        kin = in_bits if i == 0 else a_bits
        last = i == len(widths) - 2
        kout = 0 if last else a_bits
        w, t, f = random_layer_params(rng, widths[i + 1], widths[i], kin, w_bits, kout, e.w)
        layers.append(make_layer(w, kin, w_bits, kout, t, f, **e.of_layer(rng, i, last, w)))
    return Bundle(
        layers=tuple(layers),
        input_shape=(in_features,),
        classes=tuple(f"c{i}" for i in range(classes)),
        info={"random_seed": seed},
    )


def random_net(
    seed: int,
    arch: Arch,
    image: tuple[int, int, int],
    classes: int,
    in_bits: int = 8,
    encodings: Encodings | None = None,
) -> Bundle:
    """A random network of any architecture (conv front included) over ``image`` (H, W, C), of
    odd levels or of ``encodings``."""
    rng = np.random.default_rng(seed)
    e = encodings or Encodings()
    layers: list[NetLayer] = []
    kin, a, wb = in_bits, arch.a_bits, arch.w_bits
    for f, win in zip(arch.features, arch.windows(image), strict=True):
        i = len(layers)
        if isinstance(f, Conv):
            w, t, fl = random_layer_params(rng, f.out, win.fan_in, kin, wb, a, e.w)
            layers.append(
                Conv2d(win, make_layer(w, kin, wb, a, t, fl, **e.of_layer(rng, i, False, w)))
            )
            kin = a
        else:
            layers.append(MaxPool2d(win, kin, e.input if i == 0 else e.act))
    width = layers[-1].out_size if layers else image[0] * image[1] * image[2]
    widths = [width, *arch.hidden, classes]
    for j in range(len(widths) - 1):
        i, last = len(layers), j == len(widths) - 2
        kout = 0 if last else a
        w, t, fl = random_layer_params(rng, widths[j + 1], widths[j], kin, wb, kout, e.w)
        layers.append(make_layer(w, kin, wb, kout, t, fl, **e.of_layer(rng, i, last, w)))
        kin = a
    return Bundle(
        layers=tuple(layers),
        input_shape=image,
        classes=tuple(f"c{i}" for i in range(classes)),
        info={"random_seed": seed, "arch": arch.spec},
    )


def random_codes(seed: int, n: int, k: int, bits: int = 8) -> np.ndarray:
    """Random input codes ``int64[n, k]`` in ``0 .. 2**bits - 1``."""
    return np.random.default_rng(seed).integers(0, 2**bits, size=(n, k))


def with_input_thresholds(
    bundle: Bundle, seed: int, channels: int = 1, raw_bits: int = 8
) -> Bundle:
    """``bundle`` (whose layer 0 takes ``b``-bit codes) taking raw values of ``raw_bits`` through
    random ascending input thresholds (``channels``: 1 or the input's C)."""
    rng = np.random.default_rng(seed)
    bits = bundle.layers[0].in_bits
    t = np.sort(rng.integers(0, 2**raw_bits + 1, size=(channels, 2**bits - 1)), axis=1)
    quant = InputQuant(raw_bits, bits, t.astype(np.int64))
    out = replace(bundle, input_quant=quant)
    validate(out)
    return out
