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
"""

from __future__ import annotations

from typing import Any

import torch

from hwqnn.errors import InputError


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


def quantize_level(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``bits``-bit odd integer level of ``x`` with the straight-through gradient (see module)."""
    if bits not in (1, 2, 4):
        raise InputError(f"quantizer bits must be 1, 2 or 4, not {bits!r}")
    out: torch.Tensor = _QuantSTE.apply(x, bits)
    return out
