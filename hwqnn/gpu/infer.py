"""Whole-network batch inference from a bundle with the Triton kernels (see ``kernels.py``).

Dense layers are one XNOR-popcount GEMM each. A convolution is the same GEMM on its im2col
matrix (``[images * positions, kernel*kernel*channels]``, gathered on the device in the bundle's
(ky, kx, c) order, code 0 outside the image); max-pooling is an integer max on the device.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

import hwqnn.gpu  # noqa: F401  (sets TRITON_INTERPRET on machines without CUDA)
from hwqnn.bundle import Bundle, InputQuant, Layer, NetLayer, UnsupportedKindError
from hwqnn.errors import InputError
from hwqnn.gpu.kernels import naive_gemm_kernel, xnor_gemm_kernel
from hwqnn.layers import Conv2d, MaxPool2d, Window
from hwqnn.layers.activation import Scores, Thresholds


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not interpreted() else "cpu")


@dataclass
class DeviceLayer:
    """A bundle layer's operands on the device."""

    layer: Layer
    weights: torch.Tensor  # int32 [N, planes_w, KW32]
    thresholds: torch.Tensor  # int32 [N, NT] (the last layer: each class's offset, and gain)
    flip: torch.Tensor  # int32 [N]
    scores: bool  # the activation is signed scores (no thresholds)

    @classmethod
    def from_layer(cls, layer: Layer, device: torch.device) -> DeviceLayer:
        w32 = np.ascontiguousarray(layer.weights).view("<u4").view(np.int32)
        act = layer.act
        if isinstance(act, Thresholds):
            thr = act.table.astype(np.int32)
            flip = act.flip.astype(np.int32)
        else:  # scores gain*A + offset: the offsets in the one threshold column (and each
            # class's scale * gain in a second one)
            off = act.offset
            gains = None if act.scale is None else act.scale * act.gain
            top = 0 if gains is None or not gains.size else int(gains.max()) * layer.acc_max
            if off.size and (int(off.min()) < -(2**31) or int(off.max()) >= 2**31
                             or act.bounds(layer.acc_max)[1] >= 2**31 or top >= 2**31):  # fmt: skip
                raise UnsupportedKindError(
                    "the last layer's scores leave int32: the GPU path's scores are int32"
                )
            cols = [off] if gains is None else [off, gains]
            thr = np.stack(cols, axis=1).astype(np.int32)
            flip = np.zeros(layer.out_features, np.int32)
        return cls(
            layer,
            torch.from_numpy(w32.copy()).to(device),
            torch.from_numpy(np.ascontiguousarray(thr)).to(device),
            torch.from_numpy(flip).to(device),
            isinstance(act, Scores),
        )

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def forward(self, x: torch.Tensor, naive: bool = False) -> torch.Tensor:
        """Codes ``[M, in]`` -> codes (or scores) ``[M, out]``."""
        kw = self.weights.shape[2]
        return layer_gemm(pack_codes(x, self.layer.in_bits, kw), self, naive=naive)


def windows(x: torch.Tensor, win: Window, pad_code: int = 0) -> torch.Tensor:
    """Codes ``[M, H*W*C]`` (HWC) -> ``[M, positions, k, k, C]`` windows, ``pad_code``
    outside."""
    img = x.reshape(-1, win.height, win.width, win.channels)
    if win.pad:
        p = win.pad
        img = torch.nn.functional.pad(img, (0, 0, p, p, p, p), value=pad_code)
    k, s = win.kernel, win.stride
    v = img.unfold(1, k, s).unfold(2, k, s)  # [M, out_h, out_w, C, ky, kx]
    return v.permute(0, 1, 2, 4, 5, 3).reshape(len(img), win.positions, k, k, win.channels)


@dataclass
class DeviceConv:
    """A convolution: its matrix as a :class:`DeviceLayer`, run on the im2col rows."""

    window: Window
    matrix: DeviceLayer

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def forward(self, x: torch.Tensor, naive: bool = False) -> torch.Tensor:
        ly = self.matrix.layer
        pad = ly.in_enc.zero_code(ly.in_bits)
        cols = windows(x, self.window, pad).reshape(-1, self.window.fan_in)
        return self.matrix.forward(cols, naive).reshape(len(x), -1)


@dataclass
class DevicePool:
    window: Window
    device: torch.device

    def forward(self, x: torch.Tensor, naive: bool = False) -> torch.Tensor:
        return windows(x, self.window).amax(dim=(2, 3)).reshape(len(x), -1)


DeviceOp = DeviceLayer | DeviceConv | DevicePool


def _conv(ly: NetLayer, device: torch.device) -> DeviceOp:
    conv = cast(Conv2d, ly)
    return DeviceConv(conv.window, DeviceLayer.from_layer(conv.matrix, device))


# The device form of each layer kind
DEVICE_OPS: dict[str, Callable[[NetLayer, torch.device], DeviceOp]] = {
    "dense": lambda ly, device: DeviceLayer.from_layer(cast(Layer, ly), device),
    "conv2d": _conv,
    "maxpool2d": lambda ly, device: DevicePool(cast(MaxPool2d, ly).window, device),
}


