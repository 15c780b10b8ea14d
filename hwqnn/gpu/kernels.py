"""Triton kernels: packed popcount GEMM with the threshold fused, and a naive baseline.

Operands are the bundle's packed planes viewed as 32-bit words (a uint64 word ``j`` is words
``2j`` (bits 0..31) and ``2j+1`` (bits 32..63), so the bit layout is exactly the bundle's):

    acts    int32 [M, planes_in, KW]   inputs, padded with 0
    weights int32 [N, planes_w, KW]    weights, padded with 1
    acc[m, n] = sum_{p,q} 2**(p+q) * sum_k popcount(op_q(acts[m,p,k], weights[n,q,k]))

where ``op_q`` is XNOR, or AND where bit ``q`` of ``AND_PLANES`` is set, or NOR (``~(a | w)``)
where bit ``q`` of ``NOR_PLANES`` is (the weight encoding's plane ops, compile-time constants).

Epilogue (fused): hidden layers output the code ``sum_i [A' >= T[n, i]]`` with
``A' = acc_max - A`` where ``flip[n]``; the last layer outputs the score ``GAIN*A + T[n, 0]``
(its one threshold column holds the class's offset: ``-acc_max`` for odd levels), or, with a
per-class score scale (``NT == 2``), ``T[n, 1]*A + T[n, 0]`` (the second column: the class's
scale times ``GAIN``).

The popcount is chosen at compile time: the hardware instruction (``popc``) on a GPU, a SWAR
bit count under ``TRITON_INTERPRET=1`` (the CPU interpreter cannot call libdevice).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _popcount32(x, HW_POPC: tl.constexpr):
    if HW_POPC:
        return tl.extra.cuda.libdevice.popc(x)
    else:
        v = x.to(tl.uint32, bitcast=True)
        v = v - ((v >> 1) & 0x55555555)
        v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
        v = (v + (v >> 4)) & 0x0F0F0F0F
        v = (v * 0x01010101) >> 24
        return (v & 0xFF).to(tl.int32)


@triton.jit
def _plane_op(a, w, q: tl.constexpr, AND_PLANES: tl.constexpr, NOR_PLANES: tl.constexpr):
    if (AND_PLANES >> q) & 1:
        return a & w
    elif (NOR_PLANES >> q) & 1:
        return ~(a | w)
    else:
        return ~(a ^ w)


@triton.jit
def _epilogue(acc, offs_m, offs_n, M, N, out_ptr, stride_om, thr_ptr, flip_ptr, acc_max,
              NT: tl.constexpr, LAST: tl.constexpr, GAIN: tl.constexpr):  # fmt: skip
    mask_n = offs_n < N
    if LAST:
        off = tl.load(thr_ptr + offs_n * NT, mask=mask_n, other=0)
        if NT == 2:
            gain = tl.load(thr_ptr + offs_n * NT + 1, mask=mask_n, other=0)
            res = gain[None, :] * acc + off[None, :]
        else:
            res = GAIN * acc + off[None, :]
    else:
        flip = tl.load(flip_ptr + offs_n, mask=mask_n, other=0)
        a_eff = tl.where(flip[None, :] != 0, acc_max - acc, acc)
        res = tl.zeros_like(acc)
        for i in tl.static_range(NT):
            t = tl.load(thr_ptr + offs_n * NT + i, mask=mask_n, other=0)
            res += (a_eff >= t[None, :]).to(tl.int32)
    mask = (offs_m[:, None] < M) & mask_n[None, :]
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :], res, mask=mask)


@triton.jit
def xnor_gemm_kernel(
    a_ptr, w_ptr, out_ptr, thr_ptr, flip_ptr,
    M, N, KW, stride_am, stride_ap, stride_wn, stride_wp, stride_om, acc_max,
    PA: tl.constexpr, PW: tl.constexpr, NT: tl.constexpr, LAST: tl.constexpr,
    GAIN: tl.constexpr, AND_PLANES: tl.constexpr, NOR_PLANES: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, HW_POPC: tl.constexpr,
):  # fmt: skip
    """One program computes a BLOCK_M x BLOCK_N tile of codes or scores."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for p in tl.static_range(PA):
        for q in tl.static_range(PW):
            part = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
            for k0 in range(0, KW, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < KW
                a = tl.load(
                    a_ptr + offs_m[:, None] * stride_am + p * stride_ap + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :],
                    other=0,
                )
                w = tl.load(
                    w_ptr + offs_n[:, None] * stride_wn + q * stride_wp + offs_k[None, :],
                    mask=mask_n[:, None] & mask_k[None, :],
                    other=-1,  # all ones: every op with a padded 0 input is 0
                )
                x = _plane_op(a[:, None, :], w[None, :, :], q, AND_PLANES, NOR_PLANES)
                part += tl.sum(_popcount32(x, HW_POPC), axis=2)
            acc += part << (p + q)
    _epilogue(acc, offs_m, offs_n, M, N, out_ptr, stride_om, thr_ptr, flip_ptr, acc_max, NT, LAST,
              GAIN)  # fmt: skip


@triton.jit
def naive_gemm_kernel(
    a_ptr, w_ptr, out_ptr, thr_ptr, flip_ptr,
    M, N, KW, stride_am, stride_ap, stride_wn, stride_wp, stride_om, acc_max,
    PA: tl.constexpr, PW: tl.constexpr, NT: tl.constexpr, LAST: tl.constexpr,
    GAIN: tl.constexpr, AND_PLANES: tl.constexpr, NOR_PLANES: tl.constexpr,
    HW_POPC: tl.constexpr,
):  # fmt: skip
    """The deliberately naive baseline: one program per output element, one word at a time."""
    m = tl.program_id(0)
    n = tl.program_id(1)
    acc = 0
    for p in tl.static_range(PA):
        for q in tl.static_range(PW):
            part = 0
            for k in range(0, KW):
                a = tl.load(a_ptr + m * stride_am + p * stride_ap + k)
                w = tl.load(w_ptr + n * stride_wn + q * stride_wp + k)
                part += _popcount32(_plane_op(a, w, q, AND_PLANES, NOR_PLANES), HW_POPC)
            acc += part << (p + q)
    if LAST:
        if NT == 2:
            res = tl.load(thr_ptr + n * NT + 1) * acc + tl.load(thr_ptr + n * NT)
        else:
            res = GAIN * acc + tl.load(thr_ptr + n * NT)
    else:
        flip = tl.load(flip_ptr + n)
        a_eff = tl.where(flip != 0, acc_max - acc, acc)
        res = 0
        for i in tl.static_range(NT):
            res += (a_eff >= tl.load(thr_ptr + n * NT + i)).to(tl.int32)
    tl.store(out_ptr + m * stride_om + n, res)
