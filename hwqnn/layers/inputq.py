"""Input quantization: how raw input values (8-bit pixels, say) become layer 0's codes.

The bundle's ``meta.input`` states it, and every implementation applies it (golden model, RTL
front end, GPU path, C library). Two forms (the bit layout is in :mod:`hwqnn.bundle`):

* **identity** (``meta.input`` without ``"quant"``; every version-1 and version-2 bundle): a raw
  value is its own code, ``raw_bits == bits``. hwqnn-trained nets take 8-bit pixels this way.
* **thresholds** (version 3): ``input.thresholds`` int64 ``[channels, 2**bits - 1]``, ascending per
  row, values in ``0 .. 2**raw_bits`` (``2**raw_bits`` is never met). Input element ``g`` (in the
  bundle's HWC order) belongs to channel ``g % channels``, and its code is the number of its
  channel's thresholds it reaches: ``code = sum_i [raw >= T[g % channels, i]]``. ``channels`` is 1
  (one rule for every element) or the image's channel count. A 1-bit code with threshold 128 is
  FINN's binarized input (BNN-PYNQ's LFC: pixel >= 128 -> +1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hwqnn.errors import InputError
from hwqnn.layers._meta import Fail, int_field, keys
from hwqnn.layers.dense import SUPPORTED_BITS

RAW_BITS = range(1, 9)  # raw values are stored and streamed as bytes
QUANT_KINDS = ("thresholds",)
ARRAY = "input.thresholds"


@dataclass(frozen=True, eq=False)
class InputQuant:
    """Raw values of ``raw_bits`` to codes of ``bits``; ``thresholds is None`` is the identity."""

    raw_bits: int
    bits: int
    thresholds: np.ndarray | None = None  # int64 [channels, 2**bits - 1]

    since: ClassVar[int] = 3  # the bundle version that introduced threshold quantization

    @classmethod
    def identity(cls, bits: int) -> InputQuant:
        return cls(raw_bits=bits, bits=bits)

    @property
    def is_identity(self) -> bool:
        return self.thresholds is None

    @property
    def channels(self) -> int:
        return 1 if self.thresholds is None else int(self.thresholds.shape[0])

    @property
    def levels(self) -> int:
        return 2**self.bits - 1

    def label(self) -> str:
        return f"{self.bits}b" if self.is_identity else f"{self.raw_bits}b>{self.bits}b"

    def meta(self) -> dict[str, object]:
        """The keys this adds to ``meta.input`` (none for the identity: old files stay as they
        were)."""
        if self.is_identity:
            return {}
        return {"quant": "thresholds", "raw_bits": self.raw_bits, "channels": self.channels}

    def arrays(self) -> dict[str, np.ndarray]:
        return {} if self.thresholds is None else {ARRAY: self.thresholds}

    def check(self, image_channels: int, fail: Fail) -> None:
        """Check the fields and the table (``image_channels``: the input's last dimension for a
        ``[H, W, C]`` input, else 1); ``fail`` names the field."""
        if self.bits not in SUPPORTED_BITS:
            fail("meta.input.bits", f"one of {SUPPORTED_BITS}", self.bits)
        if self.raw_bits not in RAW_BITS:
            fail("meta.input.raw_bits", f"{RAW_BITS.start}..{RAW_BITS.stop - 1}", self.raw_bits)
        t = self.thresholds
        if t is None:
            if self.raw_bits != self.bits:
                fail("meta.input.raw_bits", f"{self.bits} (identity input: raw values are codes)",
                     self.raw_bits)  # fmt: skip
            return
        if t.dtype != np.int64 or t.ndim != 2:
            fail(ARRAY, "a 2-D int64 array", f"{t.dtype} of {t.ndim} dimensions")
        if t.shape[0] not in {1, image_channels}:
            want = "1" if image_channels == 1 else f"1 or {image_channels} (the input's channels)"
            fail("meta.input.channels", want, t.shape[0])
        if t.shape[1] != self.levels:
            fail(ARRAY, f"{self.levels} thresholds per channel (2**bits - 1)", t.shape[1])
        if t.size and (t.min() < 0 or t.max() > 2**self.raw_bits):
            fail(ARRAY, f"values in 0..{2**self.raw_bits}", "outside")
        if not bool(np.all(np.diff(t, axis=1) >= 0)):
            fail(ARRAY, "ascending per channel", "a descending pair")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Codes int64 ``[N, K]`` of raw values ``[N, K]`` (a value outside ``0 ..
        2**raw_bits - 1`` is refused)."""
        raw = np.asarray(raw)
        if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= 2**self.raw_bits):
            raise InputError(
                f"input values must be in 0..{2**self.raw_bits - 1} ({self.raw_bits}-bit raw "
                f"input), found {int(raw.min())}..{int(raw.max())}"
            )
        x = raw.astype(np.int64)
        if self.thresholds is None:
            return x
        out = np.empty_like(x)
        c = self.channels
        for ch in range(c):  # sum_i [raw >= T[ch, i]] is the count of thresholds <= raw
            out[:, ch::c] = np.searchsorted(self.thresholds[ch], x[:, ch::c], side="right")
        return out


@dataclass(frozen=True)
class InputHeader:
    """``meta.input``'s quantization keys, checked; knows the table's dtype and shape."""

    raw_bits: int
    bits: int
    channels: int  # 0: identity

    KEYS: ClassVar[set[str]] = {"shape", "bits", "quant", "raw_bits", "channels"}
    OPTIONAL: ClassVar[set[str]] = {"quant", "raw_bits", "channels"}

    @classmethod
    def parse(cls, inp: object, bits: int, image_channels: int, version: int,
              fail: Fail) -> InputHeader:  # fmt: skip
        m = keys(inp, "meta.input", cls.KEYS, fail, optional=cls.OPTIONAL)
        if "quant" not in m:
            for k in ("raw_bits", "channels"):
                if k in m:
                    fail(f"meta.input.{k}", "no such key without 'quant'", "one")
            return cls(raw_bits=bits, bits=bits, channels=0)
        if m["quant"] not in QUANT_KINDS:
            fail("meta.input.quant", f"one of {', '.join(QUANT_KINDS)}", f"{m['quant']!r}"[:60])
        if version < InputQuant.since:
            fail("meta.input.quant", f"no quant key in a version-{version} bundle",
                 f"{m['quant']!r} (version {InputQuant.since})")  # fmt: skip
        for k in ("raw_bits", "channels"):
            if k not in m:
                fail(f"meta.input.{k}", "a value", "nothing")
        raw_bits = int_field(m["raw_bits"], "meta.input.raw_bits", fail, RAW_BITS)
        channels = int_field(m["channels"], "meta.input.channels", fail,
                             tuple(sorted({1, image_channels})))  # fmt: skip
        return cls(raw_bits=raw_bits, bits=bits, channels=channels)

    def arrays(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        if not self.channels:
            return {}
        return {ARRAY: (np.dtype("<i8"), (self.channels, 2**self.bits - 1))}

    def build(self, arrays: dict[str, np.ndarray]) -> InputQuant:
        return InputQuant(self.raw_bits, self.bits, arrays.get(ARRAY) if self.channels else None)


def image_channels(input_shape: tuple[int, ...]) -> int:
    """The channel count an input quantization table may have per channel: ``C`` of an
    ``[H, W, C]`` input, else 1."""
    return int(input_shape[-1]) if len(input_shape) == 3 else 1
