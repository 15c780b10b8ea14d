"""Quantizers with straight-through gradients, as in the seed papers.

Courbariaux, Hubara et al., "Binarized Neural Networks" (2016) and Hubara et al., "Quantized
Neural Networks" (JMLR 2017). A ``k``-bit quantizer maps a real ``x`` to one of ``2**k`` odd
integer *levels* ``q = 2*c - (2**k - 1)`` (see :mod:`hwqnn.bundle`); the real value it stands
for is ``q / (2**k - 1)`` in [-1, 1]. Returning the integer level keeps every matrix product an
exact integer in float32.

Forward (``k = 1``)::

    q = +1 if x >= 0 else -1          # sign(0) = +1

Forward (``k > 1``)::

    c = clamp(floor((x + 1) * (2**k - 1) / 2 + 1/2), 0, 2**k - 1)    # round to nearest level,
    q = 2*c - (2**k - 1)                                             # ties up

Gradient (straight-through estimator, cancelled where ``|x| > 1``)::

    dq/dx = (2**k - 1) * 1[|x| <= 1]

(the factor ``2**k - 1`` makes ``q / (2**k - 1)`` have the hardtanh gradient of the papers).

The other encodings of :mod:`hwqnn.layers.encoding` quantize to a grid of consecutive integers
``lo .. hi`` whose real values are ``q / norm`` (rounding to nearest, ties up, and the same
straight-through gradient ``norm * 1[lo/norm <= x <= hi/norm]``)::

    unsigned (ReLU):  q = clamp(floor(x * M + 1/2), 0, M)           M = 2**k - 1, norm M
    signed (narrow):  q = clamp(floor(x * N + 1/2), -N, N)          N = 2**(k-1) - 1, norm N

A signed grid is symmetric, as Brevitas's narrow-range integer quantizers are (2 bits: the
ternary weights -1, 0, +1); its lowest code ``0`` (the value ``-2**(k-1)``) is never produced.
For every encoding the level ``q`` *is* the bundle's value of the code (``gain * c + offset``),
so a product of levels is the bundle's dot product of values.
"""

from __future__ import annotations

from typing import Any

import torch

from hwqnn.errors import InputError
from hwqnn.layers.encoding import ODD, SIGNED, UNSIGNED, Encoding


def quantize_code(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The code ``c`` in 0..2**bits-1 of ``x`` (no gradient). Shared by training and export."""
    if bits == 1:
        return (x >= 0).to(x.dtype)
    n = float(2**bits - 1)
    return torch.clamp(torch.floor((x + 1.0) * (n / 2.0) + 0.5), 0.0, n)


class _QuantSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bits: int) -> torch.Tensor:
        ctx.save_for_backward(x.abs() <= 1)  # a bool mask: a quarter of x's memory
        ctx.bits = bits
        if bits == 1:  # one fused op (the hot path of a BNN)
            return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
        return 2.0 * quantize_code(x, bits) - float(2**bits - 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (inside,) = ctx.saved_tensors
        return torch.where(inside, grad * float(2**ctx.bits - 1), 0.0), None


def level_norm(bits: int, enc: Encoding) -> int:
    """The divisor that maps the ``bits``-bit levels of ``enc`` into [-1, 1]: ``2**bits - 1``
    (odd, unsigned), ``2**(bits-1) - 1`` (signed, narrow range); 8-bit pixels included."""
    if enc is SIGNED:
        if bits < 2:
            raise InputError("a signed quantizer needs at least 2 bits (1 bit is -1 and 0 only)")
        return 2 ** (bits - 1) - 1
    if enc is ODD or enc is UNSIGNED:
        return 2**bits - 1
    raise InputError(f"quantizer encoding must be odd, unsigned or signed, not {enc!r}")


def grid(bits: int, enc: Encoding) -> tuple[int, int, int]:
    """``(lo, hi, norm)`` of the integer levels a ``bits``-bit quantizer of ``enc`` produces
    (odd levels step by 2, the others by 1) and the divisor that maps them into [-1, 1]."""
    if bits not in (1, 2, 4):
        raise InputError(f"quantizer bits must be 1, 2 or 4, not {bits!r}")
    n = level_norm(bits, enc)
    return (0 if enc is UNSIGNED else -n), n, n


def _grid_code(x: torch.Tensor, bits: int, enc: Encoding) -> torch.Tensor:
    """The level of ``x`` on a step-1 grid (no gradient)."""
    lo, hi, norm = grid(bits, enc)
    return torch.clamp(torch.floor(x * float(norm) + 0.5), float(lo), float(hi))


class _GridSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bits: int, enc: Encoding) -> torch.Tensor:
        lo, hi, norm = grid(bits, enc)
        ctx.save_for_backward((x >= lo / norm) & (x <= hi / norm))
        ctx.norm = norm
        return _grid_code(x, bits, enc)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (inside,) = ctx.saved_tensors
        return torch.where(inside, grad * float(ctx.norm), 0.0), None, None


def quantize_level(x: torch.Tensor, bits: int, enc: Encoding = ODD) -> torch.Tensor:
    """``bits``-bit integer level of ``x`` under ``enc`` with the straight-through gradient (see
    module): odd levels by default."""
    grid(bits, enc)  # checks bits and enc
    out: torch.Tensor = _QuantSTE.apply(x, bits) if enc is ODD else _GridSTE.apply(x, bits, enc)
    return out


def weight_code(x: torch.Tensor, bits: int, enc: Encoding = ODD) -> torch.Tensor:
    """The codes (int64) of real weights ``x`` as :func:`quantize_level` levels them."""
    if enc is ODD:
        return quantize_code(x.detach(), bits).to(torch.int64)
    return level_code(_grid_code(x.detach(), bits, enc), bits, enc)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` (half to even) forward, the identity's gradient backward."""
    return x + (torch.round(x) - x).detach()


def level_code(q: torch.Tensor, bits: int, enc: Encoding) -> torch.Tensor:
    """The bundle code (int64) of integer levels ``q``: the inverse of ``gain * c + offset``."""
    return ((q - float(enc.offset(bits))) / float(enc.gain)).to(torch.int64)