def to_device_layer(ly: NetLayer, device: torch.device) -> DeviceOp:
    """The device form of a bundle layer, looked up by its kind."""
    make = DEVICE_OPS.get(ly.kind)
    if make is None:
        raise InputError(f"the GPU path has no {ly.kind!r} layers")
    return make(ly, device)


def pack_codes(codes: torch.Tensor, bits: int, kw32: int) -> torch.Tensor:
    """Codes ``[M, K]`` -> bit-plane words int32 ``[M, bits, kw32]``: the bundle's layout, pad 0."""
    m, k = codes.shape
    shifts = torch.arange(bits, device=codes.device, dtype=torch.int64)
    planes = (codes.to(torch.int64)[:, None, :] >> shifts[None, :, None]) & 1  # [M, bits, K]
    padded = torch.zeros((m, bits, kw32 * 32), dtype=torch.int64, device=codes.device)
    padded[:, :, :k] = planes
    weights = 1 << torch.arange(32, device=codes.device, dtype=torch.int64)
    words = (padded.view(m, bits, kw32, 32) * weights).sum(-1)  # 0 .. 2**32 - 1
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def layer_gemm(
    acts: torch.Tensor,
    dl: DeviceLayer,
    naive: bool = False,
    block: tuple[int, int, int] = (32, 32, 8),
) -> torch.Tensor:
    """Codes (hidden) or scores (last) int32 ``[M, N]`` for packed inputs ``acts``."""
    ly = dl.layer
    m = acts.shape[0]
    n = ly.out_features
    kw = dl.weights.shape[2]
    if acts.shape[1:] != (ly.in_bits, kw):
        raise InputError(f"packed inputs must be [M, {ly.in_bits}, {kw}], not {tuple(acts.shape)}")
    out = torch.empty((m, n), dtype=torch.int32, device=acts.device)
    hw = acts.is_cuda and not interpreted()
    args = (
        acts, dl.weights, out, dl.thresholds, dl.flip, m, n, kw,
        acts.stride(0), acts.stride(1), dl.weights.stride(0), dl.weights.stride(1),
        out.stride(0), ly.acc_max,
    )  # fmt: skip
    ops = ly.plane_ops()
    consts = dict(
        PA=ly.in_bits, PW=ly.w_bits, NT=dl.thresholds.shape[1], LAST=dl.scores,
        GAIN=ly.in_enc.gain,
        AND_PLANES=sum(1 << q for q, op in enumerate(ops) if op == "and"),
        NOR_PLANES=sum(1 << q for q, op in enumerate(ops) if op == "nor"),
    )  # fmt: skip
    if naive:
        naive_gemm_kernel[(m, n)](*args, **consts, HW_POPC=hw)
    else:
        bm, bn, bk = block
        grid = (triton_cdiv(m, bm), triton_cdiv(n, bn))
        xnor_gemm_kernel[grid](
            *args, **consts, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, HW_POPC=hw
        )  # fmt: skip
    return out


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


class InputQuantizer:
    """The bundle's input quantization on the device: ``code = sum_i [raw >= T[g % C, i]]``
    (:mod:`hwqnn.layers.inputq`); the identity passes raw values through."""

    def __init__(self, quant: InputQuant, device: torch.device) -> None:
        t = quant.thresholds
        self.table = None if t is None else torch.from_numpy(t).to(device)

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return raw
        c, k = self.table.shape[0], raw.shape[1]
        rows = self.table.repeat(-(-k // c), 1)[:k].contiguous()  # [K, levels]: element g's row
        # the count of ascending thresholds <= raw, per element
        return torch.searchsorted(rows, raw.T.contiguous(), right=True).T


def to_device(bundle: Bundle, device: torch.device | None = None) -> list[DeviceOp]:
    dev = device or default_device()
    return [to_device_layer(ly, dev) for ly in bundle.layers]


def infer(
    bundle: Bundle,
    images: np.ndarray,
    batch: int = 4096,
    naive: bool = False,
    layers: list[DeviceOp] | None = None,
) -> np.ndarray:
    """Integer class scores int64 ``[N, classes]`` of raw images (8-bit pixels), computed on the
    device, the bundle's input quantization included."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != bundle.in_features:
        raise InputError(f"images must have shape [N, {bundle.in_features}], not {images.shape}")
    top = 2**bundle.raw_bits - 1
    if images.size and (int(images.min()) < 0 or int(images.max()) > top):
        raise InputError(f"input values must be in 0..{top} ({bundle.raw_bits}-bit raw input)")
    dls = layers or to_device(bundle)
    dev = dls[-1].device
    quantize = InputQuantizer(bundle.quant, dev)
    outs = []
    for s in range(0, len(images), batch):
        x = quantize(torch.from_numpy(images[s : s + batch].astype(np.int64)).to(dev))
        for dl in dls:
            x = dl.forward(x, naive)
        outs.append(x.to(torch.int64).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, bundle.num_classes), np.int64)
